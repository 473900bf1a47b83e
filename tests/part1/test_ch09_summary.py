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


def test_exercise_chinchilla_allocation_of_gpt3_compute(run_snippet):
    ns = run_snippet("snippets/part1/ch09_summary.py").ns
    n, d, c = ns["optimal_params"], ns["optimal_tokens"], ns["gpt3_compute"]
    assert c == pytest.approx(6 * 175e9 * 300e9)
    assert d == pytest.approx(20 * n) and 6 * n * d == pytest.approx(c), "同样的算力、每个参数 20 个词元"
    # 答案说：参数不到 GPT-3 的三分之一，词元是它的三倍多；GPT-3 每个参数不到 2 个词元
    assert n < 175e9 / 3 and 3 < d / 300e9 < 4
    assert 300e9 / 175e9 < 2
    out = run_snippet("snippets/part1/ch09_summary.py").stdout
    assert "约 51B 个参数，1.02T 个词元" in out


def test_exercise_same_network_learns_a_rule_but_only_memorizes_noise(run_snippet):
    ns = run_snippet("snippets/part1/ch09_summary.py").ns
    # 只换了标签：输入还是 9.2 节的那些点
    assert ns["rule_y_train"].shape == ns["y_train"].shape
    assert ns["rule_train_acc"] == 1.0 == ns["memorize_train_acc"], "两种标签在训练集上都是 100%"
    assert ns["rule_test_acc"] > 0.8, "有规律可学：测试集上也大多答对"
    assert ns["rule_test_acc"] > ns["memorize_test_acc"] + 0.25, "测试集把学规律和背答案分开"
    assert ns["rule_test_acc"] < 0.98, "练习 4 的前提：测试集上还差一截"


def test_exercise_more_data_narrows_the_gap(run_snippet):
    ns = run_snippet("snippets/part1/ch09_summary.py").ns
    assert len(ns["X_more"]) == 1000
    assert ns["more_train_acc"] == 1.0
    assert ns["more_test_acc"] > ns["rule_test_acc"] + 0.02, "样本从 200 增加到 1000，测试集准确率应更高"
