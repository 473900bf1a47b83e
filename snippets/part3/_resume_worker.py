"""第三部分的续训 worker：FSDP2 训练中途保存分布式检查点（DCP），换一个进程组、换一个进程数接着训练，崩溃后自动重启。

用 torchrun 启动，每个进程运行这同一个文件，例如在仓库根目录：

    torchrun --standalone --nproc_per_node 2 snippets/part3/_resume_worker.py --out /tmp/resume

每个 rank 从头训练（``--out`` 里已有检查点时，从最新的那个接着训练），每 ``SAVE_EVERY`` 步把模型、优化器、
数据位置和随机数状态存进 ``--out/checkpoints/step{n}``，最后 rank 0 把完整参数写进 ``--out/final.pt``。
``--crash-at`` 让 rank 1 在第一次尝试里结束自己，``--hang-at`` 让它卡住（测试用）。
进程组的初始化和带 rank 前缀的日志来自同目录的 ``_ddp_worker.py``，``shard_model`` 来自 ``_fsdp_worker.py``。
导入本模块没有副作用：第 4 页的 snippet 导入同一份 ``make_model``、``TrainState``、``train_steps``、
``load_checkpoint``，在一个进程里、不建进程组接着训练，并用 ``run_torchrun_elastic`` 启动 worker。
每个片段在某一页上显示一次：全部在第三部分第 4 页。
"""

# --8<-- [start:imports]
import argparse
import os
import re
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import _ddp_worker
import torch
import torch.distributed.checkpoint as dcp
import torch.nn as nn
from _ddp_worker import DistributedRunError, log, run_rank, split_by_rank
from _fsdp_worker import shard_model
from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict
from torch.distributed.checkpoint.stateful import Stateful
from torch.utils.data import DistributedSampler, TensorDataset

# --8<-- [end:imports]


# --8<-- [start:data]
SEED = 0
N_SAMPLES = 64
GLOBAL_BATCH = 16  # 所有 rank 合起来每一步的样本数；W 个进程时每个 rank 取 GLOBAL_BATCH / W 个
STEPS_PER_EPOCH = N_SAMPLES // GLOBAL_BATCH  # 4
STEPS = 3 * STEPS_PER_EPOCH  # 训练 3 轮，共 12 步
SAVE_EVERY = 3  # 每 3 步存一次检查点：第 3、6、9、12 步
LR = 0.01
NOISE = 0.3  # 数据增强：给每个输入加上随机噪声，每一步都要从随机数生成器里取


def make_data() -> TensorDataset:
    generator = torch.Generator().manual_seed(SEED)
    x = torch.randn(N_SAMPLES, 8, generator=generator)
    w = torch.randn(8, 2, generator=generator)
    return TensorDataset(x, torch.tanh(x @ w))


def make_model() -> nn.Module:
    torch.manual_seed(SEED)
    return nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 2))


class TrainState(Stateful):
    """模型和优化器以外、接着训练还需要的状态：已经训练了几步（数据读到了哪里），噪声的随机数生成器到了哪里。

    有 state_dict 和 load_state_dict 两个方法，就是 DCP 眼里的 Stateful：保存时 DCP 调用 state_dict，
    加载时先调用它取得要填的结构，读完再调用 load_state_dict。
    """

    def __init__(self) -> None:
        self.step = 0
        self.generator = torch.Generator().manual_seed(SEED)  # 所有 rank 同一个种子、同样地取数

    def state_dict(self) -> dict:
        return {"step": self.step, "rng": self.generator.get_state()}

    def load_state_dict(self, state_dict: dict) -> None:
        self.step = state_dict["step"]
        self.generator.set_state(state_dict["rng"])

    def where(self) -> str:
        """下一步要读哪一轮的哪一批。"""
        epoch, batch = divmod(self.step, STEPS_PER_EPOCH)
        return f"第 {epoch + 1} 轮的第 {batch + 1} 批"


