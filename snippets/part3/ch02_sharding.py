"""第三部分第 2 章：ZeRO / FSDP、张量并行、流水线并行各让每张卡放多少显存；用 FSDP2 在 CPU 上真的切一次模型。

worker 的路径 ``Path("snippets/part3/_fsdp_worker.py")`` 相对于仓库根目录：构建网站、运行测试、
在根目录运行 ``python snippets/part3/ch02_sharding.py`` 时，当前目录都是仓库根目录。
"""

# --8<-- [start:zero_table]
GB = 1e9  # 和第二部分第 6 页一样，1 GB = 10⁹ 字节
MODELS = {"7B": 7e9, "70B": 70e9}
DEVICE_COUNTS = [8, 64]
GPU_GB = 80  # 一张 80 GB 的数据中心显卡
# ZeRO 论文的记账：16 位权重 2 + 16 位梯度 2 + 优化器状态 12（fp32 主权重、Adam 的 m 和 v 各 4）
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
    return f"{gigabytes:,.1f} GB {'✓' if gigabytes <= GPU_GB else '✗'}"


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
# 核对：ZeRO 论文图 1 的例子是 75 亿个参数、64 张卡，图上标的每张卡显存（GB）
PAPER_FIGURE_1_GB = {0: 120, 1: 31.4, 2: 16.6, 3: 1.9}
paper_gb = {stage: 7.5e9 * zero_bytes_per_param(stage, 64) / GB for stage in ZERO_STAGES}
labels = {0: "不切分", 1: "ZeRO-1", 2: "ZeRO-2", 3: "ZeRO-3"}
print("75 亿参数、64 张卡，每张卡:", "，".join(f"{labels[s]} {gb:.1f} GB" for s, gb in paper_gb.items()))
paper_agrees = all(round(paper_gb[s], 1) == PAPER_FIGURE_1_GB[s] for s in ZERO_STAGES)
print("保留一位小数后与论文图 1 的数字相同:", paper_agrees)
# --8<-- [end:zero_paper]


# --8<-- [start:zero_reading]
def smallest_stage_that_fits(model: str, n: int) -> int | None:
    return next((stage for stage in ZERO_STAGES if zero_gb[stage, model, n] <= GPU_GB), None)


for model in MODELS:
    for n in DEVICE_COUNTS:
        stage = smallest_stage_that_fits(model, n)
        verdict = (
            "哪一级都装不下"
            if stage is None
            else f"不切分就装得下（{zero_gb[0, model, n]:,.1f} GB）"
            if stage == 0
            else f"最少要 {labels[stage]}（每张卡 {zero_gb[stage, model, n]:,.1f} GB；"
            f"低一级是 {zero_gb[stage - 1, model, n]:,.1f} GB）"
        )
        print(f"- {model} 模型、{n} 张卡：{verdict}；")
print(
    f"- 卡数从 {DEVICE_COUNTS[0]} 增加到 {DEVICE_COUNTS[-1]}，70B 模型每张卡的显存："
    + "，".join(
        f"{labels[stage]} 从 {zero_gb[stage, '70B', DEVICE_COUNTS[0]]:,.1f} GB 降到 "
        f"{zero_gb[stage, '70B', DEVICE_COUNTS[-1]]:,.1f} GB"
        for stage in (1, 2, 3)
    )
    + "。"
)
# --8<-- [end:zero_reading]

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
        if not line.startswith("小 GPT，"):  # 小 GPT 的几行留到 2.4 节再看
            print(f"[rank {rank}] {line}")
# --8<-- [end:fsdp_run]

# --8<-- [start:fsdp_shards]
results = [torch.load(OUT / f"rank{rank}.pt", weights_only=True) for rank in range(WORLD_SIZE)]
full = results[0]["full"]  # rank 0 用 full_tensor() 收集回来的完整参数
local_counts = [sum(t.numel() for t in result["local"].values()) for result in results]
full_count = sum(t.numel() for t in full.values())


