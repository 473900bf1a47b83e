"""第三部分第 4 章：2 个 rank 存的检查点在 1 个进程里接着训练，结果与不中断的训练只差舍入；不恢复数据位置和随机数状态就不同；
rank 1 崩溃、torchrun 重启后从最近的检查点接着训练，结果与不中断的训练逐位相同，页面上的日志是确定的。"""

import math

import pytest
import torch

SNIPPET = "snippets/part3/ch04_resume.py"


@pytest.fixture(scope="module")
def ns(run_snippet):
    return run_snippet(SNIPPET).ns


@pytest.fixture(scope="module")
def out(run_snippet):
    return run_snippet(SNIPPET).stdout


def test_uninterrupted_run_saves_a_sharded_checkpoint_every_three_steps(ns, out):
    assert [p.name for p in ns["checkpoints"]] == ["step3", "step6", "step9", "step12"]
    for checkpoint in ns["checkpoints"]:
        assert sorted(p.name for p in checkpoint.iterdir()) == [".metadata", "__0_0.distcp", "__1_0.distcp"]
    assert "step6 里的文件: .metadata、__0_0.distcp、__1_0.distcp" in out
    logs = ns["full_logs"]
    assert sorted(logs) == [0, 1]
    for rank in (0, 1):
        assert logs[rank][-1] == "训练结束：这次尝试训练了 12 步，一共 12 步"
    # 训练有效：两个 rank 第 12 步的损失都比第 3 步低，参数也真的变了
    losses = {
        rank: [float(line.split("损失 ")[1].split("，")[0]) for line in lines if "检查点写入" in line]
        for rank, lines in logs.items()
    }
    assert all(len(v) == 4 and v[-1] < v[0] for v in losses.values()), losses
    assert ns["moved"] > 1e-2


def test_one_process_resume_matches_the_uninterrupted_run_within_tolerance(ns, out):
    """换了进程数（2 → 1），FSDP 的分片读成完整的参数，接着训练 6 步，只差浮点舍入。"""
    one = ns["one"]
    for name, p in one.named_parameters():
        torch.testing.assert_close(p.detach(), ns["uninterrupted"][name], rtol=1e-5, atol=1e-6, msg=name)
    assert ns["within_tolerance"](one) and ns["max_diff"](one) < 1e-6
    # 页面说的“逐位相同”与否，要与 torch.equal 一致
    assert ns["bitwise_equal"](one) == all(
        torch.equal(p.detach(), ns["uninterrupted"][n]) for n, p in one.named_parameters()
    )
    assert "| 恢复模型、优化器、数据位置和随机数状态 |" in out and "容差：rtol=1e-05、atol=1e-06" in out


def test_without_data_position_and_rng_state_the_weights_differ(ns):
    """测试把开关关掉，真的再跑一次：只恢复模型和优化器，接着训练的参数明显偏离不中断的训练。"""
    forgot = ns["resume_in_one_process"](ns["STEP6"], restore_train_state=False)
    diff = ns["max_diff"](forgot)
    assert not ns["within_tolerance"](forgot)
    assert diff > 1e3 * ns["max_diff"](ns["one"]) and diff > 0.1 * ns["moved"], (diff, ns["moved"])
    assert diff == ns["max_diff"](ns["forgot"]), "页面上的那一行就是这样算出来的"


def test_crash_story_shows_crash_restart_and_resume(ns, out):
    """页面上的日志：第一次尝试到第 6 步的行与不中断的训练相同；rank 1 在第 8 步结束自己，torchrun 报告它失败、
    重启一次；第二次尝试从 step6 接着训练，只训练剩下的 6 步，第 9、12 步的行又与不中断的训练相同。"""
    full = ns["full_logs"]

    def saved(rank, steps):
        return [f"[rank {rank}] {line}" for line in full[rank] if any(f"第 {s} 步 " in line for s in steps)]

    expected = ["[torchrun] restart_count=0"]
    for rank in (0, 1):
        expected += [f"[rank {rank}] 第 1 次尝试：没有检查点，从头训练", *saved(rank, (3, 6))]
    expected += [
        "[rank 1] 第 8 步：模拟崩溃，用 SIGKILL 结束自己",
        "[torchrun] failed (exitcode: -9) local_rank: 1 (pid: PID) of binary: PYTHON",
        "[torchrun] [default] Worker group FAILED. 1/1 attempts left; will restart worker group",
        "[torchrun] restart_count=1",
    ]
    for rank in (0, 1):
        expected += [
            f"[rank {rank}] 第 2 次尝试：从 step6 接着训练，下一步是第 7 步（第 2 轮的第 3 批）",
            *saved(rank, (9, 12)),
            f"[rank {rank}] 训练结束：这次尝试训练了 6 步，一共 12 步",
        ]
    expected.append(
        "[torchrun] [default] worker group successfully finished. Waiting 300 seconds for other agents to finish."
    )
    assert ns["crash_story"] == expected
    assert "\n".join(expected) in out


