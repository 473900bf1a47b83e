"""第三部分的数据并行 worker：每个进程（rank）里运行的代码，外加在构建时启动它的 ``run_torchrun``。

用 torchrun 启动，每个进程都运行这同一个文件，例如在仓库根目录：

    torchrun --standalone --nproc_per_node 2 snippets/part3/_ddp_worker.py --demo train --out /tmp/ddp

``--demo allreduce`` 演示一次 ``dist.all_reduce``；``--demo train`` 用 DistributedDataParallel 训练一个小模型，
每个 rank 把最终参数写到 ``--out`` 目录里的 ``rank{r}.pt``。``--demo accumulate`` 用梯度累积训练两遍
（用与不用 ``no_sync``），用通信钩子数 all-reduce 的次数。导入本模块没有副作用（不初始化进程组、不打印），
所以第 1 页的 snippet 可以导入同一份 ``make_data``、``make_model`` 做单进程的对照训练，第 2 页的 worker
导入 ``setup``、``log``，两页的 snippet 都用 ``run_torchrun`` 启动 worker。
每个片段在某一页上显示一次：全部在第三部分第 1 页。
"""

# --8<-- [start:imports]
import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

# --8<-- [end:imports]


# --8<-- [start:setup]
# 一个 rank 卡在集合通信里等别人时，最多等这么久就报错，而不是永远等下去
PROCESS_GROUP_TIMEOUT = timedelta(seconds=60)


def setup() -> tuple[int, int, torch.device]:
    """加入进程组。torchrun 已经把 RANK、WORLD_SIZE、MASTER_ADDR 等环境变量准备好了。"""
    if torch.cuda.is_available():
        # 集群上：每个进程用一张 GPU，通信走 NCCL
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        # 本站的构建机器只有 CPU：通信走 gloo
        device = torch.device("cpu")
        backend = "gloo"
    dist.init_process_group(backend, timeout=PROCESS_GROUP_TIMEOUT)
    return dist.get_rank(), dist.get_world_size(), device


def log(message: str) -> None:
    """每行前面写上 rank：两个进程的输出混在一起时也分得清是谁说的。"""
    rank = dist.get_rank() if dist.is_initialized() else int(os.environ.get("RANK", "0"))
    sys.stdout.write(f"[rank {rank}] {message}\n")  # 一次写出整行，两个进程的行不会交错
    sys.stdout.flush()


def run_rank(work: Callable[[int, int, torch.device], None]) -> None:
    """在本 rank 上运行 work(rank, world_size, device)；所有 rank 都完成后一起收尾，然后立即退出。

    立即退出（os._exit）跳过解释器收尾时 gloo 后台线程的析构：它偶尔会以
    "terminate called without an active exception" 让一个已经完成的 rank 返回非零退出码。
    出错时异常照常抛出，torchrun 看到非零退出码。
    """
    rank, world_size, device = setup()
    try:
        work(rank, world_size, device)
        dist.barrier()  # 所有 rank 都写完结果，再一起收尾
    finally:
        dist.destroy_process_group()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


# --8<-- [end:setup]


# --8<-- [start:allreduce]
def demo_allreduce(rank: int, world_size: int, device: torch.device, out_dir: Path) -> None:
    env = {key: os.environ[key] for key in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE")}
    log(" ".join(f"{key}={value}" for key, value in env.items()))
    tensor = torch.tensor([1.0, 2.0, 3.0], device=device) * (rank + 1)
    log(f"all_reduce 之前: {tensor.tolist()}")
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)  # 原地修改：每个 rank 拿到所有 rank 的和
    log(f"all_reduce 之后: {tensor.tolist()}（各 rank 之和）")
    tensor /= world_size
    log(f"再除以进程数 {world_size}: {tensor.tolist()}（平均值，DDP 对梯度做的就是这个）")
    torch.save({"after": tensor.cpu()}, out_dir / f"allreduce_rank{rank}.pt")


