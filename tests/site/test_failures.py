"""坏输入必须让构建变红，并且说清楚错在哪里。

每个测试都在临时目录里搭一个小站点：本项目的 mkdocs.yml 与 hooks.py 原样复制过去，
只换掉导航（nav）和页面，所以这里测的就是本项目的真实配置。
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import FENCE

GOOD_SNIPPET = """\
# --8<-- [start:ok]
print("一切正常")
# --8<-- [end:ok]
"""


def test_the_throwaway_site_itself_builds(throwaway):
    """对照组：同样的搭法、没有错误时构建成功，下面的失败才说明问题出在坏输入上。"""
    code, log = throwaway(
        {"index.md": "# 首页\n\n" + FENCE.format(session="index", target="snippets/good.py:ok")},
        {"good.py": GOOD_SNIPPET},
    )
    assert code == 0, log


def test_raising_snippet_fails_and_names_page_file_section_and_line(throwaway):
    code, log = throwaway(
        {
            "index.md": "# 首页\n",
            "broken.md": "# 坏页\n\n" + FENCE.format(session="broken", target="snippets/bad.py:boom"),
        },
        {
            "bad.py": """\
            # --8<-- [start:boom]
            numerator = 1
            ratio = numerator / 0
            # --8<-- [end:boom]
            """
        },
    )
    assert code != 0, "抛异常的 snippet 应当让严格构建失败"
    assert "docs/broken.md" in log, f"错误信息应写出页面路径：\n{log}"
    assert "snippets/bad.py:boom" in log, f"错误信息应写出 snippet 文件和片段：\n{log}"
    assert "ZeroDivisionError" in log
    assert "ratio = numerator / 0" in log, f"错误信息应给出 snippet 自己出错的那一行：\n{log}"


def test_missing_snippet_file_fails_naming_the_path(throwaway):
    code, log = throwaway(
        {"index.md": "# 首页\n\n" + FENCE.format(session="index", target="snippets/nope.py:x")}
    )
    assert code != 0
    assert "snippets/nope.py" in log, log


def test_missing_section_fails_naming_the_section(throwaway):
    code, log = throwaway(
        {"index.md": "# 首页\n\n" + FENCE.format(session="index", target="snippets/good.py:missing")},
        {"good.py": GOOD_SNIPPET},
    )
    assert code != 0
    assert "missing" in log, log


@pytest.mark.parametrize(
    "link",
    [
        "[不存在的页](nowhere.md)",
        "[不存在的锚点](other.md#no-such-heading)",
        "[本页的坏锚点](#no-such-anchor)",
    ],
)
def test_broken_link_or_anchor_fails(throwaway, link):
    code, log = throwaway({"index.md": f"# 首页\n\n{link}\n", "other.md": "# 另一页\n\n## 真的标题\n"})
    assert code != 0, f"{link} 应当让严格构建失败：\n{log}"


def test_good_links_and_chinese_anchors_pass(throwaway):
    code, log = throwaway(
        {
            "index.md": "# 首页\n\n[去 5.2 节](other.md#52-源代码详细实现)\n",
            "other.md": "# 另一页\n\n## 5.2 源代码详细实现\n",
        }
    )
    assert code == 0, log


def test_missing_browser_assets_fail_with_what_to_run(throwaway):
    """没装 Mermaid/KaTeX 时构建失败并说明该运行什么，绝不悄悄退回 CDN。"""
    code, log = throwaway({"index.md": "# 首页\n"}, assets=False)
    assert code != 0
    assert "npm ci" in log and "node_modules" in log, log


def test_built_site_has_no_traceback_or_execution_error(built_site):
    offenders = []
    for page in sorted(Path(built_site.path).rglob("*.html")):
        text = page.read_text(encoding="utf-8")
        for marker in (
            "Traceback (most recent call last)",
            "exited with errors",
            "exited with unexpected code",
        ):
            if marker in text:
                offenders.append(f"{page.relative_to(built_site.path)}: {marker}")
    assert not offenders, "构建出的页面里有执行错误：\n" + "\n".join(offenders)


def test_full_build_log_has_no_warning(built_site):
    bad = [line for line in built_site.log.splitlines() if line.startswith(("WARNING", "ERROR"))]
    assert not bad, "\n".join(bad)