def test_restarted_run_ends_with_the_uninterrupted_weights(ns, out):
    for name, value in ns["uninterrupted"].items():
        assert torch.equal(ns["restarted"][name], value), name
    assert ns["restart_equal"] is True and ns["last_before_crash"] == 6
    assert "重启后训练完的参数与不中断的训练逐位相同（torch.equal）: True" in out


def test_hang_limit_and_summary(ns, out):
    assert ns["PG_TIMEOUT"] == 60 and ns["ATTEMPT_SECONDS"] == 60 and ns["time_limit"](1, 60) == 240
    assert "一个 rank 一直卡住时，最晚 (60 + 60) × 2 = 240 秒报错" in out
    (summary,) = [line for line in out.splitlines() if line.startswith("2 个 rank 在第 6 步存下的检查点")]
    assert "从 step6 接着训练完的参数与不中断的训练逐位相同。" in summary
    if not ns["bitwise_equal"](ns["one"]):
        assert "只差浮点舍入" in summary


# ---------------------------------------------------------------- 练习的参考答案


def test_exercise_metadata_lists_shards_and_single_copies(ns, out):
    metadata, files = ns["metadata"], ns["files"]
    sharded = sorted(ns["split"])
    assert len(sharded) == 12 and all(k.startswith(("model.", "optim.state.")) for k in sharded)
    assert all(k.endswith(("weight", "bias", "exp_avg", "exp_avg_sq")) for k in sharded)
    for key in sharded:  # 每个切开的张量：两块正好拼成完整的形状
        entry = metadata.state_dict_metadata[key]
        assert sum(math.prod(c.sizes) for c in entry.chunks) == math.prod(entry.size), key
        assert sorted(files[key]) == ["__0_0.distcp", "__1_0.distcp"], key
    for key in ("train.step", "train.rng", "optim.state.0.weight.step", "optim.param_groups.0.lr"):
        assert len(files[key]) == 1, f"{key} 在每个 rank 上都一样，只存一份"
    assert sum(ns["single"].values()) == len(metadata.state_dict_metadata) - 12 == 18
    assert sorted(ns["single"].values())[0] == 0, "答案说：只存一份的这次都落在同一个文件里"
    assert (
        "| `model.0.weight` | 16×8 | (0, 0) → (8, 8)；(8, 0) → (8, 8) | `__0_0.distcp`、`__1_0.distcp` |"
        in out
    )


def test_exercise_each_part_of_the_train_state_matters(ns, out):
    partial = ns["partial"]
    assert ns["within_tolerance"](partial[True, True])
    for key in ((True, False), (False, True), (False, False)):
        assert ns["max_diff"](partial[key]) > 1e-3, key
    assert "| 是 | 否 |" in out and "| 否 | 是 |" in out


def test_exercise_global_batch_is_the_same_for_2_4_8_ranks_not_3(ns, out):
    for world_size in (2, 4, 8):
        x, y = ns["merged_batch"](world_size, 6)
        assert torch.equal(x, ns["reference_x"]) and torch.equal(y, ns["reference_y"])
        assert f"{world_size} 个 rank 的第 7 步拼起来，与 1 个进程的合并批量逐位相同: True" in out
    assert ns["local_3"] * 3 == 15 < ns["GLOBAL_BATCH"]


def test_exercise_checkpoint_interval(ns, out):
    assert ns["lost_steps"] == 2
    young = ns["young_interval"]
    # Young 的近似：每单位时间的损失约为 保存时间/间隔 + 间隔/(2 × 平均故障间隔)，在 √(2 C M) 处最小
    for save, mtbf in ((1, 1440), (1, 240), (5, 240)):
        best = young(save, mtbf)

        def waste(t, save=save, mtbf=mtbf):
            return save / t + t / (2 * mtbf)

        assert waste(best) < waste(best * 0.8) and waste(best) < waste(best * 1.25)
    assert "存一次 1 分钟、平均 24 小时出一次故障：约每 54 分钟存一次" in out
    assert "--max-restarts 3、集合通信超时 60 秒：一直卡住时最晚 480 秒报错" in out
