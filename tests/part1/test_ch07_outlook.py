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
