"""第二部分第 2 页：预训练在验证集上提前停止，成绩在没参与任何决定的测试集上报告；检查点读回后输出逐位相同。"""

import torch

SNIPPET = "snippets/part2/ch02_pretrain.py"


def test_train_val_test_are_disjoint(run_snippet):
    ns = run_snippet(SNIPPET).ns
    rows = [{tuple(r) for r in ns[name].tolist()} for name in ("train_data", "val_data", "test_data")]
    assert not (rows[0] & rows[1] or rows[0] & rows[2] or rows[1] & rows[2]), "三份数据不能有相同的题"


def test_pretraining_stops_on_validation_and_generalises_to_test(run_snippet):
    ns = run_snippet(SNIPPET).ns
    history, target = ns["history"], ns["PRETRAIN"]["target_accuracy"]
    assert ns["untrained_accuracy"] < 0.02, f"未训练模型不该会做加法：{ns['untrained_accuracy']:.1%}"
    assert history[-1]["val_accuracy"] >= target, "提前停止的条件是验证集达到目标"
    assert all(r["val_accuracy"] < target for r in history[:-1]), "达到目标之前不应停下"
    assert history[-1]["val_loss"] < 0.05 * history[0]["val_loss"], "验证损失应大幅下降"
    assert ns["val_accuracy"] == history[-1]["val_accuracy"]
    assert ns["test_accuracy"] >= target - 0.02, f"测试集准确率 {ns['test_accuracy']:.1%} 应接近目标"
    assert history[-1]["step"] <= ns["PRETRAIN"]["steps"]


def test_untrained_answers_barely_depend_on_the_question(run_snippet):
    """2.2 节说：随机参数的模型准确率接近 0，答案几乎不随题目变化。"""
    ns = run_snippet(SNIPPET).ns
    assert ns["distinct_answers"] <= 10, f"未训练模型给出了 {ns['distinct_answers']} 种不同的答案"
    assert f"一共只给出了 {ns['distinct_answers']} 种不同的答案" in run_snippet(SNIPPET).stdout


def test_curve_summary_follows_the_history(run_snippet):
    """损失曲线下面的话由记录生成：里程碑的步数、停止原因、验证损失是否回升。"""
    ns = run_snippet(SNIPPET).ns
    history, out = ns["history"], run_snippet(SNIPPET).stdout
    first_above_half = next(r["step"] for r in history if r["val_accuracy"] >= 0.5)
    assert f"第 {first_above_half} 步超过 50%" in out
    best_val_loss = min(r["val_loss"] for r in history)
    if history[-1]["val_loss"] == best_val_loss:
        assert "没有出现过拟合" in out
    else:
        assert "过拟合（overfitting）的迹象" in out and "没有出现过拟合" not in out


def test_validation_test_gap_is_judged_against_sampling_error(run_snippet):
    ns = run_snippet(SNIPPET).ns
    out = run_snippet(SNIPPET).stdout
    gap, se = ns["gap"], ns["standard_error"]
    p_val, p_test, n = ns["val_accuracy"], ns["test_accuracy"], len(ns["test_data"])
    assert abs(se - (p_val * (1 - p_val) / n + p_test * (1 - p_test) / n) ** 0.5) < 1e-12
    if gap == 0:
        assert "准确率正好相同" in out
    elif abs(gap) <= 2 * se:
        assert "在两份各" in out and "抽样误差之内" in out
    else:
        assert "超出了抽样误差" in out


def test_checkpoint_reload_gives_identical_outputs(run_snippet):
    ns = run_snippet(SNIPPET).ns
    assert ns["reloaded_equal"]
    checkpoint = torch.load(ns["pretrained"].path, weights_only=True)
    assert {"config", "state_dict", "history"} == set(checkpoint)
    assert checkpoint["history"] == ns["history"]
    fresh = ns["GPT"](ns["GPTConfig"](**checkpoint["config"])).eval()
    fresh.load_state_dict(checkpoint["state_dict"])
    x = ns["val_data"][:, :-1]
    with torch.no_grad():
        assert torch.equal(fresh(x), ns["model"](x)), "重新读取的模型输出应与原模型逐位相同"


def test_printed_lines(run_snippet):
    out = run_snippet(SNIPPET).stdout
    assert "<svg" in out, "应打印损失曲线的 SVG"
    assert "重新读取的模型与原模型在整个验证集上的 logits 完全相同: True" in out
    ns = run_snippet(SNIPPET).ns
    assert f"最终成绩看测试集：**{ns['test_accuracy']:.1%}**" in out


# ---- 2.9 练习 ----


