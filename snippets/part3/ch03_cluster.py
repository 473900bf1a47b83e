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

# --8<-- [start:exercise_four_by_four]
from _ddp_worker import make_data, make_sampler

dataset = make_data()


def samples_by_rank(nnodes: int, nproc_per_node: int) -> dict[int, list[int]]:
    """每个 RANK 第 1 轮拿到的样本编号：采样器只看 RANK 和 WORLD_SIZE，不看它在哪台机器上。"""
    return {
        r["RANK"]: list(make_sampler(dataset, r["RANK"], r["WORLD_SIZE"]))
        for r in torchrun_ranks(nnodes, nproc_per_node)
    }


four_by_four = describe(4, 4)
changed = [row for row in four_by_four if four_by_four[row] != layouts["两台 8 卡机器"][row]]
print(
    "四台 4 卡机器与两台 8 卡机器相比，变了的只有："
    + "；".join(f"{row.replace('`', '')}：{four_by_four[row]}" for row in changed)
)
where = {
    shape: {r["RANK"]: (r["GROUP_RANK"], r["LOCAL_RANK"]) for r in torchrun_ranks(*shape)}
    for shape in ((2, 8), (4, 4))
}
for rank in (0, 7, 8, 9, 15):
    print(
        f"RANK {rank:2d}：两台 8 卡时在节点 {where[2, 8][rank][0]} 的 cuda:{where[2, 8][rank][1]}，"
        f"四台 4 卡时在节点 {where[4, 4][rank][0]} 的 cuda:{where[4, 4][rank][1]}"
    )
same_samples = samples_by_rank(2, 8) == samples_by_rank(4, 4)
print(f"每个 RANK 拿到的样本，两种机器布局下完全相同: {same_samples}")
# --8<-- [end:exercise_four_by_four]

# --8<-- [start:exercise_local_rank_bug]
from collections import Counter

two_by_eight = torchrun_ranks(2, 8)  # 两台 8 卡机器上的 16 个进程，按 RANK 排好
right = [list(make_sampler(dataset, r["RANK"], r["WORLD_SIZE"])) for r in two_by_eight]
# 错把 LOCAL_RANK 当成 rank 传给采样器
wrong = [list(make_sampler(dataset, r["LOCAL_RANK"], r["WORLD_SIZE"])) for r in two_by_eight]
for name, split in (("传 RANK（正确）", right), ("误传 LOCAL_RANK", wrong)):
    uses = Counter(i for indices in split for i in indices)
    times = "、".join(map(str, sorted(set(uses.values()))))
    print(
        f"{name}：16 个进程这一轮用到 {len(uses)} 个不同的样本，每个用了 {times} 次，"
        f"{len(dataset) - len(uses)} 个一次也没用到"
    )
twins = [r["RANK"] for r in two_by_eight if wrong[r["RANK"]] == wrong[0]]
print(f"误传 LOCAL_RANK 时，和 RANK 0 拿到同样样本的进程: RANK {twins}")
# --8<-- [end:exercise_local_rank_bug]

# --8<-- [start:exercise_scale_data]
from torch.utils.data import DataLoader, DistributedSampler


def plan_for(n_samples: int, world_size: int, drop_last: bool = True) -> dict[str, int | list[int]]:
    """和第 1 页的 data_plan 一样问采样器和 DataLoader，只是样本数可以换。"""
    sampler = DistributedSampler(
        range(n_samples), num_replicas=world_size, rank=0, seed=0, drop_last=drop_last
    )
    sizes = [
        len(batch)
        for batch in DataLoader(range(n_samples), batch_size=LOCAL_BATCH, sampler=sampler).batch_sampler
    ]
    return {
        "per_rank": len(sampler),
        "steps": len(sizes),
        "combined": [size * world_size for size in sizes],
        "slots": len(sampler) * world_size,  # 所有 rank 这一轮合起来取了几个编号
    }


for drop_last in (True, False):
    plan = plan_for(N_SAMPLES, 24, drop_last)
    gap = plan["slots"] - N_SAMPLES
    print(
        f"三台 8 卡机器（24 个进程）、drop_last={drop_last}：每个 rank {plan['per_rank']} 个样本，"
        f"合起来 {plan['slots']} 个，" + (f"丢掉 {-gap} 个" if gap < 0 else f"有 {gap} 个是重复的")
    )
full_steps = 4  # 想要：每轮 4 步，每步都是满的合并批量 LOCAL_BATCH × 16
enough = next(
    n
    for n in range(N_SAMPLES, 100_000)
    if plan_for(n, 16)["steps"] >= full_steps and set(plan_for(n, 16)["combined"]) == {LOCAL_BATCH * 16}
)
print(
    f"16 个进程时，要每轮 {full_steps} 步、每步的合并批量都是 {LOCAL_BATCH * 16}，数据集至少要 {enough} 个样本"
    f"（第 1 页用的是 {N_SAMPLES} 个）"
)
# --8<-- [end:exercise_scale_data]
