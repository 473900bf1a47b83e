"""PDF 封面上的事实：构建日期、提交和 PyTorch 版本（overrides/print/cover.tpl 读 ``config.extra.book``）。

日期取当前提交的日期而不是今天：同一个提交，每次构建的封面都一样。不在 git 仓库里（例如解开的源码包）时
取今天，提交写“未知”。
"""

from __future__ import annotations

import datetime
import importlib.metadata
import subprocess
from pathlib import Path


def facts(root: Path) -> dict[str, str]:
    try:
        result = subprocess.run(
            ["git", "log", "-1", "--format=%cs %h"], cwd=root, capture_output=True, text=True, timeout=30
        )
        date, commit = result.stdout.split()
    except (OSError, subprocess.SubprocessError, ValueError):
        date, commit = datetime.date.today().isoformat(), "未知"
    return {"date": date, "commit": commit, "torch": importlib.metadata.version("torch")}