def shape_text(t):
    return "×".join(str(d) for d in t.shape)


weights = [name for name in full if name.endswith("weight")]
print(
    "每个 rank 都只保存每个权重的一部分行："
    + "；".join(
        f"`{name}` 完整是 {shape_text(full[name])}，rank 0 保存 {shape_text(results[0]['local'][name])}"
        for name in weights
    )
    + f"。合计：完整模型 {full_count} 个参数，"
    + "，".join(f"rank {rank} 保存 {count} 个" for rank, count in enumerate(local_counts))
    + "。"
)
# --8<-- [end:fsdp_shards]

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

# 把各 rank 的分片按第 0 维拼起来，应该正好是完整参数
shards_cover_full = all(
    torch.equal(torch.cat([result["local"][name] for result in results]), full[name]) for name in full
)
RTOL, ATOL = 1e-5, 1e-6  # 容许浮点舍入的微小差别
params_equal = all(torch.equal(full[name], p.detach()) for name, p in reference.named_parameters())
max_param_diff = max((full[name] - p.detach()).abs().max().item() for name, p in reference.named_parameters())
params_match = all(
    torch.allclose(full[name], p.detach(), rtol=RTOL, atol=ATOL) for name, p in reference.named_parameters()
)
print("各 rank 的分片拼起来逐位等于完整参数（torch.equal）:", shards_cover_full)
print(f"FSDP 训练 {STEPS} 步后的参数与不切分的模型：逐位相同（torch.equal）: {params_equal}")
print(f"最大绝对差 {max_param_diff:.1e}，在容差 rtol={RTOL:g}、atol={ATOL:g} 内: {params_match}")
# --8<-- [end:fsdp_check]

# --8<-- [start:fsdp_mixed]
mixed = torch.load(OUT / "mixed0.pt", weights_only=True)  # rank 0 在混合精度那一步里看到的
ELEMENT_BYTES = {"torch.float32": 4, "torch.bfloat16": 2}
print("| 0.weight 的 | 类型 | rank 0 上的形状 | 每个数的字节 |")
print("|---|---|---|---:|")
for name, (dtype, shape) in mixed["kinds"].items():
    print(f"| {name} | `{dtype}` | {'×'.join(map(str, shape))} | {ELEMENT_BYTES[dtype]} |")
mixed_bytes_per_param = mixed["state_bytes"] / mixed["local_params"]
print(
    f"\n整个模型：rank 0 长期保存的参数分片、梯度分片和 Adam 的 m、v 共 {mixed['state_bytes']:,} 字节，"
    f"平均每个它保存的参数 {mixed_bytes_per_param:g} 字节。"
)
# --8<-- [end:fsdp_mixed]

# --8<-- [start:gpt_run]
from _fsdp_worker import GPT_BATCH, GPT_VARIANTS
from _tinygpt import GPTConfig

for rank, lines in fsdp_logs.items():
    for line in lines:
        if line.startswith("小 GPT，"):
            print(f"[rank {rank}] {line}")
gpt = [torch.load(OUT / f"gpt{rank}.pt", weights_only=True) for rank in range(WORLD_SIZE)]
runs = gpt[0]  # rank 0 的记录
# --8<-- [end:gpt_run]

# --8<-- [start:gpt_table]
print(
    "| 做法 | 为反向传播保存的字节 | 与 fp32 相比 | 第 0 个块每步前向 | 训练状态（字节/参数） | 第 1 步 → 最后一步的损失 |"
)
print("|---|---:|---:|---:|---:|---|")
for name, run in runs.items():
    print(
        f"| {name} | {run['saved_bytes']:,} | {run['saved_bytes'] / runs['fp32']['saved_bytes']:.0%} "
        f"| {run['block_calls']} 遍 | {run['state_bytes'] / run['local_params']:g} "
        f"| {run['losses'][0]:.4f} → {run['losses'][-1]:.4f} |"
    )
# --8<-- [end:gpt_table]

