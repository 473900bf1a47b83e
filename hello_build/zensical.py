"""Zensical 构建：同一个 mkdocs.yml，用 Material for MkDocs 的后继者 Zensical 严格构建，再把网站自带的
Mermaid 与 KaTeX 复制进去（Zensical 没有钩子，不能在构建中途加文件）。

用法：``python -m hello_build.zensical 输出目录``（``nox -s zensical`` 就是这样调用的）。
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from hello_build import artefacts, assets
from hello_build.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
SITE_DIR_ENV = "HELLO_PYTORCH_SITE_DIR"  # mkdocs.yml 的 site_dir 从这里取（两个工具都认 !ENV）


def build(site_dir: Path, root: Path = ROOT) -> subprocess.CompletedProcess:
    site_dir = site_dir.resolve()
    artefacts.prepare(Settings.read(root))  # 冷构建（HELLO_PYTORCH_COLD=1）同样先删掉全部旧产物
    env = {
        **os.environ,
        SITE_DIR_ENV: str(site_dir),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
    }
    result = subprocess.run(
        [sys.executable, "-m", "zensical", "build", "--strict", "--clean", "-f", "mkdocs.yml"],
        cwd=root,
        env=env,
        check=False,
    )
    if result.returncode == 0:
        assets.copy_into(site_dir, root / "node_modules")
    return result


if __name__ == "__main__":
    sys.exit(build(Path(sys.argv[1] if len(sys.argv) > 1 else "site-zensical")).returncode)
