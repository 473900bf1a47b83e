"""第三部分第 1 章：all-reduce 真的求和，DDP 训练的参数等于单进程在合并批量上训练的参数。"""

import re

import pytest
import torch

SNIPPET = "snippets/part3/ch01_ddp.py"


def test_allreduce_gives_every_rank_the_mean(run_snippet):
    run = run_snippet(SNIPPET)
    expected = (torch.tensor([1.0, 2.0, 3.0]) * 1 + torch.tensor([1.0, 2.0, 3.0]) * 2) / 2
    for rank, after in enumerate(run.ns["allreduce_after"]):
        torch.testing.assert_close(after, expected, msg=f"rank {rank} 的 all-reduce 结果不是两个 rank 的平均")
    logs = run.ns["allreduce_logs"]
    assert sorted(logs) == [0, 1], f"应有两个 rank 的日志，实际 {sorted(logs)}"
    assert "all_reduce 之前: [2.0, 4.0, 6.0]" in logs[1]
    assert "all_reduce 之后: [3.0, 6.0, 9.0]（各 rank 之和）" in logs[0]


def test_ranks_train_on_disjoint_samples(run_snippet):
    logs = run_snippet(SNIPPET).ns["train_logs"]
    first = {}
    for rank, lines in logs.items():
        line = next(line for line in lines if line.startswith("第 1 步的样本编号"))
        first[rank] = {int(i) for i in re.findall(r"\d+", line.split(":", 1)[1])}
    assert len(first[0]) == len(first[1]) == 8, f"每个 rank 第 1 步应有 8 个样本：{first}"
    assert not first[0] & first[1], f"两个 rank 第 1 步的样本重叠：{first[0] & first[1]}"
    for rank in (0, 1):
        assert logs[rank][0] == "本 rank 分到 32 个样本，每轮 4 步，每步的样本数 [8, 8, 8, 8]", logs[rank][0]


def test_data_plan_agrees_with_what_the_workers_did(run_snippet):
    """worker 的 data_plan 不启动进程就算出的分法，与 2 个真实进程在日志里报告的一致。"""
    ns = run_snippet(SNIPPET).ns
    import _ddp_worker  # run_snippet 已把 snippets/part3 放进 sys.path

    plan = _ddp_worker.data_plan(ns["WORLD_SIZE"])
    assert plan == {"per_rank": 32, "steps": 4, "batch_sizes": [8, 8, 8, 8], "combined": [16, 16, 16, 16]}
    for lines in ns["train_logs"].values():
        assert (
            lines[0]
            == f"本 rank 分到 {plan['per_rank']} 个样本，每轮 {plan['steps']} 步，每步的样本数 {plan['batch_sizes']}"
        )


def test_ddp_parameters_equal_single_process_on_combined_batch(run_snippet):
    ns = run_snippet(SNIPPET).ns
    assert ns["replicas_identical"], "DDP 之后两个 rank 的参数应逐位相同"
    reference = ns["reference"].state_dict()
    ddp = ns["ddp_state"]
    assert set(ddp) == set(reference)
    for name, value in reference.items():
        torch.testing.assert_close(
            ddp[name], value, rtol=1e-5, atol=1e-6, msg=f"参数 {name} 与单进程训练不同"
        )
    assert ns["params_match"] and ns["max_param_diff"] < 1e-6
    # “逐位相同”只在 torch.equal 成立时才说
    assert ns["params_equal"] == all(torch.equal(ddp[name], value) for name, value in reference.items())
    # 参数确实被训练改变了：相等不是因为两边都没动
    untouched = ns["make_model"]().state_dict()
    moved = max((ddp[name] - untouched[name]).abs().max().item() for name in ddp)
    assert moved > 1e-2, f"训练几乎没有改变参数（最大变化 {moved:.1e}），比较没有意义"


def test_mean_of_rank_losses_is_the_combined_batch_loss(run_snippet):
    ns = run_snippet(SNIPPET).ns
    losses = ns["reference_losses"]
    assert len(losses) == 8
    torch.testing.assert_close(ns["mean_rank_losses"], torch.tensor(losses), rtol=1e-5, atol=1e-6)
    assert losses[-1] < 0.2 * losses[0], f"损失没有下降：{losses[0]:.4f} -> {losses[-1]:.4f}"


