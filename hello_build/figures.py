"""内联 SVG 图：把代码块打印的 SVG 变成能放进 HTML 页面的样子，图本身一个像素都不变。

matplotlib 存出的 SVG 是一份独立的 XML 文件：开头有 XML 声明和 DOCTYPE，里面有一段 RDF 格式的 <metadata>
（作者、格式；放在 <body> 里都是无效的 HTML，浏览器也不显示），
图里的元素 id 从 ``figure_1``、``axes_1``、``patch_1`` 起编号——同一页有两张图，id 就重复了，页内链接和读屏
软件会找错元素。这里去掉声明和元数据，并给每张图里的 id（以及引用它们的 ``url(#…)``、``href="#…"``）加上前缀：
前缀由代码块的 id（“snippet 文件:片段”）和这是块里的第几张图组成，同一个输出每次构建得到同样的 HTML。
"""

from __future__ import annotations

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
