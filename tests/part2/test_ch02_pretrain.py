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
