"""第三部分第 2 章：ZeRO 的显存公式（与论文的数字核对），FSDP2 真的切分参数且结果与不切分一致。"""

import pytest
import torch

SNIPPET = "snippets/part3/ch02_sharding.py"


def test_zero_formula_reproduces_the_paper(run_snippet):
    """ZeRO 论文图 1：75 亿参数、64 张卡，每张卡 120、31.4、16.6、1.9 GB。"""
    paper = run_snippet(SNIPPET).ns["paper_gb"]
    assert [round(paper[s], 1) for s in range(4)] == [120.0, 31.4, 16.6, 1.9], f"实际 {paper}"


@pytest.mark.parametrize("model", ["7B", "70B"])
@pytest.mark.parametrize("n", [8, 64])
def test_each_zero_stage_saves_memory_and_stage3_divides_by_n(run_snippet, model, n):
    ns = run_snippet(SNIPPET).ns
    gb = [ns["zero_gb"][stage, model, n] for stage in range(4)]
    assert gb == sorted(gb, reverse=True) and len(set(gb)) == 4, (
        f"{model}、{n} 张卡：每一级都应更省，实际 {gb}"
    )
    params = ns["MODELS"][model]
    assert gb[0] == pytest.approx(16 * params / 1e9), "不切分时每个参数 16 字节"
    assert gb[3] == pytest.approx(16 * params / n / 1e9), "ZeRO-3 把 16 字节均分到 n 张卡"


def test_tensor_times_pipeline_parallel_matches_zero3_on_64_devices(run_snippet):
    ns = run_snippet(SNIPPET).ns
    for model in ns["MODELS"]:
        assert ns["layout_table"]["张量并行 t=8 × 流水线并行 p=8", model] == pytest.approx(
            ns["zero_gb"][3, model, 64]
        )
    assert ns["layout_table"]["张量并行 t=8", "70B"] > ns["GPU_GB"], "70B 只用 8 路张量并行应装不下 80 GB"


def test_fsdp_ranks_hold_half_of_each_weight(run_snippet):
    ns = run_snippet(SNIPPET).ns
    full = ns["results"][0]["full"]
    for rank, result in enumerate(ns["results"]):
        for name, shard in result["local"].items():
            expected = (full[name].shape[0] // 2, *full[name].shape[1:])
            assert tuple(shard.shape) == expected, (
                f"rank {rank} 的 {name} 分片形状 {tuple(shard.shape)} ≠ {expected}"
            )
    assert ns["shards_cover_full"], "两个 rank 的分片拼起来应正好是完整参数"
    assert any("0.weight 完整形状 (16, 16) → 本 rank 保存 (8, 16)" in line for line in ns["fsdp_logs"][1])


def test_fsdp_training_matches_unsharded_model(run_snippet):
    ns = run_snippet(SNIPPET).ns
    full = ns["full"]
    for name, p in ns["reference"].named_parameters():
        torch.testing.assert_close(
            full[name], p.detach(), rtol=1e-5, atol=1e-6, msg=f"{name} 与不切分的训练不同"
        )
    initial = dict(ns["make_model"]().named_parameters())
    moved = max((full[name] - initial[name].detach()).abs().max().item() for name in full)
    assert moved > 1e-3, "训练应改变参数，否则比较没有意义"
    assert ns["params_match"]


def test_output_has_tables_and_verdict(run_snippet):
    out = run_snippet(SNIPPET).stdout
    assert "| ZeRO-3 / FSDP：再切分权重 | 14.0 GB ✅ | 1.8 GB ✅ | 140.0 GB ❌ | 17.5 GB ✅ |" in out
    assert "各 rank 的分片拼起来等于完整参数: True" in out
    assert "allclose: True" in out
