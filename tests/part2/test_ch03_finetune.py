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
    """3.1 节：错法（答案等于两数之和的比例）由数字生成；“-”的词元嵌入在预训练中一步也没动。"""
    out = run_snippet(SNIPPET).stdout
    share = ns["answers_sum_share"]
    assert f"它的答案有 {share:.1%} 恰好是两数之和" in out or f"只有 {share:.1%}" in out
    if share > 0.5:
        assert "多数时候它把减号当成了加号" in out
    assert ns["minus_untouched"] is True, "预训练从没见过“-”，它的词元嵌入应保持随机初始化"
    assert "“-”的词元嵌入与随机初始化时逐位相同: True" in out


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


# ---- 3.8 练习 ----


def test_exercise_chance_of_separated_ranges_by_enumeration(ns):
    """练习 1：逐个列举的分法与 3.6 节的公式 2/C(2n, n) 相同；3 个种子是 10%，种子越多越小。"""
    table = ns["chance_table"]
    assert sorted(table) == [2, 3, 4, 5]
    for n, chance in table.items():
        assert abs(chance - 2 / math.comb(2 * n, n)) < 1e-12
    assert abs(table[3] - 0.1) < 1e-12 and table[5] < 0.01
    assert table[2] > table[3] > table[4] > table[5]


def test_exercise_plus_embedding_is_untouched_yet_addition_is_forgotten(ns):
    """练习 2：减法数据里没有 “+”，全量微调后它那一行词元嵌入逐位不变，其余每一行都变了；加法照样几乎全忘。"""
    import torch

    before, after = ns["pretrained"].model.tok_emb.weight, ns["full_model"].tok_emb.weight
    plus = ns["STOI"]["+"]
    assert ns["plus_untouched"] is True and torch.equal(before[plus], after[plus])
    changed = [i for i in range(len(ns["VOCAB"])) if not torch.equal(before[i], after[i])]
    assert changed == [i for i in range(len(ns["VOCAB"])) if i != plus]
    assert ns["row_change"][plus] == 0 and min(c for i, c in enumerate(ns["row_change"]) if i != plus) > 0.01
    assert ns["sub"].train.eq(plus).sum() == 0, "减法训练集里不应有 “+”"
    assert ns["full_old_test"] < 0.1 * ns["start_add_accuracy"]


def test_exercise_finetuned_model_subtracts_when_asked_to_add(ns, run_snippet):
    """练习 3：全量微调后的模型做 a ≥ b 的加法题，相当一部分答案恰好是 a − b；生成的那句话与比例相符。"""
    decode, add = ns["decode"], ns["add"]
    answers = ns["greedy_answers"](ns["full_model"], add.test[:, : ns["PROMPT_LEN"]])
    pairs = [(int(decode(r[:2])), int(decode(r[3:5]))) for r in add.test]
    hits = [decode(ans) == f"{a - b:03d}" for ans, (a, b) in zip(answers, pairs, strict=True) if a >= b]
    share = sum(hits) / len(hits)
    assert abs(share - ns["difference_share"]) < 1e-6
    assert share > 0.3, f"页面说它常常照着减法去算：{share:.1%}"
    out = run_snippet(SNIPPET).stdout
    assert ("多数时候它把加号当成了减号" in out) == (share > 0.5)
    assert ("不少时候它把加号当成了减号" in out) == (0.1 < share <= 0.5)


def test_exercise_interpolation_endpoints_midpoint_and_verdict(ns, run_snippet):
    """练习 4：两端的成绩就是页面上算过的；λ = 0.25 在测试里重算一遍相同；生成的结论与表相符。"""
    import copy

    table = ns["interpolation"]
    assert sorted(table) == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert ns["accuracy"](ns["full_model"], ns["add"].test) == table[1.0][0]
    assert ns["accuracy"](ns["full_model"], ns["sub"].test) == table[1.0][1]
    pre, full = ns["pretrained"].model.state_dict(), ns["full_model"].state_dict()
    quarter = copy.deepcopy(ns["pretrained"].model)
    quarter.load_state_dict({k: 0.75 * pre[k] + 0.25 * full[k] for k in pre})
    assert ns["accuracy"](quarter, ns["add"].test) == table[0.25][0]
    assert ns["accuracy"](quarter, ns["sub"].test) == table[0.25][1]
    assert table[0.0][0] > 0.9 and table[1.0][1] > 0.5, "两端各有一个任务答得好"
    out = run_snippet(SNIPPET).stdout
    both = [lam for lam, (old, new) in table.items() if min(old, new) >= 0.5]
    assert ("没有一个 λ 让两个任务都答对一半以上" in out) == (not both)
    collapse = min(lam for lam, (old, _) in table.items() if old < table[0.0][0] / 2)
    assert f"{collapse:g}，加法就掉到 {table[collapse][0]:.1%}" in out
