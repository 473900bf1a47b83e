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
