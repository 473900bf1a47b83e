"""第二部分第 1 页：注意力的每一级台阶都和 PyTorch 的实现对得上；块里三样东西符合各自的公式，去掉残差、去掉 LayerNorm
的实验结论在几个种子上都成立；参数量的公式与实际计数逐个相等；因果注意力让未来的字符影响不到前面的位置。"""

import math
import re

import pytest
import torch
import torch.nn.functional as F

from tests.conftest import DOCS
from tests.site.test_structure import nav_pages

SNIPPET = "snippets/part2/ch01_gpt.py"


@pytest.fixture(scope="module")
def ns(run_snippet):
    return run_snippet(SNIPPET).ns


@pytest.fixture(scope="module")
def stdout(run_snippet):
    return run_snippet(SNIPPET).stdout


# ---- 1.2 词元嵌入 ----


def test_embedding_lookup_is_a_one_hot_matmul(ns):
    emb, ids = ns["tok_emb"], ns["ids"]
    assert ns["lookup_is_matmul"] is True
    by_hand = torch.zeros(len(ids), emb.num_embeddings)
    by_hand[torch.arange(len(ids)), ids] = 1.0
    assert torch.equal(emb(ids), by_hand @ emb.weight)


# ---- 1.3 第 1 级：加权平均 ----


def test_weighted_average_step(ns):
    X, weights, out = ns["X"], ns["weights"], ns["out_average"]
    assert torch.equal(ns["scores"], ns["scores"].T), "第 1 级的分数矩阵应当对称"
    assert (weights > 0).all()
    torch.testing.assert_close(weights.sum(dim=-1), torch.ones(4))
    # 手算的数与矩阵里的数相同；与 PyTorch 的注意力（在测试里重新算一遍）相同
    assert abs(ns["row0_by_hand"] - weights[0, 0].item()) < 1e-6
    torch.testing.assert_close(ns["row2_by_hand"], out[2])
    torch.testing.assert_close(out, F.scaled_dot_product_attention(X, X, X, scale=1.0))
    torch.testing.assert_close(out, torch.softmax(X @ X.T, dim=-1) @ X)


# ---- 1.4 第 2 级：查询、键、值 ----


def test_qkv_step_matches_sdpa_and_is_trainable(ns):
    X = ns["X"]
    with torch.no_grad():
        Q, K, V = ns["query_layer"](X), ns["key_layer"](X), ns["value_layer"](X)
    torch.testing.assert_close(ns["out_qkv"], F.scaled_dot_product_attention(Q, K, V))
    torch.testing.assert_close(ns["weights_qk"].sum(dim=-1), torch.ones(4))
    assert not torch.allclose(ns["scores_qk"], ns["scores_qk"].T), "查询和键不同，分数矩阵不再对称"
    # 页面说：随机初始化的层给出的权重离平均的 0.25 不远
    assert ((ns["weights_qk"] > 0.1) & (ns["weights_qk"] < 0.4)).all(), ns["weights_qk"]
    assert ns["n_qkv_params"] == 3 * (3 * 2 + 2)
    # 训练 W_Q、W_K 之后，第 3 行的权重几乎全部移到第 1 个位置
    assert ns["row3_before"][1] < 0.3 and ns["row3_after"][1] > 0.9, (ns["row3_before"], ns["row3_after"])
    torch.testing.assert_close(ns["row3_after"].sum(), torch.tensor(1.0))


def test_scaling_keeps_softmax_from_saturating(ns):
    rows = ns["scale_rows"]
    assert [dim for dim, *_ in rows] == [4, 64, 1024]
    for dim, std, raw_max, scaled_max in rows:
        assert abs(std / math.sqrt(dim) - 1) < 0.05, f"d_k={dim}：点积的标准差 {std} 应接近 √d_k"
        assert scaled_max < raw_max
    raw = [r[2] for r in rows]
    scaled = [r[3] for r in rows]
    assert raw[0] < raw[1] < raw[2] and raw[2] > 0.9, f"不缩放时最大权重应随 d_k 逼近 1：{raw}"
    assert max(scaled) - min(scaled) < 0.05, f"除以 √d_k 后三种维度应几乎一样：{scaled}"


# ---- 1.5 第 3 级：因果掩码 ----


