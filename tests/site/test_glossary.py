"""术语表说的是真话：表里每个中文术语都真的出现在它所指的那一页上。"""

from __future__ import annotations

import re

import pytest

from tests.conftest import DOCS

ROW = re.compile(r"^\| (?P<zh>[^|]+?) \| (?P<en>[^|]+?) \| \[[^\]]+\]\((?P<page>[^)#]+)\) \|$", re.MULTILINE)
ROWS = ROW.findall((DOCS / "glossary.md").read_text(encoding="utf-8"))


def test_glossary_has_terms():
    assert len(ROWS) >= 40


@pytest.mark.parametrize(("zh", "en", "page"), ROWS, ids=[row[0] for row in ROWS])
def test_term_appears_on_its_page(zh, en, page):
    term = re.sub(r"（.*?）", "", zh).strip()
    text = (DOCS / page).read_text(encoding="utf-8")
    assert term in text, f"术语表说“{term}”在 {page} 讲，那一页却没有这个词"
