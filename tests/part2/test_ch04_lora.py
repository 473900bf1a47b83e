"""第二部分第 4 页：LoRA 初始时不改变模型、只训练 A 和 B、参数量等于公式、合并前后输出相等。"""

import torch

SNIPPET = "snippets/part2/ch04_lora.py"


def test_wrapped_model_equals_base_at_init(run_snippet):
    assert run_snippet(SNIPPET).ns["same_at_init"], "B 初始化为 0，刚包上 LoRA 的模型应与原模型输出相同"


def test_only_a_and_b_require_grad(run_snippet):
    ns = run_snippet(SNIPPET).ns
    names = [n for n, p in ns["model"].named_parameters() if p.requires_grad]
    assert names and all(n.endswith((".A", ".B")) for n in names), f"只有 A、B 应该需要梯度：{names}"
    assert len(names) == 2 * len(ns["wrapped_names"])


def test_trainable_count_equals_formula(run_snippet):
    ns = run_snippet(SNIPPET).ns
    r, model = ns["LORA_RANK"], ns["model"]
    expected = 0
    for name in ns["wrapped_names"]:
        layer = model.get_submodule(name).base
        expected += r * (layer.in_features + layer.out_features)
    assert ns["trainable"] == ns["formula_total"] == expected


def test_merged_equals_unmerged_after_training(run_snippet):
    ns = run_snippet(SNIPPET).ns
    x = ns["sub"].test[:, :-1]
    with torch.no_grad():
        torch.testing.assert_close(ns["merged"](x), ns["model"](x), rtol=1e-4, atol=1e-4)
    assert ns["same_predictions"]
    assert ns["merge_max_diff"] <= 1e-4 + 1e-4 * ns["unmerged_logits"].abs().max().item()
    assert ns["merge_bitwise"] == torch.equal(ns["merged_logits"], ns["unmerged_logits"])
    out = run_snippet(SNIPPET).stdout
    assert f"合并前后 logits 逐位相同: {ns['merge_bitwise']}；最大差别 {ns['merge_max_diff']:.1e}" in out
    assert ns["merged_accuracy"] == ns["lora_accuracy"]
    assert ns["lora_accuracy"] > 0.3, f"LoRA 应学会相当一部分减法题：{ns['lora_accuracy']:.1%}"
    assert max(ns["update_ranks"].values()) <= ns["LORA_RANK"], "BA 的秩不能超过 r"


def test_page_model_starts_where_page_3_trained_it(run_snippet):
    """页面说：上面包好的模型与第 3 页那次训练的起点相同（A 的随机初始化一样），所以能装进它的权重。"""
    ns = run_snippet(SNIPPET).ns
    import copy

    from _tinygpt import make_variant  # run_snippet 已把 snippets/part2 加进模块搜索路径

    page_model = copy.deepcopy(ns["base"])
    torch.manual_seed(0)
    ns["apply_lora"](page_model, ns["LORA_TARGETS"], r=ns["LORA_RANK"], alpha=ns["LORA_ALPHA"])
    page3 = make_variant("lora-r4", ns["base"], seed=ns["SEEDS"][0])
    for (name, a), (_, b) in zip(page_model.named_parameters(), page3.named_parameters(), strict=True):
        assert torch.equal(a, b), f"{name}：起点应完全相同"
    assert ns["lora_accuracy"] == ns["run"]["new_test"], "读回的权重应给出第 3 页记下的测试集准确率"


def test_rank_sweep_is_fair_and_counts_match(run_snippet):
    ns = run_snippet(SNIPPET).ns
    sweep, ranks = ns["sweep"], ns["ranks"]
    for r in ranks:
        result = sweep[f"lora-r{r}"]
        assert result["runs"][0]["trainable"] == r * 2048, "r·(d_in + d_out) 的合计"
        assert set(result["sweep"]) == set(ns["LR_GRID"]), f"r = {r} 应有同样的调参机会"
        assert len(result["runs"]) == len(ns["SEEDS"]) >= 3
    out = run_snippet(SNIPPET).stdout
    best = ns["best"]
    for r in ranks:
        if r != best:
            verdict = ns["compare"](ns["accuracies"][best], ns["accuracies"][r])
            assert f"比 r = {r} {verdict}" in out


