"""测量独占整台机器：一把读写锁——普通代码（页面的代码块、笔记本的单元格）共用，测量独占。

测量（计时、加速比）要在没有别的代码争抢处理器时做：测量开始前等正在运行的代码块和单元格结束，
测量期间别的都不开始；普通代码之间照常并行。有测量在等时，新的普通代码也先等（测量不会被饿死）。
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator


class Quiet:
    def __init__(self) -> None:
        self._state = threading.Condition()
        self._sharing = 0  # 正在运行的普通代码
        self._measuring = False
        self._waiting = 0  # 等着开始的测量

    @contextlib.contextmanager
    def turn(self, measurement: bool) -> Iterator[float]:
        """运行一段代码的期间：测量独占，普通代码共用。给出等了多少秒（等待不算运行时间）。"""
        began = time.perf_counter()
        with self._state:
            if measurement:
                self._waiting += 1
                self._state.wait_for(lambda: not self._measuring and self._sharing == 0)
                self._waiting -= 1
                self._measuring = True
            else:
                self._state.wait_for(lambda: not self._measuring and self._waiting == 0)
                self._sharing += 1
        try:
            yield time.perf_counter() - began
        finally:
            with self._state:
                if measurement:
                    self._measuring = False
                else:
                    self._sharing -= 1
                self._state.notify_all()
