"""第三部分第 2 章：ZeRO 的显存公式（与论文的数字核对），FSDP2 真的切分参数且结果与不切分一致。"""

import pytest
import torch

SNIPPET = "snippets/part3/ch02_sharding.py"


def test_zero_formula_reproduces_the_paper(run_snippet):
    """ZeRO 论文图 1：75 亿参数、64 张卡，每张卡 120、31.4、16.6、1.9 GB。"""
    ns = run_snippet(SNIPPET).ns
    paper = ns["paper_gb"]
    assert [round(paper[s], 1) for s in range(4)] == [120.0, 31.4, 16.6, 1.9], f"实际 {paper}"
    assert ns["paper_agrees"] is True
    assert "保留一位小数后与论文图 1 的数字相同: True" in run_snippet(SNIPPET).stdout


def test_reading_of_the_zero_table_is_generated_from_it(run_snippet):
    ns = run_snippet(SNIPPET).ns
    out = run_snippet(SNIPPET).stdout
    fits = ns["smallest_stage_that_fits"]
    assert fits("7B", 8) == 1 and fits("70B", 64) == 3 and fits("70B", 8) is None
    # 每一格都与表一致：选出的那一级装得下，低一级装不下
    for model in ns["MODELS"]:
        for n in ns["DEVICE_COUNTS"]:
            stage = fits(model, n)
            if stage is not None:
                assert ns["zero_gb"][stage, model, n] <= ns["GPU_GB"]
                assert stage == 0 or ns["zero_gb"][stage - 1, model, n] > ns["GPU_GB"]
    assert "- 70B 模型、8 张卡：哪一级都装不下；" in out
    assert "- 7B 模型、8 张卡：最少要 ZeRO-1（每张卡 38.5 GB；低一级是 112.0 GB）；" in out


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
    assert "各 rank 的分片拼起来逐位等于完整参数（torch.equal）: True" in out
    ns = run_snippet(SNIPPET).ns
    assert f"最大绝对差 {ns['max_param_diff']:.1e}，在容差 rtol=1e-05、atol=1e-06 内: True" in out
    summary = out.rstrip().splitlines()[-1]
    assert summary.startswith("不切分时，70B 模型每张卡要")
    if not ns["params_equal"]:
        assert "只差浮点舍入" in summary and "一致" not in summary and "逐位相同" not in summary


def test_shard_sentence_comes_from_the_saved_shards(run_snippet):
    ns = run_snippet(SNIPPET).ns
    out = run_snippet(SNIPPET).stdout
    assert (
        "`0.weight` 完整是 16×16，rank 0 保存 8×16" in out
        and "`4.weight` 完整是 4×16，rank 0 保存 2×16" in out
    )
    assert ns["full_count"] == sum(p.numel() for p in ns["make_model"]().parameters()) == 612
    assert ns["local_counts"] == [306, 306] and sum(ns["local_counts"]) == ns["full_count"]
    assert "合计：完整模型 612 个参数，rank 0 保存 306 个，rank 1 保存 306 个。" in out


def test_fsdp_mixed_precision_keeps_fp32_shards_and_computes_in_bf16(run_snippet):
    """MixedPrecisionPolicy(param_dtype=bf16, reduce_dtype=fp32)：只有收集的完整参数和完整梯度是 bf16。"""
    ns = run_snippet(SNIPPET).ns
    kinds = ns["mixed"]["kinds"]
    assert kinds["前向时收集的完整参数"] == ("torch.bfloat16", (16, 16))
    assert kinds["反向时算出的完整梯度"] == ("torch.bfloat16", (16, 16))
    for name in ("本 rank 保存的参数分片", "梯度分片", "Adam 的 m", "Adam 的 v"):
        assert kinds[name] == ("torch.float32", (8, 16)), (name, kinds[name])
    assert ns["mixed"]["local_params"] == 306
    assert ns["mixed_bytes_per_param"] == 16 == ns["WEIGHT_BYTES"] + ns["GRAD_BYTES"] + ns["OPTIMIZER_BYTES"]
    out = run_snippet(SNIPPET).stdout
    assert "| 前向时收集的完整参数 | `torch.bfloat16` | 16×16 | 2 |" in out
    assert "| 本 rank 保存的参数分片 | `torch.float32` | 8×16 | 4 |" in out
