"""可信的构建：确定、离线、有时限、不提交执行结果。

每条保证一个（或几个）测试；去掉那条保证，对应的测试就会失败。输出安全、包含受限见
tests/hello_build/test_markdown_config.py，代码块的时限与出错信息见 tests/hello_build/test_execute.py 和 test_failures.py。
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from tests.conftest import OFFLINE_PREFIX, ROOT

# ---------------------------------------------------------------- 1. 确定性
# 每个代码块在构建里执行两次：页面（构建进程里）和它的笔记本（全新的内核里）。test_notebooks.py 的
# test_built_notebook_has_the_pages_outputs 逐块比较这两次的输出（测量值除外），就是确定性的检查。


# ---------------------------------------------------------------- 2. 离线


def test_the_full_build_ran_in_a_namespace_without_network(built_site):
    """整站构建（built_site）在 OFFLINE_PREFIX 里运行；同一个前缀里连本机以外的地址都连不上。
    两者合起来才证明“断网也能构建”：只检查构建成功、不检查前缀真的断网，证明不了什么。"""
    if not built_site.offline:
        if os.environ.get("CI"):
            pytest.fail("CI 以 root 运行，必须能用 unshare --net 断网构建")
        pytest.skip("这台机器不允许 unshare --net（需要 root），无法证明离线构建")
    probe = "import socket; socket.create_connection(('192.0.2.1', 80), timeout=3)"
    result = subprocess.run(
        [*OFFLINE_PREFIX, sys.executable, "-c", probe], capture_output=True, text=True, check=False
    )
    assert result.returncode != 0
    assert "unreachable" in result.stderr.lower(), result.stderr
    loopback = "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(); print('ok')"
    result = subprocess.run(
        [*OFFLINE_PREFIX, sys.executable, "-c", loopback], capture_output=True, text=True, check=False
    )
    assert result.stdout.strip() == "ok", "回环接口要开着：torchrun 的进程之间要通信"


# ---------------------------------------------------------------- 3. 有时限


def test_test_timeout_is_configured_in_exactly_one_place():
    """单个测试函数的时限只在 pyproject.toml 写一次，测试文件里不另设（另设就会有两个互相矛盾的时限）。"""
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert len(re.findall(r"^timeout = \d+$", text, re.MULTILINE)) == 1
    elsewhere = [
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / "tests").rglob("*.py")
        if "mark." + "timeout" in path.read_text(encoding="utf-8")
    ]
    assert not elsewhere, elsewhere


# ---------------------------------------------------------------- 6. 不提交执行结果


def test_repository_contains_no_executed_output_or_build_artefacts():
    result = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        pytest.skip("不是 git 仓库")
    tracked = result.stdout.splitlines()
    artefacts = [
        path
        for path in tracked
        if path.startswith(("site/", ".cache/", "node_modules/", ".nox/"))
        or path.endswith((".pyc", "exec-manifest.json"))
        or (path.startswith("docs/") and path.endswith((".html", ".svg", ".png")))
    ]
    for path in tracked:
        if path.endswith(".ipynb"):
            notebook = json.loads((ROOT / path).read_text(encoding="utf-8"))
            if any(cell.get("outputs") or cell.get("execution_count") for cell in notebook.get("cells", [])):
                artefacts.append(f"{path}（含执行输出）")
    assert not artefacts, f"仓库里不应有执行结果或构建产物：{artefacts}"
