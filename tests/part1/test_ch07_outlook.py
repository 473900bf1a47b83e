"""第 7 章：内存账等于算术结果；LoRA 的参数计数、初始不变性和训练行为。"""

import itertools
import math

import pytest
import torch


@pytest.mark.parametrize(
    ("model", "fp32", "bf16", "adam"),
    [("125M", 0.5, 0.25, 2.0), ("7B", 28.0, 14.0, 112.0), ("70B", 280.0, 140.0, 1120.0)],
)
def test_memory_figures(run_snippet, model, fp32, bf16, adam):
    memory = run_snippet("snippets/part1/ch07_outlook.py").ns["memory_gb"][model]
    assert memory["fp32 权重"] == pytest.approx(fp32)
    assert memory["bf16 权重"] == pytest.approx(bf16)
    assert memory["Adam 训练"] == pytest.approx(adam), f"{model} 的 Adam 训练内存应为 16 字节/参数"


def test_gpu_count_for_70b(run_snippet):
    ns = run_snippet("snippets/part1/ch07_outlook.py").ns
    # 1120×10^9 字节 ÷ 80 GiB ≈ 13.04，显卡只能整张地用，所以至少 14 张
    assert ns["gpus_80gb_for_70b"] == math.ceil(1120e9 / (80 * 2**30)) == 14


def test_lora_parameter_counts(run_snippet):
    ns = run_snippet("snippets/part1/ch07_outlook.py").ns
    assert ns["full_params"] == 4096**2
    assert ns["lora_params"] == 2 * 4096 * 8
    assert ns["lora_params_7b"] == 32 * 2 * 2 * 4096 * 8
    # 冻结的 bf16 权重 14 GB；LoRA 状态 = 参数数 × 16 字节
    assert ns["frozen_gb"] == pytest.approx(14.0)
    assert ns["lora_state_gb"] == pytest.approx(ns["lora_params_7b"] * 16 / 1e9)


def test_lora_layer_starts_as_the_base_layer(run_snippet):
    ns = run_snippet("snippets/part1/ch07_outlook.py").ns
    assert ns["same_at_start"] is True
    layer = ns["lora_layer"]
    rank, d_in, d_out = 4, 64, 64
    assert ns["trainable"] == rank * (d_in + d_out), "只有 A 和 B 应该可训练"
    assert ns["frozen"] == d_in * d_out + d_out, "原层的权重和偏置应被冻结"
    assert not layer.base.weight.requires_grad and not layer.base.bias.requires_grad


def test_lora_training_fits_and_keeps_base_frozen(run_snippet):
    ns = run_snippet("snippets/part1/ch07_outlook.py").ns
    losses = ns["lora_losses"]
    assert losses[-1] < 0.01 * losses[0], f"LoRA 训练损失没有明显下降：{losses[0]:.4f} -> {losses[-1]:.6f}"
    assert all(b < a for a, b in itertools.pairwise(losses)), "页面说损失“一路下降”：每一步都应比上一步低"
    assert ns["base_unchanged"] is True
    torch.testing.assert_close(ns["pretrained"].weight, ns["weight_before"], rtol=0, atol=0)


def test_output_has_key_lines(run_snippet):
    out = run_snippet("snippets/part1/ch07_outlook.py").stdout
    assert "| 70B | 280.00 GB | 140.00 GB | 1,120.00 GB |" in out
    assert "刚加上 LoRA 时输出与原层相同: True" in out
    assert "预训练权重 W 保持不变: True" in out


def test_exercise_break_even_rank(run_snippet):
    ns = run_snippet("snippets/part1/ch07_outlook.py").ns
    layer = ns["lora_layer"]
    assert ns["trainable"] == layer.lora_a.numel() + layer.lora_b.numel() == 4 * (64 + 64) == 512
    assert ns["frozen"] == 64 * 64 + 64 == 4160
    out = run_snippet("snippets/part1/ch07_outlook.py").stdout
    for d in (64, 4096):
        r = d // 2  # 方阵：r(d + d) = d·d 在 r = d/2 时成立
        assert r * (d + d) == d * d
        assert f"{d}×{d} 的矩阵：{d * d:,} 个参数；秩 r={r} 的 LoRA 有 {d * d:,} 个参数，一样多" in out


