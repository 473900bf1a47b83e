"""第二部分第 6 页：显存账的每一笔算术——真实形状的参数量、各格式的权重、16 字节/参数、LoRA 与 QLoRA。"""

import math

import pytest
import torch

SNIPPET = "snippets/part2/ch06_memory.py"
GB = 1e9

# LLaMA 2 公开的参数量（由官方检查点逐个张量数出）
PUBLISHED_PARAMS = {"7B": 6_738_415_616, "13B": 13_015_864_320, "70B": 68_976_648_192}


@pytest.fixture(scope="module")
def ns(run_snippet):
    return run_snippet(SNIPPET).ns


def test_skeletons_match_published_counts_and_formula(ns):
    assert ns["real_params"] == PUBLISHED_PARAMS
    assert ns["formula_params"] == PUBLISHED_PARAMS
    # meta 骨架不占内存：所有参数都在 meta 设备上
    assert all(p.is_meta for model in ns["skeletons"].values() for p in model.parameters())


def test_gqa_narrows_kv_only_for_70b(ns):
    layer70 = ns["skeletons"]["70B"].layers[0]
    assert (layer70.k_proj.out_features, layer70.v_proj.out_features) == (1024, 1024)
    layer7 = ns["skeletons"]["7B"].layers[0]
    assert layer7.v_proj.out_features == 4096


def test_weight_memory_per_format(ns):
    weights = ns["weights_gb"]
    assert weights["7B"] == pytest.approx({"fp32": 28.0, "bf16": 14.0, "int8": 7.0, "int4": 3.5})
    assert weights["13B"]["bf16"] == pytest.approx(26.0)
    assert weights["70B"] == pytest.approx({"fp32": 280.0, "bf16": 140.0, "int8": 70.0, "int4": 35.0})
    assert ns["gib_ratio"] == pytest.approx(1e9 / 2**30)


def test_three_real_training_stacks_are_counted_byte_by_byte(ns):
    """一步真正的 AdamW 之后数出的字节：autocast 4+4+4+4，主权重 2+2+4+4+4，纯 bf16 2+2+2+2。"""
    n = ns["n_tiny"]
    per_param = {name: [b / n for b, _ in led.values()] for name, led in ns["stacks"].items()}
    assert per_param == {
        "① torch.autocast": [4, 4, 0, 4, 4],
        "② bf16 权重 + fp32 主权重": [2, 2, 4, 4, 4],
        "③ 纯 bf16": [2, 2, 0, 2, 2],
    }, per_param
    assert {d for _, d in ns["autocast_ledger"].values()} == {"float32", "—"}, (
        "autocast 不改变参数、梯度和状态的类型"
    )
    assert ns["pure_ledger"]["Adam 一阶矩 m"][1] == "bfloat16", "AdamW 的状态跟着参数的类型"
    # 页面的 16 字节表按 ② 的构成；① 合计相同
    assert list(ns["FULL_FT_BYTES"].values()) == per_param["② bf16 权重 + fp32 主权重"]
    assert sum(per_param["① torch.autocast"]) == ns["FULL_FT_BYTES_PER_PARAM"] == 16
    # 计步器每个参数张量一个，相对总量可以忽略
    assert ns["step_counter_bytes"] < 1e-4 * 16 * n
    # ② 一步更新之后，bf16 权重确实是 fp32 主权重舍入的结果，而且这一步真的改变了权重
    for master, p, before in zip(
        ns["master"], ns["tiny"].parameters(), ns["make_tiny"]().parameters(), strict=True
    ):
        assert p.dtype == torch.bfloat16 and master.dtype == torch.float32
        torch.testing.assert_close(p, master.to(torch.bfloat16), rtol=0, atol=0)
        assert not torch.equal(master, before.detach())


def test_bf16_rounds_away_a_small_update(run_snippet):
    out = run_snippet(SNIPPET).stdout
    assert "在 bf16 里 1 + 0.001 = 1，在 fp32 里是 1.001。" in out
    assert "| **合计** | **16** | **16** | **8** |" in out
    assert "| 主权重 | — | 4（float32） | — |" in out