def batches(
    dataset: TensorDataset, state: TrainState, rank: int, world_size: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """从 state.step 那一步接着取数据：本 rank 这一步的样本，加上噪声。"""
    local = GLOBAL_BATCH // world_size
    sampler = DistributedSampler(
        dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=SEED, drop_last=True
    )
    while True:
        epoch, batch = divmod(state.step, STEPS_PER_EPOCH)
        sampler.set_epoch(epoch)  # 打乱用的种子是 SEED + epoch：同一轮的顺序每次都一样
        indices = list(sampler)[batch * local : (batch + 1) * local]
        # 噪声按整个合并批量取：rank r 的样本在合并批量里排第 r, r + W, r + 2W, ……，就用噪声的这几行。
        # 这样生成器在每个 rank 上都一样，换了进程数，每个样本配的噪声也不变
        noise = NOISE * torch.randn(GLOBAL_BATCH, 8, generator=state.generator)
        x, y = dataset[indices]
        yield x + noise[rank::world_size], y


# --8<-- [end:data]


# --8<-- [start:train]
def train_steps(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    state: TrainState,
    rank: int,
    world_size: int,
    steps: int,
    after_step: Callable[[float], None] = lambda loss: None,
) -> None:
    """从 state 记下的位置接着训练 steps 步；每步之后调用 after_step(本 rank 的损失)。"""
    data = batches(make_data(), state, rank, world_size)
    for _ in range(steps):
        x, y = next(data)
        loss = nn.functional.mse_loss(model(x), y)  # 本 rank 这几个样本的平均损失
        optimizer.zero_grad()
        loss.backward()  # FSDP 的 reduce-scatter 把各 rank 的梯度求平均
        optimizer.step()
        state.step += 1
        after_step(loss.item())


# --8<-- [end:train]


# --8<-- [start:checkpoint]
def save_checkpoint(
    model: nn.Module, optimizer: torch.optim.Optimizer, state: TrainState, path: Path
) -> None:
    """每个 rank 都调用：各自写自己的分片，rank 0 另写一份元数据（哪个张量的哪一块在哪个文件里）。"""
    model_sd, optim_sd = get_state_dict(model, optimizer)  # 键是参数名，值是各 rank 的分片（DTensor）
    dcp.save({"model": model_sd, "optim": optim_sd, "train": state}, checkpoint_id=path)


def load_checkpoint(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    state: TrainState,
    path: Path,
    restore_train_state: bool = True,
) -> None:
    """把检查点读进已经建好的模型和优化器：它们是怎样切分的，就读回怎样的分片。"""
    model_sd, optim_sd = get_state_dict(model, optimizer)  # 先按现在的切分方式取得要填的“空位”
    wanted = {"model": model_sd, "optim": optim_sd}
    if restore_train_state:  # 测试里关掉它，看看不恢复数据位置和随机数状态会怎样
        wanted["train"] = state
    dcp.load(wanted, checkpoint_id=path)  # 原地填进 model_sd、optim_sd；state 由 load_state_dict 恢复
    set_state_dict(model, optimizer, model_state_dict=model_sd, optim_state_dict=optim_sd)


def latest_checkpoint(directory: Path) -> Path | None:
    """目录里步数最大的、写完整了的检查点（.metadata 最后写，有它才算写完）。"""
    done = [p for p in directory.glob("step*") if (p / ".metadata").exists()]
    return max(done, key=lambda p: int(p.name.removeprefix("step")), default=None)


# --8<-- [end:checkpoint]


# --8<-- [start:worker]
def train_fsdp(rank: int, world_size: int, device: torch.device, args: argparse.Namespace) -> None:
    attempt = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))  # torchrun 重启过几次
    model = shard_model(make_model().to(device))
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    state = TrainState()
    checkpoints = args.out / "checkpoints"
    start = latest_checkpoint(checkpoints)  # 重启后的进程从这里接着训练
    if start is None:
        log(f"第 {attempt + 1} 次尝试：没有检查点，从头训练")
    else:
        load_checkpoint(model, optimizer, state, start)
        log(
            f"第 {attempt + 1} 次尝试：从 {start.name} 接着训练，下一步是第 {state.step + 1} 步（{state.where()}）"
        )

    def after_step(loss: float) -> None:
        if state.step % SAVE_EVERY == 0:
            save_checkpoint(model, optimizer, state, checkpoints / f"step{state.step}")
            log(f"第 {state.step} 步 本 rank 的损失 {loss:.4f}，检查点写入 step{state.step}")
        if rank == 1 and state.step == args.crash_at and attempt == 0:  # 只在第一次尝试里崩溃
            log(f"第 {state.step} 步：模拟崩溃，用 SIGKILL 结束自己")
            os.kill(os.getpid(), signal.SIGKILL)
        if rank == 1 and state.step == args.hang_at:  # 每次尝试都卡住
            log(f"第 {state.step} 步：故意卡住，不再通信")
            time.sleep(3600)

    remaining = STEPS - state.step
    train_steps(model, optimizer, state, rank, world_size, remaining, after_step)
    # full_tensor() 是集合通信，每个 rank 都要调用
    full = {name: p.full_tensor().detach().cpu() for name, p in model.named_parameters()}
    if rank == 0:
        torch.save(full, args.out / "final.pt")
    log(f"训练结束：这次尝试训练了 {remaining} 步，一共 {state.step} 步")


# --8<-- [end:worker]


