"""第三部分的分片训练 worker：用 FSDP2 的 ``fully_shard`` 把模型的参数、梯度和优化器状态切开，分给各个 rank。

用 torchrun 启动，每个进程运行这同一个文件，例如在仓库根目录：

    torchrun --standalone --nproc_per_node 2 snippets/part3/_fsdp_worker.py --out /tmp/fsdp

每个 rank 打印自己保存的分片形状，训练 ``STEPS`` 步，把自己的分片和收集回来的完整参数写到
``--out`` 目录里的 ``rank{r}.pt``。接着看混合精度那一步存成什么类型（``mixed{r}.pt``），最后在第二部分的
小 GPT 上比较 fp32、bf16 与激活检查点（``gpt{r}.pt``）。进程组的初始化和带 rank 前缀的日志来自同目录的 ``_ddp_worker.py``
（torchrun 运行本文件时，本文件所在的目录在 ``sys.path`` 上）。导入本模块除了把 ``snippets/part2`` 加进 ``sys.path``（为了导入小 GPT）没有别的副作用，
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


# --8<-- [start:gpt_model]
import sys

import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

PART2 = Path(__file__).resolve().parents[1] / "part2"  # 第二部分的小 GPT 在 snippets/part2/_tinygpt.py
sys.path.append(str(PART2))
from _tinygpt import GPT, GPTConfig, addition_data, get_batch

GPT_BATCH = 64  # 所有 rank 合起来每一步的算术题数；每道题 8 个字符
GPT_STEPS = 12
GPT_LR = 3e-3
# 四种做法：(名字, 是否 bf16 计算, 是否激活检查点)
GPT_VARIANTS = [
    ("fp32", False, False),
    ("fp32 + 检查点", False, True),
    ("bf16", True, False),
    ("bf16 + 检查点", True, True),
]


class Checkpointed(nn.Module):
    """激活检查点：前向时只留下这个块的输入，块里的中间结果一个也不保存；反向传播用到它们时，再把这个块算一遍。"""

    def __init__(self, block: nn.Module):
        super().__init__()
        self.block = block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # use_reentrant 要写明：不写时 PyTorch 2.13 会警告，并退回旧的重入实现；文档推荐 False
        return checkpoint(self.block, x, use_reentrant=False)


def make_gpt(bf16: bool, recompute: bool) -> nn.Module:
    """第二部分的小 GPT，每个 Transformer 块各切一组，最后整个模型一组（嵌入、最后的 LayerNorm 和输出层）。"""
    torch.manual_seed(SEED)
    model = GPT(GPTConfig())
    if bf16:  # 收集的完整参数和计算用 bf16，梯度的 reduce-scatter 用 fp32
        policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
    else:
        policy = MixedPrecisionPolicy()  # 什么都不转换：全程 fp32
    for i, block in enumerate(model.blocks):
        if recompute:
            model.blocks[i] = Checkpointed(block)  # 先套检查点，再切分：重算发生在 FSDP 收集好的参数上
        fully_shard(model.blocks[i], mp_policy=policy)
    fully_shard(model, mp_policy=policy)
    return model


def gpt_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    logits = model(x).float()  # bf16 计算时 logits 也是 bf16；损失统一用 fp32 算
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1), ignore_index=-100)


# --8<-- [end:gpt_model]


# --8<-- [start:gpt_train]
import time


class SavedTensors(torch.autograd.graph.saved_tensors_hooks):
    """数一数前向传播为反向传播保存了多少字节。参数不算：分片本来就在内存里，完整参数由 FSDP 用时收集、用完释放。
    几个保存的张量可能共用同一块存储（例如 q、k、v 是同一个输出的三段），每块存储只算一次。"""

    def __init__(self):
        self.storages: dict[int, int] = {}

        def pack(t: torch.Tensor) -> torch.Tensor:
            if not isinstance(t, nn.Parameter) and not isinstance(t._base, nn.Parameter):
                storage = t.untyped_storage()
                self.storages[storage.data_ptr()] = storage.nbytes()
            return t

        super().__init__(pack, lambda t: t)

    @property
    def nbytes(self) -> int:
        return sum(self.storages.values())


def gpt_variants(rank: int, world_size: int, device: torch.device, out_dir: Path) -> None:
    """四种做法轮流各训练一步，共 GPT_STEPS 步：每步的数据都相同，计时时机器忙闲的变化大致平均落到四种做法上。"""
    generator = torch.Generator().manual_seed(SEED)
    local = GPT_BATCH // world_size
    data, batches = addition_data().train, []
    for _ in range(GPT_STEPS):
        x, y = get_batch(data, GPT_BATCH, generator)
        # 本 rank 的那一段题；clone 成独立的张量，为反向传播保存的输入就只有这一段
        batches.append(
            (x[rank * local : (rank + 1) * local].clone(), y[rank * local : (rank + 1) * local].clone())
        )
    runs = {}
    for name, bf16, recompute in GPT_VARIANTS:
        model = make_gpt(bf16, recompute)
        first_block = model.blocks[0].block if recompute else model.blocks[0]
        calls = []
        first_block.register_forward_pre_hook(lambda module, args, calls=calls: calls.append(1))
        optimizer = torch.optim.AdamW(model.parameters(), lr=GPT_LR, weight_decay=0.0)
        runs[name] = {"model": model, "optimizer": optimizer, "calls": calls, "losses": [], "seconds": []}
    for step, (x, y) in enumerate(batches):
        for run in runs.values():
            model, optimizer = run["model"], run["optimizer"]
            saved = SavedTensors()
            start = time.perf_counter()
            with saved:
                loss = gpt_loss(model, x.to(device), y.to(device))
            loss.backward()
            optimizer.step()
            run["seconds"].append(time.perf_counter() - start)  # 计时：每次运行都不同
            if step == 0:
                run["saved_bytes"] = saved.nbytes
                run["block_calls"] = len(run["calls"])  # 第 1 步里，第 0 个块的前向算了几遍
            if step == GPT_STEPS - 1:  # 本 rank 长期保存的训练状态：参数分片、梯度分片、AdamW 的 m 和 v
                run["state_bytes"] = sum(
                    t.to_local().numel() * t.to_local().element_size()
                    for p in model.parameters()
                    for t in (p, p.grad, optimizer.state[p]["exp_avg"], optimizer.state[p]["exp_avg_sq"])
                )
            optimizer.zero_grad()
            run["losses"].append(loss.item())
    results = {}
    for name, run in runs.items():
        log(
            f"小 GPT，{name}：为反向传播保存了 {run['saved_bytes']:,} 字节，第 0 个块每步前向 {run['block_calls']} 遍，"
            f"损失 {run['losses'][0]:.4f} → {run['losses'][-1]:.4f}"
        )
        model = run["model"]
        results[name] = {
            **{key: run[key] for key in ("saved_bytes", "block_calls", "losses", "seconds", "state_bytes")},
            "local_params": sum(p.to_local().numel() for p in model.parameters()),
            # 完整参数（集合通信，每个 rank 都要调用）；去掉检查点包装多出的一层 .block，四种做法的参数名就相同
            "state": {
                n.replace(".block.", "."): p.full_tensor().detach().cpu() for n, p in model.named_parameters()
            },
        }
    torch.save(results, out_dir / f"gpt{rank}.pt")


# --8<-- [end:gpt_train]


# --8<-- [start:main]
def main() -> None:
    parser = argparse.ArgumentParser(description="分片训练 worker：每个 rank 运行一份")
    parser.add_argument("--out", type=Path, required=True, help="各 rank 写结果文件的目录")
    args = parser.parse_args()

    def work(rank: int, world_size: int, device: torch.device) -> None:
        train_fsdp(rank, world_size, device, args.out)
        mixed_precision_step(rank, world_size, device, args.out)
        gpt_variants(rank, world_size, device, args.out)

    run_rank(work)


if __name__ == "__main__":
    main()
# --8<-- [end:main]
