"""第 6 章：线性层分不开 XOR 而两层 MLP 可以；同一个训练循环做多分类和回归。"""

import math

import torch

SNIPPET = "snippets/part1/ch06_applications.py"


def test_xor_linear_fails_mlp_succeeds(run_snippet):
    ns = run_snippet(SNIPPET).ns
    linear_acc, mlp_acc = ns["linear_acc"], ns["mlp_acc"]
    assert linear_acc <= 0.8, f"XOR 不是线性可分的，线性模型不该超过 80%，实际 {linear_acc:.1%}"
    assert mlp_acc >= 0.95, f"两层 MLP 应该几乎完全分开 XOR，实际 {mlp_acc:.1%}"
    assert linear_acc < mlp_acc
    # 线性模型的损失停在 ln 2（“一半一半”）附近，MLP 的损失降到接近 0
    assert ns["linear_losses"][-1] > 0.6, f"线性模型在 XOR 上的损失不该降到 {ns['linear_losses'][-1]:.3f}"
    assert ns["mlp_losses"][-1] < 0.1, f"MLP 在 XOR 上的损失应降到接近 0，实际 {ns['mlp_losses'][-1]:.3f}"
    # 页面说线性模型的损失“只比 ln 2 低一点点”
    assert 0 < math.log(2) - ns["linear_losses"][-1] < 0.02


def test_linear_xor_accuracy_stays_under_the_three_of_four_bound(run_snippet):
    ns = run_snippet(SNIPPET).ns
    counts = torch.bincount(ns["corner_idx"], minlength=4)
    assert counts.sum().item() == len(ns["X_xor"])
    assert len(set(counts.tolist())) > 1, "页面说这份数据的四团大小不完全相同"
    bound = 1 - counts.min().item() / counts.sum().item()
    assert ns["linear_bound"] == bound
    # 每团点离角只有 0.15 的标准差，越过分界的点极少：线性模型不会明显超过“放弃最小一团”的上限
    assert ns["linear_acc"] <= bound + 0.01, f"线性模型 {ns['linear_acc']:.1%} 超过了上限 {bound:.1%}"


def test_xor_linear_accuracy_is_what_the_model_predicts(run_snippet):
    ns = run_snippet(SNIPPET).ns
    X, y = ns["X_xor"], ns["y_xor"]
    with torch.no_grad():
        acc = ((ns["linear_model"](X) > 0).float() == y).float().mean().item()
    assert abs(acc - ns["linear_acc"]) < 1e-6


def test_multiclass_beats_chance(run_snippet):
    ns = run_snippet(SNIPPET).ns
    logits, labels = ns["blob_logits"], ns["y_blobs_test"]
    assert logits.shape == (len(labels), 3), f"logits 形状应为 (N, 3)，实际 {tuple(logits.shape)}"
    assert labels.dtype == torch.int64, f"CrossEntropyLoss 的类别标签应为 int64，实际 {labels.dtype}"
    counts = torch.bincount(labels, minlength=3)
    majority = counts.max().item() / len(labels)
    acc = ns["blob_acc"]
    assert acc >= max(1 / 3, majority) + 0.3, f"多分类准确率 {acc:.1%} 没有明显超过随机猜测"
    losses = ns["blob_losses"]
    assert losses[-1] < 0.2 * losses[0], f"交叉熵没有明显下降：{losses[0]:.3f} -> {losses[-1]:.3f}"


def test_regression_recovers_true_weights(run_snippet):
    ns = run_snippet(SNIPPET).ns
    torch.testing.assert_close(ns["learned_w"], ns["true_w"], atol=1e-3, rtol=0)
    assert abs(ns["learned_b"] - ns["true_b"]) < 1e-3, (
        f"偏置 {ns['learned_b']:.4f} 离真实值 {ns['true_b']} 太远"
    )
    # 学到的正是这份带噪声数据的最小二乘解：与真实值的差别来自噪声，而不是没训练够
    design = torch.cat([ns["X_reg"], torch.ones(len(ns["X_reg"]), 1)], dim=1).double()
    least_squares = torch.linalg.lstsq(design, ns["y_reg"].double()).solution.flatten().float()
    learned = torch.cat([ns["learned_w"], torch.tensor([ns["learned_b"]])])
    torch.testing.assert_close(learned, least_squares, atol=1e-5, rtol=0)
    losses = ns["reg_losses"]
    assert losses[-1] < 1e-3 * losses[0], f"均方误差没有降到噪声水平：{losses[0]:.4f} -> {losses[-1]:.6f}"


def test_fit_is_one_training_loop(run_snippet):
    ns = run_snippet(SNIPPET).ns
    torch.manual_seed(1)
    X = torch.randn(50, 3)
    y = X @ torch.tensor([[1.0], [-2.0], [0.5]])
    losses = ns["fit"](torch.nn.Linear(3, 1), torch.nn.MSELoss(), X, y, num_epochs=30, lr=0.1)
    assert len(losses) == 30, "fit 应该每轮记录一个损失"
    assert losses[-1] < 0.1 * losses[0], f"fit 没有让损失下降：{losses[0]:.3f} -> {losses[-1]:.3f}"


def test_printed_output(run_snippet):
    out = run_snippet(SNIPPET).stdout
    assert "线性模型：" in out and "两层 MLP：" in out
    assert "logits 的形状: (150, 3)" in out
    assert "torch.int64" in out
    assert "学到权重:" in out
    assert out.count("<svg") == 1, "XOR 的决策区域应作为一张 SVG 打印出来"
