"""hello_build.pdftext：PDF 的 ToUnicode 表里，和汉字同形的部首换回汉字。"""

from __future__ import annotations

import shutil

import pytest

from hello_build import pdftext

CMAP = b"""/CIDInit /ProcSet findresource begin
begincmap
1 begincodespacerange
<00> <FF>
endcodespacerange
2 beginbfchar
<01> <0020>
<02> <2EDA>
endbfchar
2 beginbfrange
<10> <12> <2ED9>
<20> <21> [<2EC5> <0041>]
endbfrange
endcmap
end"""


def test_every_way_of_writing_a_mapping_is_read():
    assert pdftext.read_cmap(CMAP) == {
        b"01": " ",
        b"02": "⻚",
        b"10": "⻙",
        b"11": "⻚",
        b"12": "⻛",
        b"20": "⻅",
        b"21": "A",
    }


def test_radicals_become_the_ideographs_and_nothing_else_changes():
    fixed = pdftext.repair_cmap(CMAP, {0x2EDA: 0x9875, 0x2EC5: 0x89C1})
    assert pdftext.read_cmap(fixed) == {
        b"01": " ",
        b"02": "页",
        b"10": "⻙",
        b"11": "页",
        b"12": "⻛",
        b"20": "见",
        b"21": "A",
    }
    assert fixed.startswith(CMAP[: CMAP.index(b"2 beginbfchar")]) and fixed.endswith(b"endcmap\nend")
    assert pdftext.repair_cmap(CMAP, {}) == CMAP, "没有要换的字，原样返回"


def test_the_cjk_font_maps_the_radicals_chromium_picks_to_ideographs():
    if not shutil.which("fc-match"):
        pytest.skip("没有 fontconfig")
    path = pdftext.font_file()
    if "CJK" not in path.name:
        pytest.skip(f"没有 {pdftext.CJK_FONT}（apt-get install fonts-noto-cjk）")
    mapping = pdftext.radical_equivalents(path)
    for radical, ideograph in {"⻚": "页", "⻅": "见", "⻓": "长", "⻔": "门", "⼾": "户"}.items():
        assert mapping.get(ord(radical)) == ord(ideograph), radical