# --8<-- [start:launcher]
# 一次尝试里，除了等通信超时以外的时间（启动、导入 PyTorch、会合、训练）的上限；2 核上实测约 10 秒，机器忙时慢几倍
ATTEMPT_SECONDS = 60


def time_limit(max_restarts: int, pg_timeout: float) -> float:
    """最坏的情况：每次尝试都有一个 rank 卡住，别的 rank 等满 pg_timeout 秒才报错，一共 max_restarts + 1 次尝试。"""
    return (max_restarts + 1) * (pg_timeout + ATTEMPT_SECONDS)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_torchrun_elastic(
    worker: Path,
    *args: str,
    nproc: int = 2,
    max_restarts: int = 1,
    pg_timeout: float = _ddp_worker.PROCESS_GROUP_TIMEOUT.total_seconds(),
) -> str:
    """像 run_torchrun 一样启动 worker，但用 c10d 会合、允许重启 max_restarts 次；返回全部输出（含 torchrun 自己的）。

    worker 的集合通信最多等 pg_timeout 秒（传给它的 --pg-timeout）。失败、或超过 time_limit 秒还没结束时，
    抛出 DistributedRunError，附上全部输出；绝不挂起。
    """
    timeout = time_limit(max_restarts, pg_timeout)
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", str(nproc),
        "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{free_port()}", "--rdzv-id", "hello-resume",
        "--max-restarts", str(max_restarts), str(worker), *args, "--pg-timeout", f"{pg_timeout:g}",
    ]  # fmt: skip
    env = {
        **os.environ,
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
        "LOGLEVEL": "INFO",  # torchrun 默认只打印警告和错误；INFO 级别才有“还能重启几次”那几行
        # 每次尝试用一个新的 TCPStore：torch 2.13 默认让各次尝试共用一个，重启后的进程
        # 会读到上一次尝试的进程登记的地址而连不上（pytorch/pytorch#135712）
        "TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1",
    }
    output, problem = _ddp_worker.run_launcher(command, timeout, env)
    if problem:
        raise DistributedRunError(f"{worker} 的分布式运行失败（{problem}）。\n完整输出：\n{output}")
    return output


# torchrun 自己的日志行：级别和日期、时间、进程号、源文件:行号]，后面才是内容
TORCHRUN_LINE = re.compile(r"^[IWE]\d{4} [\d:.]+ \d+ \S+:\d+\] (?P<text>.*)$")
# 只留下这几种：第几次尝试（restart_count）、哪个进程失败了、还能重启几次、全部结束
TORCHRUN_KEEP = ("restart_count=", "failed (exitcode", "attempts left", "successfully finished")


def torchrun_story(output: str) -> list[str]:
    """把一次（可能重启过的）运行的输出整理成每次构建都相同的几行。

    torchrun 的行按原来的先后排；夹在两行 torchrun 日志之间的 worker 日志先排 rank 0、再排 rank 1
    （几个进程同时写输出，它们之间的先后本来就不确定）。进程号和 Python 的路径换成占位符。
    """
    story: list[str] = []
    pending = ""  # 还没排进去的 worker 日志
    for line in output.splitlines(keepends=True):
        match = TORCHRUN_LINE.match(line.rstrip("\n"))
        if match is None:
            pending += line
            continue
        text = match["text"].strip()
        if any(key in text for key in TORCHRUN_KEEP):
            for rank, lines in split_by_rank(pending).items():
                story += [f"[rank {rank}] {text}" for text in lines]
            pending = ""
            text = re.sub(r"\(pid: \d+\)", "(pid: PID)", text)
            story.append("[torchrun] " + re.sub(r"of binary: \S+", "of binary: PYTHON", text))
    for rank, lines in split_by_rank(pending).items():
        story += [f"[rank {rank}] {text}" for text in lines]
    return story


# --8<-- [end:launcher]


# --8<-- [start:main]
def main() -> None:
    parser = argparse.ArgumentParser(description="续训 worker：每个 rank 运行一份")
    parser.add_argument("--out", type=Path, required=True, help="检查点和结果写在这里")
    parser.add_argument("--crash-at", type=int, help="第一次尝试时，rank 1 在这一步后结束自己（演示重启）")
    parser.add_argument("--hang-at", type=int, help="rank 1 在这一步后卡住（测试用）")
    parser.add_argument("--pg-timeout", type=float, help="集合通信最多等几秒（测试用；默认 60 秒）")
    args = parser.parse_args()
    if args.pg_timeout is not None:  # setup() 读的是 _ddp_worker 的这个常量
        _ddp_worker.PROCESS_GROUP_TIMEOUT = timedelta(seconds=args.pg_timeout)
    run_rank(lambda rank, world_size, device: train_fsdp(rank, world_size, device, args))


if __name__ == "__main__":
    main()
# --8<-- [end:main]