def test_full_finetune_totals(ns):
    totals = {model: sum(row.values()) for model, row in ns["full_ft_gb"].items()}
    assert totals == pytest.approx({"7B": 112.0, "13B": 208.0, "70B": 1120.0})
    assert ns["full_ft_gb"]["7B"]["fp32 主权重"] == pytest.approx(28.0)


def test_lora_counts_from_real_shapes(ns):
    assert ns["lora_params"] == {"7B": 4_194_304, "13B": 6_553_600, "70B": 16_384_000}
    # 手算：层数 × [r·(d + d)（q_proj） + r·(d + d_kv)（v_proj）]
    assert 32 * (8 * (4096 + 4096) + 8 * (4096 + 4096)) == 4_194_304
    assert 80 * (8 * (8192 + 8192) + 8 * (8192 + 1024)) == 16_384_000
    for model, n in ns["lora_params"].items():
        assert n / PUBLISHED_PARAMS[model] < 1e-3, f"{model} 的 LoRA 参数应不到千分之一"


def test_lora_and_qlora_memory(ns):
    memory = ns["memory_gb"]
    for model, n in ns["MODEL_PARAMS"].items():
        adapters = ns["lora_params"][model] * 16 / GB
        assert memory[model]["其中适配器"] == pytest.approx(adapters)
        assert memory[model]["全量微调"] == pytest.approx(16 * n / GB)
        assert memory[model]["LoRA（bf16 底座）"] == pytest.approx(2 * n / GB + adapters)
        assert memory[model]["QLoRA（int4 底座）"] == pytest.approx(0.5 * n / GB + adapters)
        # 排序：全量微调 > LoRA > QLoRA
        assert (
            memory[model]["全量微调"]
            > memory[model]["LoRA（bf16 底座）"]
            > memory[model]["QLoRA（int4 底座）"]
        )
    assert memory["7B"]["LoRA（bf16 底座）"] == pytest.approx(14.067108864)
    assert memory["70B"]["QLoRA（int4 底座）"] < 80 < memory["7B"]["全量微调"]


def test_quantization_constant_overhead(ns):
    assert ns["absmax_bits"] == 0.5
    assert math.isclose(ns["double_quant_bits"], 0.126953125)


def test_consistent_with_part1_chapter7(run_snippet, ns):
    """第一部分第 7 章的表和 LoRA 估算，与本页用同样的约定、得到同样的数。"""
    ch07 = run_snippet("snippets/part1/ch07_outlook.py").ns
    assert ch07["GB"] == ns["GB"]
    for model in ("7B", "70B"):
        assert ch07["memory_gb"][model]["bf16 权重"] == pytest.approx(ns["weights_gb"][model]["bf16"])
        assert ch07["memory_gb"][model]["fp32 权重"] == pytest.approx(ns["weights_gb"][model]["fp32"])
        assert ch07["memory_gb"][model]["Adam 训练"] == pytest.approx(ns["memory_gb"][model]["全量微调"])
    assert ch07["lora_params_7b"] == ns["lora_params"]["7B"]


def test_plot_is_svg_and_printed_output(run_snippet):
    out = run_snippet(SNIPPET).stdout
    assert "<svg" in out and "</svg>" in out
    assert "| LLaMA 2 7B | 4,096 | 32 | 11,008 | 32 | 6,738,415,616 | 6,738,415,616 |" in out
    assert "两种方法数出的参数量全部相同。名字是取整后的叫法：“7B”实际有 67.4 亿个参数" in out
    assert "r=8 的 LoRA 参数 4,194,304 个" in out
    assert "| 7B | 112.00 GB | 14.07 GB | 3.57 GB | 0.07 GB |" in out
    assert "1 GB = 10^9 字节" in out


# ---------- 6.7 练习 ----------


