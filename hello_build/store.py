"""缓存目录：每条记录是一个 JSON 文件，带校验和，原子写入；坏掉的记录当作没有；一次完整构建后删掉没用到的记录。

执行缓存（每个代码块的输出和渲染好的 HTML）和笔记本输出缓存都用它。
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path


def _checksum(entry: dict) -> str:
    body = {k: v for k, v in entry.items() if k != "sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


class Store:
    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.used: set[str] = set()
        self._lock = threading.Lock()  # 笔记本在后台线程里写，页面在主线程里写

    def _path(self, key: str) -> Path:
        return self.directory / f"{key}.json"

    def read(self, key: str) -> dict | None:
        """一条记录；文件不存在、损坏、被截断或与校验和对不上时返回 None，绝不返回坏数据。"""
        with self._lock:
            self.used.add(key)
        try:
            entry = json.loads(self._path(key).read_text(encoding="utf-8"))
            ok = isinstance(entry, dict) and entry.get("sha256") == _checksum(entry)
        except (OSError, ValueError):
            return None
        return entry if ok else None

    def write(self, key: str, entry: dict) -> None:
        """先写到只属于这个线程的临时文件，再原子地改名：读的人永远看不到写了一半的记录。"""
        entry = {**entry, "sha256": _checksum(entry)}
        self.directory.mkdir(parents=True, exist_ok=True)
        partial = self.directory / f"{key}.{os.getpid()}.{threading.get_ident()}.partial"
        partial.write_text(json.dumps(entry, ensure_ascii=False), encoding="utf-8")
        partial.replace(self._path(key))
        with self._lock:
            self.used.add(key)

    @contextlib.contextmanager
    def exclusive(self, key: str) -> Iterator[None]:
        """同一条记录同一时刻只让一个进程（或线程）去产生：两个构建（比如测试会话的预取和整站构建）共用缓存时，
        后到的等先到的写完，再读它的结果，而不是把同样的事再做一遍。锁是文件锁，进程结束时自动释放。"""
        self.directory.mkdir(parents=True, exist_ok=True)
        with (self.directory / f"{key}.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def evict_unused(self) -> list[str]:
        """删掉这次构建没有读也没有写的记录（只在完整的、真正执行了代码的构建之后调用）。"""
        removed = []
        for path in self.directory.glob("*.json") if self.directory.is_dir() else []:
            if path.stem not in self.used:
                path.unlink(missing_ok=True)
                path.with_suffix(".lock").unlink(missing_ok=True)
                removed.append(path.stem)
        return removed
