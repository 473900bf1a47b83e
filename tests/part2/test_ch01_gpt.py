"""第二部分第 1 页：参数量的公式与实际计数逐个相等；因果注意力让未来的字符影响不到前面的位置。"""

SNIPPET = "snippets/part2/ch01_gpt.py"


def test_parameter_count_formula_is_exact(run_snippet):
    ns = run_snippet(SNIPPET).ns
    config = ns["config"]
    L, d, V, T = config.n_layer, config.n_embd, config.vocab_size, config.block_size
    expected = L * (12 * d**2 + 13 * d) + V * d + T * d + 2 * d + V * d
    assert ns["total"] == ns["formula_total"] == expected == 102_272, f"参数量：{ns['total']} vs {expected}"
    assert sum(ns["parts"].values()) == ns["total"], "各部分的参数量加起来应等于合计"
    assert ns["total"] - ns["tied_total"] == V * d, "绑定输出层应正好省下 V·d 个参数"
    assert 0.9 < ns["rule_share"] < 1, "这个配置下 12Ld² 应占参数的绝大部分"


def test_layernorm_gelu_and_residual_match_their_formulas(run_snippet):
    """1.3 节：LayerNorm、GELU 与公式只差 float32 舍入；tanh 近似差得多但不到千分之一；子层输出为 0 时块是恒等映射。"""
    ns = run_snippet(SNIPPET).ns
    assert ns["ln_diff"] < 1e-5 and ns["gelu_diff"] < 1e-5, (ns["ln_diff"], ns["gelu_diff"])
    assert 10 * ns["gelu_diff"] < ns["tanh_diff"] < 1e-3, f"tanh 近似的差别：{ns['tanh_diff']}"
    y = ns["y"]
    assert y.mean(dim=-1).abs().max() < 1e-5, "LayerNorm 之后每个位置的平均值应为 0"
    std = y.std(dim=-1, unbiased=False)
    assert (std < 1).all() and (std > 1 - 1e-5).all(), "标准差应是 sqrt(var/(var+eps))：比 1 小一点点"
    assert ns["residual_identity"] is True


def test_the_rest_is_embeddings_head_biases_and_layernorms(run_snippet):
    """count_summary 说：12Ld² 之外剩下的是嵌入、输出层、偏置和 LayerNorm。"""
    ns = run_snippet(SNIPPET).ns
    config = ns["config"]
    L, d, V, T = config.n_layer, config.n_embd, config.vocab_size, config.block_size
    rest = L * 13 * d + V * d + T * d + 2 * d + V * d  # 偏置与块内 LayerNorm、词嵌入、位置嵌入、ln_f、输出层
    assert ns["total"] - 12 * L * d**2 == rest
    assert "嵌入、输出层、偏置和 LayerNorm 加起来只占剩下的" in run_snippet(SNIPPET).stdout


def test_logits_shape(run_snippet):
    ns = run_snippet(SNIPPET).ns
    assert tuple(ns["logits"].shape) == (1, 6, 13), (
        f"logits 形状应为 (1, 6, 13)，实际 {tuple(ns['logits'].shape)}"
    )


def test_changing_future_tokens_leaves_earlier_logits_untouched(run_snippet):
    ns = run_snippet(SNIPPET).ns
    diff = ns["diff"]
    assert ns["earlier_unchanged"] and (diff[:6] == 0).all(), f"前 6 个位置的 logits 不应变化：{diff}"
    assert (diff[6:] > 0).all(), f"被改动的位置 logits 应该变化：{diff}"


def test_printed_lines(run_snippet):
    out = run_snippet(SNIPPET).stdout
    assert "与实际计数相等：True" in out
    assert "logits 的形状: (1, 6, 13)" in out
    assert "改动之前的 6 个位置完全不受影响: True" in out
    assert "子层输出全为 0 时，块的输出与输入逐位相同: True" in out