def test_exercise_lora_on_all_linear_layers_is_still_small(run_snippet, ns):
    # 手算：层数 × r × [4 个注意力投影 + 3 个前馈投影] 的 (d_in + d_out) 之和
    assert 32 * 16 * (4 * (4096 + 4096) + 3 * (4096 + 11008)) == 39_976_960
    assert 80 * 16 * (2 * (8192 + 8192) + 2 * (8192 + 1024) + 3 * (8192 + 28672)) == 207_093_760
    assert ns["wide_lora_params"] == {"7B": 39_976_960, "13B": 62_586_880, "70B": 207_093_760}
    for model, n in ns["wide_lora_params"].items():
        assert n / PUBLISHED_PARAMS[model] < 0.01, "7 个线性层、r=16 也不到全部参数的 1%"
        lora_gb = ns["weights_gb"][model]["bf16"] + n * 16 / GB
        assert lora_gb < 1.05 * ns["weights_gb"][model]["bf16"], "LoRA 的显存仍然几乎等于 bf16 权重"
    out = run_snippet(SNIPPET).stdout
    # 答案引用的数
    for text in (
        "（是 r=8、只改 q、v 时的 9.5 倍），占全部参数的 0.59%；适配器 0.64 GB，LoRA 合计 14.64 GB",
        "12.6 倍",
    ):
        assert text in out
    assert "| 7B | 112.00 GB | 14.07 GB |" in out


def test_exercise_kv_cache_per_token_and_gqa_saving(run_snippet, ns):
    per_token = ns["kv_per_token"]
    assert per_token["7B"] == 2 * 32 * 4096 * 2 == 524_288
    assert per_token["70B"] == 2 * 80 * 1024 * 2 == 327_680
    assert per_token["70B（假如没有 GQA）"] == 8 * per_token["70B"], "64 个查询头共用 8 组键值：省 8 倍"
    assert per_token["70B"] < per_token["7B"]
    out = run_snippet(SNIPPET).stdout
    assert "| 7B | 524 | 2.15 | 6.5 |" in out
    assert "| 70B（假如没有 GQA） | 2,621 | 10.74 | 13.0 |" in out


def test_exercise_pure_bf16_leaves_most_weights_where_they_were(ns):
    (pure, pure_largest, largest), (master, master_largest, _) = (
        ns["bf16_runs"]["③ 纯 bf16"],
        ns["bf16_runs"]["② bf16 权重 + fp32 主权重"],
    )
    assert pure < 0.15 and master > 0.7, (pure, master)
    # 答案的解释：更新约为学习率 1e-5，只有 |w| ≤ 2^-8 的 bf16 权重挪得动
    assert pure_largest <= 2.0**-8 < master_largest < largest
    small = torch.cat([p.abs().flatten() for p in ns["make_tiny"](torch.bfloat16).parameters()]) <= 2.0**-8
    assert abs(small.float().mean().item() - pure) < 0.01, "变了的正是绝对值不超过 2^-8 的那些"


def test_exercise_saved_activations_grow_with_batch_and_depend_on_what_is_frozen(ns):
    saved = ns["activation_bytes"]
    per_sample = {case: n // (4 * ns["cases"][case][0]) for case, n in saved.items()}
    # 输入 256 + GELU 的输入 1024 + 第二个线性层的输入 1024 + pow 的输入 256
    assert per_sample["批大小 32"] == 256 + 1024 + 1024 + 256
    assert saved["批大小 64"] == 2 * saved["批大小 32"], "激活值与批大小成正比"
    assert per_sample["批大小 32，冻结第二个线性层"] == 2560 - 1024, "冻结的线性层不存自己的输入，GELU 照存"
    assert per_sample["批大小 32，冻结第一个线性层"] == 1024 + 256, "底部冻结：第一层和 GELU 都不存"
    assert all(p.requires_grad for p in ns["activation_net"].parameters()), "数完要把 requires_grad 恢复"
