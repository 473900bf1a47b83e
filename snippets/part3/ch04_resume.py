"""第三部分第 4 章：FSDP2 训练中途存分布式检查点，在 1 个进程里接着训练；一个 rank 崩溃后 torchrun 重启，从检查点接着训练。

worker 的路径 ``Path("snippets/part3/_resume_worker.py")`` 相对于仓库根目录：构建网站、运行测试、
在根目录运行 ``python snippets/part3/ch04_resume.py`` 时，当前目录都是仓库根目录。
"""

# --8<-- [start:full_run]
import tempfile
import warnings
from pathlib import Path

import torch
from _ddp_worker import run_torchrun
from _resume_worker import LR, SAVE_EVERY, STEPS, TrainState, load_checkpoint, make_model, train_steps

WORKER = Path("snippets/part3/_resume_worker.py")
WORLD_SIZE = 2
workdir = tempfile.TemporaryDirectory(prefix="hello-pytorch-resume-")
FULL = Path(workdir.name) / "full"  # 不中断的训练：检查点和最终参数都写在这里
FULL.mkdir()
full_logs = run_torchrun(WORKER, "--out", str(FULL), nproc=WORLD_SIZE)
for rank, lines in full_logs.items():
    for line in lines:
        print(f"[rank {rank}] {line}")
# --8<-- [end:full_run]

# --8<-- [start:files]
checkpoints = sorted((FULL / "checkpoints").iterdir(), key=lambda p: int(p.name.removeprefix("step")))
CHECKPOINT_STEP = 6  # 下面都从第 6 步的检查点接着训练：它在第 2 轮的中间
STEP6 = FULL / "checkpoints" / f"step{CHECKPOINT_STEP}"
print("检查点目录:", "、".join(p.name for p in checkpoints))
print(f"{STEP6.name} 里的文件:", "、".join(sorted(p.name for p in STEP6.iterdir())))
# --8<-- [end:files]


# --8<-- [start:one_process]
def resume_in_one_process(checkpoint: Path, restore_train_state: bool = True) -> torch.nn.Module:
    """没有进程组、不切分：把 2 个 rank 存的检查点读进一个普通模型，接着训练到第 STEPS 步。"""
    model = make_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    state = TrainState()
    with warnings.catch_warnings():  # 没有进程组时，DCP 提醒一句“假定在单个进程里读”：这正是我们要的
        warnings.filterwarnings("ignore", message="torch.distributed is disabled")
        load_checkpoint(model, optimizer, state, checkpoint, restore_train_state)
    train_steps(model, optimizer, state, rank=0, world_size=1, steps=STEPS - CHECKPOINT_STEP)
    return model


uninterrupted = torch.load(FULL / "final.pt", weights_only=True)  # 2 个 rank 不中断地训练 12 步


def max_diff(model: torch.nn.Module) -> float:
    return max((p.detach() - uninterrupted[name]).abs().max().item() for name, p in model.named_parameters())


def bitwise_equal(model: torch.nn.Module) -> bool:
    return all(torch.equal(p.detach(), uninterrupted[name]) for name, p in model.named_parameters())


RTOL, ATOL = 1e-5, 1e-6  # 容许浮点舍入：1 个进程对 16 个样本求平均，2 个 rank 先各对 8 个求平均再平均


def within_tolerance(model: torch.nn.Module) -> bool:
    return all(
        torch.allclose(p.detach(), uninterrupted[name], rtol=RTOL, atol=ATOL)
        for name, p in model.named_parameters()
    )


one = resume_in_one_process(STEP6)
forgot = resume_in_one_process(STEP6, restore_train_state=False)  # 只恢复模型和优化器
# 作为比较的尺度：后 6 步的训练本身让参数改变了多少
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="torch.distributed is disabled")
    at_step6 = make_model()
    load_checkpoint(at_step6, torch.optim.Adam(at_step6.parameters(), lr=LR), TrainState(), STEP6)
moved = max_diff(at_step6)
print(f"后 {STEPS - CHECKPOINT_STEP} 步的训练让参数最多改变 {moved:.1e}。\n")
print("| 在 1 个进程里从 step6 接着训练 | 与不中断的训练：最大绝对差 | 逐位相同 | 在容差内 |")
print("|---|---:|---|---|")
print(
    f"| 恢复模型、优化器、数据位置和随机数状态 | {max_diff(one):.1e} | {bitwise_equal(one)} | {within_tolerance(one)} |"
)
print(
    f"| 只恢复模型和优化器 | {max_diff(forgot):.1e} | {bitwise_equal(forgot)} | {within_tolerance(forgot)} |"
)
print(f"\n容差：rtol={RTOL:g}、atol={ATOL:g}")
# --8<-- [end:one_process]