def test_causal_mask_step(ns):
    w, masked = ns["weights_causal"], ns["scores_masked"]
    above = torch.ones(4, 4, dtype=torch.bool).triu(diagonal=1)
    assert ns["upper_is_zero"] is True and (w[above] == 0).all()
    assert torch.isneginf(masked[above]).all() and torch.isfinite(masked[~above]).all()
    torch.testing.assert_close(w.sum(dim=-1), torch.ones(4))
    assert w[0, 0] == 1, "第 0 行只看得见自己"
    torch.testing.assert_close(w[3], ns["weights_qk"][3])  # 最后一行什么也没遮住
    X = ns["X"]  # 后面数参数时 V 被重新用作字符表大小，所以从三个线性层重新算 Q、K、V
    with torch.no_grad():
        Q, K, V = ns["query_layer"](X), ns["key_layer"](X), ns["value_layer"](X)
    torch.testing.assert_close(ns["out_causal"], F.scaled_dot_product_attention(Q, K, V, is_causal=True))
    # 反例：先 softmax 再清零，前 3 行加不到 1
    assert (ns["zeroed_after"].sum(dim=-1)[:3] < 0.99).all()


# ---- 1.6 第 4 级：多头注意力 ----


def test_multi_head_reshapes_match_the_loop_the_library_and_torch_mha(ns, stdout):
    torch.testing.assert_close(ns["y_heads"], ns["y_loop"])
    torch.testing.assert_close(ns["y_library"], ns["y_heads"])
    # 独立的参照：PyTorch 自己的 nn.MultiheadAttention，装上同样的权重
    C, n_head = ns["C"], ns["n_head"]
    to_q, to_k, to_v, to_out = ns["to_q"], ns["to_k"], ns["to_v"], ns["to_out"]
    mha = torch.nn.MultiheadAttention(C, n_head, batch_first=True)
    with torch.no_grad():
        mha.in_proj_weight.copy_(torch.cat([to_q.weight, to_k.weight, to_v.weight]))
        mha.in_proj_bias.copy_(torch.cat([to_q.bias, to_k.bias, to_v.bias]))
        mha.out_proj.load_state_dict(to_out.state_dict())
        x = ns["x_heads"]
        future = torch.ones(x.shape[1], x.shape[1], dtype=torch.bool).triu(diagonal=1)  # True = 不许看
        reference, _ = mha(x, x, x, attn_mask=future, need_weights=False)
    torch.testing.assert_close(ns["y_heads"], reference)
    # 每一步的形状都打印出来了
    for shape in ["(1, 4, 8)  (B, T, C)", "(1, 4, 2, 4)  (B, T, 头", "(1, 2, 4, 4)  (B, 头, T"]:
        assert shape in stdout, shape
    assert "与 q 共用内存: True" in stdout and "连续存放: False" in stdout
    assert "view size is not compatible" in ns["view_error"]
    # 两个头的权重不一样
    (_, w0, _), (_, w1, _) = ns["per_head"]
    assert not torch.allclose(w0, w1, atol=1e-2)


# ---- 1.7 第 5 级：位置嵌入 ----


def test_attention_is_order_blind_without_position_embeddings(ns):
    perm = ns["perm"]
    assert not torch.equal(perm, torch.arange(4))
    torch.testing.assert_close(ns["shuffled_then_attend"], ns["attend_then_shuffle"])
    assert ns["order_blind_diff"] < 1e-5, "只有词元嵌入时，'=' 位置分不清两道题"
    assert ns["order_aware_diff"] > 1e-2, "加上位置嵌入后应当分得清"


# ---- 1.8 第 6 级：Transformer 块 ----


def test_gelu_matches_its_formula_and_keeps_a_gradient_below_zero(ns):
    """GELU 与 x·Φ(x) 只差 float32 舍入；tanh 近似差得多但不到千分之一；负半轴上 GELU 的导数不是 0，ReLU 的是。"""
    assert ns["gelu_diff"] < 1e-5
    assert 10 * ns["gelu_diff"] < ns["tanh_diff"] < 1e-3, f"tanh 近似的差别：{ns['tanh_diff']}"
    points, gelu_grad, relu_grad = ns["points"].detach(), ns["gelu_grad"], ns["relu_grad"]
    phi = torch.exp(-(points**2) / 2) / math.sqrt(2 * math.pi)
    Phi = 0.5 * (1 + torch.erf(points / math.sqrt(2)))
    torch.testing.assert_close(gelu_grad, Phi + points * phi)  # GELU'(x) = Φ(x) + x·φ(x)
    negative = points < 0
    assert (gelu_grad[negative] != 0).all() and (relu_grad[points <= 0] == 0).all()


def test_layernorm_matches_its_formula_and_ignores_the_input_scale(ns):
    assert ns["ln_diff"] < 1e-5
    ln_out = ns["ln_out"]
    assert ln_out.mean(dim=-1).abs().max() < 1e-5, "LayerNorm 之后每个位置的平均值应为 0"
    std = ln_out.std(dim=-1, unbiased=False)
    assert (std < 1).all() and (std > 1 - 1e-5).all(), "标准差应是 sqrt(var/(var+eps))：比 1 小一点点"
    assert ns["ln_scale_diff"] < 1e-4, "输入放大 100 倍，输出应几乎不变"


