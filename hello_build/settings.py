"""设置：构建开始时从环境变量和网站配置读一次，之后只读不改。"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

COLD_ENV = "HELLO_PYTORCH_COLD"  # 1：冷构建，不读任何在本次构建开始之前写下的东西
EXECUTE_ENV = "HELLO_PYTORCH_EXECUTE"  # 0：只渲染、什么代码都不运行（只给速度基准用）
NOTEBOOKS_ENV = "HELLO_PYTORCH_NOTEBOOKS"  # 0：页面照常执行，笔记本照样生成但不运行（写页面时预览快；测试里与笔记本无关的小站点）
TIMEOUT_ENV = "HELLO_PYTORCH_BLOCK_TIMEOUT"  # 单个代码块（和笔记本单元格）的秒数上限
ARTEFACTS_ENV = "HELLO_PYTORCH_ARTEFACTS"  # snippet 自己存下、再读回的结果（第二部分的检查点和实验）
INDUCTOR_ENV = "TORCHINDUCTOR_CACHE_DIR"  # torch.compile 的编译缓存
CACHE_ENV = "HELLO_PYTORCH_CACHE"  # 全部缓存和产物的根目录（默认是仓库里的 .cache/；测试会话给它一个新目录）
DEFAULT_BLOCK_TIMEOUT_S = 180


def _flag(value: str | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    return value not in ("0", "false", "no", "off")


@dataclass(frozen=True)
class Settings:
    root: Path  # 仓库根目录（mkdocs.yml 所在的目录）
    cold: bool = False
    execute: bool = True
    run_notebooks: bool = True
    block_timeout: int = DEFAULT_BLOCK_TIMEOUT_S
    site_url: str = ""
    repo_url: str = ""
    dirty: bool = False  # mkdocs serve --dirty：只重建改过的页面，不能清理没用到的缓存
    cache_root: Path | None = None

    @classmethod
    def read(cls, root: Path, environ: Mapping[str, str] = os.environ, **config) -> Settings:
        return cls(
            root=Path(root),
            cold=_flag(environ.get(COLD_ENV), False),
            execute=_flag(environ.get(EXECUTE_ENV), True),
            run_notebooks=_flag(environ.get(NOTEBOOKS_ENV), True),
            block_timeout=int(environ.get(TIMEOUT_ENV) or DEFAULT_BLOCK_TIMEOUT_S),  # 0：不限时
            # 绝对路径：笔记本内核在自己的目录里运行，相对路径在那里会指到别处
            cache_root=Path(environ[CACHE_ENV]).resolve() if environ.get(CACHE_ENV) else None,
            **config,
        )

    @property
    def cache(self) -> Path:
        return self.cache_root or self.root / ".cache"

    @property
    def snippets(self) -> Path:
        return self.root / "snippets"

    @property
    def site_root(self) -> str:
        """网站的绝对地址，以 / 结尾。"""
        return (self.site_url or "").rstrip("/") + "/"
