"""第 3 章：训练流程真的学会了圆内/圆外分类；torch.compile 与 eager 一致；SDPA 等于手写的注意力公式。"""

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

SNIPPET = "snippets/part1/ch03_algorithm.py"


def test_split_is_disjoint_and_sized(run_snippet):
    ns = run_snippet(SNIPPET).ns
    assert ns["X_train"].shape == (800, 2), f"训练集形状应为 (800, 2)，实际 {tuple(ns['X_train'].shape)}"
    assert ns["X_test"].shape == (200, 2), f"测试集形状应为 (200, 2)，实际 {tuple(ns['X_test'].shape)}"
    perm = ns["perm"]
    train_idx, test_idx = set(perm[:800].tolist()), set(perm[800:].tolist())
    assert not train_idx & test_idx, "训练集和测试集有重叠的样本"
    # 标签确实由“是否在圆内”决定
    X, y = ns["X"], ns["y"]
    expected = (X.pow(2).sum(dim=1) < ns["radius"] ** 2).float().unsqueeze(1)
    assert torch.equal(y, expected), "标签与圆内/圆外的定义不符"


def test_model_has_65_parameters(run_snippet):
    ns = run_snippet(SNIPPET).ns
    model = ns["model"]
    counted = sum(p.numel() for p in model.parameters())
    # 2→16：2*16 个权重 + 16 个偏置；16→1：16 个权重 + 1 个偏置
    assert counted == 2 * 16 + 16 + 16 + 1 == ns["n_params"], f"参数个数不对：{counted}"
    out = model(torch.zeros(7, 2))
    assert out.shape == (7, 1), f"模型对 7 个点应输出 (7, 1)，实际 {tuple(out.shape)}"


def test_loss_falls(run_snippet):
    losses = run_snippet(SNIPPET).ns["train_losses"]
    assert len(losses) == run_snippet(SNIPPET).ns["n_epochs"]
    assert losses[-1] < 0.3 * losses[0], f"损失没有明显下降：{losses[0]:.3f} -> {losses[-1]:.3f}"
    assert min(losses[-5:]) < min(losses[:5]), "最后几轮的损失不比最初几轮低"
    # 页面说：前 10 轮降得最多，之后明显变慢
    early, late = losses[0] - losses[9], losses[9] - losses[-1]
    assert early > 2 * late, f"前 10 轮降了 {early:.3f}，之后降了 {late:.3f}"


def test_initial_loss_is_near_ln2(run_snippet):
    # 随机初始化的小网络输出接近 0 的 logits，二元交叉熵应接近 ln 2
    ns = run_snippet(SNIPPET).ns
    initial = ns["initial_loss"]
    assert abs(initial - math.log(2)) < 0.1, f"初始损失 {initial:.3f} 离 ln 2 太远"
    assert ns["initial_logits"].abs().max() < 0.5, "页面说初始 logits 都很接近 0"


def test_bce_with_logits_target_must_be_float_of_same_shape(run_snippet):
    ns = run_snippet(SNIPPET).ns
    logits, y_train = ns["initial_logits"], ns["y_train"]
    assert y_train.dtype == torch.float32 and y_train.shape == logits.shape
    with pytest.raises(RuntimeError):  # 整数标签
        ns["loss_fn"](logits, y_train.long())
    with pytest.raises(ValueError):  # 形状不同
        ns["loss_fn"](logits, y_train.squeeze(1))
    # 0 到 1 之间的“软”目标也可以
    assert torch.isfinite(ns["loss_fn"](logits, torch.full_like(y_train, 0.3)))


