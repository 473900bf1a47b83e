"""第三部分第 1 章：用 torchrun 在 CPU 上启动 2 个进程，演示 all-reduce 和 DDP 训练，并与单进程训练逐一比较。

worker 的路径 ``Path("snippets/part3/_ddp_worker.py")`` 相对于仓库根目录：构建网站、运行测试、
在根目录运行 ``python snippets/part3/ch01_ddp.py`` 时，当前目录都是仓库根目录。
"""

# --8<-- [start:setup]
import tempfile
import time
from pathlib import Path

import torch
from _ddp_worker import EPOCHS, LOCAL_BATCH, LR, make_data, make_model, make_sampler, run_torchrun

WORKER = Path("snippets/part3/_ddp_worker.py")  # 每个进程运行的脚本（相对于仓库根目录）
WORLD_SIZE = 2
workdir = tempfile.TemporaryDirectory(prefix="hello-pytorch-ddp-")  # 各 rank 把结果写到这里
OUT = Path(workdir.name)


def show(logs: dict[int, list[str]]) -> None:
    """两个进程的输出在时间上交错；按 rank 分组打印，每个 rank 内部保持原来的顺序。"""
    for rank, lines in logs.items():
        for line in lines:
            print(f"[rank {rank}] {line}")


# --8<-- [end:setup]

# --8<-- [start:allreduce]
allreduce_logs = run_torchrun(WORKER, "--demo", "allreduce", "--out", str(OUT), nproc=WORLD_SIZE)
show(allreduce_logs)
allreduce_after = [torch.load(OUT / f"allreduce_rank{r}.pt", weights_only=True)["after"] for r in range(2)]
# --8<-- [end:allreduce]

# --8<-- [start:train]
print(f"torchrun --standalone --nproc_per_node {WORLD_SIZE} {WORKER.as_posix()} --demo train --out 临时目录")
start = time.perf_counter()
train_logs = run_torchrun(WORKER, "--demo", "train", "--out", str(OUT), nproc=WORLD_SIZE)
launch_seconds = time.perf_counter() - start
show(train_logs)
# --8<-- [end:train]

# --8<-- [start:train_timing]
# 各 rank 在 worker 里自己量的训练循环用时（不含启动进程、导入 PyTorch、会合和退出）
loop_seconds = max(
    torch.load(OUT / f"rank{rank}.pt", weights_only=True)["train_seconds"] for rank in range(WORLD_SIZE)
)
print(
    f"计时（每次构建不同，只测了一次）：启动 {WORLD_SIZE} 个进程、训练、退出，共 {launch_seconds:.1f} 秒；"
    f"其中训练循环最多 {loop_seconds:.2f} 秒（两个 rank 中较慢的一个），占 {loop_seconds / launch_seconds:.1%}"
)
# --8<-- [end:train_timing]

# --8<-- [start:verdict_timing]
if launch_seconds > 10 * loop_seconds:  # 只测了一次，差距要在十倍以上才下结论
    print(
        f"**这一次的结论**（计时）：训练循环以外的开销是训练循环本身的 "
        f"{(launch_seconds - loop_seconds) / loop_seconds:,.0f} 倍。这么小的任务，时间几乎全花在启动进程、"
        "导入 PyTorch、会合和退出上，多一个进程分担计算也快不起来。数据并行要在整个训练的计算量远大于这些一次性的开销、"
        "每一步的计算又远多于这一步的通信时，才可能显出好处。"
    )
else:
    print("**这一次的结论**（计时）：训练循环以外的开销不到训练循环本身的十倍；只测了一次，不足以下结论。")
# --8<-- [end:verdict_timing]

# --8<-- [start:reference]
# 单进程对照：同一个初始模型、同一个优化器，每一步用两个 rank 那一步的样本合在一起的“合并批量”
dataset = make_data()