# --8<-- [end:allreduce]


# --8<-- [start:model]
SEED = 0
N_SAMPLES = 64  # 整个训练集的样本数
LOCAL_BATCH = 8  # 每个 rank 每一步最多处理的样本数；样本够分时，合并批量 = LOCAL_BATCH × 进程数
EPOCHS = 2
LR = 0.1


def make_data() -> TensorDataset:
    """一个带噪声的回归任务：y = sin(x·w) + 噪声。所有 rank 用同一个种子，得到同一份数据。"""
    generator = torch.Generator().manual_seed(SEED)
    x = torch.randn(N_SAMPLES, 4, generator=generator)
    w = torch.randn(4, 1, generator=generator)
    y = torch.sin(x @ w) + 0.1 * torch.randn(N_SAMPLES, 1, generator=generator)
    return TensorDataset(x, y)


def make_model() -> nn.Module:
    torch.manual_seed(SEED)  # 每个 rank 的初始参数都一样（DDP 构造时还会再从 rank 0 广播一次）
    return nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 1))


def make_sampler(dataset: TensorDataset, rank: int, world_size: int) -> DistributedSampler:
    """每个 rank 只取数据集的 1/world_size；同一个种子保证各 rank 打乱的方式一致，互不重叠。"""
    return DistributedSampler(
        dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=SEED, drop_last=True
    )


def make_loader(dataset: TensorDataset, sampler: DistributedSampler) -> DataLoader:
    # 每步最多 LOCAL_BATCH 个；本 rank 的样本不够一整批时，最后一批照样用（DataLoader 默认 drop_last=False）
    return DataLoader(dataset, batch_size=LOCAL_BATCH, sampler=sampler)


def data_plan(world_size: int) -> dict[str, int | list[int]]:
    """world_size 个进程时，每个 rank 分到几个样本、每轮几步、每步几个：直接问采样器和 DataLoader，不需要进程组。"""
    dataset = make_data()
    sampler = make_sampler(dataset, 0, world_size)  # drop_last=True：每个 rank 分到的一样多
    batch_sizes = [len(batch) for batch in make_loader(dataset, sampler).batch_sampler]
    return {
        "per_rank": len(sampler),
        "steps": len(batch_sizes),
        "batch_sizes": batch_sizes,
        "combined": [size * world_size for size in batch_sizes],  # 这一步所有 rank 合起来的样本数
    }


# --8<-- [end:model]


# --8<-- [start:train]
def train_ddp(
    rank: int,
    world_size: int,
    device: torch.device,
    out_dir: Path,
    crash_rank: int | None = None,
    hang_rank: int | None = None,
) -> None:
    dataset = make_data()
    sampler = make_sampler(dataset, rank, world_size)
    loader = make_loader(dataset, sampler)
    model = DDP(make_model().to(device))  # CPU 上不传 device_ids；GPU 上 DDP 从当前设备推断
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    sizes = [len(batch) for batch in loader.batch_sampler]  # 每一步的样本编号，只数个数
    log(f"本 rank 分到 {len(sampler)} 个样本，每轮 {len(loader)} 步，每步的样本数 {sizes}")
    losses = []
    start = time.perf_counter()
    for epoch in range(EPOCHS):
        sampler.set_epoch(epoch)  # 每轮换一种打乱方式；各 rank 用同一个 epoch，仍然互不重叠
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            loss = nn.functional.mse_loss(model(x), y)  # 只是本 rank 这一批样本的损失
            optimizer.zero_grad()
            loss.backward()  # 反向传播的同时，DDP 用 all-reduce 把各 rank 的梯度求平均
            optimizer.step()  # 各 rank 的梯度相同，更新后的参数也相同
            losses.append(loss.item())
            step = len(losses)
            if step == 1:
                log(f"第 1 步的样本编号: {sorted(list(sampler)[: len(x)])}")
            if step % 4 == 1 or step == EPOCHS * len(loader):
                log(f"第 {epoch + 1} 轮 第 {step} 步 本 rank 的损失 {loss.item():.4f}")
            if rank == crash_rank:
                raise RuntimeError(f"rank {rank} 故意在第 {step} 步出错（--crash-rank）")
            if rank == hang_rank:
                log("故意卡住（--hang-rank）")
                time.sleep(3600)
    train_seconds = time.perf_counter() - start  # 只是训练循环；计时，不写进日志（日志每次构建都要相同）
    state = {name: p.detach().cpu() for name, p in model.module.state_dict().items()}
    torch.save(
        {"state": state, "losses": torch.tensor(losses), "train_seconds": train_seconds},
        out_dir / f"rank{rank}.pt",
    )
    log(f"训练结束，参数写入 rank{rank}.pt")