# --8<-- [start:gpt_results]
STEPS_GPT = len(runs["fp32"]["losses"])


def same_run(a: str, b: str) -> bool:
    """两种做法在每个 rank 上的每步损失和最后的完整参数都逐位相同。"""
    return all(
        result[a]["losses"] == result[b]["losses"]
        and all(torch.equal(result[a]["state"][n], result[b]["state"][n]) for n in result[a]["state"])
        for result in gpt
    )


checkpoint_changes_nothing = {dtype: same_run(dtype, f"{dtype} + 检查点") for dtype in ("fp32", "bf16")}
loss_gap = max(
    abs(a - b)
    for result in gpt
    for a, b in zip(result["fp32"]["losses"], result["bf16"]["losses"], strict=True)
)
print(
    f"激活检查点前后，每步的损失和最后的参数逐位相同（torch.equal）：fp32 {checkpoint_changes_nothing['fp32']}，"
    f"bf16 {checkpoint_changes_nothing['bf16']}"
)
print(
    f"bf16 与 fp32：{STEPS_GPT} 步里两个 rank 的损失最多差 {loss_gap:.1e}；"
    f"最后一步 rank 0 的损失 {runs['fp32']['losses'][-1]:.4f} 与 {runs['bf16']['losses'][-1]:.4f}"
)
# --8<-- [end:gpt_results]


# --8<-- [start:gpt_formula]
def saved_bytes_formula(config: GPTConfig, batch: int, seq: int, compute: int, recompute: bool) -> int:
    """小 GPT 前向一次为反向传播保存的字节数（不算参数）。compute 是计算类型每个数的字节：fp32 为 4，bf16 为 2。"""
    tokens, d = batch * seq, config.n_embd
    if recompute:
        blocks = config.n_layer * tokens * d * compute  # 检查点：每个块只留下输入
    else:
        # 每个块、每个词元：16·d 个数（见正文），LayerNorm 的均值和标准差倒数各 2 个，每个头 1 个 logsumexp（fp32）
        blocks = config.n_layer * tokens * (16 * d * compute + 4 * compute + config.n_head * 4)
    outside = (
        tokens * 8
        + seq * 8  # 输入的字符编号和位置编号（int64）
        + tokens * (2 * d + 2) * compute  # 最后一个 LayerNorm：输入、输出、均值和标准差倒数
        + tokens * config.vocab_size * 4  # 交叉熵里 log_softmax 的输出（fp32）
        + tokens * 8
        + 4  # 目标（int64）和一个标量
    )
    return blocks + outside


config, local_batch = GPTConfig(), GPT_BATCH // WORLD_SIZE
formula = {
    name: saved_bytes_formula(config, local_batch, config.block_size, 2 if bf16 else 4, recompute)
    for name, bf16, recompute in GPT_VARIANTS
}
formula_agrees = all(formula[name] == run["saved_bytes"] for name, run in runs.items())
per_token_layer = {name: 16 * config.n_embd * (2 if bf16 else 4) for name, bf16, _ in GPT_VARIANTS}
print(f"每个 rank {local_batch} 道题 × {config.block_size} 个字符 = {local_batch * config.block_size} 个词元")
print(
    f"按公式算出的四个数：{', '.join(f'{n:,}' for n in formula.values())}；与数出来的逐字节相同: {formula_agrees}"
)
print(
    f"不用检查点时，每个块为每个词元保存 16 × {config.n_embd} = {16 * config.n_embd} 个数，"
    f"fp32 {per_token_layer['fp32']:,} 字节、bf16 {per_token_layer['bf16']:,} 字节；"
    f"用检查点时只剩块的输入 {config.n_embd} 个数"
)
# --8<-- [end:gpt_formula]

# --8<-- [start:gpt_timing]
import statistics


def quartiles(values: list[float]) -> tuple[float, float, float]:
    q1, median, q3 = statistics.quantiles(values, n=4)
    return q1, median, q3