def test_rank_sweep_states_alpha_over_r_and_grid_edges(run_snippet):
    """4.6 节：α/r 由常量打印出来；每个秩选中的学习率是否在候选两端，由数字决定说法。"""
    from _tinygpt import make_variant  # run_snippet 已把 snippets/part2 加进模块搜索路径

    ns = run_snippet(SNIPPET).ns
    out = run_snippet(SNIPPET).stdout
    assert f"α/r = LORA_ALPHA / LORA_RANK = {ns['LORA_ALPHA'] / ns['LORA_RANK']:g}" in out
    for r in ns["ranks"]:
        layer = make_variant(f"lora-r{r}", ns["base"], 0).blocks[0].attn.qkv
        assert layer.scaling == ns["LORA_ALPHA"] / ns["LORA_RANK"], f"r = {r} 的 α/r 应与 r = 4 相同"
    grid = ns["LR_GRID"]
    edges = [r for r in ns["ranks"] if ns["sweep"][f"lora-r{r}"]["lr"] in (min(grid), max(grid))]
    assert ("都不在候选的两端" in out) == (not edges)


def test_printed_lines(run_snippet):
    out = run_snippet(SNIPPET).stdout
    assert "刚包上 LoRA 时，输出与原模型逐位相同: True" in out
    assert "相等: True" in out
    assert "合并后还剩下 LoRALinear 吗: False" in out


# ---- 4.8 练习 ----


def test_exercise_rank_one_beats_the_frozen_model_and_is_no_worse_than_scratch(run_snippet):
    """练习 1：r = 1 的每个种子都比不微调的预训练模型高；从零训练的参数是它的几十倍，却不比它好；
    4.6 节里更大的秩（4、8）都比 r = 1 好（范围不重叠）。"""
    ns = run_snippet(SNIPPET).ns
    from _tinygpt import difference  # run_snippet 已把 snippets/part2 加进模块搜索路径

    r1, scratch, frozen = ns["accuracies"][1], ns["scratch_tests"], ns["frozen_accuracy"]
    assert frozen < 0.05 and min(r1) > frozen, (r1, frozen)
    assert frozen == ns["accuracy"](ns["base"], ns["sub"].test)
    ratio = ns["count_parameters"](ns["base"]) / ns["sweep"]["lora-r1"]["runs"][0]["trainable"]
    assert 20 < ratio < 100, ratio
    assert difference(r1, scratch) >= 0, "从零训练不应比 r = 1 好"
    for r in (4, 8):
        assert difference(ns["accuracies"][r], r1) > 0, f"r = {r} 应比 r = 1 好"
    out = run_snippet(SNIPPET).stdout
    assert f"和从零训练比：{ns['compare'](r1, scratch)}" in out


def test_exercise_zero_a_and_b_never_learn_while_the_library_init_does(run_snippet):
    """练习 2：A、B 都为 0 时每一步两个梯度都是 0；A 随机、B 为 0 时，第 1 步只有 B 有梯度，第 2 步起 A 也有。"""
    ns = run_snippet(SNIPPET).ns
    both_zero, library = ns["init_gradients"][True], ns["init_gradients"][False]
    assert all(a == 0 and b == 0 for a, b in both_zero)
    (a1, b1), (a2, b2), *_ = library
    assert a1 == 0 and b1 > 0
    assert a2 > 0 and b2 > 0


def test_exercise_unmerging_is_close_but_not_bitwise_and_answers_are_unchanged(run_snippet):
    """练习 3：减回去的权重与原权重不逐位相同、差别只在 float32 的最后几位；加法答案与预训练模型逐字相同。"""
    ns = run_snippet(SNIPPET).ns
    assert ns["bitwise_back"] is False
    assert 0 < max(ns["weight_gaps"].values()) < 1e-6
    assert ns["same_addition"] is True
    # 合并前的原权重确实没被动过：拆回去的模型和 base 的差别全来自舍入
    for name in ns["wrapped_names"]:
        torch.testing.assert_close(
            ns["unmerged"].get_submodule(name).weight,
            ns["base"].get_submodule(name).weight,
            rtol=0,
            atol=1e-6,
        )


def test_exercise_small_singular_directions_still_matter(run_snippet):
    """练习 4：每层前 4 个奇异值占平方和的 80% 以上；只留前 4 个方向准确率明显下降，只留 2 个降得更多。"""
    ns = run_snippet(SNIPPET).ns
    assert min(ns["energy4"].values()) > 0.8, ns["energy4"]
    acc = ns["truncated_accuracy"]
    assert acc[4] < acc[8] - 0.05 and acc[2] < acc[4], acc
    # 只留 8 个方向就是原来的改动量：截断函数在 k = 8 时给出记下的成绩
    assert ns["accuracy"](ns["truncated"](ns["lora8"], 8), ns["sub"].test) == acc[8]