def test_exercise_zero_init_never_trains(run_snippet):
    ns = run_snippet("snippets/part1/ch07_outlook.py").ns
    layer, losses = ns["zero_layer"], ns["zero_losses"]
    assert len(losses) == 50 and len(set(losses)) == 1, "A、B 都是 0：损失一步也不该变"
    assert losses[0] == pytest.approx(ns["lora_losses"][0]), "起点和 7.3 节一样：BA = 0 时就是原层"
    assert torch.count_nonzero(layer.lora_a.grad) == 0 and torch.count_nonzero(layer.lora_b.grad) == 0
    assert torch.count_nonzero(layer.lora_a) == 0 and torch.count_nonzero(layer.lora_b) == 0
    # 对照：只把 B 置零（A 随机）时，B 在第一步就有梯度
    base = ns["LoRALinear"](ns["pretrained"], rank=4, alpha=4)
    torch.nn.functional.mse_loss(base(ns["X_task"]), ns["y_task"]).backward()
    assert base.lora_b.grad.abs().max() > 0 and base.lora_a.grad.abs().max() == 0


def test_exercise_rank_one_cannot_fit_a_rank_two_change(run_snippet):
    ns = run_snippet("snippets/part1/ch07_outlook.py").ns
    losses = ns["rank_losses"]
    assert torch.linalg.matrix_rank(ns["delta"]).item() == 2
    assert losses[4] is ns["lora_losses"]
    assert losses[1][-1] > 0.1, "秩 1 的损失停在明显大于 0 的地方"
    assert losses[2][-1] < 1e-6 and losses[4][-1] < 1e-4, "秩 2、4 都能把损失降到接近 0"
    # 秩 1 停在的正是任何秩 1 的改动能达到的最低损失（降秩回归：Δ·G^{1/2} 的第二个奇异值的平方 / 输出维数）
    X, delta = ns["X_task"].double(), ns["delta"].double()
    eigenvalues, vectors = torch.linalg.eigh(X.T @ X / len(X))
    singular = torch.linalg.svdvals(delta @ vectors @ torch.diag(eigenvalues.sqrt()) @ vectors.T)
    assert losses[1][-1] == pytest.approx((singular[1] ** 2 / 64).item(), rel=1e-3)


def test_exercise_merged_layer_equals_the_lora_layer(run_snippet):
    ns = run_snippet("snippets/part1/ch07_outlook.py").ns
    merged, lora = ns["merged"], ns["lora_layer"]
    assert type(merged) is torch.nn.Linear
    assert sum(p.numel() for p in merged.parameters()) == 4160
    probe = torch.randn(100, 64)
    with torch.no_grad():
        torch.testing.assert_close(merged(probe), lora(probe), atol=1e-5, rtol=1e-5)
    assert 0 <= ns["merge_gap"] < 1e-5
    # LoRA 真的学到了东西：合并后的权重不等于原来的 W
    assert not torch.allclose(merged.weight, ns["weight_before"], atol=1e-3)


def test_exercise_gpu_limits(run_snippet):
    ns = run_snippet("snippets/part1/ch07_outlook.py").ns
    limits = ns["gpu_limits"]
    assert limits[24]["bf16 推理"] == pytest.approx(24 * 2**30 / 2 / 1e9)
    assert limits[80]["Adam 全量训练"] == pytest.approx(80 * 2**30 / 16 / 1e9)
    # 答案说：7B 能在 24 GB 上做 bf16 推理；Adam 全量训练 80 GB 也只够五十多亿个参数；LoRA 几乎和推理一样大
    assert limits[24]["bf16 推理"] > 7 and 5 < limits[80]["Adam 全量训练"] < 6
    for gib in (24, 80):
        assert 0.99 * limits[gib]["bf16 推理"] < limits[gib]["LoRA 微调"] < limits[gib]["bf16 推理"]
