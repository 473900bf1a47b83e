"""可信的构建：确定、离线、有时限、输出安全、包含受限、不提交执行结果、出错说清楚。

每条保证一个（或几个）测试；去掉那条保证，对应的测试就会失败。
"""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from tests.conftest import FENCE, ROOT, can_unshare_net

# ---------------------------------------------------------------- 1. 确定性
# 每个代码块在构建里执行两次：页面（构建进程里）和它的笔记本（全新的内核里）。test_notebooks.py 的
# test_built_notebook_has_the_pages_outputs 逐块比较这两次的输出（测量值除外），就是确定性的检查。


# ---------------------------------------------------------------- 2. 离线


def test_full_build_ran_without_network(built_site):
    if not built_site.offline:
        if os.environ.get("CI"):
            pytest.fail("CI 以 root 运行，必须能用 unshare --net 断网构建")
        pytest.skip("这台机器不允许 unshare --net（需要 root），无法证明离线构建")
    assert built_site.offline


def test_offline_namespace_really_has_no_network():
    """对照组：unshare --net 里连本机以外的地址都连不上。"""
    if not can_unshare_net():
        pytest.skip("这台机器不允许 unshare --net")
    probe = "import socket; socket.create_connection(('192.0.2.1', 80), timeout=3)"
    result = subprocess.run(
        ["unshare", "--net", "python3", "-c", probe], capture_output=True, text=True, check=False
    )
    assert result.returncode != 0
    assert "unreachable" in result.stderr.lower()


# ---------------------------------------------------------------- 3. 有时限


def test_hanging_snippet_fails_the_build_and_names_itself(throwaway):
    start = time.monotonic()
    code, log = throwaway(
        {"index.md": "# 首页\n\n" + FENCE.format(session="index", target="snippets/hang.py:forever")},
        {"hang.py": "# --8<-- [start:forever]\nwhile True:\n    pass\n# --8<-- [end:forever]\n"},
        HELLO_PYTORCH_BLOCK_TIMEOUT="2",
    )
    assert code != 0, "卡住的代码块应当让构建失败"
    assert time.monotonic() - start < 120
    assert "snippets/hang.py:forever" in log and "docs/index.md" in log, log
    assert "运行超过 2 秒" in log, log


def test_test_timeout_is_configured_once():
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert "\ntimeout = " in text, "pytest-timeout 的时限应写在 pyproject.toml"


# ---------------------------------------------------------------- 4. 输出安全

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)> **粗体** [链接](http://example.com)'


def test_text_output_is_escaped_never_injected(throwaway, tmp_path):
    code, log = throwaway(
        {"index.md": "# 首页\n\n" + FENCE.format(session="index", target="snippets/evil.py:evil")},
        {"evil.py": f"# --8<-- [start:evil]\nprint({HOSTILE!r})\n# --8<-- [end:evil]\n"},
    )
    assert code == 0, log
    page = (tmp_path / "site" / "index.html").read_text(encoding="utf-8")
    assert "&lt;script&gt;alert" in page, "输出应作为文字显示"
    assert '<script>alert("x")' not in page and "<img src=x onerror" not in page
    assert "<strong>粗体</strong>" not in page, "输出里的 Markdown 不应被渲染"


# ---------------------------------------------------------------- 5. 包含受限


@pytest.mark.parametrize("target", ["../outside-secret.txt", "/etc/hostname"])
def test_includes_cannot_leave_the_repository(throwaway, tmp_path, target):
    secret = "TOP-SECRET-OUTSIDE"
    (tmp_path.parent / "outside-secret.txt").write_text(secret)
    code, log = throwaway({"index.md": f'# 首页\n\n```text\n--8<-- "{target}"\n```\n'})
    assert code != 0, f"包含 {target} 应当让构建失败：\n{log}"
    site_page = tmp_path / "site" / "index.html"
    assert not site_page.exists() or secret not in site_page.read_text(encoding="utf-8")


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


# ---------------------------------------------------------------- 7. 出错说清楚（另见 test_failures.py）


def test_error_points_to_the_line_in_the_snippet_file(throwaway):
    code, log = throwaway(
        {"index.md": "# 首页\n\n" + FENCE.format(session="index", target="snippets/bad.py:boom")},
        {"bad.py": '"""说明。"""\n\n# --8<-- [start:boom]\nx = 1\ny = x / 0\n# --8<-- [end:boom]\n'},
    )
    assert code != 0
    assert "出错位置：snippets/bad.py 第 5 行" in log, log