def train_combined(span: int) -> tuple[torch.nn.Module, list[float], int]:
    """在本进程里训练：每一步把每个 rank 这一步的 span 个样本合在一起求平均损失。返回模型、每步的损失和每步的样本数。"""
    model = make_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    samplers = [make_sampler(dataset, rank, WORLD_SIZE) for rank in range(WORLD_SIZE)]
    losses = []
    for epoch in range(EPOCHS):
        for sampler in samplers:
            sampler.set_epoch(epoch)
        per_rank = [list(sampler) for sampler in samplers]  # 每个 rank 这一轮依次取到的样本编号
        for offset in range(0, len(per_rank[0]), span):
            batch = [i for indices in per_rank for i in indices[offset : offset + span]]
            x, y = dataset[batch]
            loss = torch.nn.functional.mse_loss(model(x), y)  # 合并起来的样本一起求平均
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
    return model, losses, len(batch)


reference, reference_losses, combined_size = train_combined(LOCAL_BATCH)
print(f"单进程训练了 {len(reference_losses)} 步，每步的合并批量有 {combined_size} 个样本")
print("合并批量上的损失:", [round(v, 4) for v in reference_losses])
# --8<-- [end:reference]

# --8<-- [start:compare]
RTOL, ATOL = 1e-5, 1e-6  # 容差：容许浮点舍入的微小差别；训练对参数的改变远大于它（测试检查了这一点）
results = [torch.load(OUT / f"rank{rank}.pt", weights_only=True) for rank in range(WORLD_SIZE)]
ddp_state = results[0]["state"]
replicas_identical = all(
    torch.equal(results[0]["state"][name], result["state"][name]) for result in results for name in ddp_state
)
reference_state = {name: p.detach() for name, p in reference.state_dict().items()}
params_equal = all(torch.equal(ddp_state[name], p) for name, p in reference_state.items())
max_param_diff = max((ddp_state[name] - p).abs().max().item() for name, p in reference_state.items())
params_match = all(
    torch.allclose(ddp_state[name], p, rtol=RTOL, atol=ATOL) for name, p in reference_state.items()
)
mean_rank_losses = torch.stack([result["losses"] for result in results]).mean(dim=0)
max_loss_diff = (mean_rank_losses - torch.tensor(reference_losses)).abs().max().item()
losses_match = torch.allclose(mean_rank_losses, torch.tensor(reference_losses), rtol=RTOL, atol=ATOL)
print("两个 rank 的参数逐位相同（torch.equal）:", replicas_identical)
print("两个 rank 损失的平均:", [round(v, 4) for v in mean_rank_losses.tolist()])
print(f"与单进程的损失：最大绝对差 {max_loss_diff:.1e}，在容差内: {losses_match}")
print(f"DDP 参数与单进程参数：逐位相同（torch.equal）: {params_equal}")
print(
    f"DDP 参数与单进程参数：最大绝对差 {max_param_diff:.1e}，在容差 rtol={RTOL:g}、atol={ATOL:g} 内: {params_match}"
)
# --8<-- [end:compare]

# --8<-- [start:summary]
if params_equal:
    relation = "逐位相同"
elif params_match:
    relation = (
        f"不是逐位相同，但最大差只有 {max_param_diff:.1e}，在容差（rtol={RTOL:g}、atol={ATOL:g}）之内，"
        "差别来自浮点舍入"
    )
else:
    relation = f"**超出了容差**（最大差 {max_param_diff:.1e}）"
print(
    f"{WORLD_SIZE} 个进程各用 {LOCAL_BATCH} 个样本、训练 {len(reference_losses)} 步之后，"
    f"DDP 的参数与单进程在 {LOCAL_BATCH * WORLD_SIZE} 个样本的合并批量上训练的参数{relation}；"
    f"两个 rank 之间的参数{'逐位相同' if replicas_identical else '**不同**'}。"
)
# --8<-- [end:summary]

# --8<-- [start:accumulate]
from _ddp_worker import ACCUMULATION

print(
    f"torchrun --standalone --nproc_per_node {WORLD_SIZE} {WORKER.as_posix()} --demo accumulate --out 临时目录"
)
accumulate_logs = run_torchrun(WORKER, "--demo", "accumulate", "--out", str(OUT), nproc=WORLD_SIZE)
show(accumulate_logs)
accumulated = {
    variant: [
        torch.load(OUT / f"accumulate_{variant}_rank{rank}.pt", weights_only=True)
        for rank in range(WORLD_SIZE)
    ]
    for variant in ("sync", "no_sync")
}
# --8<-- [end:accumulate]

