"""第三部分第 2 章：ZeRO 的显存公式（与论文的数字核对），FSDP2 真的切分参数且结果与不切分一致。"""

import json
import subprocess
import sys

import pytest
import torch

from tests.conftest import ROOT

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
    assert "| ZeRO-3 / FSDP：再切分权重 | 14.0 GB ✓ | 1.8 GB ✓ | 140.0 GB ✗ | 17.5 GB ✓ |" in out
    assert "各 rank 的分片拼起来逐位等于完整参数（torch.equal）: True" in out
    ns = run_snippet(SNIPPET).ns
    assert f"最大绝对差 {ns['max_param_diff']:.1e}，在容差 rtol=1e-05、atol=1e-06 内: True" in out
    # 正文的最后一段输出（练习的答案在它后面输出）
    (summary,) = [line for line in out.splitlines() if line.startswith("不切分时，70B 模型每张卡要")]
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


def test_gpt_saved_activation_bytes_match_the_listing_exactly(run_snippet):
    """为反向传播保存的字节（saved_tensors_hooks 数的）与逐项列出的清单逐字节相同；两个 rank 一样多。"""
    from tests.part3.test__fsdp_worker import expected_saved_bytes

    ns = run_snippet(SNIPPET).ns
    local = ns["GPT_BATCH"] // ns["WORLD_SIZE"]
    for name, bf16, recompute in ns["GPT_VARIANTS"]:
        expected = expected_saved_bytes(local, 2 if bf16 else 4, recompute)
        for rank, result in enumerate(ns["gpt"]):
            assert result[name]["saved_bytes"] == expected, (
                rank,
                name,
                result[name]["saved_bytes"],
                expected,
            )
        assert ns["formula"][name] == expected, "页面的公式与清单不同"
    assert ns["formula_agrees"]
    assert "与数出来的逐字节相同: True" in run_snippet(SNIPPET).stdout


def test_bf16_halves_activations_checkpointing_cuts_them_and_training_state_stays_16_bytes(run_snippet):
    ns = run_snippet(SNIPPET).ns
    runs = ns["runs"]
    fp32 = runs["fp32"]["saved_bytes"]
    assert 0.45 < runs["bf16"]["saved_bytes"] / fp32 < 0.55, "bf16 应让保存的激活值差不多减半"
    assert runs["fp32 + 检查点"]["saved_bytes"] < 0.15 * fp32
    assert runs["bf16 + 检查点"]["saved_bytes"] < runs["fp32 + 检查点"]["saved_bytes"]
    for name, run in runs.items():
        assert run["block_calls"] == (2 if "检查点" in name else 1), (name, run["block_calls"])
        assert run["state_bytes"] == 16 * run["local_params"], f"{name}：训练状态应是 16 字节/参数"
    # 四种做法保存的参数一样多：每个 rank 大约一半（嵌入的行数不能整除时差几行）
    total = sum(p.numel() for p in ns["GPT"](ns["config"]).parameters())
    assert abs(runs["fp32"]["local_params"] - total / 2) < 0.01 * total


def test_checkpointing_is_bit_identical_and_bf16_changes_the_loss_a_little(run_snippet):
    ns = run_snippet(SNIPPET).ns
    for result in ns["gpt"]:
        for dtype in ("fp32", "bf16"):
            a, b = result[dtype], result[f"{dtype} + 检查点"]
            assert a["losses"] == b["losses"], f"{dtype}：检查点不应改变损失"
            assert all(torch.equal(a["state"][n], b["state"][n]) for n in a["state"])
        assert result["fp32"]["losses"][-1] < 0.8 * result["fp32"]["losses"][0], "损失应下降"
        assert result["bf16"]["losses"] != result["fp32"]["losses"], "bf16 应改变数值"
    assert ns["checkpoint_changes_nothing"] == {"fp32": True, "bf16": True}
    assert 1e-6 < ns["loss_gap"] < 1e-2, f"bf16 与 fp32 的损失差 {ns['loss_gap']:.1e} 应在 bf16 舍入的量级"


