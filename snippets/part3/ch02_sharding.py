"""第三部分第 2 章：ZeRO / FSDP、张量并行、流水线并行各让每张卡放多少显存；用 FSDP2 在 CPU 上真的切一次模型。

worker 的路径 ``Path("snippets/part3/_fsdp_worker.py")`` 相对于仓库根目录：构建网站、运行测试、
在根目录运行 ``python snippets/part3/ch02_sharding.py`` 时，当前目录都是仓库根目录。
"""

# --8<-- [start:zero_table]
GB = 1e9  # 和第二部分第 6 页一样，1 GB = 10⁹ 字节
MODELS = {"7B": 7e9, "70B": 70e9}
DEVICE_COUNTS = [8, 64]
GPU_GB = 80  # 一张 80 GB 的数据中心显卡
# 混合精度 Adam 每个参数 16 字节：bf16 权重 2 + bf16 梯度 2 + fp32 主权重、Adam 的 m 和 v 共 12
WEIGHT_BYTES, GRAD_BYTES, OPTIMIZER_BYTES = 2, 2, 12
ZERO_STAGES = {
    0: "数据并行（不切分）",
    1: "ZeRO-1：切分优化器状态",
    2: "ZeRO-2：再切分梯度",
    3: "ZeRO-3 / FSDP：再切分权重",
}


def zero_bytes_per_param(stage: int, n_devices: int) -> float:
    """ZeRO 第 stage 级时，平均每个参数在每张卡上占多少字节（只算权重、梯度、优化器状态）。"""
    optimizer = OPTIMIZER_BYTES / n_devices if stage >= 1 else OPTIMIZER_BYTES
    grads = GRAD_BYTES / n_devices if stage >= 2 else GRAD_BYTES
    weights = WEIGHT_BYTES / n_devices if stage >= 3 else WEIGHT_BYTES
    return weights + grads + optimizer


def cell(gigabytes: float) -> str:
    return f"{gigabytes:,.1f} GB {'✅' if gigabytes <= GPU_GB else '❌'}"


zero_gb = {
    (stage, model, n): MODELS[model] * zero_bytes_per_param(stage, n) / GB
    for stage in ZERO_STAGES
    for model in MODELS
    for n in DEVICE_COUNTS
}
columns = [(model, n) for model in MODELS for n in DEVICE_COUNTS]
print("| 每张卡上的显存 | " + " | ".join(f"{model}，{n} 张卡" for model, n in columns) + " |")
print("|---|" + "---:|" * len(columns))
for stage, name in ZERO_STAGES.items():
    print(f"| {name} | " + " | ".join(cell(zero_gb[stage, model, n]) for model, n in columns) + " |")
# --8<-- [end:zero_table]

# --8<-- [start:zero_paper]
# 核对：ZeRO 论文图 1 的例子是 75 亿个参数、64 张卡
paper_gb = {stage: 7.5e9 * zero_bytes_per_param(stage, 64) / GB for stage in ZERO_STAGES}
labels = {0: "不切分", 1: "ZeRO-1", 2: "ZeRO-2", 3: "ZeRO-3"}
print("75 亿参数、64 张卡，每张卡:", "，".join(f"{labels[s]} {gb:.1f} GB" for s, gb in paper_gb.items()))
# --8<-- [end:zero_paper]

# --8<-- [start:fsdp_run]
import tempfile
from pathlib import Path

import torch
from _ddp_worker import run_torchrun
from _fsdp_worker import LR, STEPS, make_batch, make_model

WORKER = Path("snippets/part3/_fsdp_worker.py")
WORLD_SIZE = 2
workdir = tempfile.TemporaryDirectory(prefix="hello-pytorch-fsdp-")
OUT = Path(workdir.name)
fsdp_logs = run_torchrun(WORKER, "--out", str(OUT), nproc=WORLD_SIZE)
for rank, lines in fsdp_logs.items():
    for line in lines:
        print(f"[rank {rank}] {line}")
# --8<-- [end:fsdp_run]

# --8<-- [start:fsdp_check]
# 不切分的对照：同一个初始模型、同一个优化器，在合并批量（两个 rank 的样本合在一起）上训练
reference = make_model()
optimizer = torch.optim.Adam(reference.parameters(), lr=LR)
x, y = make_batch()
for _ in range(STEPS):
    loss = torch.nn.functional.mse_loss(reference(x), y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()

results = [torch.load(OUT / f"rank{rank}.pt", weights_only=True) for rank in range(WORLD_SIZE)]
full = results[0]["full"]  # rank 0 用 full_tensor() 收集回来的完整参数
# 把各 rank 的分片按第 0 维拼起来，应该正好是完整参数
shards_cover_full = all(
    torch.equal(torch.cat([result["local"][name] for result in results]), full[name]) for name in full
)
max_param_diff = max((full[name] - p.detach()).abs().max().item() for name, p in reference.named_parameters())
params_match = all(
    torch.allclose(full[name], p.detach(), rtol=1e-5, atol=1e-6) for name, p in reference.named_parameters()
)
print("各 rank 的分片拼起来等于完整参数:", shards_cover_full)
print(f"FSDP 训练 {STEPS} 步后的参数与不切分的模型最多相差 {max_param_diff:.1e}，allclose: {params_match}")
# --8<-- [end:fsdp_check]

# --8<-- [start:parallel_table]
TP = 8  # 张量并行的度：一台 8 卡机器内部，NVLink 带宽高
layouts = {
    f"张量并行 t={TP}": (TP, TP),
    f"流水线并行 p={TP}": (TP, TP),
    f"张量并行 t={TP} × 流水线并行 p={TP}": (TP * TP, TP * TP),
    f"张量并行 t={TP} × 数据并行 {TP} 路（ZeRO-1）": (TP * TP, None),
}


def layout_gb(model: str, devices: int, split: int | None) -> float:
    n = MODELS[model]
    if split is not None:  # 每张卡只放模型的 1/split：权重、梯度、优化器状态一起切
        return n * (WEIGHT_BYTES + GRAD_BYTES + OPTIMIZER_BYTES) / split / GB
    # 张量并行切开一份模型，再在数据并行的各路之间用 ZeRO-1 切分优化器状态
    per_tp = n / TP
    return per_tp * zero_bytes_per_param(1, devices // TP) / GB


layout_table = {
    (name, model): layout_gb(model, devices, split)
    for name, (devices, split) in layouts.items()
    for model in MODELS
}
print("| 切分方式 | 卡数 | " + " | ".join(f"每张卡：{model}" for model in MODELS) + " |")
print("|---|---:|" + "---:|" * len(MODELS))
for name, (devices, _) in layouts.items():
    print(f"| {name} | {devices} | " + " | ".join(cell(layout_table[name, model]) for model in MODELS) + " |")
# --8<-- [end:parallel_table]

# --8<-- [start:summary]
ddp_70b = zero_gb[0, "70B", 64]
zero3_70b = {n: zero_gb[3, "70B", n] for n in DEVICE_COUNTS}
print(
    f"不切分时，70B 模型每张卡要 **{ddp_70b:,.0f} GB**，卡再多也一样；"
    f"ZeRO-3 / FSDP 把它摊到 8 张卡上是 **{zero3_70b[8]:,.0f} GB**，64 张卡上是 **{zero3_70b[64]:.1f} GB**。"
    f"在本机的 {WORLD_SIZE} 个进程上，FSDP2 让每个进程只保存一半参数，"
    f"训练 {STEPS} 步的结果与不切分的模型{'一致' if params_match else '**不一致**'}（最大差 {max_param_diff:.1e}）。"
)
# --8<-- [end:summary]