# --8<-- [start:accumulate_reference]
# 单进程对照：每一步用两个 rank 这一步的全部 ACCUMULATION 个微批量，合起来是 1.4 节合并批量的 ACCUMULATION 倍
span = LOCAL_BATCH * ACCUMULATION  # 每个 rank 每一步用的样本数
big_reference, big_losses, big_size = train_combined(span)
print(f"单进程训练了 {len(big_losses)} 步，每步 {big_size} 个样本（1.4 节的 {ACCUMULATION} 倍）")
print("损失:", [round(v, 4) for v in big_losses])
# --8<-- [end:accumulate_reference]

# --8<-- [start:accumulate_compare]
big_state = {name: p.detach() for name, p in big_reference.state_dict().items()}
accumulate_gap, accumulate_match = {}, {}
for variant, runs in accumulated.items():
    state = runs[0]["state"]
    accumulate_gap[variant] = max((state[name] - p).abs().max().item() for name, p in big_state.items())
    accumulate_match[variant] = all(
        torch.allclose(state[name], p, rtol=RTOL, atol=ATOL) for name, p in big_state.items()
    )
    # 每一步的损失：两个 rank、ACCUMULATION 个微批量的平均，就是这一步大批量上的损失
    step_losses = torch.stack([result["losses"] for result in runs]).view(WORLD_SIZE, -1, ACCUMULATION)
    loss_gap = (step_losses.mean(dim=(0, 2)) - torch.tensor(big_losses)).abs().max().item()
    label = "用 no_sync" if variant == "no_sync" else "不用 no_sync"
    print(
        f"{label}：与单进程大批量的参数最大差 {accumulate_gap[variant]:.1e}，"
        f"在容差 rtol={RTOL:g}、atol={ATOL:g} 内: {accumulate_match[variant]}；每步损失最大差 {loss_gap:.1e}"
    )
sync_state, no_sync_state = (accumulated[v][0]["state"] for v in ("sync", "no_sync"))
variants_equal = all(torch.equal(sync_state[name], no_sync_state[name]) for name in sync_state)
calls = {variant: runs[0]["calls_per_step"] for variant, runs in accumulated.items()}
print(f"用与不用 no_sync，参数逐位相同（torch.equal）: {variants_equal}")
print(
    f"每步的 all-reduce 次数：不用 no_sync {calls['sync']}，用 no_sync {calls['no_sync']}；"
    f"{len(calls['sync'])} 步一共从 {sum(calls['sync'])} 次减到 {sum(calls['no_sync'])} 次"
)
# --8<-- [end:accumulate_compare]

# --8<-- [start:exercise_sampler]
from torch.utils.data import DistributedSampler

fresh = [make_sampler(dataset, rank, WORLD_SIZE) for rank in range(WORLD_SIZE)]  # 新建的采样器，epoch 是 0
epoch_0 = [list(sampler) for sampler in fresh]
shuffled = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(fresh[0].seed)).tolist()
takes_every_wth = all(epoch_0[rank] == shuffled[rank::WORLD_SIZE] for rank in range(WORLD_SIZE))
print(f"rank r 取的正是打乱后的第 r, r + {WORLD_SIZE}, r + {2 * WORLD_SIZE}, … 个: {takes_every_wth}")
print(
    f"两个 rank 合起来 {len(set(epoch_0[0]) | set(epoch_0[1]))} 个不同的样本（数据集 {len(dataset)} 个），"
    f"重叠 {len(set(epoch_0[0]) & set(epoch_0[1]))} 个"
)

forgot = [list(sampler) for sampler in fresh]  # 忘了 set_epoch：第 2 轮还是 epoch 0 的顺序
for sampler in fresh:
    sampler.set_epoch(1)
epoch_1 = [list(sampler) for sampler in fresh]
print(
    f"忘了 set_epoch，第 2 轮的顺序与第 1 轮相同: {forgot == epoch_0}；调用 set_epoch(1) 后相同: {epoch_1 == epoch_0}"
)

