"""续训 worker：数据位置和随机数状态能存能读，DCP 在一个进程里存取一致，torchrun 日志的整理是确定的，
一个 rank 一直卡住时，重启之后整次运行仍在给定的时限内报错。"""

import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch

sys.path.append(str(Path(__file__).resolve().parents[2] / "snippets" / "part3"))

import _resume_worker as r

WORKER = Path("snippets/part3/_resume_worker.py")


def take(state: r.TrainState, rank: int = 0, world_size: int = 1, steps: int = 1) -> list[torch.Tensor]:
    data = r.batches(r.make_data(), state, rank, world_size)
    out = []
    for _ in range(steps):
        x, _ = next(data)
        out.append(x)
        state.step += 1
    return out


def test_each_step_uses_a_shuffled_part_of_the_data():
    """不是每步都用全部数据、也不是固定顺序：否则不恢复数据位置也照样相等，测试就没有意义。"""
    assert r.GLOBAL_BATCH < r.N_SAMPLES and r.STEPS_PER_EPOCH == 4
    dataset = r.make_data()
    index = {tuple(row.tolist()): i for i, row in enumerate(dataset.tensors[1])}
    epochs = []
    for epoch in range(2):
        state = r.TrainState()
        state.step = epoch * r.STEPS_PER_EPOCH
        rows = []
        for _ in range(r.STEPS_PER_EPOCH):
            _, y = next(r.batches(dataset, state, 0, 1))
            rows.append([index[tuple(row.tolist())] for row in y])
            state.step += 1
        epochs.append(rows)
        flat = [i for batch in rows for i in batch]
        assert sorted(flat) == list(range(r.N_SAMPLES)), "一轮里每个样本正好用一次"
    assert epochs[0] != epochs[1], "set_epoch：每轮的打乱方式不同"
    assert epochs[0][0] != sorted(epochs[0][0]), "样本被打乱了"


def test_train_state_round_trip_continues_the_same_batches():
    """Stateful：state_dict 存下来、读进一个新的 TrainState，接下来取到的数据（含噪声）逐位相同。"""
    original = r.TrainState()
    take(original, steps=5)
    saved = original.state_dict()
    assert saved["step"] == 5 and saved["rng"].dtype == torch.uint8
    restored = r.TrainState()
    restored.load_state_dict(saved)
    for a, b in zip(take(original, steps=3), take(restored, steps=3), strict=True):
        assert torch.equal(a, b)
    fresh = _at(restored.step)  # 只恢复位置、不恢复随机数生成器：样本对，噪声不对
    assert not torch.equal(take(fresh)[0], take(restored)[0])


def test_global_batch_does_not_depend_on_the_number_of_ranks():
    """rank r 取合并批量的第 r, r + W, …… 个样本和噪声的这几行：拼回去与 1 个进程取到的相同。"""
    for step in (0, 6, 11):
        one = take(_at(step))[0]
        for world_size in (2, 4):
            merged = torch.empty_like(one)
            for rank in range(world_size):
                merged[rank::world_size] = take(_at(step), rank, world_size)[0]
            assert torch.equal(merged, one), (step, world_size)


def _at(step: int) -> r.TrainState:
    state = r.TrainState()
    state.step = step
    return state


def test_dcp_round_trip_in_one_process(tmp_path):
    """不建进程组也能用 DCP：存一个普通模型、Adam 和 TrainState，读进新建的一份，全部逐位相同。"""
    model = r.make_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=r.LR)
    state = r.TrainState()
    r.train_steps(model, optimizer, state, 0, 1, steps=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r.save_checkpoint(model, optimizer, state, tmp_path / "step3")
        copy = r.make_model()
        copy_optimizer = torch.optim.Adam(copy.parameters(), lr=r.LR)
        copy_state = r.TrainState()
        r.load_checkpoint(copy, copy_optimizer, copy_state, tmp_path / "step3")
    for (name, p), q in zip(model.named_parameters(), copy.parameters(), strict=True):
        assert torch.equal(p, q), name
    for p, q in zip(model.parameters(), copy.parameters(), strict=True):
        for key in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(optimizer.state[p][key], copy_optimizer.state[q][key]), key
    assert copy_state.step == 3 and torch.equal(copy_state.generator.get_state(), state.generator.get_state())
    # 接着训练：两份逐位相同
    r.train_steps(model, optimizer, state, 0, 1, steps=2)
    r.train_steps(copy, copy_optimizer, copy_state, 0, 1, steps=2)
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), copy.parameters(), strict=True))


def test_latest_checkpoint_skips_unfinished_ones(tmp_path):
    assert r.latest_checkpoint(tmp_path) is None
    for step, finished in ((3, True), (12, True), (9, True), (15, False)):
        (tmp_path / f"step{step}").mkdir()
        if finished:
            (tmp_path / f"step{step}" / ".metadata").write_bytes(b"")
    assert r.latest_checkpoint(tmp_path) == tmp_path / "step12", (
        "按步数比大小（12 > 9），没写完元数据的 step15 不算"
    )


