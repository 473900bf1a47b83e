"""笔记本网页的样式表瘦身：去掉 Jupyter 样式里一条也匹配不上的规则。

mkdocs-jupyter 带来 JupyterLab 的全部样式（575 KB，三千多条规则），笔记本网页只用到其中一百来个类名。浏览器
每打开一页都要解析全部规则、拿每个元素逐条去匹配。这里在构建时删掉“不可能匹配”的选择器，留下约 128 KB。
tests/site/test_browser.py 在浏览器里检查结果：每本笔记本的网页上，每一类元素（浅色、深色）的样式都和用完整
样式表时一样（布局算出的宽、高、位置除外）。

“不可能匹配”只用一个保守的充分条件：选择器里的每个复合选择器都要匹配页面上的某个元素，所以写在括号外面的
类名（``.jp-Cell``）每一个都必须出现在页面上。网页的 ``class`` 属性里和网站的脚本里都找不到某个类名，这个
选择器就匹配不到任何元素。括号里的类名（``:not(.x)``、``:is(.a, .b)``、``:has(.c)``）不算要求；属性、标签、
伪类也不算。脚本用字符串拼出来的类名（如 ``"size" + n``）这里看不到：这样的类名若出现在 Jupyter 样式里，由
上面那个浏览器测试发现。``@media``、``@supports`` 里的规则照此处理；其余 @ 规则（``@keyframes``、
``@charset``、``@layer``……）原样保留。
"""

from __future__ import annotations

import html
import itertools
import re
from collections.abc import Iterable
from dataclasses import dataclass

import tinycss2
from tinycss2.ast import Node

# class 属性的值：双引号、单引号或不加引号（用户代码输出的 HTML 什么写法都有）
_CLASS_ATTRIBUTE = re.compile(r"""\sclass\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+))""", re.I)
_INLINE_SCRIPT = re.compile(r"<script\b[^>]*>(.*?)</script>", re.S | re.I)
_WORD = re.compile(r"[\w-]+")
_CONDITIONAL = {"media", "supports"}


class UnreadableStylesheet(ValueError):
    """样式表里有 tinycss2 读不懂的地方：不猜，报出位置。"""


def names_in(html_pages: Iterable[str], scripts: Iterable[str]) -> set[str]:
    """网页上可能出现的类名：网页里 ``class`` 属性写的，加上脚本（网页里内联的和 ``scripts``）里出现的每个词——
    脚本运行时给元素加的类名（如 Material 给表格套的 ``md-typeset__scrollwrap``）一般照原样写在脚本里。"""
    found: set[str] = set()
    for html_text in html_pages:
        for match in _CLASS_ATTRIBUTE.finditer(html_text):
            found.update(html.unescape(next(value for value in match.groups() if value is not None)).split())
        for match in _INLINE_SCRIPT.finditer(html_text):
            found.update(_WORD.findall(match[1]))
    for script in scripts:
        found.update(_WORD.findall(script))
    return found


def _split_selector_list(prelude: list[Node]) -> list[list[Node]]:
    """按最外层的逗号切开选择器列表（``:is(.a, .b)`` 里的逗号是一个记号块的内部，不会切到）。"""
    parts: list[list[Node]] = [[]]
    for token in prelude:
        if token.type == "literal" and token.value == ",":
            parts.append([])
        else:
            parts[-1].append(token)
    return parts


def _required_classes(selector: list[Node]) -> set[str]:
    """选择器里写在括号外面的类名：``.`` 后面紧跟一个标识符。"""
    required = set()
    for before, token in itertools.pairwise(selector):
        if before.type == "literal" and before.value == "." and token.type == "ident":
            required.add(token.value)
    return required


def _vendor_specific(selector: list[Node]) -> bool:
    """带浏览器前缀的伪类、伪元素（``::-moz-placeholder``）：别的浏览器不认识，会丢掉整个选择器列表。"""
    return any(
        before.type == "literal"
        and before.value == ":"
        and token.type == "ident"
        and token.value.startswith("-")
        for before, token in itertools.pairwise(selector)
    )


def _check(nodes: list[Node], where: str) -> None:
    for node in nodes:
        if node.type == "error":
            raise UnreadableStylesheet(
                f"{where} 第 {node.source_line} 行第 {node.source_column} 列：{node.message}"
            )


def _prune(rules: list[Node], classes: set[str]) -> tuple[list[str], int, int]:
    kept_text: list[str] = []
    kept = dropped = 0
    for rule in rules:
        _check([rule], "样式表")
        if rule.type == "qualified-rule":
            _check(rule.prelude, "选择器")
            selectors = _split_selector_list(rule.prelude)
            matching = [s for s in selectors if _required_classes(s) <= classes]
            # 列表里有浏览器前缀的选择器时，浏览器要么用整个列表、要么整个丢掉：只删掉其中一部分会改变这种行为
            if matching and len(matching) < len(selectors) and any(map(_vendor_specific, selectors)):
                matching = selectors
            if matching:
                prelude = ",".join(tinycss2.serialize(s).strip() for s in matching)
                kept_text.append(f"{prelude}{{{tinycss2.serialize(rule.content)}}}")
                kept += 1
            else:
                dropped += 1
        elif rule.lower_at_keyword in _CONDITIONAL and rule.content:
            inner = tinycss2.parse_rule_list(rule.content, skip_whitespace=True, skip_comments=True)
            inner_text, inner_kept, inner_dropped = _prune(inner, classes)
            kept += inner_kept
            dropped += inner_dropped
            if inner_text:
                prelude = tinycss2.serialize(rule.prelude)
                kept_text.append(f"@{rule.at_keyword}{prelude}{{{''.join(inner_text)}}}")
        else:
            kept_text.append(tinycss2.serialize([rule]))
    return kept_text, kept, dropped


@dataclass(frozen=True)
class Pruned:
    """瘦身后的样式表，和保留、删掉的规则数。"""

    css: str
    kept: int
    dropped: int


def prune(css: str, classes: set[str]) -> Pruned:
    """删掉 ``css`` 里在只用到 ``classes`` 这些类名的网页上一定匹配不到的选择器与规则。"""
    rules = tinycss2.parse_stylesheet(css, skip_whitespace=True, skip_comments=True)
    text, kept, dropped = _prune(rules, classes)
    return Pruned("\n".join(text) + "\n", kept, dropped)