def test_gpt_timing_is_self_consistent_and_the_verdict_follows_the_rule(run_snippet):
    ns = run_snippet(SNIPPET).ns
    # 只检查测量是否自洽，不断言快慢
    for name, run in ns["runs"].items():
        assert len(run["seconds"]) == ns["STEPS_GPT"] and all(t > 0 for t in run["seconds"])
        assert len(ns["step_ratios"][name]) == ns["STEPS_GPT"] - 1
    assert ns["direction"]([1.2] * 8) == "慢" and ns["direction"]([0.8] * 8) == "快"
    assert ns["direction"]([0.8, 1.2] * 4) == "分不出快慢"
    assert "计时，每次构建不同" in run_snippet(SNIPPET).stdout


def test_gpt_ledger_scales_the_per_block_listing(run_snippet):
    ns = run_snippet(SNIPPET).ns
    layers, d, heads, seq = 32, 4096, 32, 2048
    per_token_layer = 16 * d * 2 + 4 * 2 + heads * 4  # bf16 的 16d 个数，LayerNorm 统计量，fp32 的 logsumexp
    assert ns["no_recompute"] == layers * seq * per_token_layer
    assert ns["with_recompute"] == layers * seq * d * 2 + seq * per_token_layer
    assert ns["total"]["不用检查点"] > ns["GPU_GB"] > ns["total"]["用检查点"]
    out = run_snippet(SNIPPET).stdout
    assert (
        f"不用检查点 {ns['total']['不用检查点']:.1f} GB ✗，用检查点 {ns['total']['用检查点']:.1f} GB ✓" in out
    )


# ---------------------------------------------------------------- 练习的参考答案


def test_exercise_fewest_devices_per_zero_stage(run_snippet):
    ns = run_snippet(SNIPPET).ns
    bytes_per_param, zero_bytes_per_param = ns["bytes_per_param"], ns["zero_bytes_per_param"]
    for stage in range(4):
        for n in (1, 3, 8, 64):
            assert bytes_per_param(stage, n, 2, 2, 12) == pytest.approx(zero_bytes_per_param(stage, n))
    fewest, paper, autocast = ns["fewest"], *ns["LEDGERS"]
    assert [fewest[paper, "7B", s] for s in range(4)] == [None, 2, 2, 2]
    assert [fewest[paper, "70B", s] for s in range(4)] == [None, None, None, 14]
    assert [fewest[autocast, "7B", s] for s in range(4)] == [None, 3, 2, 2], (
        "autocast 的存法：ZeRO-1 要多一张卡"
    )
    assert [fewest[autocast, "70B", s] for s in range(4)] == [None, None, None, 14]

    # 最少：少一张就装不下；装不下的，1 万张卡也装不下
    def per_card(ledger, model, stage, k):
        return ns["MODELS"][model] * bytes_per_param(stage, k, *ns["LEDGERS"][ledger]) / 1e9

    for key, n in fewest.items():
        if n is None:
            assert per_card(*key, 10_000) > 80, key
        else:
            assert per_card(*key, n) <= 80 and (n == 1 or per_card(*key, n - 1) > 80), key
    out = run_snippet(SNIPPET).stdout
    assert (
        "70B：不切分 装不下（卡再多也降不到 1,120 GB 以下），ZeRO-1 装不下（卡再多也降不到 280 GB 以下）"
        in out
    )


# 在一个进程里用 PyTorch 测试用的假进程组（不通信）扮演 world_size 个进程中的第 rank 个，真的调用 fully_shard
FAKE_RANK = """
import json, sys
sys.path.insert(0, "snippets/part3")
import torch.distributed as dist
from torch.testing._internal.distributed.fake_pg import FakeStore
from _fsdp_worker import make_model, shard_model
seen = {}
for world_size in (3, 16):
    for rank in (0, world_size - 1):
        dist.init_process_group("fake", rank=rank, world_size=world_size, store=FakeStore())
        locals_ = [p.to_local() for p in shard_model(make_model()).parameters()]
        seen[f"{world_size}/{rank}"] = [
            sum(t.numel() for t in locals_),
            sum(t.untyped_storage().nbytes() // t.element_size() for t in locals_),
        ]
        dist.destroy_process_group()
print(json.dumps(seen))
"""


