"""第 6 章：线性层分不开 XOR 而两层 MLP 可以；同一个训练循环做多分类和回归。"""

import math

import pytest
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


def test_exercise_ln2_linear_model_barely_beats_ignoring_the_input(run_snippet):
    ns = run_snippet(SNIPPET).ns
    rate = ns["y_xor"].mean().item()
    # 答案说：永远回答正类比例 p 时平均 BCE 最小；p = 0.5 时正好是 ln 2
    y = ns["y_xor"]

    def constant_bce(p):
        return torch.nn.functional.binary_cross_entropy(torch.full_like(y, p), y).item()

    assert constant_bce(0.5) == pytest.approx(math.log(2), abs=1e-6)
    assert constant_bce(rate) == pytest.approx(ns["constant_loss"], abs=1e-6)
    assert all(constant_bce(p) > ns["constant_loss"] for p in (rate - 0.05, rate + 0.05, 0.5))
    # 线性模型只比“不看输入”的最佳常数低一点点，而且给每个点的概率都离 50% 不远
    assert 0 < ns["constant_loss"] - ns["linear_losses"][-1] < 0.005
    probs = ns["linear_probs"]
    assert probs.min().item() > 0.35 and probs.max().item() < 0.65
    assert ns["linear_acc"] > 0.7, "准确率却有七成多"


def test_exercise_two_linear_layers_without_relu_are_one_linear_layer(run_snippet):
    ns = run_snippet(SNIPPET).ns
    assert not any(isinstance(m, torch.nn.ReLU) for m in ns["stacked_model"])
    # 与一个线性层的结果一样：分不开 XOR
    assert ns["stacked_acc"] <= ns["linear_bound"] + 0.01
    assert abs(ns["stacked_acc"] - ns["linear_acc"]) < 0.01
    assert abs(ns["stacked_losses"][-1] - ns["linear_losses"][-1]) < 1e-3
    # 合成的一层在任意输入上都等于两层模型（不只在训练数据上）
    probe = torch.randn(1000, 2) * 3
    with torch.no_grad():
        torch.testing.assert_close(ns["merged"](probe), ns["stacked_model"](probe), atol=1e-5, rtol=1e-5)
    assert ns["merged_gap"] < 1e-5


def test_exercise_cross_entropy_is_log_softmax_and_softmax_first_has_a_floor(run_snippet):
    ns = run_snippet(SNIPPET).ns
    assert ns["builtin_loss"] == pytest.approx(ns["manual_loss"], abs=1e-6)
    floor = math.log((math.e + 2) / math.e)
    assert ns["double_floor"] == pytest.approx(floor, abs=1e-6)
    # 再做一次 softmax 的“logits”在 0 到 1 之间：任何模型的损失都不低于这个下限
    assert ns["double_loss"] > floor and min(ns["double_losses"]) > floor
    assert ns["builtin_loss"] < floor, "正确做法的损失在下限之下"
    # 不报错、准确率也差不多：所以难发现
    assert ns["double_acc"] > ns["blob_acc"] - 0.03


def test_exercise_regression_error_scales_with_noise_and_shrinks_with_data(run_snippet):
    ns = run_snippet(SNIPPET).ns
    errors = ns["noise_errors"]
    for n in (500, 5000):
        # 同一个 seed：噪声放大 10 倍，误差几乎正好放大 10 倍
        assert errors[0.1, n] / errors[0.01, n] == pytest.approx(10, rel=0.02)
        assert errors[1.0, n] / errors[0.1, n] == pytest.approx(10, rel=0.02)
    for noise in (0.01, 0.1, 1.0):
        ratio = errors[noise, 500] / errors[noise, 5000]
        assert 3.3 < ratio < 4.5, f"样本多 10 倍，误差应缩小到约四分之一，实际缩小 {ratio:.2f} 倍"
    # 训练收敛到了最小二乘解：误差来自数据，不是没训练够
    torch.manual_seed(0)
    X = torch.randn(5000, 2)
    y = (X @ ns["true_w"] + ns["true_b"] + 1.0 * torch.randn(5000)).unsqueeze(1)
    design = torch.cat([X, torch.ones(5000, 1)], dim=1).double()
    solution = torch.linalg.lstsq(design, y.double()).solution.flatten()
    truth = torch.cat([ns["true_w"], torch.tensor([ns["true_b"]])]).double()
    assert (solution - truth).abs().max().item() == pytest.approx(errors[1.0, 5000], abs=1e-5)