print("| 做法 | 每步用时（中位数） | 与同一轮 fp32 的用时比：中位数（中间一半轮次） |")
print("|---|---:|---:|")
step_ratios = {}
for name, run in runs.items():
    seconds = run["seconds"][1:]  # 第 1 步有一次性的开销，不算
    step_ratios[name] = [s / f for s, f in zip(seconds, runs["fp32"]["seconds"][1:], strict=True)]
    q1, median, q3 = quartiles(step_ratios[name])
    ratio = "—" if name == "fp32" else f"{median:.2f}（{q1:.2f}–{q3:.2f}）"
    print(f"| {name} | {statistics.median(seconds) * 1e3:.1f} ms | {ratio} |")
# --8<-- [end:gpt_timing]


# --8<-- [start:gpt_verdict]
def direction(ratios: list[float]) -> str:
    """中间一半轮次的用时比都在 1 的同一侧，才说快或慢。"""
    q1, _, q3 = quartiles(ratios)
    return "慢" if q1 > 1 else "快" if q3 < 1 else "分不出快慢"


verdicts = {name: direction(step_ratios[name]) for name in runs if name != "fp32"}
print(
    "**这一次的结论**（计时，每次构建不同）：与 fp32 相比，"
    + "；".join(f"{name} {verdict}" for name, verdict in verdicts.items())
    + f"（每种做法 {len(step_ratios['fp32'])} 步，按同一轮的用时比判断）。"
)
# --8<-- [end:gpt_verdict]

# --8<-- [start:gpt_ledger]
# 把公式里每个块的部分放大到 GPT-3 6.7B 的形状（32 层、d = 4096、32 个头、2048 个词元一条序列），bf16 计算
BIG = GPTConfig(n_layer=32, n_embd=4096, n_head=32, block_size=2048)
SEQ = BIG.block_size
no_recompute = BIG.n_layer * SEQ * (16 * BIG.n_embd * 2 + 4 * 2 + BIG.n_head * 4)  # 每条序列，只算各块
inputs_only = BIG.n_layer * SEQ * BIG.n_embd * 2
one_block = SEQ * (16 * BIG.n_embd * 2 + 4 * 2 + BIG.n_head * 4)  # 反向传播时重算的那一个块
with_recompute = inputs_only + one_block
state_7b_8 = zero_gb[3, "7B", 8]  # 2.1 节：7B 模型、8 张卡、ZeRO-3，每张卡的训练状态
SEQUENCES = 8  # 每张卡每步算几条序列
total = {  # 每张卡：训练状态 + 激活值
    "不用检查点": state_7b_8 + SEQUENCES * no_recompute / GB,
    "用检查点": state_7b_8 + SEQUENCES * with_recompute / GB,
}
print(
    f"按同样的结构放大到 GPT-3 6.7B 的形状（{BIG.n_layer} 层、d = {BIG.n_embd}、{BIG.n_head} 个头），"
    f"bf16 计算，每条序列 {SEQ} 个词元，各块为反向传播保存的激活值："
    f"不用检查点 **{no_recompute / GB:.1f} GB**；用检查点只留下各块的输入 {inputs_only / GB:.2f} GB，"
    f"反向传播时再加上正在重算的那一个块 {one_block / GB:.2f} GB，共 **{with_recompute / GB:.2f} GB**。"
    f"2.1 节的表里，7B 模型在 8 张卡上用 ZeRO-3，每张卡的训练状态是 {state_7b_8:.1f} GB；"
    f"每张卡每步算 {SEQUENCES} 条序列时，合计 "
    + "，".join(f"{name} {gb:.1f} GB {'✓' if gb <= GPU_GB else '✗'}" for name, gb in total.items())
    + f"（一张卡 {GPU_GB} GB，还没算嵌入层、输出层和临时的缓冲区）。"
)
# --8<-- [end:gpt_ledger]

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
    f"在本机的 {WORLD_SIZE} 个进程上，FSDP2 让每个进程只保存 {full_count} 个参数中的 {max(local_counts)} 个，"
    f"训练 {STEPS} 步的参数与不切分的模型"
    + (
        "逐位相同。"
        if params_equal
        else f"只差浮点舍入（最大差 {max_param_diff:.1e}，在容差之内）。"
        if params_match
        else f"**超出了容差**（最大差 {max_param_diff:.1e}）。"
    )
)
# --8<-- [end:summary]

