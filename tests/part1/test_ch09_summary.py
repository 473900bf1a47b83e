"""第 9 章：6ND 算力估算的算术；小网络能背下随机标签却不能泛化。"""

import pytest


def test_compute_estimates(run_snippet):
    ns = run_snippet("snippets/part1/ch09_summary.py").ns
    # GPT-3 论文报告约 3.14e23 FLOPs，6ND 估算应与之吻合
    assert ns["train_flops"](175e9, 300e9) == pytest.approx(3.15e23)
    assert ns["train_flops"](70e9, 2e12) == pytest.approx(8.4e23)
    per_day = 312e12 * 0.4 * 86400
    assert ns["gpu_days"]["GPT-3 175B"] == pytest.approx(3.15e23 / per_day)
    assert ns["chinchilla_tokens_70b"] == pytest.approx(1.4e12)


def test_network_memorizes_random_labels(run_snippet):
    ns = run_snippet("snippets/part1/ch09_summary.py").ns
    assert ns["memorize_train_acc"] == 1.0, f"训练集准确率应为 100%，实际 {ns['memorize_train_acc']:.1%}"
    # 标签与输入无关：测试集上应接近随机猜测（1000 个样本，标准差约 1.6%）
    majority = max(ns["y_test"].mean().item(), 1 - ns["y_test"].mean().item())
    assert ns["memorize_test_acc"] < majority + 0.06, f"测试准确率不该远超随机：{ns['memorize_test_acc']:.1%}"


def test_output_has_key_lines(run_snippet):
    out = run_snippet("snippets/part1/ch09_summary.py").stdout
    assert "GPT-3 175B：300B 个词元，约 3.15e+23 次浮点运算" in out
    assert "训练集准确率: 100.0%" in out
    assert "这个网络在训练集上的准确率是 **100.0%**，在 1000 个没见过的样本上是 **" in out
