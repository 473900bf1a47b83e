"""第三部分的分片训练 worker：用 FSDP2 的 ``fully_shard`` 把模型的参数、梯度和优化器状态切开，分给各个 rank。

用 torchrun 启动，每个进程运行这同一个文件，例如在仓库根目录：

    torchrun --standalone --nproc_per_node 2 snippets/part3/_fsdp_worker.py --out /tmp/fsdp

每个 rank 打印自己保存的分片形状，训练 ``STEPS`` 步，把自己的分片和收集回来的完整参数写到
``--out`` 目录里的 ``rank{r}.pt``。进程组的初始化和带 rank 前缀的日志来自同目录的 ``_ddp_worker.py``
（torchrun 运行本文件时，本文件所在的目录在 ``sys.path`` 上）。导入本模块没有副作用，
第 2 页的 snippet 导入同一份 ``make_model``、``make_batch`` 做不分片的对照训练。
每个片段在某一页上显示一次：全部在第三部分第 2 页。
"""

# --8<-- [start:imports]
import argparse
from pathlib import Path

import torch
import torch.nn as nn
from _ddp_worker import log, run_rank
from torch.distributed.fsdp import fully_shard

# --8<-- [end:imports]


# --8<-- [start:model]
SEED = 0
GLOBAL_BATCH = 16  # 所有 rank 合起来每一步的样本数
STEPS = 3
LR = 0.01


def make_model() -> nn.Module:
    torch.manual_seed(SEED)
    return nn.Sequential(nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 4))


def make_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """合并批量：每一步都用这同一批样本，每个 rank 各取其中连续的一段。"""
    generator = torch.Generator().manual_seed(SEED)
    return torch.randn(GLOBAL_BATCH, 16, generator=generator), torch.randn(
        GLOBAL_BATCH, 4, generator=generator
    )


# --8<-- [end:model]


# --8<-- [start:shard]
def shard_model(model: nn.Module) -> nn.Module:
    """先给每个线性层套上 fully_shard，再给整个模型套一层：参数从此变成按第 0 维切开的 DTensor。"""
    for layer in model:
        if isinstance(layer, nn.Linear):
            fully_shard(layer)  # 每层单独切：前向时一次只把一层的参数收集完整
    fully_shard(model)
    return model


def describe_shards(model: nn.Module) -> None:
    local_total = full_total = 0
    for name, param in model.named_parameters():
        local = param.to_local()  # 本 rank 真正保存的那一片
        log(f"{name:<8} 完整形状 {tuple(param.shape)!s:<8} → 本 rank 保存 {tuple(local.shape)}")
        local_total += local.numel()
        full_total += param.numel()
    log(f"本 rank 保存 {local_total} 个参数，完整模型 {full_total} 个")


# --8<-- [end:shard]


# --8<-- [start:train]
def train_fsdp(rank: int, world_size: int, device: torch.device, out_dir: Path) -> None:
    model = shard_model(make_model().to(device))
    describe_shards(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)  # 优化器只看得到本 rank 的分片
    local_batch = GLOBAL_BATCH // world_size
    x, y = make_batch()
    rows = slice(rank * local_batch, (rank + 1) * local_batch)  # 本 rank 的那一段样本
    for step in range(STEPS):
        # 前向时逐层 all-gather 参数；反向后用 reduce-scatter 把梯度求平均并切回分片
        loss = nn.functional.mse_loss(model(x[rows].to(device)), y[rows].to(device))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        log(f"第 {step + 1} 步 本 rank 的损失 {loss.item():.4f}")
    exp_avg = optimizer.state[model[0].weight]["exp_avg"]
    log(
        f"Adam 的一阶矩（0.weight）: 完整形状 {tuple(exp_avg.shape)} → 本 rank 保存 {tuple(exp_avg.to_local().shape)}"
    )
    local = {name: p.to_local().detach().cpu() for name, p in model.named_parameters()}
    full = {
        name: p.full_tensor().detach().cpu() for name, p in model.named_parameters()
    }  # 集合通信：每个 rank 都要调用
    torch.save({"local": local, "full": full}, out_dir / f"rank{rank}.pt")
    log(f"训练结束，分片和完整参数写入 rank{rank}.pt")


# --8<-- [end:train]


# --8<-- [start:main]
def main() -> None:
    parser = argparse.ArgumentParser(description="分片训练 worker：每个 rank 运行一份")
    parser.add_argument("--out", type=Path, required=True, help="各 rank 写结果文件的目录")
    args = parser.parse_args()
    run_rank(lambda rank, world_size, device: train_fsdp(rank, world_size, device, args.out))


if __name__ == "__main__":
    main()
# --8<-- [end:main]