def test_residual_block_is_identity_when_sublayers_are_zero(ns):
    assert ns["residual_identity"] is True
    assert ns["residual_grad_identity"] is True


def _check_ablation(result: dict, chance: float, seed: int) -> None:
    """ablation_summary 里每句话所依据的比较（阈值与那一段代码相同）。"""
    full, no_res, no_ln, neither = (
        result[name] for name in ("完整的块", "去掉残差", "去掉 LayerNorm", "两样都去掉")
    )
    where = f"种子 {seed}：{result}"
    assert max(full["end"], no_ln["end"]) < 1, where
    assert min(no_res["end"], neither["end"]) > chance - 0.1, where
    assert min(no_res["cosine"], neither["cosine"]) > 0.99, where
    assert max(full["cosine"], no_ln["cosine"]) < 0.9, where
    assert neither["first_grad"] * 1e4 < min(no_res["first_grad"], neither["last_grad"]), where
    assert no_ln["end"] > full["end"] + 0.1, where


def test_ablation_conclusions_hold_on_three_seeds(ns, stdout):
    assert ns["same_as_library"] is True, "两个开关都打开的 SwitchBlock 应与库里的 Block 逐位相同"
    chance = ns["chance"]
    assert abs(chance - math.log(10)) < 1e-12
    _check_ablation(ns["ablation"], chance, seed=0)
    # 页面上的那段话是依据这些比较生成的，走的都是“成立”的分支
    assert "几乎就是 $\\ln 10" in stdout and "梯度消失" in stdout and "比完整的块" in stdout
    assert "没有拉开明显的差距" not in stdout and "差别不大" not in stdout
    # 页面说测试在另外两个种子上重复了四种组合
    for seed in (1, 2):
        result = {name: ns["ablation_run"](*switches, seed=seed) for name, switches in ns["VARIANTS"].items()}
        _check_ablation(result, chance, seed)


# ---- 1.9–1.12 完整的模型 ----


def test_parameter_count_formula_is_exact(ns):
    config = ns["config"]
    L, d, V, T = config.n_layer, config.n_embd, config.vocab_size, config.block_size
    expected = L * (12 * d**2 + 13 * d) + V * d + T * d + 2 * d + V * d
    assert ns["total"] == ns["formula_total"] == expected == 102_272, f"参数量：{ns['total']} vs {expected}"
    assert sum(ns["parts"].values()) == ns["total"], "各部分的参数量加起来应等于合计"
    assert ns["total"] - ns["tied_total"] == V * d, "绑定输出层应正好省下 V·d 个参数"
    assert 0.9 < ns["rule_share"] < 1, "这个配置下 12Ld² 应占参数的绝大部分"


def test_the_rest_is_embeddings_head_biases_and_layernorms(ns, stdout):
    """count_summary 说：12Ld² 之外剩下的是嵌入、输出层、偏置和 LayerNorm。"""
    config = ns["config"]
    L, d, V, T = config.n_layer, config.n_embd, config.vocab_size, config.block_size
    # 偏置与块内 LayerNorm、词元嵌入、位置嵌入、ln_f、输出层
    rest = L * 13 * d + V * d + T * d + 2 * d + V * d
    assert ns["total"] - 12 * L * d**2 == rest
    assert "嵌入、输出层、偏置和 LayerNorm 加起来只占剩下的" in stdout


def test_logits_shape(ns):
    assert tuple(ns["logits"].shape) == (1, 6, 13), (
        f"logits 形状应为 (1, 6, 13)，实际 {tuple(ns['logits'].shape)}"
    )


def test_changing_future_tokens_leaves_earlier_logits_untouched(ns):
    diff = ns["diff"]
    assert ns["earlier_unchanged"] and (diff[:6] == 0).all(), f"前 6 个位置的 logits 不应变化：{diff}"
    assert (diff[6:] > 0).all(), f"被改动的位置 logits 应该变化：{diff}"


def test_printed_lines(stdout):
    assert "与实际计数相等：True" in stdout
    assert "logits 的形状: (1, 6, 13)" in stdout
    assert "改动之前的 6 个位置完全不受影响: True" in stdout
    assert "子层输出全为 0 时，块的输出与输入逐位相同: True" in stdout
    assert "查表的结果 = one-hot 向量乘以权重矩阵: True" in stdout
    assert "对角线以上的权重全为 0: True" in stdout