def test_exercise_shard_sizes_follow_fully_shard(run_snippet):
    """按 torch.chunk 的规则算出的分片大小与补齐后的存储，和 fully_shard 真的分出来的一样。"""
    ns = run_snippet(SNIPPET).ns
    table = ns["shard_table"]
    assert table[2] == (ns["local_counts"], 306), "2 个进程：与 2.3 节真正运行的结果相同"
    assert table[3] == ([238, 238, 136], 238)
    assert table[16] == ([51] * 4 + [34] * 12, 51)
    assert all(sum(kept) == ns["full_count"] for kept, _ in table.values())
    # 答案说：补齐的部分每个参数不到 N 行（N 是进程数），大模型的几千行里可以忽略
    for world_size in (2, 3, 16, 64):
        for rows in (4, 16, 4096, 4099):
            sizes = ns["shard_rows"](rows, world_size)
            assert sum(sizes) == rows and len(sizes) == world_size
            assert 0 <= world_size * sizes[0] - rows < world_size, (rows, world_size, sizes)
    result = subprocess.run(
        [sys.executable, "-c", FAKE_RANK], cwd=ROOT, capture_output=True, text=True, check=False, timeout=120
    )
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    for key, (kept, allocated) in seen.items():
        world_size, rank = map(int, key.split("/"))
        assert [kept, allocated] == [table[world_size][0][rank], table[world_size][1]], (key, kept, allocated)


def test_exercise_sixteen_gpus_for_70b(run_snippet):
    ns = run_snippet(SNIPPET).ns
    candidates, even = ns["candidates"], ns["even_split_gb"]
    fits = {name for name, gb in candidates.items() if gb <= ns["GPU_GB"]}
    assert fits == {"ZeRO-3，16 张卡", "张量并行 t=8 × 流水线并行 p=2"}
    assert even == pytest.approx(70.0)
    assert all(gb >= even - 1e-9 for gb in candidates.values()), "没有哪种切法比均分更省"
    assert all(candidates[name] == pytest.approx(even) for name in fits), "装得下的两种都正好是均分"
    bubble = ns["bubble"]
    assert ns["fewest_micro"] == 20 and bubble(2, 20) < 0.05 <= bubble(2, 19)
    assert bubble(2, 4) == pytest.approx(0.2)


def test_exercise_checkpointing_only_the_mlp_saves_half_and_early_stop_skips_the_last_layer(run_snippet):
    from torch.utils.checkpoint import set_checkpoint_early_stop

    from tests.part3.test__fsdp_worker import expected_saved_bytes

    ns = run_snippet(SNIPPET).ns
    selective, config = ns["selective"], ns["config"]
    tokens = ns["local_batch"] * config.block_size
    assert selective["不套"]["saved"] == expected_saved_bytes(ns["local_batch"], 4, False)
    assert selective["整个块"]["saved"] == expected_saved_bytes(ns["local_batch"], 4, True)
    # 只套 MLP：每个块每个词元省掉 MLP 内部的 8d 个 fp32 数
    assert (
        selective["不套"]["saved"] - selective["MLP"]["saved"]
        == config.n_layer * tokens * 8 * config.n_embd * 4
    )
    # 重算：MLP 只重算第一层（每个词元 2·d·4d 次运算），整个块重算到 GELU 为止（第二层不重算）
    d, plain = config.n_embd, selective["不套"]
    first_mlp_layer = config.n_layer * tokens * 2 * d * 4 * d
    assert selective["MLP"]["backward"] - plain["backward"] == first_mlp_layer
    qkv_and_proj = config.n_layer * tokens * 2 * (3 * d * d + d * d)
    assert selective["整个块"]["backward"] - plain["backward"] == qkv_and_proj + first_mlp_layer
    # 关掉 early_stop，区域最后那一层也重算：答案对“为什么不是全部”的解释成立
    with set_checkpoint_early_stop(False):
        full = {where: ns["checkpoint_where"](where) for where in ("MLP", "整个块")}
    assert full["MLP"]["backward"] - plain["backward"] == 2 * first_mlp_layer
    assert full["整个块"]["backward"] - plain["backward"] == qkv_and_proj + 2 * first_mlp_layer
