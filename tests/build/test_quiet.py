"""hello_build.quiet：普通代码彼此并行，测量独占，有测量在等时新的普通代码先等。"""

from __future__ import annotations

import threading
import time

from hello_build.quiet import Quiet


def test_plain_turns_overlap():
    quiet, inside = Quiet(), threading.Barrier(2, timeout=5)

    def plain():
        with quiet.turn(measurement=False):
            inside.wait()  # 两个都在里面才能过去

    threads = [threading.Thread(target=plain) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert not inside.broken, "两段普通代码应能同时运行"


def test_a_measurement_runs_alone_and_is_not_starved():
    quiet, log = Quiet(), []
    first_in, measurement_waiting = threading.Event(), threading.Event()

    def plain(name, hold):
        with quiet.turn(measurement=False):
            log.append(f"{name} 开始")
            first_in.set()
            time.sleep(hold)
            log.append(f"{name} 结束")

    def measure():
        measurement_waiting.set()
        with quiet.turn(measurement=True) as waited:
            log.append("测量 开始")
            time.sleep(0.2)
            log.append("测量 结束")
        assert waited >= 0.3

    early = threading.Thread(target=plain, args=("早", 0.5))
    early.start()
    first_in.wait(5)
    measuring = threading.Thread(target=measure)
    measuring.start()
    measurement_waiting.wait(5)
    time.sleep(0.1)
    late = threading.Thread(target=plain, args=("晚", 0.0))  # 测量在等：它排在测量之后
    late.start()
    for thread in (early, measuring, late):
        thread.join(10)
    assert log == ["早 开始", "早 结束", "测量 开始", "测量 结束", "晚 开始", "晚 结束"], log
