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
from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

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
def shard_model(model: nn.Module, policy: MixedPrecisionPolicy | None = None) -> nn.Module:
    """先给每个线性层套上 fully_shard，再给整个模型套一层：参数从此变成按第 0 维切开的 DTensor。"""
    policy = policy or MixedPrecisionPolicy()  # 默认不做混合精度：收集、计算、归约都用参数本来的类型
    for layer in model:
        if isinstance(layer, nn.Linear):
            fully_shard(layer, mp_policy=policy)  # 每层单独切：前向时只需把正在算的层收集完整
    fully_shard(model, mp_policy=policy)
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


# --8<-- [start:mixed]
def mixed_precision_step(rank: int, world_size: int, device: torch.device, out_dir: Path) -> None:
    """同一个模型换上 FSDP2 的混合精度策略再切一次、训练一步，看每样东西实际存成什么类型、占多少字节。"""
    policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
    model = shard_model(make_model().to(device), policy)
    seen = {}

    def look(layer: nn.Module, args: tuple) -> None:
        # 排在 fully_shard 自己的钩子后面：这时第一层的参数已经收集完整，并转成了 param_dtype
        seen["weight"] = layer.weight
        layer.weight.register_hook(lambda grad: seen.update(grad=grad))  # 反向时算出的完整梯度

    model[0].register_forward_pre_hook(look)
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    local_batch = GLOBAL_BATCH // world_size
    x, y = make_batch()
    rows = slice(rank * local_batch, (rank + 1) * local_batch)
    loss = nn.functional.mse_loss(model(x[rows].to(device)).float(), y[rows].to(device))
    loss.backward()  # 完整梯度先按 bf16 算出，转成 reduce_dtype 再 reduce-scatter，切回分片后是参数本来的类型
    optimizer.step()
    weight, state = model[0].weight, optimizer.state[model[0].weight]
    tensors = {
        "前向时收集的完整参数": seen["weight"],
        "反向时算出的完整梯度": seen["grad"],
        "本 rank 保存的参数分片": weight.to_local(),
        "梯度分片": weight.grad.to_local(),
        "Adam 的 m": state["exp_avg"].to_local(),
        "Adam 的 v": state["exp_avg_sq"].to_local(),
    }
    kinds = {name: (str(t.dtype), tuple(t.shape)) for name, t in tensors.items()}
    for name, (dtype, shape) in kinds.items():
        log(f"混合精度，0.weight {name}: {dtype} {shape}")
    # 本 rank 长期保存的训练状态：全部参数分片、梯度分片和 Adam 的 m、v，逐个数字节
    params = list(model.parameters())
    state_bytes = sum(
        t.to_local().numel() * t.to_local().element_size()
        for p in params
        for t in (p, p.grad, optimizer.state[p]["exp_avg"], optimizer.state[p]["exp_avg_sq"])
    )
    local_params = sum(p.to_local().numel() for p in params)
    log(
        f"混合精度：本 rank 的训练状态 {state_bytes} 字节，是它保存的 {local_params} 个参数的 {state_bytes / local_params:g} 倍"
    )
    torch.save(
        {"kinds": kinds, "state_bytes": state_bytes, "local_params": local_params},
        out_dir / f"mixed{rank}.pt",
    )


# --8<-- [end:mixed]


# --8<-- [start:main]
def main() -> None:
    parser = argparse.ArgumentParser(description="分片训练 worker：每个 rank 运行一份")
    parser.add_argument("--out", type=Path, required=True, help="各 rank 写结果文件的目录")
    args = parser.parse_args()

    def work(rank: int, world_size: int, device: torch.device) -> None:
        train_fsdp(rank, world_size, device, args.out)
        mixed_precision_step(rank, world_size, device, args.out)

    run_rank(work)


if __name__ == "__main__":
    main()
# --8<-- [end:main]
