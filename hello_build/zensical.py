"""Zensical 构建：同一个 mkdocs.yml，用 Material for MkDocs 的后继者 Zensical 严格构建，再把网站自带的
Mermaid 与 KaTeX 复制进去（Zensical 没有钩子，不能在构建中途加文件）。

用法：``python -m hello_build.zensical 输出目录``（``nox -s zensical`` 就是这样调用的）。
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from hello_build import artefacts, assets
from hello_build.settings import TIMEOUT_ENV, Settings

ROOT = Path(__file__).resolve().parents[1]
SITE_DIR_ENV = "HELLO_PYTORCH_SITE_DIR"  # mkdocs.yml 的 site_dir 从这里取（两个工具都认 !ENV）


# .cache/ 下本站（和 MkDocs 构建）自己的目录；Zensical 把它自己的缓存文件也放在 .cache/ 下
OURS = {*artefacts.COLD_WIPED, "mkdocs-jupyter"}


def clear_zensical_cache(cache: Path) -> None:
    """每次都从空白开始，只清掉 Zensical 自己的缓存：它只认页面的 Markdown，不知道页面包含的 snippet 改没改。
    不用 ``zensical build --clean``：那会删掉整个 .cache/，连同本站的执行缓存、检查点和编译缓存。"""
    if not cache.is_dir():
        return
    for entry in cache.iterdir():
        if entry.name in OURS:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


# Zensical 在工作线程里渲染页面，SIGALRM 只能用在主线程：单块时限在这里用不上（执行器会因此报错），所以明确
# 关掉它，改为给整个构建一个时限——卡住的代码块让构建在这之后失败，而不是永远挂着。
TOTAL_TIMEOUT_S = 30 * 60


def build(site_dir: Path, root: Path = ROOT, timeout: float = TOTAL_TIMEOUT_S) -> subprocess.CompletedProcess:
    site_dir = site_dir.resolve()
    artefacts.prepare(Settings.read(root))  # 冷构建（HELLO_PYTORCH_COLD=1）同样先删掉全部旧产物
    env = {
        **os.environ,
        SITE_DIR_ENV: str(site_dir),
        TIMEOUT_ENV: "0",
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
    }
    clear_zensical_cache(root / ".cache")
    command = [sys.executable, "-m", "zensical", "build", "--strict", "-f", "mkdocs.yml"]
    # 自己的进程组：超时时连同代码块启动的子进程（例如 torchrun 的各进程）一起结束
    process = subprocess.Popen(command, cwd=root, env=env, start_new_session=True)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        print(f"Zensical 构建超过 {timeout:g} 秒没有结束，已中止（某个代码块可能卡住了）", file=sys.stderr)
        return subprocess.CompletedProcess(command, 124)
    if process.returncode == 0:
        assets.copy_into(site_dir, root / "node_modules")
    return subprocess.CompletedProcess(command, process.returncode)


if __name__ == "__main__":
    sys.exit(build(Path(sys.argv[1] if len(sys.argv) > 1 else "site-zensical")).returncode)
