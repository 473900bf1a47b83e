"""第二部分第 7 页：重算的注意力就是模型真正用的那一份；热图下面的读法和消融的结论都由权重和准确率生成；
采样函数在极限情况下回到贪心，温度表、top-k 表和准确率表与独立重算的数字一致，结论只说数字支持的话。"""

import itertools
import math
import re

import pytest
import torch
import torch.nn.functional as F

SNIPPET = "snippets/part2/ch07_inside.py"


@pytest.fixture(scope="module")
def ns(run_snippet):
    return run_snippet(SNIPPET).ns


@pytest.fixture(scope="module")
def out(run_snippet):
    return run_snippet(SNIPPET).stdout


def table_row(out: str, label: str) -> list[str]:
    """Markdown 表里以 label 开头的那一行的各格（去掉 label 本身）。"""
    (line,) = [line for line in out.splitlines() if line.startswith(f"| {label} |")]
    return [cell.strip() for cell in line.strip().strip("|").split("|")][1:]


def between(out: str, start: str, end: str) -> str:
    """输出里从 start 到 end 的一段：同一个行标签（如“层 0 头 1”）在几张表里都有。"""
    begin = out.index(start)
    return out[begin : out.index(end, begin)]


def percent(cell: str) -> float:
    return float(cell.removesuffix("%")) / 100


# ---------- 7.1 注意力权重 ----------


def test_the_three_problems_are_answered_correctly(ns, out):
    """热图的纵坐标写着模型写出的数字，页面说它们是正确答案。"""
    assert torch.equal(ns["answers"], ns["problems"][:, ns["PROMPT_LEN"] :])
    assert out.count("✓") == 3 and "✗" not in out.split("<svg")[0]


