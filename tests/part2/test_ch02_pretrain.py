"""第二部分第 2 页：预训练让加法验证集准确率从 0 到达目标；检查点重新读取后输出逐位相同。"""

import torch

SNIPPET = "snippets/part2/ch02_pretrain.py"


def test_validation_problems_are_unseen(run_snippet):
    ns = run_snippet(SNIPPET).ns
    train_rows = {tuple(r) for r in ns["train_data"].tolist()}
    assert not any(tuple(r) in train_rows for r in ns["val_data"].tolist()), "验证题不能出现在训练集里"


def test_pretraining_reaches_the_target(run_snippet):
    ns = run_snippet(SNIPPET).ns
    history, target = ns["history"], ns["PRETRAIN"]["target_accuracy"]
    assert ns["untrained_accuracy"] < 0.02, f"未训练模型不该会做加法：{ns['untrained_accuracy']:.1%}"
    assert ns["pretrained_accuracy"] >= target, (
        f"预训练准确率 {ns['pretrained_accuracy']:.1%} 没有达到 {target:.0%}"
    )
    assert history[-1]["val_loss"] < 0.05 * history[0]["val_loss"], "验证损失应大幅下降"
    assert history[-1]["step"] <= ns["PRETRAIN"]["steps"]


def test_checkpoint_reload_gives_identical_outputs(run_snippet):
    ns = run_snippet(SNIPPET).ns
    assert ns["reloaded_equal"]
    checkpoint = torch.load(ns["CHECKPOINT"], weights_only=True)
    assert {"config", "state_dict"} <= set(checkpoint)
    fresh = ns["GPT"](ns["GPTConfig"](**checkpoint["config"])).eval()
    fresh.load_state_dict(checkpoint["state_dict"])
    x = ns["val_data"][:, :-1]
    with torch.no_grad():
        assert torch.equal(fresh(x), ns["model"](x)), "重新读取的模型输出应与原模型逐位相同"


def test_printed_lines(run_snippet):
    out = run_snippet(SNIPPET).stdout
    assert "<svg" in out, "应打印损失曲线的 SVG"
    assert "重新读取的模型与原模型在整个验证集上的 logits 完全相同: True" in out
    assert "预训练后在验证集上的准确率" in out
