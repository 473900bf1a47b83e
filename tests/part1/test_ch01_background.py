"""第 1 章：参数计数与模型规模比较、scaled_dot_product_attention 与手写注意力一致。"""

import pytest
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel


def test_hello_model_has_eleven_parameters(run_snippet):
    run = run_snippet("snippets/part1/ch01_background.py")
    # nn.Linear(10, 1)：10 个权重 + 1 个偏置
    assert run.ns["hello_params"] == 10 * 1 + 1, f"参数个数应为 11，实际 {run.ns['hello_params']}"


def test_model_sizes_and_ratios(run_snippet):
    run = run_snippet("snippets/part1/ch01_background.py")
    sizes = run.ns["model_sizes"]
    assert sizes["GPT-2（2019）"] == 1.5e9
    assert sizes["GPT-3（2020）"] == 175e9
    assert sizes["LLaMA 2 7B（2023）"] == 7e9
    assert sizes["LLaMA 2 70B（2023）"] == 70e9
    for name, ratio in run.ns["size_ratios"].items():
        assert ratio == sizes[name] / 11, f"{name} 的倍数算错了"


def test_sdpa_matches_manual_attention(run_snippet):
    ns = run_snippet("snippets/part1/ch01_background.py").ns
    q, k, v = ns["q"], ns["k"], ns["v"]
    weights = torch.softmax(q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5, dim=-1)
    # 注意力权重每行是一个概率分布
    assert q.dim() == 4, "融合内核要求 4 维输入（批大小, 头数, 序列长度, 维度）"
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 2, 5))
    torch.testing.assert_close(ns["fused_attention"], weights @ v)
    assert ns["attention_matches"] is True
    assert 0 <= ns["attention_max_diff"] < 1e-5


def test_fused_kernels_need_4d_input(run_snippet):
    # 页面说：融合内核要求 4 维输入；3 维输入时只允许 FlashAttention 内核会找不到可用的实现
    ns = run_snippet("snippets/part1/ch01_background.py").ns
    q, k, v = ns["q"], ns["k"], ns["v"]
    with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
        # 逐位相同：默认调用在 CPU 上选的就是 FlashAttention 内核
        assert torch.equal(F.scaled_dot_product_attention(q, k, v), ns["fused_attention"])
        q3, k3, v3 = q[:, 0], k[:, 0], v[:, 0]
        with pytest.warns(UserWarning), pytest.raises(RuntimeError, match="No available kernel"):
            F.scaled_dot_product_attention(q3, k3, v3)


def test_output_has_key_lines(run_snippet):
    out = run_snippet("snippets/part1/ch01_background.py").stdout
    assert "Hello PyTorch 模型的参数总数: 11" in out
    assert "GPT-3（2020）：175B（1750 亿）个参数" in out
    assert "**$1.6 \\times 10^{10}$** 倍，相差约 10 个数量级" in out
    assert "一致（容差 1e-5）: True" in out
    assert "两者的最大绝对差: " in out