# --8<-- [start:exercise_min_devices]
import math


def bytes_per_param(stage: int, n: float, weight: float, grad: float, optimizer: float) -> float:
    """和 zero_bytes_per_param 一样的公式，只是权重、梯度、优化器状态各占几个字节可以换。"""
    return (
        (weight / n if stage >= 3 else weight)
        + (grad / n if stage >= 2 else grad)
        + (optimizer / n if stage >= 1 else optimizer)
    )


def min_devices(model: str, stage: int, layout: tuple[int, int, int]) -> int | None:
    """每张卡装得下（≤ 80 GB）最少要几张卡；卡再多也装不下时返回 None。"""
    if MODELS[model] * bytes_per_param(stage, math.inf, *layout) / GB > GPU_GB:
        return None  # 卡数趋于无穷时还剩下的那部分就已经超过 80 GB
    return next(
        n for n in range(1, 10_000) if MODELS[model] * bytes_per_param(stage, n, *layout) / GB <= GPU_GB
    )


LEDGERS = {
    "ZeRO 论文的存法（2 + 2 + 12）": (WEIGHT_BYTES, GRAD_BYTES, OPTIMIZER_BYTES),
    "torch.autocast 的存法（4 + 4 + 8）": (4, 4, 8),
}
fewest = {
    (ledger, model, stage): min_devices(model, stage, layout)
    for ledger, layout in LEDGERS.items()
    for model in MODELS
    for stage in ZERO_STAGES
}
for ledger, layout in LEDGERS.items():
    print(ledger)
    for model in MODELS:
        answers = []
        for stage in ZERO_STAGES:
            n = fewest[ledger, model, stage]
            floor_gb = MODELS[model] * bytes_per_param(stage, math.inf, *layout) / GB
            answers.append(
                f"{labels[stage]} {n} 张"
                if n is not None
                else f"{labels[stage]} 装不下（卡再多也降不到 {floor_gb:,.0f} GB 以下）"
            )
        print(f"  {model}：" + "，".join(answers))
# --8<-- [end:exercise_min_devices]


# --8<-- [start:exercise_shards]
def shard_rows(rows: int, world_size: int) -> list[int]:
    """FSDP2 按第 0 维切分的规则（torch.chunk）：每份 ceil(rows / world_size) 行，切不满时后面的 rank 分到 0 行。"""
    sizes = [len(chunk) for chunk in torch.chunk(torch.arange(rows), world_size)]
    return sizes + [0] * (world_size - len(sizes))


def shard_counts(world_size: int) -> tuple[list[int], int]:
    """每个 rank 的分片里有几个参数，以及 FSDP2 给每个 rank 分配的存储能放几个参数（补齐到第一份的大小）。"""
    kept, allocated = [0] * world_size, 0
    for p in make_model().parameters():
        per_row = p.numel() // p.shape[0]  # 每一行有几个数
        sizes = shard_rows(p.shape[0], world_size)
        for rank, rows in enumerate(sizes):
            kept[rank] += rows * per_row
        allocated += sizes[0] * per_row  # rank 0 的那一份总是最大的
    return kept, allocated


shard_table = {world_size: shard_counts(world_size) for world_size in (2, 3, 16)}
print(f"按规则算的 2 个进程与 2.3 节真正运行的结果相同: {shard_table[2][0] == local_counts}")
for world_size, (kept, allocated) in shard_table.items():
    print(
        f"{world_size:2d} 个进程：分片里的参数 最多 {max(kept)} 个、最少 {min(kept)} 个（合计 {sum(kept)}）；"
        f"每个 rank 分配的存储 {allocated} 个，{world_size} 个 rank 合计 {allocated * world_size} 个，"
        f"是完整模型的 {allocated * world_size / full_count:.2f} 倍"
    )