OUTPUT = """\
I1201 08:51:07.728000 365 torch/distributed/elastic/agent/server/api.py:912] [default] starting workers for entrypoint: python
I1201 08:51:08.123000 365 torch/distributed/elastic/agent/server/api.py:553]   restart_count=0
[rank 1] b1
[rank 0] a1
[rank0]: RuntimeError: Connection reset by peer
W1201 08:51:14.969000 365 torch/distributed/elastic/multiprocessing/api.py:1028] Sending process 388 closing signal SIGTERM
E1201 08:51:15.034000 365 torch/distributed/elastic/multiprocessing/api.py:1002] failed (exitcode: -9) local_rank: 1 (pid: 389) of binary: /some/venv/bin/python
I1201 08:51:15.034000 365 torch/distributed/elastic/agent/server/api.py:942] [default] Worker group FAILED. 1/1 attempts left; will restart worker group
I1201 08:51:15.491000 365 torch/distributed/elastic/agent/server/api.py:553]   restart_count=1
[rank 1] b2
[rank 0] a2
I1201 08:51:25.281000 365 torch/distributed/elastic/agent/server/api.py:932] [default] worker group successfully finished. Waiting 300 seconds for other agents to finish.
"""


def test_torchrun_story_is_ordered_and_normalised():
    assert r.torchrun_story(OUTPUT) == [
        "[torchrun] restart_count=0",
        "[rank 0] a1",
        "[rank 1] b1",
        "[torchrun] failed (exitcode: -9) local_rank: 1 (pid: PID) of binary: PYTHON",
        "[torchrun] [default] Worker group FAILED. 1/1 attempts left; will restart worker group",
        "[torchrun] restart_count=1",
        "[rank 0] a2",
        "[rank 1] b2",
        "[torchrun] [default] worker group successfully finished. Waiting 300 seconds for other agents to finish.",
    ]
    # 同一次运行，两个 rank 的行交错得不一样、进程号不一样：整理出来相同
    shuffled = OUTPUT.replace("[rank 1] b1\n[rank 0] a1", "[rank 0] a1\n[rank 1] b1").replace("389", "4242")
    assert r.torchrun_story(shuffled) == r.torchrun_story(OUTPUT)


def test_time_limit_grows_with_restarts_and_timeout():
    assert r.time_limit(0, 60) == 60 + r.ATTEMPT_SECONDS
    assert r.time_limit(1, 60) == 2 * (60 + r.ATTEMPT_SECONDS)
    assert r.time_limit(3, 5) == 4 * (5 + r.ATTEMPT_SECONDS)


def test_a_rank_that_hangs_every_attempt_fails_within_the_limit(tmp_path):
    """rank 1 每次尝试都在第 8 步卡住：rank 0 等满集合通信的超时报错，torchrun 重启一次，第二次同样报错后放弃。

    超时设成 5 秒，免得测试空等；整次运行要在 time_limit 之内、以 torchrun 的失败（而不是启动器的超时）结束。
    """
    pg_timeout, max_restarts = 5, 1
    limit = r.time_limit(max_restarts, pg_timeout)
    start = time.perf_counter()
    with pytest.raises(r.DistributedRunError) as error:
        r.run_torchrun_elastic(
            WORKER, "--out", str(tmp_path), "--hang-at", "8", max_restarts=max_restarts, pg_timeout=pg_timeout
        )
    elapsed = time.perf_counter() - start
    message = str(error.value)
    assert elapsed < limit, f"{elapsed:.0f} 秒才报错，超过了时限 {limit:g} 秒"
    assert "退出码 1" in message, "应是 torchrun 自己放弃（退出码 1），而不是启动器的超时"
    story = r.torchrun_story(message)
    assert story.count("[rank 1] 第 8 步：故意卡住，不再通信") == 2, story
    assert "[torchrun] [default] Worker group FAILED. 1/1 attempts left; will restart worker group" in story
    assert "[rank 0] 第 2 次尝试：从 step6 接着训练，下一步是第 7 步（第 2 轮的第 3 批）" in story
    # 清楚的错误：两次尝试里 rank 0 都是因为等了 5 秒超时才报错
    assert message.count(f"Timed out waiting {pg_timeout * 1000}ms") == 2, message
    assert "failed (exitcode: 1) local_rank: 0" in message
    leftovers = subprocess.run(["pgrep", "-f", str(tmp_path)], capture_output=True, text=True, check=False)
    assert not leftovers.stdout.strip(), f"报错后仍有进程在运行：{leftovers.stdout}"