# rank 1 不小心用了另一个种子：两个 rank 各自打乱，不再是同一个排列的两半
rank_1_wrong_seed = list(DistributedSampler(dataset, num_replicas=2, rank=1, seed=1, drop_last=True))
overlap = set(epoch_0[0]) & set(rank_1_wrong_seed)
missed = set(range(len(dataset))) - set(epoch_0[0]) - set(rank_1_wrong_seed)
print(f"rank 1 用了种子 1：两个 rank 重叠 {len(overlap)} 个样本，{len(missed)} 个样本这一轮谁也没用到")
# --8<-- [end:exercise_sampler]

# --8<-- [start:exercise_grad_average]
x_all, y_all = dataset.tensors
probe = make_model()  # 训练前的初始模型，只用来求梯度


def gradient(rows: list[int]) -> torch.Tensor:
    """这些样本的平均损失对全部参数的梯度，拉平成一个向量。"""
    probe.zero_grad()
    torch.nn.functional.mse_loss(probe(x_all[rows]), y_all[rows]).backward()
    return torch.cat([p.grad.flatten() for p in probe.parameters()])


rows_0, rows_1 = epoch_0[0][:LOCAL_BATCH], epoch_0[1][:LOCAL_BATCH]  # 第 1 步两个 rank 各自的 8 个样本
g_0, g_1 = gradient(rows_0), gradient(rows_1)  # 两个 rank 各自反向传播得到的梯度
g_combined = gradient(rows_0 + rows_1)  # 合并批量 16 个样本的梯度
even_gap = ((g_0 + g_1) / 2 - g_combined).abs().max().item()
print(f"两个 rank 各 8 个样本：(g₀ + g₁) / 2 与合并批量的梯度最大差 {even_gap:.1e}")

rows_1_short = rows_1[:4]  # 假设 rank 1 这一步只有 4 个样本
g_1_short = gradient(rows_1_short)
g_combined_12 = gradient(rows_0 + rows_1_short)
uneven_gap = ((g_0 + g_1_short) / 2 - g_combined_12).abs().max().item()
weighted_gap = (
    ((len(rows_0) * g_0 + len(rows_1_short) * g_1_short) / len(rows_0 + rows_1_short) - g_combined_12)
    .abs()
    .max()
    .item()
)
print(
    f"rank 0 有 8 个、rank 1 只有 4 个：(g₀ + g₁) / 2 与这 12 个样本的梯度最大差 {uneven_gap:.1e}"
    f"（梯度本身最大 {g_combined_12.abs().max().item():.1e}）；按样本数加权 (8 g₀ + 4 g₁) / 12 最大差 {weighted_gap:.1e}"
)
# --8<-- [end:exercise_grad_average]


# --8<-- [start:exercise_replay]
def rank_orders(epoch: int) -> list[list[int]]:
    """这一轮里每个 rank 的 DistributedSampler 给出的样本顺序，和 worker 里的一样。"""
    orders = []
    for rank in range(WORLD_SIZE):
        sampler = make_sampler(dataset, rank, WORLD_SIZE)
        sampler.set_epoch(epoch)
        orders.append(list(sampler))
    return orders


def replay(dtype: torch.dtype) -> tuple[dict, dict]:
    """在本进程里同时训练两个模型，数据顺序与 1.4 节相同：
    一个照 DDP 的做法，每个 rank 的 8 个样本分别求梯度再平均；一个在合并批量的 16 个样本上直接求梯度。"""
    x, y = (t.to(dtype) for t in dataset.tensors)
    ddp_like, combined = make_model().to(dtype), make_model().to(dtype)
    optimizers = [torch.optim.SGD(m.parameters(), lr=LR) for m in (ddp_like, combined)]
    for epoch in range(EPOCHS):
        per_rank = rank_orders(epoch)
        for offset in range(0, len(per_rank[0]), LOCAL_BATCH):
            batches = [indices[offset : offset + LOCAL_BATCH] for indices in per_rank]
            rank_grads = []
            for rows in batches:  # 每个 rank 做的事：只用自己的样本前向、反向
                ddp_like.zero_grad()
                torch.nn.functional.mse_loss(ddp_like(x[rows]), y[rows]).backward()
                rank_grads.append([p.grad.clone() for p in ddp_like.parameters()])
            for p, *grads in zip(ddp_like.parameters(), *rank_grads, strict=True):
                # DDP 的顺序：每个 rank 先把梯度乘以 1/进程数，all-reduce 再把各 rank 的结果加起来
                p.grad = sum(grad * (1.0 / WORLD_SIZE) for grad in grads)
            rows = [i for batch in batches for i in batch]
            combined.zero_grad()
            torch.nn.functional.mse_loss(combined(x[rows]), y[rows]).backward()
            for optimizer in optimizers:
                optimizer.step()
    return ddp_like.state_dict(), combined.state_dict()