def test_exercise_untrained_positions_are_worse_than_guessing_and_the_floor_is_3ln10_over_8(run_snippet):
    """练习 1：答案的 3 个位置损失很小；前 5 个位置从没算过损失，连一定是 “+”“=” 的位置都比平均地猜还差；
    8 个位置都算时，损失的下限是 3·ln 10 / 8。"""
    import math

    ns = run_snippet(SNIPPET).ns
    per_position = ns["every_position"]
    assert len(per_position) == 8
    assert (per_position[:5] > math.log(10)).all(), per_position
    assert (per_position[5:] < 0.2).all(), per_position
    assert abs(ns["loss_floor"] - 3 * math.log(10) / 8) < 1e-12
    # 下限确实是下限：在全部题目上，这 3 个位置的下一个数字是均匀分布（独立核对：对每个前缀数一数）
    from collections import Counter

    rows = torch.cat([ns["train_data"], ns["val_data"], ns["test_data"]]).tolist()
    assert len(rows) == 10000
    for position in (0, 2, 3):  # 位置 i 看见前 i+1 个字符，预测第 i+1 个
        nexts = {}
        for row in rows:
            nexts.setdefault(tuple(row[: position + 1]), Counter())[row[position + 1]] += 1
        for counts in nexts.values():
            assert set(counts) == set(range(10)) and len(set(counts.values())) == 1, counts


def test_exercise_carry_groups_and_the_generated_verdict(run_snippet):
    """练习 2：两组的题数、错题数与独立重算的一致；生成的结论与数字相符。"""
    ns = run_snippet(SNIPPET).ns
    out = run_snippet(SNIPPET).stdout
    test_data, model, prompt_len = ns["test_data"], ns["model"], ns["PROMPT_LEN"]
    answers = ns["greedy_answers"](model, test_data[:, :prompt_len])
    wrong = (answers != test_data[:, prompt_len:]).any(dim=1)
    text = [ns["decode"](row) for row in test_data]
    carry = torch.tensor([int(t[1]) + int(t[4]) >= 10 for t in text])
    assert torch.equal(carry, ns["carry"])
    assert (
        int(wrong.sum()) == sum(ns["offsets"].values()) == round((1 - ns["test_accuracy"]) * len(test_data))
    )
    carry_wrong, plain_wrong = int(wrong[carry].sum()), int(wrong[~carry].sum())
    for row, answer in zip(test_data[wrong], answers[wrong], strict=True):
        offset = int(ns["decode"](answer)) - int(ns["decode"](row[prompt_len:]))
        assert offset in ns["offsets"]
    if plain_wrong and not carry_wrong:
        assert "错题全在个位不进位的一组" in out
    elif carry_wrong and not plain_wrong:
        assert "错题全在个位要进位的一组" in out
    if len(ns["offsets"]) == 1 and carry_wrong + plain_wrong > 1:
        assert "每道错题错法相同" in out


def test_exercise_weights_only_refuses_the_payload_and_false_runs_it(run_snippet):
    """练习 3：weights_only=True 拒绝文件里的 print，一行也不运行；weights_only=False 运行了它，note 变成 None。"""
    ns = run_snippet(SNIPPET).ns
    out = run_snippet(SNIPPET).stdout
    assert "Unsupported global" in ns["refusal"] and "print" in ns["refusal"]
    payload = "（读取这个文件时，文件里藏的代码被执行了！）"
    assert out.count(payload) == 1, "只有 weights_only=False 那一次运行了文件里的代码"
    assert (
        out.index("weights_only=True 拒绝读取")
        < out.index("weights_only=False 照单全收")
        < out.index(payload)
    )
    assert ns["unsafe"]["note"] is None
    assert torch.equal(ns["unsafe"]["state_dict"]["tok_emb.weight"], ns["model"].tok_emb.weight)


def test_exercise_no_memorisation_gap_and_swapped_operands_agree(run_snippet):
    """练习 4：训练题与测试题的准确率几乎一样；加数对调后准确率基本不变，绝大多数答案相同；对调后的题大多在训练集里。"""
    ns = run_snippet(SNIPPET).ns
    assert abs(ns["train_sample_accuracy"] - ns["test_accuracy"]) < 0.02
    assert abs(ns["swapped_accuracy"] - ns["test_accuracy"]) < 0.02
    assert ns["same_answer"] > 0.95
    assert 0.5 < ns["swapped_in_train"] < 1
    # 对调是真的对调：b+a 的答案与 a+b 相同，题目不同
    swapped, test_data = ns["swapped"], ns["test_data"]
    assert torch.equal(swapped[:, 6:], test_data[:, 6:]) and torch.equal(swapped[:, :2], test_data[:, 3:5])