def test_output_shows_both_ranks_and_the_verdict(run_snippet):
    out = run_snippet(SNIPPET).stdout
    assert "torchrun --standalone --nproc_per_node 2 snippets/part3/_ddp_worker.py --demo train" in out
    for rank in (0, 1):
        assert f"[rank {rank}] 训练结束，参数写入 rank{rank}.pt" in out
    assert "两个 rank 的参数逐位相同（torch.equal）: True" in out
    ns = run_snippet(SNIPPET).ns
    assert f"最大绝对差 {ns['max_param_diff']:.1e}，在容差 rtol=1e-05、atol=1e-06 内: True" in out
    # 总结句说出测到的最大差；参数不逐位相同时不许说“逐位相同”“一致”
    summary = out.split("两个 rank 之间的参数")[0].rsplit("\n", 1)[-1]
    assert f"最大差只有 {ns['max_param_diff']:.1e}" in summary or ns["params_equal"]
    if not ns["params_equal"]:
        assert "不是逐位相同" in summary and "一致" not in summary


def test_timing_splits_the_run(run_snippet):
    ns = run_snippet(SNIPPET).ns
    # 只检查测量是否自洽，不断言快慢
    assert 0 < ns["loop_seconds"] < ns["launch_seconds"]
    assert "计时（每次构建不同，只测了一次）" in run_snippet(SNIPPET).stdout


def test_no_sync_cuts_allreduces_from_k_to_one_per_step(run_snippet):
    """通信钩子数出来的 all-reduce 次数：不用 no_sync 每步 k 次，用了每步 1 次；每次的桶是全部参数。"""
    ns = run_snippet(SNIPPET).ns
    k = ns["ACCUMULATION"]
    assert k >= 2
    n_params = sum(p.numel() for p in ns["make_model"]().parameters())
    for variant, per_step in (("sync", k), ("no_sync", 1)):
        for rank, result in enumerate(ns["accumulated"][variant]):
            assert result["calls_per_step"] == [per_step] * 4, (
                f"{variant}，rank {rank}：每步的 all-reduce 次数 {result['calls_per_step']}，应为 {per_step}"
            )
            assert result["bucket_sizes"] == [n_params] * (4 * per_step), "每次 all-reduce 一个桶，装全部参数"
    out = run_snippet(SNIPPET).stdout
    assert (
        f"每步的 all-reduce 次数：不用 no_sync {[k] * 4}，用 no_sync [1, 1, 1, 1]；4 步一共从 {4 * k} 次减到 4 次"
        in out
    )


def test_accumulation_equals_a_k_times_larger_batch(run_snippet):
    ns = run_snippet(SNIPPET).ns
    k, big = ns["ACCUMULATION"], ns["big_reference"].state_dict()
    assert ns["big_size"] == k * ns["LOCAL_BATCH"] * ns["WORLD_SIZE"] == 32
    assert len(ns["big_losses"]) == 4 and ns["big_losses"][-1] < 0.3 * ns["big_losses"][0]
    for variant in ("sync", "no_sync"):
        results = ns["accumulated"][variant]
        assert all(torch.equal(results[0]["state"][name], results[1]["state"][name]) for name in big), (
            f"{variant}：两个 rank 的参数应逐位相同"
        )
        for name, value in big.items():
            torch.testing.assert_close(
                results[0]["state"][name], value, rtol=1e-5, atol=1e-6, msg=f"{variant}：{name} 与大批量不同"
            )
        assert ns["accumulate_match"][variant] and ns["accumulate_gap"][variant] < 1e-6
        # 比较分得出批量大小：与 1.4 节 16 个样本一步的训练差得远，训练也确实改变了参数
        small = ns["reference"].state_dict()
        assert max((results[0]["state"][n] - small[n]).abs().max().item() for n in big) > 1e-2
        initial = ns["make_model"]().state_dict()
        assert max((results[0]["state"][n] - initial[n]).abs().max().item() for n in big) > 1e-2
        # 每步损失：两个 rank、k 个微批量的平均 = 这一步大批量上的损失
        losses = torch.stack([r["losses"] for r in results]).view(2, -1, k).mean(dim=(0, 2))
        torch.testing.assert_close(losses, torch.tensor(ns["big_losses"]), rtol=1e-5, atol=1e-6)
    # “逐位相同”只在 torch.equal 成立时才说
    sync, no_sync = (ns["accumulated"][v][0]["state"] for v in ("sync", "no_sync"))
    assert ns["variants_equal"] == all(torch.equal(sync[n], no_sync[n]) for n in sync)


# ---------------------------------------------------------------- 练习的参考答案