def test_accuracy_beats_majority_baseline(run_snippet):
    ns = run_snippet(SNIPPET).ns
    model, X_test, y_test = ns["model"], ns["X_test"], ns["y_test"]
    model.eval()
    with torch.no_grad():
        accuracy = ((model(X_test) > 0).float() == y_test).float().mean().item()
    share = y_test.mean().item()
    baseline = max(share, 1 - share)
    assert accuracy == ns["test_acc"], "重新计算的测试集准确率与 snippet 的不一致"
    assert accuracy > baseline + 0.3, f"测试集准确率 {accuracy:.3f} 没有明显超过多数类基线 {baseline:.3f}"
    assert accuracy > 0.9, f"测试集准确率只有 {accuracy:.3f}"
    # 页面说：训练集和测试集准确率接近（没有明显过拟合），分错的点都挤在圆的边界附近
    assert abs(ns["train_acc"] - ns["test_acc"]) < 0.03
    wrong_radii = X_test[ns["wrong"]].norm(dim=1)
    assert ((wrong_radii - ns["radius"]).abs() < 0.1).all(), f"分错的点离边界太远：{wrong_radii.tolist()}"


def test_compiled_equals_eager(run_snippet):
    ns = run_snippet(SNIPPET).ns
    torch.testing.assert_close(ns["compiled_logits"], ns["eager_logits"])
    # 再调用一次编译好的模型（同样的输入形状，不会重新编译），结果仍与 eager 相同
    model, compiled, X_test = ns["model"], ns["compiled_model"], ns["X_test"]
    with torch.no_grad():
        torch.testing.assert_close(compiled(X_test), model(X_test))
    assert ns["max_abs_diff"] < 1e-5, f"编译版与 eager 版相差 {ns['max_abs_diff']}"


def test_sdpa_equals_manual_formula(run_snippet):
    ns = run_snippet(SNIPPET).ns
    torch.testing.assert_close(ns["fused_attention"], ns["manual_attention"])
    torch.testing.assert_close(ns["fused_causal"], ns["manual_causal"])
    # 换一组带“多头”维度的新数据，独立再验证一次公式
    assert ns["Q"].dim() == 4, "融合内核要求 4 维输入"
    assert ns["default_is_flash"] is True, "CPU 上的默认实现应是 FlashAttention 内核"
    with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
        assert torch.equal(F.scaled_dot_product_attention(ns["Q"], ns["K"], ns["V"]), ns["fused_attention"])
    gen = torch.Generator().manual_seed(123)
    q, k, v = (torch.randn(3, 4, 6, 16, generator=gen) for _ in range(3))
    manual = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(16), dim=-1) @ v
    torch.testing.assert_close(F.scaled_dot_product_attention(q, k, v), manual)


def test_fused_kernels_need_4d_input(run_snippet):
    # 页面说：条件不满足时（例如输入不是 4 维）退回按公式计算；只允许 FlashAttention 内核时，3 维输入找不到可用的实现
    ns = run_snippet(SNIPPET).ns
    q3, k3, v3 = ns["Q"][:, 0], ns["K"][:, 0], ns["V"][:, 0]
    flash_only = sdpa_kernel(SDPBackend.FLASH_ATTENTION)
    with flash_only, pytest.warns(UserWarning), pytest.raises(RuntimeError, match="No available kernel"):
        F.scaled_dot_product_attention(q3, k3, v3)
    # 默认调用对 3 维输入也能算，结果仍等于手写公式
    manual = torch.softmax(q3 @ k3.transpose(-2, -1) / math.sqrt(ns["d_k"]), dim=-1) @ v3
    torch.testing.assert_close(F.scaled_dot_product_attention(q3, k3, v3), manual)


def test_causal_mask_hides_the_future(run_snippet):
    ns = run_snippet(SNIPPET).ns
    Q, K, V = ns["Q"], ns["K"], ns["V"]
    # 第 0 个位置只能看见自己，所以因果注意力的第 0 行输出就是 V 的第 0 行
    # 形状是 (批大小, 头数, 序列长度, 维度)，位置在倒数第 2 维
    torch.testing.assert_close(ns["fused_causal"][..., 0, :], V[..., 0, :])
    # 改动最后一个位置的 K、V，不应影响前面位置的输出
    K2, V2 = K.clone(), V.clone()
    K2[..., -1, :] += 5
    V2[..., -1, :] -= 5
    changed = F.scaled_dot_product_attention(Q, K2, V2, is_causal=True)
    torch.testing.assert_close(changed[..., :-1, :], ns["fused_causal"][..., :-1, :])
    assert not torch.allclose(changed[..., -1, :], ns["fused_causal"][..., -1, :])


