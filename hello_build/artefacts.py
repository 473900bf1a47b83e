"""构建产物的目录：冷构建先删掉本站在缓存目录下的全部产物，再用环境变量把产物目录告诉 snippet 和子进程。

MkDocs 构建（``site``）和 Zensical 构建（``zensical``）都在开始时调用 :func:`prepare`，所以两者的冷构建
都不读任何在它开始之前写下的东西（原则 9）。
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from hello_build.settings import ARTEFACTS_ENV, INDUCTOR_ENV, Settings

# 构建中被重复使用的产物，都在缓存目录下：冷构建开始时全部删掉
DIRS = {ARTEFACTS_ENV: "artefacts", INDUCTOR_ENV: "inductor"}  # 子进程通过环境变量找到它们
COLD_WIPED = ("exec", "artefacts", "inductor", "notebooks")


def prepare(settings: Settings) -> None:
    """冷构建先删掉本站在缓存目录下的全部产物；再把产物目录告诉 snippet 和子进程。调用者事先用环境变量指定了
    别的目录时（测试会话就是这样，每次会话一个新目录），那个目录由调用者负责，构建不删它。"""
    cache = settings.cache
    if settings.cold and settings.execute:
        for name in COLD_WIPED:
            owner = next((v for v, n in DIRS.items() if n == name), None)
            if owner is None or Path(os.environ.get(owner, cache / name)) == cache / name:
                shutil.rmtree(cache / name, ignore_errors=True)
        shutil.rmtree(
            settings.root / ".cache" / "mkdocs-jupyter", ignore_errors=True
        )  # mkdocs.yml 里配置的位置
    for variable, name in DIRS.items():
        os.environ.setdefault(variable, str(cache / name))
