"""数据并行 worker 与 run_torchrun：数据划分、日志拆分，以及出错或卡住时快速失败并带回每个 rank 的日志。"""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

sys.path.append(str(Path(__file__).resolve().parents[2] / "snippets" / "part3"))

import _ddp_worker as w

WORKER = Path("snippets/part3/_ddp_worker.py")


def test_data_and_model_are_deterministic():
    a, b = w.make_data(), w.make_data()
    assert a.tensors[0].shape == (w.N_SAMPLES, 4) and a.tensors[1].shape == (w.N_SAMPLES, 1)
    for x, y in zip(a.tensors, b.tensors, strict=True):
        assert torch.equal(x, y), "同一个种子应得到同一份数据"
    for (name, p), q in zip(
        w.make_model().state_dict().items(), w.make_model().state_dict().values(), strict=True
    ):
        assert torch.equal(p, q), f"每个 rank 的初始参数 {name} 应相同"


@pytest.mark.parametrize("world_size", [2, 4])
def test_samplers_partition_the_dataset(world_size):
    dataset = w.make_data()
    for epoch in range(2):
        parts = []
        for rank in range(world_size):
            sampler = w.make_sampler(dataset, rank, world_size)
            sampler.set_epoch(epoch)
            parts.append(list(sampler))
        flat = [i for part in parts for i in part]
        assert len(flat) == len(set(flat)) == w.N_SAMPLES, (
            f"第 {epoch} 轮：各 rank 的样本应互不重叠且覆盖全部"
        )
    assert parts[0] != sorted(parts[0]), "shuffle=True：样本顺序应被打乱"


@pytest.mark.parametrize("world_size", [1, 2, 3, 16])
def test_data_plan_matches_every_ranks_sampler_and_loader(world_size):
    """data_plan 只问 rank 0；这里把每个 rank 的采样器和 DataLoader 都走一遍，数出真实的批量。"""
    plan = w.data_plan(world_size)
    dataset = w.make_data()
    per_rank_sizes = []
    for rank in range(world_size):
        sampler = w.make_sampler(dataset, rank, world_size)
        per_rank_sizes.append([len(x) for x, _ in w.make_loader(dataset, sampler)])
    assert all(sizes == plan["batch_sizes"] for sizes in per_rank_sizes), per_rank_sizes
    assert plan["per_rank"] == sum(plan["batch_sizes"]) == w.N_SAMPLES // world_size
    assert plan["steps"] == len(plan["batch_sizes"]) and max(plan["batch_sizes"]) <= w.LOCAL_BATCH
    assert plan["combined"] == [size * world_size for size in plan["batch_sizes"]]


def test_sixteen_ranks_get_less_than_a_full_batch():
    """64 个样本分给 16 个进程：每个只有 4 个，不到 LOCAL_BATCH，合并批量是 64 而不是 8 × 16。"""
    plan = w.data_plan(16)
    assert plan == {"per_rank": 4, "steps": 1, "batch_sizes": [4], "combined": [64]}
    assert plan["combined"][0] < w.LOCAL_BATCH * 16


def test_split_by_rank_keeps_each_ranks_order():
    output = "[rank 1] b1\nnoise\n[rank 0] a1\n[rank 1] b2\n[rank x] bad\n[rank 0] a2\n"
    assert w.split_by_rank(output) == {0: ["a1", "a2"], 1: ["b1", "b2"]}


def test_process_tree_finds_children():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert child.pid in w._process_tree(os.getpid())
    finally:
        child.kill()
        child.wait()


def test_a_crashing_rank_fails_fast_with_every_ranks_log(tmp_path):
    timeout = 120
    start = time.perf_counter()
    with pytest.raises(w.DistributedRunError) as error:
        w.run_torchrun(
            WORKER, "--demo", "train", "--out", str(tmp_path), "--crash-rank", "1", timeout=timeout
        )
    elapsed = time.perf_counter() - start
    message = str(error.value)
    assert elapsed < timeout / 2, f"出错后 {elapsed:.0f} 秒才返回，应远低于时限 {timeout} 秒"
    assert "退出码" in message
    assert "--- rank 0 ---" in message and "--- rank 1 ---" in message, (
        f"错误信息里应有两个 rank 的日志：\n{message}"
    )
    # rank 1 出错前，两个 rank 一定都已开始训练（第 1 步的梯度要两个 rank 一起求平均）
    assert "[rank 0] 本 rank 分到 32 个样本" in message and "[rank 1] 第 1 轮 第 1 步" in message
    assert "rank 1 故意在第 1 步出错" in message, "应带回出错 rank 的异常"
    assert not (tmp_path / "rank0.pt").exists(), "rank 1 出错后 rank 0 不应训练完"


def test_a_hanging_rank_is_killed_at_the_timeout(tmp_path):
    timeout = 15  # 足够两个 rank 启动并走到第 1 步（2 核上约 6 秒）；更长只是空等
    start = time.perf_counter()
    with pytest.raises(w.DistributedRunError) as error:
        w.run_torchrun(WORKER, "--demo", "train", "--out", str(tmp_path), "--hang-rank", "1", timeout=timeout)
    elapsed = time.perf_counter() - start
    message = str(error.value)
    assert elapsed < timeout + 15, f"超时后 {elapsed:.0f} 秒才返回"
    assert f"超过 {timeout} 秒没有结束" in message
    assert "[rank 1] 故意卡住" in message and "[rank 0] 第 1 轮 第 1 步" in message, message
    # 所有 worker 都已结束：没有哪个进程的命令行还带着这次的输出目录
    leftovers = subprocess.run(["pgrep", "-f", str(tmp_path)], capture_output=True, text=True, check=False)
    assert not leftovers.stdout.strip(), f"超时后仍有进程在运行：{leftovers.stdout}"


def test_comm_hook_is_called_once_per_bucket_and_not_inside_no_sync():
    """count_allreduces 数的是桶：一个模型的梯度分成几个桶，每次同步就调用几次钩子；no_sync 里一次也不调用。"""
    import torch.distributed as dist

    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)  # 本进程里的 1 个 rank
    try:
        torch.manual_seed(0)
        net = torch.nn.Sequential(*[torch.nn.Linear(512, 512) for _ in range(3)])  # 每层约 1 MiB 的梯度
        model = w.DDP(net, bucket_cap_mb=1)
        calls = w.count_allreduces(model)
        x = torch.randn(4, 512)
        model(x).sum().backward()  # 第 1 次反向之后，DDP 按实际算出梯度的顺序重新分桶
        per_backward = []
        for _ in range(2):
            before = len(calls)
            model(x).sum().backward()
            per_backward.append(calls[before:])
        before = len(calls)
        with model.no_sync():
            model(x).sum().backward()
        inside_no_sync = calls[before:]
    finally:
        dist.destroy_process_group()
    n_params = sum(p.numel() for p in net.parameters())
    layer = 512 * 512 + 512
    assert per_backward == [[layer] * 3] * 2, (
        f"1 MiB 的桶：每层一个桶，每次反向 3 次 all-reduce，实际 {per_backward}"
    )
    assert sum(per_backward[0]) == n_params, "各个桶合起来正好是全部参数"
    assert inside_no_sync == [], "no_sync 里不应调用通信钩子"
