"""Zensical（Material for MkDocs 的后继者）用同一个 mkdocs.yml 严格构建本站：每个执行输出都是真的，
锚点都对（两者用同一个标题 id 函数），打开页面时不向别的主机请求任何东西。

Zensical 没有 hooks: 和 mkdocs-jupyter，所以没有页脚、运行时间表和笔记本（README 列出了差别）。
"""

from __future__ import annotations

import shutil

import pytest

from tests.conftest import ROOT, BuiltSite, zensical_build

LIBRARY_PAGE = {
    "index.md": "# 首页\n",
    "part9/use.md": "# 用库\n\n"
    '```python exec="on" session="use" result="text"\n--8<-- "snippets/part9/use.py:first"\n```\n\n'
    '```python exec="on" session="use" result="text"\n--8<-- "snippets/part9/use.py:second"\n```\n',
}
LIBRARY_SNIPPETS = {
    "part9/_lib.py": "FACTOR = 7\n",
    "part9/use.py": "# --8<-- [start:first]\nfrom _lib import FACTOR\n\nvalue = FACTOR * 6\n"
    "print('第一块', value)\n# --8<-- [end:first]\n\n"
    "# --8<-- [start:second]\nprint('第二块', value + 1)\n# --8<-- [end:second]\n",
}


def test_zensical_really_executes_with_sessions_and_libraries(throwaway, tmp_path):
    """没有缓存、没有钩子：代码块真的运行，同页的会话共享变量，snippet 能导入旁边的库模块。"""
    code, log = throwaway(LIBRARY_PAGE, LIBRARY_SNIPPETS, tool="zensical")
    assert code == 0, log
    html = (tmp_path / "site-zensical" / "part9" / "use" / "index.html").read_text(encoding="utf-8")
    assert "第一块 42" in html and "第二块 43" in html
    vendor = tmp_path / "site-zensical" / "assets" / "vendor"
    assert (vendor / "katex" / "katex.min.js").exists()
    assert (vendor / "mermaid" / "order.json").exists(), "lazy-assets.js 按它的顺序加载 Mermaid 的模块"


def test_a_raising_block_fails_the_zensical_build_and_names_it(throwaway):
    code, log = throwaway(
        {"index.md": "# 首页\n\n" + '```python exec="on" session="i"\n--8<-- "snippets/bad.py:boom"\n```\n'},
        {"bad.py": "# --8<-- [start:boom]\nratio = 1 / 0\n# --8<-- [end:boom]\n"},
        tool="zensical",
    )
    assert code != 0, log
    assert "snippets/bad.py:boom" in log and "ZeroDivisionError" in log, log


@pytest.fixture(scope="module")
def zensical_site(built_site: BuiltSite):
    """整站的 Zensical 构建，在 MkDocs 的整站构建之后：两者算出同样的缓存键，已经运行过的代码块直接取用。"""
    site_dir = ROOT / ".cache" / "zensical-test"  # Zensical 要求输出目录在项目根目录之内
    shutil.rmtree(site_dir, ignore_errors=True)
    result = zensical_build(ROOT, site_dir, share_cache=True)
    assert result.returncode == 0, result.stdout[-8000:]
    yield BuiltSite(path=site_dir, log=result.stdout, offline=False)
    shutil.rmtree(site_dir, ignore_errors=True)


def test_every_output_equals_the_mkdocs_build(built_site, zensical_site):
    import json

    manifest = json.loads((built_site.path / "exec-manifest.json").read_text(encoding="utf-8"))
    for page, blocks in manifest.items():
        measured = [b["output"] for b in blocks if b["measurement"]]
        ours, theirs = built_site.outputs(page), zensical_site.outputs(page)
        assert len(theirs) == len(ours), page
        # 测量值（计时）两次构建各测各的，按位置跳过 MkDocs 构建里是测量的那几块
        pairs = [(t, o) for t, o in zip(theirs, ours, strict=True) if o not in measured]
        assert [t for t, _ in pairs] == [o for _, o in pairs], f"{page}：Zensical 与 MkDocs 的执行输出不同"
    assert "hp-runtime-table" in zensical_site.html("runtime.md"), "运行时间页说明这张表只在 MkDocs 构建里有"


@pytest.fixture(scope="module")
def zensical_tab(zensical_site):
    """(基础 URL, 标签页)：一个 Chromium、一个标签页，依次打开下面的几页。"""
    from playwright.sync_api import sync_playwright

    from tests.site.test_browser import CHROMIUM, CHROMIUM_ARGS, open_tab, serve_directory

    with serve_directory(zensical_site.path) as base, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            _context, tab = open_tab(browser, "light")
            yield base, tab
        finally:
            browser.close()


@pytest.mark.parametrize("path", ["", "part1/ch04_math/", "part2/ch03_finetune/", "part3/ch03_cluster/"])
def test_zensical_pages_make_no_outside_request(zensical_tab, path):
    from tests.site.test_browser import visit

    base, tab = zensical_tab
    report, _page, _context = visit(None, base, path, tab=tab)
    assert not report.problems(), f"{path or '首页'}（Zensical）：\n" + "\n".join(report.problems())