def max_gap(a: dict, b: dict) -> float:
    return max((a[name].double() - b[name].double()).abs().max().item() for name in a)


replay_32, combined_32 = replay(torch.float32)
replay_64, combined_64 = replay(torch.float64)
replay_equals_ddp = all(torch.equal(replay_32[name], ddp_state[name]) for name in ddp_state)
print(
    f"float32：本进程照 DDP 的做法重放 {len(reference_losses)} 步，与两个 rank 真正训练出的参数逐位相同: {replay_equals_ddp}"
)
print(f"float32：照 DDP 的做法与合并批量，参数最大差 {max_gap(replay_32, combined_32):.1e}")
print(f"float64：照 DDP 的做法与合并批量，参数最大差 {max_gap(replay_64, combined_64):.1e}")
# --8<-- [end:exercise_replay]


# --8<-- [start:exercise_forgot_k]
def replay_accumulation(make_optimizer, divide_by_k: bool) -> dict:
    """在本进程里重放 1.6 节的训练：每一步，两个 rank 各 ACCUMULATION 个微批量的梯度累加在 .grad 里，
    再像 DDP 那样除以进程数；divide_by_k=False 就是忘了把每个微批量的损失除以 k。"""
    x, y = dataset.tensors
    model = make_model()
    optimizer = make_optimizer(model.parameters())
    for epoch in range(EPOCHS):
        per_rank = rank_orders(epoch)
        for offset in range(0, len(per_rank[0]), span):
            optimizer.zero_grad()
            for indices in per_rank:
                for start in range(offset, offset + span, LOCAL_BATCH):
                    rows = indices[start : start + LOCAL_BATCH]
                    loss = torch.nn.functional.mse_loss(model(x[rows]), y[rows])
                    (loss / (ACCUMULATION if divide_by_k else 1) / WORLD_SIZE).backward()
            optimizer.step()
    return {name: p.detach() for name, p in model.state_dict().items()}


def gap(a: dict, b: dict) -> float:
    return max((a[name] - b[name]).abs().max().item() for name in a)


sgd = {
    "除以 k": replay_accumulation(lambda p: torch.optim.SGD(p, lr=LR), True),
    "忘了除以 k": replay_accumulation(lambda p: torch.optim.SGD(p, lr=LR), False),
    f"除以 k，学习率 ×{ACCUMULATION}": replay_accumulation(
        lambda p: torch.optim.SGD(p, lr=LR * ACCUMULATION), True
    ),
}
adam = {
    divide: replay_accumulation(lambda p: torch.optim.Adam(p, lr=0.01), divide) for divide in (True, False)
}
initial = make_model().state_dict()
print(f"SGD，除以 k：与 1.6 节单进程大批量的参数最大差 {gap(sgd['除以 k'], big_state):.1e}")
print(f"SGD，忘了除以 k：与除以 k 的参数最大差 {gap(sgd['忘了除以 k'], sgd['除以 k']):.1e}")
print(
    f"SGD，忘了除以 k 与“除以 k、学习率 ×{ACCUMULATION}”：逐位相同 "
    f"{all(torch.equal(sgd['忘了除以 k'][n], sgd[f'除以 k，学习率 ×{ACCUMULATION}'][n]) for n in initial)}"
)
print(
    f"Adam，忘了除以 k：与除以 k 的参数最大差 {gap(adam[False], adam[True]):.1e}"
    f"（训练让参数最多改变了 {gap(adam[True], initial):.1e}）"
)
# --8<-- [end:exercise_forgot_k]
