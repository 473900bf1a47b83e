"""全测试共用的工具：仓库路径、独立运行 snippet、构建整个网站（每次测试会话只构建一次）。"""

from __future__ import annotations

import contextlib
import functools
import html as html_lib
import io
import os
import re
import runpy
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import pytest

_TEXT_BLOCK = re.compile(r'<div class="language-text highlight"><pre>.*?<code>(.*?)</code></pre></div>', re.S)
_TAG = re.compile(r"<[^>]+>")

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
SNIPPETS = ROOT / "snippets"

# 构建全站的时间上限（秒）；全站冷构建在 2 核上应远低于它
BUILD_TIMEOUT = 20 * 60


@dataclass(frozen=True)
class SnippetRun:
    """一个 snippet 文件独立运行一次的结果：它打印的文字和它留下的全局变量。"""

    stdout: str
    ns: MappingProxyType


@functools.cache
def _run_snippet(relpath: str) -> SnippetRun:
    path = ROOT / relpath
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        namespace = runpy.run_path(str(path), run_name="__snippet__")
    return SnippetRun(stdout=buffer.getvalue(), ns=MappingProxyType(namespace))


@pytest.fixture(scope="session")
def run_snippet():
    """run_snippet("snippets/part1/ch05_hello.py") -> SnippetRun；同一文件在一次测试会话里只运行一次。"""
    return _run_snippet


def mkdocs_build(config: Path, site_dir: Path, cwd: Path, timeout: int = BUILD_TIMEOUT):
    """用 --strict 构建一个站点，返回 CompletedProcess（stdout 与 stderr 合并）。"""
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config), "-d", str(site_dir)],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        check=False,
    )


@dataclass(frozen=True)
class BuiltSite:
    path: Path
    log: str

    def html(self, page: str) -> str:
        """page 是 docs/ 下的 Markdown 路径，例如 "part1/ch05_hello.md"。"""
        stem = page.removesuffix(".md")
        rel = "index.html" if stem == "index" else f"{stem.removesuffix('/index')}/index.html"
        return (self.path / rel).read_text(encoding="utf-8")

    def outputs(self, page: str) -> list[str]:
        """页面上每个执行结果块（result="text"）的纯文本，按页面顺序。"""
        return [html_lib.unescape(_TAG.sub("", block)) for block in _TEXT_BLOCK.findall(self.html(page))]


@pytest.fixture(scope="session")
def built_site(tmp_path_factory) -> BuiltSite:
    """整个网站的严格构建（strict），一次测试会话只做一次。"""
    site_dir = tmp_path_factory.mktemp("site")
    result = mkdocs_build(ROOT / "mkdocs.yml", site_dir, cwd=ROOT)
    assert result.returncode == 0, f"严格构建失败：\n{result.stdout[-8000:]}"
    return BuiltSite(path=site_dir, log=result.stdout)