# --8<-- [end:train]


# --8<-- [start:accumulate]
from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook

ACCUMULATION = 2  # 每 ACCUMULATION 个微批量才更新一次参数（梯度累积的 k）


def count_allreduces(model: DDP) -> list[int]:
    """给 DDP 装一个通信钩子：它仍然调用默认的 allreduce_hook，只是先记下这次 all-reduce 的桶有几个数。

    DDP 每当一个桶的梯度都算好，就调用一次钩子，钩子返回的 Future 完成时桶里是平均梯度。"""
    calls: list[int] = []

    def hook(state: object, bucket: dist.GradBucket) -> torch.futures.Future[torch.Tensor]:
        calls.append(bucket.buffer().numel())
        return allreduce_hook(state, bucket)  # state 是进程组，None 表示全部进程

    model.register_comm_hook(None, hook)
    return calls


def train_accumulate(rank: int, world_size: int, device: torch.device, out_dir: Path, no_sync: bool) -> None:
    """梯度累积：每个微批量照常前向、反向，梯度在 .grad 里累加，ACCUMULATION 个微批量之后才更新一次参数。
    no_sync=True 时，前 ACCUMULATION - 1 个微批量在 model.no_sync() 里算，不做 all-reduce。"""
    dataset = make_data()
    sampler = make_sampler(dataset, rank, world_size)
    loader = make_loader(dataset, sampler)
    model = DDP(make_model().to(device))
    calls = count_allreduces(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    losses, calls_per_step = [], []
    for epoch in range(EPOCHS):
        sampler.set_epoch(epoch)
        for i, (x, y) in enumerate(loader):
            x, y = x.to(device), y.to(device)
            boundary = (i + 1) % ACCUMULATION == 0  # 这个微批量之后更新参数
            # 前向也要放在 no_sync 里面：DDP 在前向时就决定这一次反向要不要同步
            skip_sync = no_sync and not boundary
            with model.no_sync() if skip_sync else contextlib.nullcontext():
                loss = nn.functional.mse_loss(model(x), y)
                (loss / ACCUMULATION).backward()  # 除以 k：累加起来正好是 k 个微批量的平均梯度
            losses.append(loss.item())
            if boundary:
                optimizer.step()
                optimizer.zero_grad()
                calls_per_step.append(len(calls) - sum(calls_per_step))
    label = "用 no_sync" if no_sync else "不用 no_sync"
    log(
        f"{label}：{len(calls_per_step)} 步共 {len(calls)} 次 all-reduce，每步 {calls_per_step}，"
        f"每次的桶里 {sorted(set(calls))} 个数"
    )
    state = {name: p.detach().cpu() for name, p in model.module.state_dict().items()}
    suffix = "no_sync" if no_sync else "sync"
    torch.save(
        {
            "state": state,
            "losses": torch.tensor(losses),
            "calls_per_step": calls_per_step,
            "bucket_sizes": calls,
        },
        out_dir / f"accumulate_{suffix}_rank{rank}.pt",
    )


# --8<-- [end:accumulate]


# --8<-- [start:launcher]
class DistributedRunError(RuntimeError):
    """分布式运行失败或超时；错误信息里有每个 rank 的全部输出。"""


def _process_tree(root: int) -> list[int]:
    """root 和它的全部子孙进程（torchrun 让每个 worker 自成一个进程组，所以要逐个找出来）。"""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(stat.parent.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def split_by_rank(output: str) -> dict[int, list[str]]:
    """把混在一起的输出按行首的 [rank r] 分开，每个 rank 内部保持原来的顺序。"""
    logs: dict[int, list[str]] = {}
    for line in output.splitlines():
        if line.startswith("[rank ") and "] " in line:
            rank, text = line[len("[rank ") :].split("] ", 1)
            if rank.isdigit():
                logs.setdefault(int(rank), []).append(text)
    return dict(sorted(logs.items()))


def run_launcher(command: list[str], timeout: float, env: dict | None = None) -> tuple[str, str]:
    """运行一条 torchrun 命令，返回 (全部输出, 出了什么问题；没问题时为空字符串)。
    超过 timeout 秒还没结束，就结束整棵进程树（torchrun 和它启动的每个 worker）：绝不挂起。"""
    env = env or {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        output, _ = process.communicate(timeout=timeout)
        problem = f"退出码 {process.returncode}" if process.returncode else ""
    except subprocess.TimeoutExpired:
        for pid in reversed(_process_tree(process.pid)):  # 先结束 worker，再结束 torchrun
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        output, _ = process.communicate()
        problem = f"超过 {timeout:g} 秒没有结束，已结束全部进程"
    return output, problem


def run_torchrun(worker: Path, *args: str, nproc: int = 2, timeout: float = 120) -> dict[int, list[str]]:
    """用 torchrun 启动 nproc 个进程运行 worker，返回每个 rank 的输出行。

    失败（任何一个 rank 出错）或超过 timeout 秒时抛出 DistributedRunError，附上全部输出；绝不挂起。
    --standalone 让 torchrun 自己在本机选一个空闲端口，同时运行的几次启动互不冲突。
    """
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc)]
    output, problem = run_launcher([*command, str(worker), *args], timeout)
    if problem:
        per_rank = "\n".join(
            f"--- rank {rank} ---\n" + "\n".join(lines) for rank, lines in split_by_rank(output).items()
        )
        raise DistributedRunError(
            f"{worker} 的分布式运行失败（{problem}）。\n各 rank 的输出：\n{per_rank}\n完整输出：\n{output}"
        )
    return split_by_rank(output)


# --8<-- [end:launcher]


# --8<-- [start:main]
def main() -> None:
    parser = argparse.ArgumentParser(description="数据并行 worker：每个 rank 运行一份")
    parser.add_argument("--demo", choices=["allreduce", "train", "accumulate"], default="train")
    parser.add_argument("--out", type=Path, required=True, help="各 rank 写结果文件的目录")
    parser.add_argument("--crash-rank", type=int, help="让这个 rank 在第 1 步后抛出异常（测试用）")
    parser.add_argument("--hang-rank", type=int, help="让这个 rank 在第 1 步后卡住（测试用）")
    args = parser.parse_args()

    def work(rank: int, world_size: int, device: torch.device) -> None:
        if args.demo == "allreduce":
            demo_allreduce(rank, world_size, device, args.out)
        elif args.demo == "accumulate":  # 同一次启动里两种做法各训练一遍
            log(f"梯度累积：每 {ACCUMULATION} 个微批量（每个 {LOCAL_BATCH} 个样本）更新一次参数")
            for no_sync in (False, True):
                train_accumulate(rank, world_size, device, args.out, no_sync)
        else:
            train_ddp(rank, world_size, device, args.out, args.crash_rank, args.hang_rank)

    run_rank(work)


if __name__ == "__main__":
    main()
# --8<-- [end:main]
