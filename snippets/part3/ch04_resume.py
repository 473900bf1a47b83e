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
one = resume_in_one_process(STEP6)
forgot = resume_in_one_process(STEP6, restore_train_state=False)  # 只恢复模型和优化器
one_close = all(
    torch.allclose(p.detach(), uninterrupted[n], rtol=RTOL, atol=ATOL) for n, p in one.named_parameters()
)
forgot_close = all(
    torch.allclose(p.detach(), uninterrupted[n], rtol=RTOL, atol=ATOL) for n, p in forgot.named_parameters()
)
# 作为比较的尺度：后 6 步的训练本身让参数改变了多少
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="torch.distributed is disabled")
    at_step6 = make_model()
    load_checkpoint(at_step6, torch.optim.Adam(at_step6.parameters(), lr=LR), TrainState(), STEP6)
moved = max_diff(at_step6)
print(f"后 {STEPS - CHECKPOINT_STEP} 步的训练让参数最多改变 {moved:.1e}")
print("| 在 1 个进程里从 step6 接着训练 | 与不中断的训练：最大绝对差 | 逐位相同 | 在容差内 |")
print("|---|---:|---|---|")
print(
    f"| 恢复模型、优化器、数据位置和随机数状态 | {max_diff(one):.1e} | {bitwise_equal(one)} | {one_close} |"
)
print(f"| 只恢复模型和优化器 | {max_diff(forgot):.1e} | {bitwise_equal(forgot)} | {forgot_close} |")
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
        if one_close
        else "**超出了容差**"
    )
    + f"；不恢复数据位置和随机数状态时差 {max_diff(forgot):.1e}，和后 {STEPS - CHECKPOINT_STEP} 步训练本身的改变（{moved:.1e}）"
    f"是同一个量级。rank 1 在第 {CRASH_AT} 步崩溃、torchrun 重启后，从 step{last_before_crash} 接着训练完的参数与不中断的训练"
    + ("逐位相同。" if restart_equal else "**不同**。")
)
# --8<-- [end:summary]