# ---- 1.14 练习 ----


def test_exercise_heads_do_not_change_the_parameter_count_but_layers_and_width_do(ns):
    """练习 1：头数不改变参数量；层数翻倍略少于 2 倍，宽度翻倍略少于 4 倍，都与 1.10 节的公式相等。"""
    counts, total = ns["count_variants"], ns["total"]
    assert counts["{}"] == counts["{'n_head': 1}"] == counts["{'n_head': 8}"] == total

    def formula(L, d, V=13, T=8):
        return L * (12 * d**2 + 13 * d) + V * d + T * d + 2 * d + V * d

    assert counts["{'n_layer': 4}"] == formula(4, 64) and 1.9 < counts["{'n_layer': 4}"] / total < 2
    assert counts["{'n_embd': 128}"] == formula(2, 128) and 3.8 < counts["{'n_embd': 128}"] / total < 4


def test_exercise_without_the_mask_earlier_positions_see_the_future_and_training_cheats(ns):
    """练习 2：去掉掩码，改后面的字符，前面位置的输出也变；在“预测下一个随机数字”上，有掩码的损失停在 ln 10，
    无掩码的模型照抄右边一格、位置 0–6 的损失几乎为 0，只有答案不在输入里的位置 7 仍在 ln 10 附近。"""
    assert (ns["peek_diff"][:6] > 1e-3).all(), ns["peek_diff"]
    # 独立核对：把同样的权重装进库里的模型（有掩码），前 6 个位置又不受影响了
    with torch.no_grad():
        causal = ns["model"](ns["a"]) - ns["model"](ns["b"])
    assert (causal[0, :6] == 0).all()
    masked, peeking = ns["cheat_losses"][True], ns["cheat_losses"][False]
    chance = math.log(10)
    assert (masked - chance).abs().max() < 0.1, masked
    assert (peeking[:7] < 0.1).all(), peeking
    assert abs(peeking[7] - chance) < 0.3, peeking


def test_exercise_without_position_embeddings_one_layer_is_order_blind_two_layers_are_not(ns):
    """练习 3：位置嵌入清零，1 层模型在“=”位置分不清两道题（只差舍入），2 层模型分得清。"""
    diff = ns["no_position_diff"]
    assert diff[1] < 1e-5, diff
    assert diff[2] > 1e-3, diff


def test_exercise_unscaled_scores_starve_most_queries_of_gradient(ns):
    """练习 4：d_k = 1024 不缩放时，一半以上位置的查询梯度小于 0.001，中位数小好几个数量级，平均值却更大；
    除以 √d_k 后，任何维度下都没有这样的位置，中位数相差不大；d_k = 4 时缩放与否都没有。"""
    r = ns["saturation"]  # (d_k, 是否除以 √d_k) -> (梯度长度的中位数, 小于 0.001 的比例, 各分量绝对值的平均)
    (raw_median, raw_tiny, raw_mean), (scaled_median, _, scaled_mean) = r[1024, False], r[1024, True]
    assert raw_tiny > 0.5 and raw_median < 1e-3 * scaled_median, (r[1024, False], r[1024, True])
    assert raw_mean > scaled_mean, "不缩放时平均值反而更大"
    assert all(r[dim, True][1] == 0 for dim in (4, 64, 1024))
    assert r[4, False][1] == 0
    medians = [r[dim, True][0] for dim in (4, 64, 1024)]
    assert max(medians) / min(medians) < 1.5, medians


# ---- 页面开头的路线图 ----


def test_the_roadmap_lists_every_part2_page_in_nav_order():
    """页面开头列出第二部分的每一页，顺序与导航（mkdocs.yml 的 nav）一致：加了一页而忘了写进路线图，这里就红。"""
    nav = [page for page in nav_pages() if page.startswith("part2/")]
    page = (DOCS / "part2" / "ch01_gpt.md").read_text("utf-8")
    roadmap = page[: page.index("\n## ")]
    items = re.findall(r"^(\d+)\. (.+)$", roadmap, re.M)
    linked = ["part2/" + m for _, text in items for m in re.findall(r"\]\((ch\d\d_\w+\.md)\)", text)]
    assert len(nav) >= 8, f"在 mkdocs.yml 里只找到第二部分的 {nav}"
    assert [int(n) for n, _ in items] == list(range(1, len(nav) + 1)), (
        f"路线图有 {len(items)} 项，导航里有 {len(nav)} 页"
    )
    assert ["part2/ch01_gpt.md", *linked] == nav, f"路线图链接的页面 {linked} 与导航 {nav[1:]} 不一致"
