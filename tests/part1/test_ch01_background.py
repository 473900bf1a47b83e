"""第 1 章：参数计数与模型规模比较；练习里的参数公式与字节数。"""

import torch


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


def test_output_has_key_lines(run_snippet):
    out = run_snippet("snippets/part1/ch01_background.py").stdout
    assert "Hello PyTorch 模型的参数总数: 11" in out
    assert "GPT-3（2020）：175B（1750 亿）个参数" in out
    assert "**$1.6 \\times 10^{10}$** 倍，相差约 10 个数量级" in out


def test_exercise_linear_layer_has_out_times_in_plus_out_parameters(run_snippet):
    ns = run_snippet("snippets/part1/ch01_background.py").ns
    linear_params, count_params = ns["linear_params"], ns["count_params"]
    # 公式与真正数出来的一致；宽的层放在 meta 设备上，只有形状、不分配内存
    for n_in, n_out in ((10, 1), (2, 16), (16, 1), (3, 7), (4096, 4096)):
        layer = torch.nn.Linear(n_in, n_out, device="meta")
        assert count_params(layer) == linear_params(n_in, n_out), f"nn.Linear({n_in}, {n_out}) 的公式算错了"
    assert count_params(torch.nn.ReLU()) == 0, "ReLU 没有参数"
    assert count_params(ns["circle_mlp"]) == 65, "第 3 章的 2 → 16 → 1 网络有 65 个参数"
    widths = ns["width_params"]
    assert widths[4096] == 4096 * 4096 + 4096
    assert 3.99 < widths[4096] / widths[2048] < 4.0, "宽度翻倍，参数差不多变成 4 倍（略少于 4 倍）"
    out = run_snippet("snippets/part1/ch01_background.py").stdout
    assert "nn.ReLU() 的参数个数: 0" in out
    assert "数出来 65 个，按公式 48 + 17 = 65 个" in out
    assert "nn.Linear(4096, 4096) 的参数个数: 16,781,312" in out


def test_exercise_bytes_per_parameter_and_weight_memory(run_snippet):
    run = run_snippet("snippets/part1/ch01_background.py")
    ns, out = run.ns, run.stdout
    assert "torch.float32   每个参数 4 字节，Hello 模型共 44 字节" in out
    assert "torch.bfloat16  每个参数 2 字节，Hello 模型共 22 字节" in out
    assert ns["hello_model"].weight.dtype == torch.float32, "练习只拷贝了一份去转换，原来的模型仍是 float32"
    gb = ns["weight_gb"]
    assert gb["LLaMA 2 70B（2023）"] == 140 and gb["GPT-3（2020）"] == 350 and gb["LLaMA 2 7B（2023）"] == 14
    # 答案说：70B 的 bf16 权重比一张 80 GB 的显卡还大（标称 80 GB 的卡实际是 80 GiB）
    assert gb["LLaMA 2 70B（2023）"] * 1e9 > 80 * 2**30
    assert "LLaMA 2 70B（2023） 的 bf16 权重: 140 GB" in out