# --8<-- [start:crash_run]
from _resume_worker import run_torchrun_elastic, torchrun_story

CRASH = Path(workdir.name) / "crash"  # 崩溃、重启的那次训练写在这里
CRASH.mkdir()
CRASH_AT = 8  # 第一次尝试时，rank 1 在第 8 步后结束自己；最近的检查点是第 6 步的
crash_story = torchrun_story(run_torchrun_elastic(WORKER, "--out", str(CRASH), "--crash-at", str(CRASH_AT)))
print("\n".join(crash_story))
# --8<-- [end:crash_run]

# --8<-- [start:crash_check]
restarted = torch.load(CRASH / "final.pt", weights_only=True)
restart_equal = all(torch.equal(restarted[name], uninterrupted[name]) for name in uninterrupted)
last_before_crash = CRASH_AT // SAVE_EVERY * SAVE_EVERY
print(f"崩溃前最近的检查点: step{last_before_crash}；重做了第 {last_before_crash + 1}–{CRASH_AT} 步")
print("重启后训练完的参数与不中断的训练逐位相同（torch.equal）:", restart_equal)
# --8<-- [end:crash_check]

# --8<-- [start:hang_limit]
import _ddp_worker
from _resume_worker import ATTEMPT_SECONDS, time_limit

PG_TIMEOUT = _ddp_worker.PROCESS_GROUP_TIMEOUT.total_seconds()
print(
    f"集合通信最多等 {PG_TIMEOUT:g} 秒，最多重启 1 次，每次尝试另留 {ATTEMPT_SECONDS} 秒："
    f"一个 rank 一直卡住时，最晚 ({PG_TIMEOUT:g} + {ATTEMPT_SECONDS}) × 2 = {time_limit(1, PG_TIMEOUT):g} 秒报错"
)
# --8<-- [end:hang_limit]

# --8<-- [start:summary]
print(
    f"2 个 rank 在第 {CHECKPOINT_STEP} 步存下的检查点，在 1 个进程里接着训练到第 {STEPS} 步，参数与不中断的训练"
    + (
        "逐位相同"
        if bitwise_equal(one)
        else f"只差浮点舍入（最大差 {max_diff(one):.1e}，在容差内）"
        if within_tolerance(one)
        else "**超出了容差**"
    )
    + f"；不恢复数据位置和随机数状态时差 {max_diff(forgot):.1e}，是后 {STEPS - CHECKPOINT_STEP} 步训练本身对参数的改变"
    f"（{moved:.1e}）的 {max_diff(forgot) / moved:.0%}。rank 1 在第 {CRASH_AT} 步崩溃、torchrun 重启后，从 step{last_before_crash} 接着训练完的参数与不中断的训练"
    + ("逐位相同。" if restart_equal else "**不同**。")
)
# --8<-- [end:summary]

# --8<-- [start:exercise_metadata]
from torch.distributed.checkpoint import FileSystemReader
from torch.distributed.checkpoint.metadata import TensorStorageMetadata

metadata = FileSystemReader(STEP6).read_metadata()  # 只读 .metadata，不读张量
files = {}  # 每个键的每一块存在哪个文件里
for index, info in metadata.storage_data.items():
    files.setdefault(index.fqn, []).append(info.relative_path)
print(f"`{STEP6.name}/.metadata` 里记了 {len(metadata.state_dict_metadata)} 个键，例如：\n")
print("| 键 | 完整形状 | 每一块的起点 → 形状 | 在哪个文件里 |")
print("|---|---|---|---|")
for key in (
    "model.0.weight",
    "model.2.bias",
    "optim.state.0.weight.exp_avg",
    "optim.state.0.weight.step",
    "train.rng",
    "train.step",
):
    entry = metadata.state_dict_metadata[key]
    if isinstance(entry, TensorStorageMetadata):
        shape = "×".join(map(str, entry.size)) or "标量"
        chunks = "；".join(f"{tuple(c.offsets)} → {tuple(c.sizes)}" for c in entry.chunks)
    else:
        shape, chunks = "不是张量（torch.save 存成字节）", "—"
    print(f"| `{key}` | {shape} | {chunks} | {'、'.join(f'`{path}`' for path in files[key])} |")
