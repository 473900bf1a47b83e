"""内联 SVG 图：把代码块打印的 SVG 变成能放进 HTML 页面的样子，图本身一个像素都不变。

matplotlib 存出的 SVG 是一份独立的 XML 文件：开头有 XML 声明和 DOCTYPE，里面有一段 RDF 格式的 <metadata>
（作者、格式；放在 <body> 里都是无效的 HTML，浏览器也不显示），
图里的元素 id 从 ``figure_1``、``axes_1``、``patch_1`` 起编号——同一页有两张图，id 就重复了，页内链接和读屏
软件会找错元素。这里去掉声明和元数据，并给每张图里的 id（以及引用它们的 ``url(#…)``、``href="#…"``）加上前缀：
前缀由代码块的 id（“snippet 文件:片段”）和这是块里的第几张图组成，同一个输出每次构建得到同样的 HTML。
"""

from __future__ import annotations

import base64
import html as html_lib
import itertools
import re

_PROLOG = re.compile(r"<\?xml[^>]*\?>\s*|<!DOCTYPE svg[^>]*>\s*|<metadata>.*?</metadata>\s*", re.I | re.S)
_SVG = re.compile(r"<svg\b.*?</svg>", re.DOTALL)
_ID = re.compile(r'\bid="([^"]+)"')


def prefix_for(block_id: str) -> str:
    """代码块的 id（如 snippets/part1/ch03_algorithm.py:plot_data）-> 能用在元素 id 里的前缀。"""
    return re.sub(r"[^A-Za-z0-9_-]+", "-", block_id).strip("-")


def _scope(svg: str, prefix: str) -> str:
    ids = set(_ID.findall(svg))
    if not ids:
        return svg

    def rename(name: str) -> str:
        return f"{prefix}-{name}" if name in ids else name

    svg = _ID.sub(lambda m: f'id="{rename(m[1])}"', svg)
    svg = re.sub(r"url\(#([^)]+)\)", lambda m: f"url(#{rename(m[1])})", svg)
    return re.sub(r'((?:xlink:)?href)="#([^"]+)"', lambda m: f'{m[1]}="#{rename(m[2])}"', svg)


def inline_svg(html: str, block_id: str) -> str:
    """去掉 XML 声明、DOCTYPE 与元数据，给第 n 张图的 id 加上前缀“代码块前缀-svg{n}”。没有 SVG 的 HTML 原样返回。"""
    if "<svg" not in html:
        return html
    html = _PROLOG.sub("", html)
    prefix = prefix_for(block_id)
    count = itertools.count()
    return _SVG.sub(lambda m: _scope(m[0], f"{prefix}-svg{next(count)}"), html)


# ---------------------------------------------------------------- 笔记本网页：图作为 <img>
# 笔记本网页当时带着 575 KB 的 Jupyter 样式（现在构建时删掉了匹配不到的规则，见 stylesheets.py），图里上千个元素（每个点一个 <use>、每个刻度一组 <g>）内联在页面里，
# 浏览器每次重算样式都要算它们：notebooks/part1/ch03_algorithm 的总阻塞时间（Lighthouse 桌面）因此 231 ms，
# 换成 <img> 后，之后三次完整审计（桌面与手机）在 51–118 ms。<img> 里的 SVG 仍是矢量图，打印和放大都清楚；
# 它是独立的文档，id 不会和页面重复。
# 笔记本里存的就是这个 <img>（Jupyter 与 Colab 都能显示），网页由 mkdocs-jupyter 从笔记本渲染。

_TEXT = re.compile(r"<text\b[^>]*>(.*?)</text>", re.S)
_SIZE = re.compile(r'<svg\b[^>]*?\bwidth="([\d.]+)pt"[^>]*?\bheight="([\d.]+)pt"', re.S)
_WORD = re.compile(r"[^\W\d_]")  # 至少有一个字母或汉字：坐标刻度（-1.0、0.5）不算


def alt_text(svg: str) -> str:
    """图的替代文字：图里的标题、坐标轴名和图例（matplotlib 以 svg.fonttype="none" 把文字写成 <text>），去掉刻度数字。"""
    texts = dict.fromkeys(
        t
        for t in (html_lib.unescape(re.sub(r"<[^>]+>", "", m)).strip() for m in _TEXT.findall(svg))
        if _WORD.search(t)
    )
    return "图：" + "；".join(texts) if texts else "图"


def _img(svg: str) -> str:
    size = _SIZE.search(svg)
    if size is None:
        raise ValueError(
            "SVG 图没有以 pt 为单位的 width 与 height（matplotlib 的 SVG 都有）：无法给 <img> 留出位置"
        )
    width, height = (round(float(v) * 4 / 3) for v in size.groups())  # 1pt = 4/3 CSS 像素
    data = base64.b64encode(svg.encode("utf-8")).decode("ascii")
    alt = html_lib.escape(alt_text(svg), quote=True)
    return (
        f'<img class="hp-figure" src="data:image/svg+xml;base64,{data}" '
        f'width="{width}" height="{height}" alt="{alt}" loading="lazy" decoding="async">'
    )


def as_images(html: str) -> str:
    """把 HTML 里每一张 SVG 图换成 <img>（去掉 XML 声明与元数据，图本身不变）。没有 SVG 的 HTML 原样返回。"""
    if "<svg" not in html:
        return html
    return _SVG.sub(lambda m: _img(m[0]), _PROLOG.sub("", html))
