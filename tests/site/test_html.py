"""构建出的每个 HTML 页面：元素 id 不重复；DOM 的元素个数不超过预算（页面越大，浏览器越慢，见 nox -s audit）。

只读文件、不开浏览器，一秒内查完全站；它在两次 Lighthouse 审计之间挡住回退。
"""

from __future__ import annotations

import collections
from html.parser import HTMLParser
from pathlib import Path

import pytest

# 一页最多多少个元素：元素越多，浏览器解析、排版、运行脚本越慢。预算按实测定：
# 2026-12 实测最大的章节页 5,868 个（part2/ch01_gpt），笔记本页 11,286 个（notebooks/part2/ch01_gpt，mkdocs-jupyter 把
# 每个词法单元都包成一个元素），各留约 20% 余量。哪一页长到超过它，先想办法让页面变轻，再考虑调高。
MAX_ELEMENTS = {"chapter": 7_000, "notebook": 13_500}


class _Census(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.ids: collections.Counter[str] = collections.Counter()
        self.elements = 0

    def handle_starttag(self, tag, attrs):
        self._count(attrs)

    def handle_startendtag(self, tag, attrs):
        self._count(attrs)

    def _count(self, attrs):
        self.elements += 1  # 内联 SVG 图里的每条路径也是一个元素，浏览器一样要处理
        for name, value in attrs:
            if name == "id" and value is not None:
                self.ids[value] += 1


def census(page: Path) -> _Census:
    parser = _Census()
    parser.feed(page.read_text(encoding="utf-8"))
    parser.close()
    return parser


@pytest.fixture(scope="module")
def pages(built_site) -> dict[str, _Census]:
    return {
        page.relative_to(built_site.path).as_posix(): census(page)
        for page in sorted(built_site.path.rglob("*.html"))
    }


def test_the_census_counts_what_it_should():
    parser = _Census()
    parser.feed('<div id="a"><p id="a">x</p><svg><path/><g><path/></g></svg><br/></div>')
    assert parser.ids["a"] == 2
    assert parser.elements == 7  # div、p、svg、path、g、path、br


def test_no_page_has_a_duplicate_id(pages):
    duplicated = {
        page: sorted(name for name, count in parser.ids.items() if count > 1)
        for page, parser in pages.items()
    }
    duplicated = {page: names for page, names in duplicated.items() if names}
    assert not duplicated, "重复的元素 id（页内链接和读屏软件会找错元素）：" + "; ".join(
        f"{page}: {', '.join(names[:5])}{' …' if len(names) > 5 else ''}（共 {len(names)} 个）"
        for page, names in duplicated.items()
    )


def test_every_page_stays_within_the_dom_budget(pages):
    assert len(pages) > 30
    heavy = []
    for page, parser in pages.items():
        limit = MAX_ELEMENTS["notebook" if page.startswith("notebooks/") else "chapter"]
        if parser.elements > limit:
            heavy.append(f"{page}（{parser.elements} 个，预算 {limit}）")
    assert not heavy, "页面的元素超过预算：" + "，".join(heavy)