print(
    "3 个进程时各参数的行数怎样分（rank 0/1/2）："
    + "，".join(
        f"{name} {'/'.join(map(str, shard_rows(p.shape[0], 3)))}"
        for name, p in make_model().named_parameters()
    )
)
# --8<-- [end:exercise_shards]

# --8<-- [start:exercise_16_gpus]
N_GPUS = 16
candidates = {
    f"ZeRO-{stage}，{N_GPUS} 张卡": zero_bytes_per_param(stage, N_GPUS) * MODELS["70B"] / GB
    for stage in (1, 2, 3)
} | {
    f"张量并行 t={TP} × 流水线并行 p={N_GPUS // TP}": layout_gb("70B", N_GPUS, N_GPUS),
    f"张量并行 t={TP} × 数据并行 {N_GPUS // TP} 路（ZeRO-1）": layout_gb("70B", N_GPUS, None),
}
for name, gigabytes in candidates.items():
    print(f"70B，{name}：每张卡 {cell(gigabytes)}")
even_split_gb = 16 * MODELS["70B"] / N_GPUS / GB  # 把每个参数的 16 字节均分到 16 张卡上
print(
    f"把 16 字节/参数均分到 {N_GPUS} 张卡，每张卡 {even_split_gb:.1f} GB，"
    f"离 80 GB 只剩 {GPU_GB - even_split_gb:.1f} GB 给激活值"
)


def bubble(p: int, m: int) -> float:
    """GPipe 的排法：p 段、m 个微批量时，流水线气泡占的时间比例。"""
    return (p - 1) / (m + p - 1)


p_stages = N_GPUS // TP
fewest_micro = next(m for m in range(1, 1000) if bubble(p_stages, m) < 0.05)
print(
    f"流水线 p={p_stages}：微批量 m=4 时气泡 {bubble(p_stages, 4):.0%}，要让气泡少于 5% 至少要 m={fewest_micro}"
)
# --8<-- [end:exercise_16_gpus]

# --8<-- [start:exercise_selective]
from _fsdp_worker import SEED, Checkpointed, SavedTensors, gpt_loss
from _tinygpt import GPT, addition_data, get_batch
from torch.utils.flop_counter import FlopCounterMode

x_local, y_local = (
    t.clone() for t in get_batch(addition_data().train, local_batch, torch.Generator().manual_seed(SEED))
)


def checkpoint_where(where: str) -> dict[str, int]:
    """不切分的小 GPT（fp32，一个 rank 那么多题），检查点套在 where 上：保存的字节，前向、反向的浮点运算次数。"""
    torch.manual_seed(SEED)
    model = GPT(config)
    for i, block in enumerate(model.blocks):
        if where == "MLP":
            block.mlp = Checkpointed(block.mlp)
        elif where == "整个块":
            model.blocks[i] = Checkpointed(block)
    saved = SavedTensors()
    forward, backward = FlopCounterMode(display=False), FlopCounterMode(display=False)
    with saved, forward:
        loss = gpt_loss(model, x_local, y_local)
    with backward:
        loss.backward()  # 重算发生在反向传播里
    return {
        "saved": saved.nbytes,
        "forward": forward.get_total_flops(),
        "backward": backward.get_total_flops(),
    }


selective = {where: checkpoint_where(where) for where in ("不套", "MLP", "整个块")}
plain = selective["不套"]
for where, run in selective.items():
    recomputed = run["backward"] - plain["backward"]  # 反向传播比不套时多算的，就是重算
    print(
        f"{'不套检查点' if where == '不套' else '检查点套在' + where + '上'}：保存 {run['saved']:,} 字节"
        f"（不套时的 {run['saved'] / plain['saved']:.0%}），"
        f"重算的运算量是整个模型前向的 {recomputed / plain['forward']:.0%}"
    )
# --8<-- [end:exercise_selective]