def test_exercise_sampler_takes_interleaved_slices_and_needs_set_epoch_and_one_seed(run_snippet):
    ns = run_snippet(SNIPPET).ns
    epoch_0, epoch_1, n = ns["epoch_0"], ns["epoch_1"], len(ns["dataset"])
    # rank r 取同一个排列的第 r, r+2, … 个（排列在测试里独立地再算一次）
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(0)).tolist()
    assert epoch_0 == [perm[0::2], perm[1::2]] and ns["takes_every_wth"]
    for indices in (epoch_0, epoch_1):
        assert not set(indices[0]) & set(indices[1]) and set(indices[0]) | set(indices[1]) == set(range(n))
    assert ns["forgot"] == epoch_0, "不调用 set_epoch，第 2 轮应与第 1 轮的顺序相同"
    assert epoch_1 != epoch_0 and all(set(a) != set(b) for a, b in zip(epoch_1, epoch_0, strict=True))
    # 种子不同：有重叠，漏掉的正好和重叠的一样多（每个 rank 都取 32 个）
    overlap, missed = ns["overlap"], ns["missed"]
    assert 0 < len(overlap) == len(missed) < n // 2
    assert (
        f"两个 rank 重叠 {len(overlap)} 个样本，{len(missed)} 个样本这一轮谁也没用到"
        in run_snippet(SNIPPET).stdout
    )


def test_exercise_average_of_rank_gradients_is_the_combined_gradient_only_for_equal_batches(run_snippet):
    ns = run_snippet(SNIPPET).ns
    # 用的确实是两个 rank 第 1 步的样本（与 worker 日志里的编号相同）
    for rank, rows in enumerate((ns["rows_0"], ns["rows_1"])):
        logged = next(line for line in ns["train_logs"][rank] if line.startswith("第 1 步的样本编号"))
        assert str(sorted(rows)) in logged, (rows, logged)
    scale = ns["g_combined_12"].abs().max().item()
    assert ns["even_gap"] < 1e-6, "两个 rank 各 8 个样本时，平均梯度应等于合并批量的梯度"
    assert ns["uneven_gap"] > 0.05 * scale and ns["uneven_gap"] > 1e4 * ns["even_gap"], (
        "rank 1 只有 4 个样本时，直接平均与 12 个样本的梯度应差很多"
    )
    assert ns["weighted_gap"] < 1e-6, "按样本数加权后应又只差舍入"


def test_exercise_replay_reproduces_ddp_bit_for_bit_and_the_gap_is_rounding(run_snippet):
    ns = run_snippet(SNIPPET).ns
    assert ns["replay_equals_ddp"], "在一个进程里照 DDP 的顺序重放，应与两个 rank 训练出的参数逐位相同"
    # 合并批量那一个就是 1.4 节的单进程对照，逐位相同
    reference = ns["reference"].state_dict()
    assert all(torch.equal(ns["combined_32"][name], reference[name]) for name in reference)
    gap_32 = ns["max_gap"](ns["replay_32"], ns["combined_32"])
    gap_64 = ns["max_gap"](ns["replay_64"], ns["combined_64"])
    assert gap_32 == pytest.approx(ns["max_param_diff"]), "float32 的差应与 1.4 节 DDP 与单进程的最大差相同"
    assert 0 < gap_64 < 1e-15 and gap_32 > 1e6 * gap_64, (
        f"float64 应把差别缩小很多：{gap_32:.1e} → {gap_64:.1e}"
    )
    # float64 下两种做法训练出的参数与 float32 的只差 float32 的舍入：重放的确是同一个训练
    assert ns["max_gap"](ns["replay_64"], ns["replay_32"]) < 1e-5
    assert "与两个 rank 真正训练出的参数逐位相同: True" in run_snippet(SNIPPET).stdout


def test_exercise_forgetting_to_divide_by_k_scales_the_sgd_learning_rate_and_barely_moves_adam(run_snippet):
    ns = run_snippet(SNIPPET).ns
    sgd, adam, gap, k = ns["sgd"], ns["adam"], ns["gap"], ns["ACCUMULATION"]
    big = {name: p.detach() for name, p in ns["big_reference"].state_dict().items()}
    assert gap(sgd["除以 k"], big) < 1e-6, "重放（除以 k）应与 1.6 节的大批量训练只差舍入"
    assert gap(sgd["忘了除以 k"], sgd["除以 k"]) > 1e-2, "SGD 忘了除以 k 应走到别处"
    scaled = sgd[f"除以 k，学习率 ×{k}"]
    assert all(torch.equal(sgd["忘了除以 k"][n], scaled[n]) for n in scaled), "忘了除以 k = 学习率 ×k"
    moved = gap(adam[True], ns["initial"])
    assert moved > 1e-2 and gap(adam[False], adam[True]) < 1e-4 * moved, "Adam 对梯度的整体缩放几乎不敏感"
    assert "逐位相同 True" in run_snippet(SNIPPET).stdout
