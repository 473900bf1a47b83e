"""构建出的每个 HTML 页面：元素 id 不重复；DOM 的元素个数不超过预算（页面越大，浏览器越慢，见 nox -s audit）；
不从别的主机加载任何东西（浏览器测试只打开其中一部分页面，见 tests/site/test_notebooks.py 的 BROWSER_NOTEBOOKS）。

只读文件、不开浏览器，一秒内查完全站；它在两次 Lighthouse 审计之间挡住回退。
"""

from __future__ import annotations

import collections
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

# 一页最多多少个元素：元素越多，浏览器解析、排版、运行脚本越慢。预算按实测定：
# 2026-12 实测最大的章节页 5,868 个（part2/ch01_gpt），笔记本页 11,286 个（notebooks/part2/ch01_gpt，mkdocs-jupyter 把
# 每个词法单元都包成一个元素），各留约 20% 余量。哪一页长到超过它，先想办法让页面变轻，再考虑调高。
MAX_ELEMENTS = {"chapter": 7_000, "notebook": 13_500}


# 浏览器打开页面时会去取的地址：这些属性（<link> 的 href 只算会被取回的那几种 rel）和内联样式里的 url(…)
LOADING_ATTRIBUTES = {"src", "srcset", "poster", "data", "xlink:href"}
LOADING_LINKS = {
    "stylesheet",
    "icon",
    "preload",
    "modulepreload",
    "prefetch",
    "preconnect",
    "dns-prefetch",
    "manifest",
}
CSS_URL = re.compile(r"url\(\s*['\"]?([^'\")]+)")
OUTSIDE = re.compile(r"^(?:[a-z][a-z0-9+.-]*:)?//", re.I)  # http://、https://、//host/：别的主机


class _Census(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.ids: collections.Counter[str] = collections.Counter()
        self.elements = 0
        self.loads: list[str] = []  # 浏览器会去取的地址
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        self._count(tag, attrs)
        self._in_style = tag == "style"

    def handle_startendtag(self, tag, attrs):
        self._count(tag, attrs)

    def handle_endtag(self, tag):
        self._in_style = False

    def handle_data(self, data):
        if self._in_style:
            self.loads += CSS_URL.findall(data)

    def _count(self, tag, attrs):
        self.elements += 1  # 内联 SVG 图里的每条路径也是一个元素，浏览器一样要处理
        values = dict(attrs)
        for name, value in attrs:
            if name == "id" and value is not None:
                self.ids[value] += 1
            if value is None:
                continue
            if name in LOADING_ATTRIBUTES:
                self.loads += (
                    [part.split()[0] for part in value.split(",") if part.strip()]
                    if name == "srcset"
                    else [value]
                )
            elif name == "style":
                self.loads += CSS_URL.findall(value)
        rel = set((values.get("rel") or "").lower().split())
        if tag == "link" and rel & LOADING_LINKS and values.get("href"):
            self.loads.append(values["href"])


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
    parser = _Census()
    parser.feed(
        '<link rel="stylesheet" href="https://cdn.example/a.css"><link rel="canonical" href="https://site/x/">'
        '<a href="https://colab.example/">Colab</a><img src="b.png" srcset="c.png 1x, //cdn.example/d.png 2x">'
        "<div style=\"background: url('https://cdn.example/e.png')\"></div><style>p { background: url(f.png) }</style>"
    )
    assert parser.loads == [
        "https://cdn.example/a.css",
        "b.png",
        "c.png",
        "//cdn.example/d.png",
        "https://cdn.example/e.png",
        "f.png",
    ]  # 链接（a、canonical）不是加载


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


def test_no_page_loads_anything_from_another_host(built_site, pages):
    """每一页（包括浏览器测试没有打开的笔记本网页）和网站的每个样式表：浏览器要取的东西都在本站。
    页面上的脚本运行时会不会再去别处取东西，由浏览器测试在它打开的页面上检查（同一组脚本）。"""
    outside = {page: [url for url in parser.loads if OUTSIDE.match(url)] for page, parser in pages.items()}
    for sheet in built_site.path.rglob("*.css"):
        outside[sheet.relative_to(built_site.path).as_posix()] = [
            url for url in CSS_URL.findall(sheet.read_text(encoding="utf-8")) if OUTSIDE.match(url)
        ]
    outside = {page: urls for page, urls in outside.items() if urls}
    assert not outside, f"这些页面要从别的主机加载东西：{outside}"
