"""PDF 里的文字能搜到：把 Chromium 写进 ToUnicode 的部首字符换回对应的汉字。

Noto CJK 这样的字体里，“页”（U+9875）和 CJK 部首补充里的“⻚”（U+2EDA）是同一个字形。Chromium 打印 PDF 时，
给每个字形只记一个 Unicode 字符，选的是编码较小的那个部首：PDF 看起来没有问题，复制出来、搜“页”却找不到。
这里从打印用的字体的 cmap 找出“同一个字形的部首 -> 汉字”，改写 PDF 里每个字体的 ToUnicode 表。
"""

from __future__ import annotations

import logging
import re
import subprocess
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

RADICALS = range(0x2E80, 0x2FE0)  # CJK 部首补充与康熙部首
_IDEOGRAPHS = (range(0x4E00, 0xA000), range(0x3400, 0x4DC0))
CJK_FONT = "Noto Sans CJK SC"  # fonts-noto-cjk；网页和 PDF 的中文都用它


class _DropMessage(logging.Filter):
    def __init__(self, text: str):
        super().__init__()
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        return self.text not in record.getMessage()


def font_file(family: str = CJK_FONT) -> Path:
    found = subprocess.run(
        ["fc-match", "-f", "%{file}", family], capture_output=True, text=True, check=True
    ).stdout
    return Path(found)


def radical_equivalents(path: Path, family: str = CJK_FONT) -> dict[int, int]:
    """字体里和某个汉字共用字形的部首 -> 那个汉字。"""
    from fontTools.ttLib import TTCollection, TTFont

    fonts = TTCollection(str(path)).fonts if path.suffix.lower() in (".ttc", ".otc") else [TTFont(str(path))]
    # 一个 .ttc 里有日、韩、简、繁几个字体，同一个部首在各自的字体里对应不同的字形：只看打印用的那一个
    fonts = [font for font in fonts if font["name"].getDebugName(1) == family] or fonts[:1]
    mapping: dict[int, int] = {}
    for font in fonts:
        by_glyph: dict[str, list[int]] = defaultdict(list)
        for code, glyph in font.getBestCmap().items():
            by_glyph[glyph].append(code)
        for codes in by_glyph.values():
            ideographs = sorted(c for c in codes if any(c in block for block in _IDEOGRAPHS))
            for code in codes:
                if code in RADICALS and ideographs:
                    mapping.setdefault(code, ideographs[0])
    return mapping


_HEX = re.compile(rb"<([0-9A-Fa-f]*)>")
_SECTION = re.compile(rb"\d+\s+begin(bfchar|bfrange)\s(.*?)\send\1", re.S)


def _text(hex_digits: bytes) -> str:
    return bytes.fromhex(hex_digits.decode()).decode("utf-16-be", errors="surrogatepass")


def read_cmap(data: bytes) -> dict[bytes, str]:
    """ToUnicode CMap 的全部映射：源代码（十六进制）-> 文字。认 bfchar、bfrange（起始值递增和数组两种写法）。"""
    found: dict[bytes, str] = {}
    for kind, body in _SECTION.findall(data):
        if kind == b"bfchar":
            codes = _HEX.findall(body)
            for source, target in zip(codes[::2], codes[1::2], strict=True):
                found[source.upper()] = _text(target)
            continue
        for line in re.finditer(rb"<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>\s*(\[[^\]]*\]|<[0-9A-Fa-f]*>)", body):
            low, high, target = int(line[1], 16), int(line[2], 16), line[3]
            width = len(line[1])
            targets = _HEX.findall(target)
            for offset, code in enumerate(range(low, high + 1)):
                key = f"{code:0{width}X}".encode()
                if target.startswith(b"["):
                    found[key] = _text(targets[offset])
                else:
                    text = _text(targets[0])
                    found[key] = text[:-1] + chr(ord(text[-1]) + offset)
    return found


def repair_cmap(data: bytes, mapping: dict[int, int]) -> bytes:
    """部首换成汉字以后的 CMap；没有要换的就原样返回。换了的话映射全部改写成 bfchar（每段最多 100 条）。"""
    entries = read_cmap(data)
    fixed = {
        code: "".join(chr(mapping.get(ord(ch), ord(ch))) for ch in text) for code, text in entries.items()
    }
    if fixed == entries:
        return data
    start, end = _SECTION.search(data).start(), None
    for end_match in _SECTION.finditer(data):
        end = end_match.end()
    items = sorted(fixed.items())
    blocks = []
    for index in range(0, len(items), 100):
        chunk = items[index : index + 100]
        lines = b"\n".join(
            b"<"
            + code
            + b"> <"
            + text.encode("utf-16-be", errors="surrogatepass").hex().upper().encode()
            + b">"
            for code, text in chunk
        )
        blocks.append(b"%d beginbfchar\n" % len(chunk) + lines + b"\nendbfchar")
    return data[:start] + b"\n".join(blocks) + data[end:]


def page_fonts(pages) -> Iterator:
    """每一页用到的每个字体的字典（pypdf 的页面；同一个字体在几页上用到就出现几次）。"""
    for page in pages:
        for font in page.get("/Resources", {}).get("/Font", {}).values():
            yield font.get_object()


def repair(pdf: Path, mapping: dict[int, int]) -> int:
    """改写 PDF 里全部 ToUnicode 表；返回改了几个表。"""
    import pypdf
    from pypdf.generic import NameObject

    # Chromium 写的 PDF 里，trailer 的 /Size 比最大的对象编号小，复制它时 pypdf 发出警告
    # “Object count … exceeds defined trailer size …”并照常处理；重新写出的文件 /Size 是对的。只滤掉这一条
    logger = logging.getLogger("pypdf._writer")  # pypdf 用模块名作记录器的名字
    quiet = _DropMessage("exceeds defined trailer size")
    logger.addFilter(quiet)
    try:
        writer = pypdf.PdfWriter(clone_from=str(pdf))
    finally:
        logger.removeFilter(quiet)
    changed, seen = 0, set()
    for font in page_fonts(writer.pages):
        to_unicode = font.get(NameObject("/ToUnicode"))
        if to_unicode is None or to_unicode.idnum in seen:
            continue
        seen.add(to_unicode.idnum)
        stream = to_unicode.get_object()
        data = stream.get_data()
        fixed = repair_cmap(data, mapping)
        if fixed != data:
            stream.set_data(fixed)
            changed += 1
    if changed:
        with open(pdf, "wb") as handle:
            writer.write(handle)
    return changed