def test_recomputed_weights_reproduce_sdpa_head_by_head(ns):
    """重算的权重乘上 V，逐头等于 F.scaled_dot_product_attention(is_causal=True) 的结果；模块输出也一样。"""
    model, idx = ns["model"], ns["test_data"][:200, :8]
    captured = []
    handles = [b.attn.register_forward_hook(lambda m, i, o: captured.append((i[0], o))) for b in model.blocks]
    with torch.no_grad():
        model(idx)
    for h in handles:
        h.remove()
    for block, (x, output) in zip(model.blocks, captured, strict=True):
        attn = block.attn
        with torch.no_grad():
            weights, recomputed = ns["attention_weights"](attn, x)
            B, T, C = x.shape
            q, k, v = attn.qkv(x).split(C, dim=2)
            q, k, v = (t.view(B, T, attn.n_head, C // attn.n_head).transpose(1, 2) for t in (q, k, v))
            reference = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        torch.testing.assert_close(weights @ v, reference, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(recomputed, output, atol=1e-5, rtol=1e-5)


def test_captured_weights_are_causal_distributions(ns, out):
    for weights in (ns["weights"], ns["test_weights"]):
        assert (weights >= 0).all()
        torch.testing.assert_close(weights.sum(dim=-1), torch.ones(weights.shape[:-1]))
        assert (weights.triu(diagonal=1) == 0).all(), "对角线上方（未来）必须是 0"
    assert ns["gap"] < 1e-5 and ns["test_gap"] < 1e-5, "重算的输出应与真实输出只差舍入误差"
    assert "每一行的权重加起来都是 1: True" in out
    assert "对角线上方（未来的位置）全是 0: True" in out
    assert f"最大相差 {ns['gap']:.1e}" in out


def test_hooks_are_removed_and_the_model_is_unchanged(ns):
    model, x = ns["model"], ns["test_data"][:50, :8]
    with torch.no_grad():
        before = model(x)
    ns["capture_attention"](model, x)
    with ns["zero_head"](model, 1, 1):
        pass
    for block in model.blocks:
        assert not block.attn._forward_hooks and not block.attn.proj._forward_pre_hooks, "钩子应已拆掉"
    with torch.no_grad():
        assert torch.equal(model(x), before)


# ---------- 7.2 热图 ----------


def test_heatmap_svg_has_one_image_per_layer_head_and_problem(ns, out):
    svg = out[out.index("<svg") : out.index("</svg>")]
    n_layer, n_problem, n_head = ns["weights"].shape[:3]
    # 每张热图是一幅 8×8 像素的小图（不插值，浏览器按像素放大）；另有一幅是颜色条
    assert svg.count('width="8" height="8"') == n_layer * n_problem * n_head == 24
    assert "=→0" in svg and "8→5" in svg, "纵坐标标出了每一行写出的答案数字"
    assert "<dc:date>" not in svg, "SVG 里不应有日期，保证每次构建逐字节相同"
    assert len(svg) < 200_000, f"SVG 太大：{len(svg)} 字节"


# ---------- 7.3 读法 ----------


def test_group_shares_are_recomputed_from_the_weights(ns):
    """每组的份额就是把权重按位置加起来；各组合起来覆盖全部位置，份额和为 1。"""
    weights, groups, P = ns["test_weights"], ns["GROUPS"], ns["PROMPT_LEN"]
    assert sorted(i for cols in groups.values() for i in cols) == list(range(8))
    shares = ns["shares"]
    torch.testing.assert_close(shares.sum(dim=-1), torch.ones(shares.shape[:-1]))
    for g, cols in enumerate(groups.values()):
        for d in range(3):
            expected = weights[:, :, :, P - 1 + d][..., cols].sum(dim=-1).mean(dim=1)
            torch.testing.assert_close(shares[..., d, g], expected)
    # 写百位时（位置 5）还看不到答案的两位：因果掩码
    names = list(groups)
    assert (shares[:, :, 0, names.index("答案的百位")] == 0).all()
    assert (shares[:, :, 1, names.index("答案的十位")] == 0).all()


def test_reading_table_names_the_argmax_group(ns, out):
    shares, names = ns["shares"], list(ns["GROUPS"])
    out = between(out, "写百位时看得最多的", "对测试集的")
    for layer in range(2):
        for head in range(4):
            cells = table_row(out, f"层 {layer} 头 {head}")[:3]
            for d, cell in enumerate(cells):
                name, share = cell.rsplit(" ", 1)
                assert name == names[int(shares[layer, head, d].argmax())]
                assert abs(percent(share) - shares[layer, head, d].max().item()) <= 0.005
                assert all(shares[layer, head, d, g] <= percent(share) + 0.005 for g in range(len(names)))


def test_reading_summary_states_only_focused_heads(ns, out):
    shares, names, digits = ns["shares"], list(ns["GROUPS"]), ns["DIGITS"]
    focused = int((shares.max(dim=-1).values >= ns["FOCUSED"]).sum())
    assert f"有 {focused} 处把至少 90% 的注意力放在同一组位置上" in out
    claims = re.findall(
        r"层 (\d) 头 (\d) 写(.)位时把 (\d+)% 的注意力放在(两个加数的.位)上", out.split("热图里")[0]
    )
    expected = {
        (layer, head, d)
        for layer in range(2)
        for head in range(4)
        for d in range(3)
        if shares[layer, head, d].max() >= 0.9
        and names[int(shares[layer, head, d].argmax())] == f"两个加数的{digits[d]}"
    }
    stated = set()
    for layer, head, digit, share, group in claims:
        d = digits.index(digit + "位")
        layer, head = int(layer), int(head)
        assert group == f"两个加数的{digits[d]}" == names[int(shares[layer, head, d].argmax())]
        assert abs(int(share) / 100 - shares[layer, head, d].max().item()) <= 0.005
        stated.add((layer, head, d))
    assert stated == expected and stated, "列出的应正好是写哪一位就盯着两个加数同一位的头"


def test_figure_problems_agree_with_the_average(ns, out):
    weights, shares, P = ns["weights"], ns["shares"], ns["PROMPT_LEN"]
    for i, problem in enumerate(["37+48=", "21+34=", "68+57="]):
        per_problem = torch.stack(
            [weights[:, i, :, P - 1 :][..., cols].sum(dim=-1) for cols in ns["GROUPS"].values()], dim=-1
        )
        agree = int((per_problem.argmax(dim=-1) == shares.argmax(dim=-1)).sum())
        assert f"{agree} 处（{problem}）" in out
        assert agree >= 18, f"{problem} 的注意力与平均差得太多（{agree}/24），对题目平均就说不过去了"


# ---------- 7.4 消融 ----------


def test_zero_head_silences_exactly_one_head(ns):
    model, x = ns["model"], ns["test_data"][:100, :8]
    layer, head = 1, 2
    attn = model.blocks[layer].attn
    seen = []
    handle = attn.register_forward_hook(lambda m, i, o: seen.append((i[0], o)))
    with torch.no_grad(), ns["zero_head"](model, layer, head):
        model(x)
    handle.remove()
    ((inp, output),) = seen
    with torch.no_grad():
        B, T, C = inp.shape
        hd = C // attn.n_head
        q, k, v = attn.qkv(inp).split(C, dim=2)
        q, k, v = (t.view(B, T, attn.n_head, hd).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        y[:, head] = 0
        expected = attn.proj(y.transpose(1, 2).reshape(B, T, C))
    torch.testing.assert_close(output, expected, atol=1e-5, rtol=1e-5)


def test_digit_accuracy_agrees_with_exact_match(ns):
    """前面各位都给正确答案时三位都写对，当且仅当贪心生成的答案完全正确。"""
    model, data, P = ns["model"], ns["test_data"], ns["PROMPT_LEN"]
    with torch.no_grad():
        logits = model(data[:, :-1])[:, P - 1 :]
    all_right = (logits.argmax(dim=-1) == data[:, P:]).all(dim=1)
    greedy_right = (ns["greedy_answers"](model, data[:, :P]) == data[:, P:]).all(dim=1)
    assert torch.equal(all_right, greedy_right)
    torch.testing.assert_close(ns["baseline"], (logits.argmax(dim=-1) == data[:, P:]).float().mean(dim=0))


def test_ablation_table_and_summary(ns, out):
    ablated, baseline, shares, names, digits = (
        ns["ablated"],
        ns["baseline"],
        ns["shares"],
        list(ns["GROUPS"]),
        ns["DIGITS"],
    )
    table = between(out, "| 去掉的头 |", "- 写百位")
    assert table_row(table, "不去掉（原模型）") == [f"{a:.1%}" for a in baseline]
    for layer in range(2):
        for head in range(4):
            assert table_row(table, f"层 {layer} 头 {head}") == [f"{a:.1%}" for a in ablated[layer, head]]
    for d, digit in enumerate(digits):
        layer, head = divmod(int(ablated[:, :, d].argmin()), 4)
        assert ablated[layer, head, d] == ablated[:, :, d].min()
        line = next(line for line in out.splitlines() if line.startswith(f"- 写{digit}："))
        assert (
            f"去掉层 {layer} 头 {head}，{digit}的准确率从 {baseline[d]:.1%} 降到 {ablated[layer, head, d]:.1%}"
            in line
        )
        assert line.endswith(f"{names[int(shares[layer, head, d].argmax())]}上。")
    hurt = ((baseline - ablated) > 0.01).sum(dim=(0, 1))
    assert "，".join(f"{d} {int(h)} 个" for d, h in zip(digits, hurt, strict=True)) in out


def test_ablation_supports_the_reading(ns, out):
    """读法说某些头写个位时盯着两个加数的个位：去掉这些头，个位掉得比去掉其他头多。"""
    shares, ablated, baseline, names = ns["shares"], ns["ablated"], ns["baseline"], list(ns["GROUPS"])
    ones = names.index("两个加数的个位")
    focused = shares[:, :, 2, ones] >= ns["FOCUSED"]
    assert focused.any()
    drop = baseline[2] - ablated[:, :, 2]
    assert drop[focused].min() > drop[~focused].max(), (drop, focused)
    # 进位那一条：写十位时盯着个位的头，去掉后十位掉、个位不掉
    for layer, head in ns["carry_heads"]:
        assert shares[layer, head, 1, ones] >= ns["FOCUSED"]
        assert f"- 进位：层 {layer} 头 {head} 写十位时" in out
        assert baseline[1] - ablated[layer, head, 1] > 0.05 > baseline[2] - ablated[layer, head, 2]


# ---------- 7.5 生成 ----------


def test_greedy_equals_page_2_and_top_k_1_equals_greedy(ns, out):
    model, prompts, greedy = ns["model"], ns["prompts"], ns["greedy"]
    assert torch.equal(greedy, ns["greedy_answers"](model, prompts))
    assert ns["same_as_page_2"] is True
    assert (
        f"测试集的 {len(prompts)} 道题，temperature=0 与第 2 页的 greedy_answers 的答案逐字相同: True" in out
    )
    for temperature in (1.0, 2.0):
        top1 = ns["generate"](model, prompts, 3, temperature, 1, torch.Generator().manual_seed(5))
        assert torch.equal(top1, greedy), f"top_k=1 在温度 {temperature} 下应等于贪心"


def test_low_temperature_approaches_greedy(ns):
    model, prompts, greedy = ns["model"], ns["prompts"], ns["greedy"]
    cold = ns["generate"](model, prompts, 3, 1e-3, None, torch.Generator().manual_seed(0))
    assert (cold == greedy).all(dim=1).float().mean() >= 0.999
    logits = ns["answer_logits"]
    top = [
        ns["next_token_probs"](logits, t).max(dim=-1).values.mean().item() for t in (2.0, 1.0, 0.5, 0.1, 0.01)
    ]
    assert all(a < b for a, b in itertools.pairwise(top)), top
    assert top[-1] > 0.999
    torch.testing.assert_close(
        ns["next_token_probs"](logits, 0), F.one_hot(logits.argmax(-1), logits.size(-1)).float()
    )


def test_same_seed_same_sample_and_seeds_differ(ns, out):
    assert "同一个种子再抽一次，结果相同: True" in out
    model, prompt = ns["model"], ns["prompt"]
    a, b = (ns["generate"](model, prompt, 3, 2.0, None, torch.Generator().manual_seed(3)) for _ in range(2))
    assert torch.equal(a, b)
    hot_line = next(line for line in out.splitlines() if "温度 2，种子" in line)
    assert len(set(hot_line.split(":")[1].split())) > 1, "温度 2 下不同种子应抽出不同的答案"
    global_state = torch.random.get_rng_state()
    ns["generate"](model, prompt, 3, 1.0, None, torch.Generator().manual_seed(0))
    assert torch.equal(torch.random.get_rng_state(), global_state), "自己的 Generator 不动全局随机状态"


def test_entropy_grows_with_temperature(ns):
    logits = ns["answer_logits"]
    temperatures = (0.25, 0.5, 1.0, 2.0, 4.0)
    per_row = torch.stack([ns["entropy"](torch.softmax(logits / t, dim=-1)) for t in temperatures])
    assert (per_row[1:] > per_row[:-1]).float().mean() > 0.99, "几乎每一步的熵都应随温度增大"
    assert (per_row.mean(dim=(1, 2))[1:] > per_row.mean(dim=(1, 2))[:-1]).all()
    assert per_row.max() <= math.log(logits.size(-1)) + 1e-5, "熵不超过均匀分布的 ln V"


def test_temperature_table_matches_recomputed_probabilities(ns, out):
    decode, encode = ns["decode"], ns["encode"]
    prompt_text = ns["prompt_text"]
    assert prompt_text == "37+48=08"
    with torch.no_grad():
        logits = ns["model"](torch.tensor([encode(prompt_text)]))[0, -1]
    temperatures = ns["TEMPERATURES"]
    probs = {t: torch.softmax(logits / t, dim=-1) for t in temperatures}
    top = logits.argsort(descending=True)[: ns["SHOWN"]].tolist()
    out = between(out, "下一个字符（个位）的概率", "只留概率最大的")
    for i in top:
        cells = table_row(out, f"`{decode([i])}`")
        assert float(cells[0]) == pytest.approx(logits[i].item(), abs=0.006)
        for t, cell in zip(temperatures, cells[1 : 1 + len(temperatures)], strict=True):
            assert percent(cell) == pytest.approx(probs[t][i].item(), abs=6e-5)
    entropies = [float(c) for c in table_row(out, "熵")[1:]]
    assert entropies == sorted(entropies) and len(set(entropies)) == len(entropies)
    for t, e in zip(temperatures, entropies, strict=True):
        assert e == pytest.approx(-(probs[t] * probs[t].log()).sum().item(), abs=6e-4)


def test_top_k_table_matches_truncation(ns, out):
    decode = ns["decode"]
    logits, hot = ns["last_logits"], ns["HOT"]
    lines = out.split("只留概率最大的 k 个字符")[1]
    for i in ns["top_ids"]:
        cells = table_row(lines, f"`{decode([i])}`")
        for k, cell in zip(ns["TOP_KS"], cells, strict=True):
            keep = logits.argsort(descending=True)[: k or logits.numel()]
            expected = torch.zeros_like(logits)
            expected[keep] = torch.softmax(logits[keep] / hot, dim=-1)
            assert percent(cell) == pytest.approx(expected[i].item(), abs=6e-5)


# ---------- 7.6 准确率 ----------


def test_expected_accuracy_is_the_product_of_step_probabilities(ns):
    logits, targets, results = ns["answer_logits"], ns["targets"], ns["results"]
    for label, temperature, top_k in ns["SETTINGS"]:
        if temperature == 0:
            right = (logits.argmax(-1) == targets).float()
        else:
            scaled = logits / temperature
            if top_k is not None:
                kth = scaled.topk(top_k, dim=-1).values[..., -1:]
                scaled = scaled.masked_fill(scaled < kth, float("-inf"))
            right = torch.softmax(scaled, dim=-1).gather(-1, targets[..., None]).squeeze(-1)
        assert results[label]["expected"] == pytest.approx(right.prod(dim=1).mean().item(), abs=1e-6)
    # 贪心：算出的与生成的必须完全一样（三位都对 ⇔ 每一步的 argmax 都对）
    assert results["贪心"]["expected"] == results["贪心"]["sampled"]


def test_accuracy_table_and_conclusion_follow_the_numbers(ns, out):
    results, n = ns["results"], len(ns["test_data"])
    for label, r in results.items():
        assert table_row(out, label) == [f"{r['expected']:.1%}", f"{r['sampled']:.1%}", f"{r['entropy']:.3f}"]
    greedy = results["贪心"]["sampled"]
    sampling = {k: v for k, v in results.items() if k != "贪心"}
    # 贪心不低于任何一种采样：页面的标题问题“为什么要用贪心”靠的就是这一条
    assert all(greedy >= max(r["expected"], r["sampled"]) for r in sampling.values())
    assert f"完全匹配准确率是 **{greedy:.1%}**" in out
    assert "每一种采样设置都比它低" in out
    by_t = [results[label] for label, _, k in ns["SETTINGS"] if k is None]
    assert all(
        a["entropy"] < b["entropy"] and a["expected"] > b["expected"] for a, b in itertools.pairwise(by_t)
    )
    assert "温度越高，每一步的熵越大，准确率越低" in out
    # 实际生成与算出的值之差，都在 3 个标准误之内，句子才说“相符”
    z = {
        k: (r["sampled"] - r["expected"]) / math.sqrt(r["expected"] * (1 - r["expected"]) / n)
        for k, r in sampling.items()
    }
    largest = max(z, key=lambda k: abs(z[k]))
    assert f"相差最多的是{largest}" in out and f"的 {abs(z[largest]):.1f} 倍" in out
    assert ("实际生成与算出的概率相符" in out) == (abs(z[largest]) <= 3)
    assert abs(z[largest]) <= 3, "抽样结果与算出的概率对不上：采样或期望值的计算有错"


def test_generate_restores_the_training_flag(ns):
    model = ns["model"]
    model.train()
    try:
        ns["generate"](model, ns["prompt"], 3, temperature=0)
        assert model.training
    finally:
        model.eval()


# ---------- 7.8 练习 ----------


def test_exercise_first_row_puts_all_weight_on_position_zero(ns, out):
    weights = ns["weights"]
    assert torch.equal(weights[..., 0, 0], torch.ones_like(weights[..., 0, 0]))
    assert not weights[..., 0, 1:].any()
    assert "看位置 0 的权重全都是 1: True" in out and "其余 7 个位置的权重全都是 0: True" in out


def test_exercise_mean_ablation_is_gentler_but_the_important_heads_still_matter(ns, out):
    zeroed, averaged, baseline = ns["ablated"], ns["mean_ablated"], ns["baseline"]
    assert (averaged >= zeroed).sum() > zeroed.numel() / 2, "多数格里均值消融不比置零伤得重"
    assert zeroed.mean() < averaged.mean() < baseline.mean() - 0.15, "平均起来温和一点，但离原模型还远"
    # 答案的结论：7.4 节每一位伤得最重的头，换成平均值后照样让这一位掉 5 个百分点以上
    for d in range(ns["ANSWER_LEN"]):
        worst = divmod(int(zeroed[:, :, d].argmin()), ns["n_head"])
        assert ns["worst"][d] == worst
        assert averaged[worst][d] < baseline[d] - 0.05, (worst, d)
        layer, head = worst
        assert (
            f"{ns['DIGITS'][d]}是层 {layer} 头 {head}，{zeroed[worst][d]:.1%} → {averaged[worst][d]:.1%}"
            in out
        )
    # 替换用的平均值确实是各层 proj 的输入对测试集题目的平均
    inputs = ns["head_inputs"](ns["model"], ns["test_data"])
    for layer, mean in enumerate(ns["means"]):
        torch.testing.assert_close(inputs[layer].mean(dim=0), mean)
    less_harm = int((averaged >= zeroed).sum())
    assert f"24 格里，换成平均值的准确率不低于置零的有 {less_harm} 格" in out
    assert (
        f"准确率置零时 {zeroed.mean():.1%}，换成平均值时 {averaged.mean():.1%}（原模型三位平均 {baseline.mean():.1%}）"
        in out
    )


def test_exercise_top_p_keeps_the_smallest_set_reaching_p(ns):
    top_p_probs = ns["top_p_probs"]
    logits = torch.tensor([2.0, 1.0, 0.0, -1.0])
    probs = logits.softmax(-1)  # 约 0.644、0.237、0.087、0.032
    for p, kept in ((0.5, 1), (0.6, 1), (0.7, 2), (0.9, 3), (0.99, 4)):
        truncated = top_p_probs(logits, 1.0, p)
        assert int((truncated > 0).sum()) == kept, (p, truncated)
        assert truncated[kept:].sum() == 0 and math.isclose(truncated.sum().item(), 1, rel_tol=1e-6)
        torch.testing.assert_close(truncated[:kept], probs[:kept] / probs[:kept].sum())
    r = ns["top_p_results"]
    assert [r[p]["kept_here"] for p in (0.5, 0.9, 0.99)] == [1, 2, 4]
    assert r[0.9]["kept_mean"] < 2 and r[0.9]["expected"] > ns["results"]["温度 2 + top-k 2"]["expected"], (
        "top-p 0.9 平均留下的字符比 top-k 2 少，准确率却更高"
    )
    # 答案的说法：p = 0.5 差不多就是贪心；p = 0.99 留得多，准确率接近不截断的温度 2
    greedy = ns["results"]["贪心"]["expected"]
    assert r[0.5]["kept_mean"] < 1.05 and abs(r[0.5]["expected"] - greedy) < 0.01
    assert r[0.99]["kept_mean"] > r[0.9]["kept_mean"] and r[0.99]["expected"] < r[0.9]["expected"]
    assert abs(r[0.99]["expected"] - ns["results"]["温度 2"]["expected"]) < 0.05


def test_exercise_greedy_is_the_most_likely_answer_for_this_model(ns, out):
    greedy, most_likely, probs = ns["greedy"], ns["most_likely"], ns["greedy_prob"]
    assert torch.equal(most_likely, greedy)
    assert len(ns["unsure"]) < 20, "需要穷举的题很少"
    assert f"{len(greedy)} 道题里贪心的答案每一道都是概率最大的那一串" in out
    # 答案的解释：模型每一步都很有把握（温度 1 的平均熵远小于 13 个字符一样可能时的 ln 13）
    assert ns["results"]["温度 1"]["entropy"] < 0.1 * math.log(ns["vocab"])
    # 独立核对捷径：对几道题穷举全部 13³ 串，概率加起来是 1，最大的就是贪心那一串；
    # 除了需要穷举的题，再加上贪心那一串概率最低的三道（最可能出现别的答案的题）
    model, prompts, every = ns["model"], ns["prompts"], ns["every_answer"]
    for i in [*ns["unsure"].tolist(), *probs.argsort()[:3].tolist()]:
        p = ns["sequence_probs"](model, prompts[i].expand(len(every), -1), every)
        assert math.isclose(p.sum().item(), 1, rel_tol=1e-4)
        assert torch.equal(every[p.argmax()], greedy[i])
        assert math.isclose(p.max().item(), probs[i].item(), rel_tol=1e-5)