split = [key for key, paths in files.items() if len(paths) == 2]
single = {path: sum(paths == [path] for paths in files.values()) for path in ("__0_0.distcp", "__1_0.distcp")}
print(
    f"\n分成 2 块、每个 rank 存自己那一块的键 {len(split)} 个（模型参数，Adam 的 m、v）；"
    "只存 1 份的键：" + "，".join(f"`{path}` 里 {count} 个" for path, count in single.items())
)
# --8<-- [end:exercise_metadata]

# --8<-- [start:exercise_partial]
from _resume_worker import SEED


def resume_partly(restore_position: bool, restore_rng: bool) -> torch.nn.Module:
    """先完整地读回检查点，再把数据位置或随机数生成器退回起点，看看少恢复一样会怎样。"""
    model = make_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    state = TrainState()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="torch.distributed is disabled")
        load_checkpoint(model, optimizer, state, STEP6)
    if not restore_position:
        state.step = 0  # 数据从第 1 轮的第 1 批重新读
    if not restore_rng:
        state.generator.manual_seed(SEED)  # 噪声从头取
    train_steps(model, optimizer, state, rank=0, world_size=1, steps=STEPS - CHECKPOINT_STEP)
    return model


partial = {
    (position, rng): resume_partly(position, rng) for position in (True, False) for rng in (True, False)
}
print("| 恢复数据位置 | 恢复随机数状态 | 与不中断的训练：最大绝对差 | 在容差内 |")
print("|---|---|---:|---|")
for (position, rng), model in partial.items():
    yes_no = ["是" if flag else "否" for flag in (position, rng)]
    print(f"| {yes_no[0]} | {yes_no[1]} | {max_diff(model):.1e} | {within_tolerance(model)} |")
# --8<-- [end:exercise_partial]

# --8<-- [start:exercise_world_sizes]
from _resume_worker import GLOBAL_BATCH, batches, make_data


def merged_batch(world_size: int, step: int) -> tuple[torch.Tensor, torch.Tensor]:
    """world_size 个 rank 在第 step + 1 步各自取到的样本（加了噪声），按在合并批量里的位置拼回去。"""
    x, y = torch.empty(GLOBAL_BATCH, 8), torch.empty(GLOBAL_BATCH, 2)
    for rank in range(world_size):
        state = TrainState()  # 每个 rank 的随机数生成器都从同一个状态开始，和训练时一样
        state.step = step
        x[rank::world_size], y[rank::world_size] = next(batches(make_data(), state, rank, world_size))
    return x, y


reference_x, reference_y = merged_batch(1, CHECKPOINT_STEP)
for world_size in (2, 4, 8):
    x, y = merged_batch(world_size, CHECKPOINT_STEP)
    print(
        f"{world_size} 个 rank 的第 {CHECKPOINT_STEP + 1} 步拼起来，与 1 个进程的合并批量逐位相同: "
        f"{torch.equal(x, reference_x) and torch.equal(y, reference_y)}"
    )
local_3 = GLOBAL_BATCH // 3
print(
    f"3 个 rank：每个 rank 每步 {GLOBAL_BATCH} // 3 = {local_3} 个，合起来只有 {local_3 * 3} 个；"
    f"{GLOBAL_BATCH} % 3 = {GLOBAL_BATCH % 3}，每步的样本和原来不一样了"
)
# --8<-- [end:exercise_world_sizes]

# --8<-- [start:exercise_interval]
import math

lost_steps = CRASH_AT - last_before_crash
print(
    f"本页：每 {SAVE_EVERY} 步存一次，第 {CRASH_AT} 步崩溃，重做了 {lost_steps} 步（最多会重做 {SAVE_EVERY} 步）"
)


def young_interval(save_minutes: float, mtbf_minutes: float) -> float:
    """Young（1974）的近似：两次保存检查点之间隔 √(2 × 存一次的时间 × 平均多久出一次故障)。"""
    return math.sqrt(2 * save_minutes * mtbf_minutes)


for save_minutes, mtbf_hours in ((1, 24), (1, 4), (5, 4)):
    interval = young_interval(save_minutes, mtbf_hours * 60)
    print(f"存一次 {save_minutes} 分钟、平均 {mtbf_hours} 小时出一次故障：约每 {interval:.0f} 分钟存一次")
for restarts in (1, 3):
    print(
        f"--max-restarts {restarts}、集合通信超时 {PG_TIMEOUT:g} 秒：一直卡住时最晚 {time_limit(restarts, PG_TIMEOUT):g} 秒报错"
    )
# --8<-- [end:exercise_interval]
