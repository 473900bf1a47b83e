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
reference = make_model()
optimizer = torch.optim.SGD(reference.parameters(), lr=LR)
samplers = [make_sampler(dataset, rank, WORLD_SIZE) for rank in range(WORLD_SIZE)]
reference_losses = []
for epoch in range(EPOCHS):
    for sampler in samplers:
        sampler.set_epoch(epoch)
    per_rank = [list(sampler) for sampler in samplers]  # 每个 rank 这一轮依次取到的样本编号
    for offset in range(0, len(per_rank[0]), LOCAL_BATCH):
        batch = [i for indices in per_rank for i in indices[offset : offset + LOCAL_BATCH]]
        x, y = dataset[batch]
        loss = torch.nn.functional.mse_loss(reference(x), y)  # 合并批量的 16 个样本一起求平均
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        reference_losses.append(loss.item())
print(f"单进程训练了 {len(reference_losses)} 步，每步的合并批量有 {len(batch)} 个样本")
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
