"""第二部分第 3 页：四种做法有同样的调参机会（验证集上挑学习率）、同样的种子、独立的测试集；结论只说数字支持的话。"""

import math
import re

import pytest

SNIPPET = "snippets/part2/ch03_finetune.py"


@pytest.fixture(scope="module")
def ns(run_snippet):
    return run_snippet(SNIPPET).ns


def test_pretrained_model_starts_near_zero_on_the_new_task(ns):
    assert ns["start_sub_accuracy"] < 0.05, f"预训练模型在减法上应接近 0：{ns['start_sub_accuracy']:.1%}"
    assert ns["start_add_accuracy"] >= 0.97


def test_how_the_pretrained_model_fails_is_generated(ns, run_snippet):
    """3.1 节：错法（答案等于两数之和的比例）由数字生成；“-”的词嵌入在预训练中一步也没动。"""
    out = run_snippet(SNIPPET).stdout
    share = ns["answers_sum_share"]
    assert f"它的答案有 {share:.1%} 恰好是两数之和" in out or f"只有 {share:.1%}" in out
    if share > 0.5:
        assert "多数时候它把减号当成了加号" in out
    assert ns["minus_untouched"] is True, "预训练从没见过“-”，它的词嵌入应保持随机初始化"
    assert "“-”的词嵌入与随机初始化时逐位相同: True" in out


def test_sweep_note_names_ties_and_grid_edges(ns, run_snippet):
    """学习率表下面的话：选中的学习率、并列、是否落在候选两端，都由数字决定。"""
    out = run_snippet(SNIPPET).stdout
    grid = ns["LR_GRID"]
    at_edge = False
    for variant, result in ns["results"].items():
        label = ns["LABELS"][variant]
        top = result["sweep"][result["lr"]]
        tied = [lr for lr, acc in result["sweep"].items() if acc == top]
        assert result["lr"] == min(tied), "并列时应取较小的学习率"
        assert (f"{label}在学习率" in out) == (len(tied) > 1)
        if result["lr"] in (min(grid), max(grid)):
            at_edge = True
            assert f"{label}选中的是候选里" in out
    assert ("都不在候选的两端" in out) == (not at_edge)


def test_test_split_takes_no_part_in_any_decision(ns):
    sub = ns["sub"]
    rows = [{tuple(r) for r in part.tolist()} for part in sub]
    assert not (rows[0] & rows[1] or rows[0] & rows[2] or rows[1] & rows[2]), "训练、验证、测试集不能重叠"
    for variant, result in ns["results"].items():
        assert set(result["sweep"]) == set(ns["LR_GRID"]), f"{variant} 应试过每个候选学习率"
        assert result["sweep"][result["lr"]] == max(result["sweep"].values()), "选的是验证集上最好的学习率"
        # 选学习率用的是种子 0 在验证集上的最后一次记录，不是测试集
        assert result["runs"][0]["history"][-1]["val_accuracy"] == result["sweep"][result["lr"]]


def test_every_variant_gets_the_same_budget_and_seeds(ns):
    results, finetune, seeds = ns["results"], ns["FINETUNE"], ns["SEEDS"]
    assert list(results) == ["full", "last_block", "lora-r4", "scratch"]
    for variant, result in results.items():
        assert len(result["runs"]) == len(seeds) >= 3, f"{variant} 应跑至少 3 个种子"
        assert {run["history"][-1]["step"] for run in result["runs"]} == {finetune["steps"]}
        tests = [run["new_test"] for run in result["runs"]]
        assert len(set(tests)) > 1 or variant != "scratch", "不同的种子应带来不同的结果"


def test_pretraining_helps_and_lora_trains_few_parameters(ns):
    results = ns["results"]
    scratch = [run["new_test"] for run in results["scratch"]["runs"]]
    for variant in ("full", "last_block", "lora-r4"):
        runs = [run["new_test"] for run in results[variant]["runs"]]
        assert min(runs) > max(scratch), f"{variant} 的每个种子都应好于从零训练的每个种子"
    trainable = {v: r["runs"][0]["trainable"] for v, r in results.items()}
    assert trainable["lora-r4"] < 0.1 * trainable["full"], "LoRA 应只训练一小部分参数"
    assert trainable["lora-r4"] < trainable["last_block"] < trainable["full"] == trainable["scratch"]


def test_forgetting_statistic_leaves_out_the_model_that_never_learned_addition(ns, run_snippet):
    results = ns["results"]
    olds = [run["old_test"] for v in ("full", "last_block", "lora-r4") for run in results[v]["runs"]]
    out = run_snippet(SNIPPET).stdout
    assert f"在 {min(olds):.1%} 到 {max(olds):.1%} 之间" in out, "遗忘的范围只算从预训练出发的三种做法"
    assert max(olds) < 0.1, "这页的结论说旧任务几乎忘光"
    assert ns["base_unchanged"], "LoRA 不应改动被包住的原始权重"
    assert ns["unplugged_equal"], "拔掉 A、B 后每个参数都应与预训练模型逐位相同"
    assert ns["unplugged_add_accuracy"] == ns["start_add_accuracy"], "拔掉 LoRA 后应回到预训练模型"


def test_conclusions_follow_the_numbers(ns, run_snippet):
    """生成的每一句“高/低”都有不重叠的范围支持；范围重叠的一对，措辞必须是“分不出高低”。"""
    out = run_snippet(SNIPPET).stdout
    results, labels, difference = ns["results"], ns["LABELS"], ns["difference"]
    tests = {v: [run["new_test"] for run in r["runs"]] for v, r in results.items()}
    best = ns["best"]
    for other in ("full", "last_block", "lora-r4"):
        if other == best:
            continue
        sentence = f"比{labels[other]}{ns['compare'](tests[best], tests[other])}"
        assert sentence in out
        assert ("分不出高低" in sentence) == (difference(tests[best], tests[other]) == 0)


def test_chance_of_separated_ranges_is_computed(ns, run_snippet):
    """两种做法一样好时，n 对 n 个结果的范围完全分开的概率是 2/C(2n, n)：3 个种子时是 10%。"""
    n = len(ns["SEEDS"])
    out = run_snippet(SNIPPET).stdout
    assert f"范围也有 {2 / math.comb(2 * n, n):.0%} 的机会恰好完全分开" in out
    if n == 3:
        assert "范围也有 10% 的机会" in out


def test_printed_tables(run_snippet):
    out = run_snippet(SNIPPET).stdout
    assert "| 做法 | 可训练参数 | 占全部参数 | 选中的学习率 |" in out
    assert "(c) LoRA（r=4）" in out
    assert "计时（每次构建不同" in out
    steps = re.findall(r"：每个训练步 ([0-9.]+) 毫秒（\d+ 步的中位数）", out)
    assert len(steps) == 4 and all(float(ms) > 0 for ms in steps), "每种做法各有一个单独测量的每步用时"
    assert out.count("<svg") == 1, "应打印一张学习曲线图"