def test_prints_key_lines(run_snippet):
    run = run_snippet(SNIPPET)
    out, ns = run.stdout, run.ns
    assert "参数总数: 65" in out
    assert f"测试集准确率: {ns['test_acc']:.3f}" in out
    assert "torch.testing.assert_close 通过" in out
    assert "torch.testing.assert_close 两次都通过" in out
    assert "默认调用与只允许 FlashAttention 内核时的结果逐位相同: True" in out
    faster = ns["compiled_call_seconds"] < ns["eager_call_seconds"]
    assert f"这一次编译版{'更快' if faster else '更慢'}。" in out
    assert "（计时，每次构建都会不同）" in out


def test_exercise_learning_rate_too_small_is_slow_and_too_large_does_not_converge(run_snippet):
    ns = run_snippet(SNIPPET).ns
    results, ln2 = ns["lr_results"], math.log(2)
    (slow_losses, slow_acc), (good_losses, good_acc) = results[0.001], results[0.01]
    big_losses, big_acc = results[10.0]
    assert results[0.01] is ns["baseline"], "学习率 0.01 应是同一套设置重新训练的基准"
    assert slow_losses[-1] > 2 * good_losses[-1] and slow_acc < good_acc - 0.05, "0.001 在 30 轮内明显没练好"
    assert big_losses[0] > 5 * ln2, "学习率 10：第 1 轮的平均损失远大于 ln 2"
    assert big_losses[-1] > ln2 - 0.05, "学习率 10：损失降不到比瞎猜好多少"
    assert big_acc < ns["majority_acc"] + 0.1, "学习率 10：准确率和瞎猜差不多"
    assert good_acc > 0.9


def test_exercise_without_zero_grad_the_loss_stalls_and_rises(run_snippet):
    ns = run_snippet(SNIPPET).ns
    kept, dropped = ns["kept_losses"], ns["dropped_losses"]
    assert dropped[-1] > 2 * kept[-1], "不清空梯度，最后的损失应明显更高"
    assert min(dropped) < dropped[-1] - 0.05, "不清空梯度：损失先降后升（页面这样说）"
    assert ns["dropped_acc"] < ns["kept_acc"] - 0.03


def test_exercise_hidden_width_two_is_too_few_and_sixty_four_is_not_worse(run_snippet):
    ns = run_snippet(SNIPPET).ns
    results = ns["hidden_results"]
    assert results[16] is ns["baseline"]
    assert results[2][1] < results[16][1] - 0.1, "2 个神经元围不出圆，准确率应明显更低"
    assert results[2][1] > ns["majority_acc"], "但仍比瞎猜好"
    assert results[64][0][-1] < results[16][0][-1], "64 个神经元的训练损失更低"
    assert results[64][1] >= results[16][1], "64 个神经元的测试集准确率不低于 16 个"


def test_exercise_attention_scores_grow_with_the_square_of_the_sequence(run_snippet):
    run = run_snippet(SNIPPET)
    numels = run.ns["score_numels"]
    assert numels == {n: n * n for n in (64, 128, 256, 512)}, f"scores 应有 序列长度² 个数：{numels}"
    for short, long in itertools.pairwise(sorted(numels)):
        assert numels[long] == 4 * numels[short], "序列长度翻倍，scores 变成 4 倍"
    # 融合版与手写版在每个长度上都一致（页面的每一行末尾是 True）
    assert run.stdout.count("与融合版一致: True") == 4
    assert "与融合版一致: False" not in run.stdout
    assert "序列长度 32768：scores 有 1,073,741,824 个数，float32 要 4.3 GB" in run.stdout
