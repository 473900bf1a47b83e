"""第三部分第 3 章：同一个 worker 从一台机器的 2 个进程搬到两台 8 卡机器的 16 个进程，哪些数字跟着变。

这一页的多机命令没有在构建时运行，但表里的数字都由代码算出：数据怎样分，直接问第 1 页 worker
自己的 DistributedSampler 和 DataLoader（``data_plan``）；每个进程的编号按 torchrun 分配编号的规则算出
（``torchrun_ranks``；测试在一台机器上启动两个 torchrun、让它们像两个节点那样会合，核对了这条规则）。
"""

# --8<-- [start:layouts]
from _ddp_worker import LOCAL_BATCH, N_SAMPLES, data_plan

# (机器数 nnodes, 每台机器的进程数 nproc_per_node)
LAYOUTS = {"第 1 页（构建网站时）": (1, 2), "两台 8 卡机器": (2, 8)}


def torchrun_ranks(nnodes: int, nproc_per_node: int) -> list[dict[str, int]]:
    """torchrun 给每个进程的编号：节点按会合时领到的编号 GROUP_RANK 排队，RANK 接着往下数。"""
    return [
        {
            "GROUP_RANK": node,
            "LOCAL_RANK": local,
            "RANK": node * nproc_per_node + local,
            "WORLD_SIZE": nnodes * nproc_per_node,
            "LOCAL_WORLD_SIZE": nproc_per_node,
        }
        for node in range(nnodes)
        for local in range(nproc_per_node)
    ]


def span(values) -> str:
    values = sorted(set(values))
    if len(values) == 1:
        return str(values[0])
    return "、".join(map(str, values)) if len(values) <= 2 else f"{values[0]} … {values[-1]}"


def describe(nnodes: int, nproc_per_node: int) -> dict[str, str]:
    ranks = torchrun_ranks(nnodes, nproc_per_node)
    world_size = ranks[0]["WORLD_SIZE"]
    plan = data_plan(world_size)
    return {
        "机器（节点，node）数": str(nnodes),
        "每台机器的进程数": str(nproc_per_node),
        "进程总数（world size）": str(world_size),
        "`RANK`": span(r["RANK"] for r in ranks),
        "`LOCAL_RANK`（每台机器上）": span(r["LOCAL_RANK"] for r in ranks),
        f"每个 rank 分到的样本（共 {N_SAMPLES} 个）": str(plan["per_rank"]),
        "每轮的步数": str(plan["steps"]),
        f"每个 rank 每步的样本（最多 {LOCAL_BATCH} 个）": span(plan["batch_sizes"]),
        "每步的合并批量": span(plan["combined"]),
    }


layouts = {name: describe(*shape) for name, shape in LAYOUTS.items()}
print("| | " + " | ".join(layouts) + " |")
print("|---|" + "---|" * len(layouts))
for row in next(iter(layouts.values())):
    print(f"| {row} | " + " | ".join(layout[row] for layout in layouts.values()) + " |")
# --8<-- [end:layouts]

# --8<-- [start:data_note]
plan_2, plan_16 = data_plan(2), data_plan(16)
print(
    f"16 个进程时，{N_SAMPLES} 个样本每个 rank 只分到 {plan_16['per_rank']} 个，"
    f"不够一个 {LOCAL_BATCH} 个样本的小批量：每轮只有 {plan_16['steps']} 步，"
    f"合并批量是 {plan_16['combined'][0]}，而不是 {LOCAL_BATCH} × 16 = {LOCAL_BATCH * 16}。"
    f"2 个进程时则是每轮 {plan_2['steps']} 步、合并批量 {plan_2['combined'][0]}。"
    "脚本不用改，只是这个演示用的数据集太小；每个 rank 分到的样本远多于一批时，"
    f"每一步的合并批量才是 {LOCAL_BATCH} × 进程总数（每轮最后一步的批可能不满）。"
)
# --8<-- [end:data_note]

# --8<-- [start:fsdp_note]
import torch
from _fsdp_worker import GLOBAL_BATCH
from _fsdp_worker import make_model as make_fsdp_model

last_rows = make_fsdp_model()[-1].weight.shape[0]
# FSDP2 按第 0 维切分的规则和 torch.chunk 一样：切不满 16 份时，后面的 rank 分到空的分片
row_shards = [len(chunk) for chunk in torch.chunk(torch.arange(last_rows), 16)]
empty_ranks = 16 - len(row_shards)
print(
    f"那个演示同样很小：16 个进程时，每个 rank 只分到合并批量 {GLOBAL_BATCH} 个样本里的 "
    f"{GLOBAL_BATCH // 16} 个；最后一层的权重只有 {last_rows} 行，{len(row_shards)} 个 rank 各分到 "
    f"{row_shards[0]} 行，其余 {empty_ranks} 个 rank 的分片是空的（FSDP2 允许这样不均匀的切分）。"
)
# --8<-- [end:fsdp_note]

# --8<-- [start:env_table]
NNODES, NPROC_PER_NODE = LAYOUTS["两台 8 卡机器"]
cluster = torchrun_ranks(NNODES, NPROC_PER_NODE)
second_node_first = next(r for r in cluster if r["GROUP_RANK"] == 1 and r["LOCAL_RANK"] == 0)
rows = [
    ("`RANK`", "全局编号", span(r["RANK"] for r in cluster)),
    ("`LOCAL_RANK`", "本机内的编号，用来选 GPU", span(r["LOCAL_RANK"] for r in cluster)),
    ("`WORLD_SIZE`", "进程总数", span(r["WORLD_SIZE"] for r in cluster)),
    ("`LOCAL_WORLD_SIZE`", "本机的进程数", span(r["LOCAL_WORLD_SIZE"] for r in cluster)),
    ("`GROUP_RANK`", "节点编号（会合时领到）", span(r["GROUP_RANK"] for r in cluster)),
    ("`MASTER_ADDR`、`MASTER_PORT`", "节点 0 上为进程组通信准备的地址和端口", "由 torchrun 填写"),
    ("`TORCHELASTIC_RESTART_COUNT`", "这是第几次重启", "0（没有重启过）"),
]
print(f"| 环境变量 | 含义 | {NNODES} 台 {NPROC_PER_NODE} 卡机器上的取值 |")
print("|---|---|---|")
for name, meaning, value in rows:
    print(f"| {name} | {meaning} | {value} |")
print(
    f"\n领到节点编号 1 的那台机器上，`LOCAL_RANK` 为 0 的进程 `RANK` 是 {second_node_first['RANK']}，"
    "用的却是它那台机器的 `cuda:0`。"
)
# --8<-- [end:env_table]
