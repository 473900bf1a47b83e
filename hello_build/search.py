"""搜索：让 mkdocs-material 的中文分词（jieba）认得术语表里的整词。

jieba 把“反向传播”切成“反向 / 传播”，读者搜整个词就找不到；把术语表里的每个中文术语告诉 jieba，
它们在搜索索引里就保持完整。术语表是唯一的词表来源。
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

_TERM = re.compile(r"^\| ([^|（]+?)(?:（[^|]*）)? \| ", re.MULTILINE)


def glossary_terms(glossary: Path) -> list[str]:
    if not glossary.exists():
        return []
    terms = [t.strip() for t in _TERM.findall(glossary.read_text(encoding="utf-8"))]
    return [t for t in terms if re.search(r"[\u4e00-\u9fff]", t) and t != "中文"]


def teach_jieba(glossary: Path) -> list[str]:
    """返回教给 jieba 的词；没装 jieba 时什么也不做（mkdocs-material 的中文搜索也就不分词）。"""
    try:
        import jieba
    except ImportError:
        return []
    logging.getLogger("jieba").setLevel(logging.WARNING)  # 它每次都打印“Building prefix dict…”，那不是问题
    terms = glossary_terms(glossary)
    for term in terms:
        jieba.add_word(term)
    return terms


# 代码的输出（文字结果块和画出的 SVG 图）不进搜索索引：搜“损失函数”时不该被一屏屏的数字淹没，构建也更快
_OUTPUT_OPENING = re.compile(r'<div class="language-text highlight"|<svg(?=[\s>])')


def exclude_outputs(html_text: str) -> str:
    return _OUTPUT_OPENING.sub(lambda m: m[0] + " data-search-exclude", html_text)
