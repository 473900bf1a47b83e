"""笔记本网页的样式表瘦身：去掉 Jupyter 样式里一条也匹配不上的规则。

mkdocs-jupyter 带来 JupyterLab 的全部样式（575 KB，三千多条规则），笔记本网页只用到其中一百来个类名。浏览器
每打开一页都要解析全部规则、拿每个元素逐条去匹配。这里在构建时删掉“不可能匹配”的选择器；浏览器对每个元素
算出的样式和用原样式表时完全一样（tests/site/test_browser.py 在浏览器里逐个元素比较）。

“不可能匹配”只用一个保守的充分条件：选择器的每一节都要匹配页面上的某个元素，所以写在括号外面的类名
（``.jp-Cell``）每一个都必须出现在页面上。网页的 ``class`` 属性里和脚本里都找不到某个类名，这个选择器就匹配
不到任何元素。括号里的类名（``:not(.x)``、``:is(.a, .b)``、``:has(.c)``）不作要求，属性、标签、伪类一律
保留。``@media`` 等条件规则里的规则照此处理；``@keyframes``、``@charset`` 之类原样保留。
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable
from dataclasses import dataclass

import tinycss2
from tinycss2.ast import Node

_CLASS_ATTRIBUTE = re.compile(r'\bclass="([^"]*)"')
_INLINE_SCRIPT = re.compile(r"<script\b[^>]*>(.*?)</script>", re.S | re.I)
_WORD = re.compile(r"[\w-]+")
_GROUPING = {"media", "supports", "layer", "container", "document"}


def names_in(html_pages: Iterable[str], scripts: Iterable[str]) -> set[str]:
    """网页上可能出现的类名：网页里 ``class="…"`` 写的，加上脚本（网页里内联的和 ``scripts``）里出现的每个词——
    脚本运行时给元素加的类名（如 Material 给表格套的 ``md-typeset__scrollwrap``）都写在脚本里。"""
    found: set[str] = set()
    for html_text in html_pages:
        for match in _CLASS_ATTRIBUTE.finditer(html_text):
            found.update(match[1].split())
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


def _can_match(selector: list[Node], classes: set[str]) -> bool:
    if any(token.type == "error" for token in selector):
        return True  # 看不懂的写法原样保留
    return _required_classes(selector) <= classes


def _prune(rules: list[Node], classes: set[str]) -> tuple[list[str], int, int]:
    kept_text: list[str] = []
    kept = dropped = 0
    for rule in rules:
        if rule.type == "qualified-rule":
            selectors = _split_selector_list(rule.prelude)
            matching = [s for s in selectors if _can_match(s, classes)]
            if matching:
                prelude = ",".join(tinycss2.serialize(s).strip() for s in matching)
                kept_text.append(f"{prelude}{{{tinycss2.serialize(rule.content)}}}")
                kept += 1
            else:
                dropped += 1
        elif rule.type == "at-rule" and rule.lower_at_keyword in _GROUPING and rule.content:
            inner = tinycss2.parse_rule_list(rule.content, skip_whitespace=True, skip_comments=True)
            inner_text, inner_kept, inner_dropped = _prune(inner, classes)
            kept += inner_kept
            dropped += inner_dropped
            if inner_text:
                prelude = tinycss2.serialize(rule.prelude)
                kept_text.append(f"@{rule.at_keyword}{prelude}{{{''.join(inner_text)}}}")
        elif rule.type == "at-rule":
            kept_text.append(tinycss2.serialize([rule]))
        else:  # 解析错误：原样写回，让浏览器照旧处理
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
