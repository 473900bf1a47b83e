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
