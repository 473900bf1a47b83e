"""坏输入必须让构建变红，并且说清楚错在哪里。

端到端的几条在临时目录里搭一个小站点：本项目的 mkdocs.yml、hooks.py 与构建包原样复制过去，只换掉导航（nav）
和页面，所以测的就是本项目的真实配置。缺文件、缺片段、包含越界等由 tests/hello_build/test_markdown_config.py 直接用
mkdocs.yml 的 Markdown 配置检查，不必构建整个网站。
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
    assert "出错位置：snippets/bad.py 第 3 行" in log, f"错误信息应给出文件里的行号：\n{log}"


def test_broken_links_and_anchors_fail_and_good_chinese_anchors_pass(throwaway):
    """一次构建里放三种坏链接：MkDocs 在构建结束时把它们都报出来，严格构建随之失败；好的中文锚点不报。"""
    code, log = throwaway(
        {
            "index.md": "# 首页\n\n[不存在的页](nowhere.md)\n\n[不存在的锚点](other.md#no-such-heading)\n\n"
            "[本页的坏锚点](#no-such-anchor)\n\n[去 5.2 节](other.md#52-源代码详细实现)\n",
            "other.md": "# 另一页\n\n## 5.2 源代码详细实现\n",
        }
    )
    assert code != 0, log
    for broken in ("nowhere.md", "no-such-heading", "no-such-anchor"):
        assert broken in log, f"{broken} 应当被报出来：\n{log}"
    assert "52-源代码详细实现" not in log, "好的中文锚点不该被报"


def test_missing_browser_assets_fail_with_what_to_run():
    """没装 Mermaid/KaTeX 时构建失败并说明该运行什么，绝不悄悄退回 CDN（见 hello_build.assets）。"""
    from hello_build import assets

    with pytest.raises(assets.MissingAssets, match="npm ci"):
        assets.files(Path("/nonexistent/node_modules"))


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
