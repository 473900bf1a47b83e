"""整本书的 PDF（nox -s pdf；hello_build/pdf.py）。测试会话里只构建一次带打印页的网站、只打印一次，下面每个检查
都读同一个 PDF：各章标题按导航顺序都在；网页上执行得到的数字原样在 PDF 里；书签有每一章、每一节；字体全部嵌入、
没有缺字；图和公式画好了，不是源码。

没有 Chromium 或中文字体时跳过并说明原因；CI 里（CI=true）不跳过，直接失败。"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import pytest

from hello_build import pdf
from tests.conftest import ROOT, mkdocs_build

CHROMIUM = os.environ.get(pdf.CHROMIUM_ENV, pdf.DEFAULT_CHROMIUM)
# 进 PDF 的页面：三个部分的各章、勘误、术语表（首页、运行时间表、笔记本网页不进）
IN_BOOK = re.compile(r"^\s+- (?:\S+: )?((?:part\d/ch\d\d_\w+|errata|glossary)\.md)\s*$", re.M)


def _missing() -> str | None:
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        return f"没有 Chromium（{CHROMIUM}）"
    fonts = subprocess.run(["fc-list", ":lang=zh"], capture_output=True, text=True, check=False).stdout
    if not fonts.strip():
        return "没有中文字体"
    return None


def _flat(text: str) -> str:
    """比较用：兼容字符统一（pypdf 把部分汉字取成康熙部首，例如“⼤”），去掉全部空白（PDF 里的换行位置与网页不同）。"""
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", text))


@dataclass(frozen=True)
class Book:
    path: Path
    pages: list[str]  # 每一页的文字（已 NFKC）
    outline: list[tuple[int, str, int]]  # (层级, 书签标题, 页码，从 0 开始)
    seconds: float

    @property
    def flat(self) -> str:
        return _flat("".join(self.pages))


def _outline(reader, items=None, depth=0) -> list[tuple[int, str, int]]:
    found = []
    for item in reader.outline if items is None else items:
        if isinstance(item, list):
            found += _outline(reader, item, depth + 1)
        else:
            found.append((depth, unicodedata.normalize("NFKC", item.title), reader.get_destination_page_number(item)))
    return found


@pytest.fixture(scope="module")
def book(built_site, tmp_path_factory) -> Book:
    missing = _missing()
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"CI 里打印 PDF 需要的工具不全：{missing}")
        pytest.skip(f"打印 PDF 需要 Chromium 和中文字体：{missing}（{pdf.__doc__.splitlines()[-1]}）")
    import pypdf

    site_dir = tmp_path_factory.mktemp("pdf") / "site-pdf"
    result = mkdocs_build(ROOT / "mkdocs.yml", site_dir, cwd=ROOT, share_cache=True, HELLO_PYTORCH_PDF="true")
    assert result.returncode == 0, f"带打印页的构建失败：\n{result.stdout[-6000:]}"
    printed = pdf.print_book(site_dir, site_dir / "hello-pytorch.pdf")
    reader = pypdf.PdfReader(printed.path)
    pages = [unicodedata.normalize("NFKC", page.extract_text() or "") for page in reader.pages]
    return Book(printed.path, pages, _outline(reader), printed.seconds)


def _chapters() -> list[str]:
    return IN_BOOK.findall((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))


def _title(built_site, page: str) -> str:
    match = re.search(r"<h1[^>]*>(.*?)<", built_site.html(page), re.S)
    assert match, f"{page} 没有一级标题"
    return unicodedata.normalize("NFKC", match[1]).strip()


def test_every_chapter_is_bookmarked_in_nav_order(book, built_site):
    titles = [_title(built_site, page) for page in _chapters()]
    assert len(titles) >= 24, titles
    top = [(title, page) for depth, title, page in book.outline if depth == 0]
    assert [title for title, _ in top] == titles, f"书签的一级条目与导航里的章节不一致：{top}"
    pages = [page for _, page in top]
    assert pages == sorted(pages), f"各章的书签不是按页码递增的：{top}"
    for title, page in top:
        assert _flat(title) in _flat(book.pages[page]), f"书签“{title}”指向的第 {page + 1} 页上没有这个标题"


def test_sections_are_bookmarked(book, built_site):
    sections = [depth for depth, _, _ in book.outline if depth == 1]
    assert len(sections) > 3 * len(_chapters()), f"二级书签（各节）只有 {len(sections)} 个"
    html = built_site.html("part2/ch01_gpt.md")
    h2 = [unicodedata.normalize("NFKC", re.sub(r"<[^>]+>", "", m)).strip() for m in re.findall(r"<h2[^>]*>(.*?)</h2>", html, re.S)]
    titles = {_flat(title) for _, title, _ in book.outline}
    missing = [title for title in h2 if _flat(title.rstrip("¶")) not in titles]
    assert not missing, f"part2/ch01_gpt 的这些节没有书签：{missing}"


def test_executed_outputs_are_the_same_numbers_as_on_the_web(book, built_site):
    """网页上执行结果里带数字的行（不含计时），在 PDF 里原样出现：打印的是同一次构建的输出。"""
    sample = []
    for page in ("part1/ch05_hello.md", "part2/ch01_gpt.md", "part2/ch03_finetune.md", "part3/ch01_ddp.md"):
        lines = [line for block in built_site.outputs(page) for line in block.splitlines()]
        numbered = [line for line in lines if re.search(r"\d\.\d", line) and not re.search(r"秒|ms|/s|it/s", line)]
        assert numbered, f"{page} 的输出里没有带小数的行"
        sample += numbered[:3]
    flat = book.flat
    missing = [line for line in sample if _flat(line) not in flat]
    assert not missing, f"这些输出行在 PDF 里找不到：{missing}"


def test_diagrams_and_formulas_are_drawn_not_source(book):
    flat = book.flat
    for source in ("graphTB", "graphLR", "-->", "\\frac", "\\mathrm", "\\sqrt{", "\\(", "\\["):
        assert source not in flat, f"PDF 里有没画的图或没排版的公式的源码：{source!r}"
    # 图里的文字（Mermaid 的方框）和公式里的符号是 PDF 的文字，搜得到
    assert _flat("字符编号，形状 (B, T)") in flat, "part2/ch01_gpt 的模型结构图不在 PDF 里"


def test_fonts_are_embedded_and_nothing_is_tofu(book):
    import pypdf

    reader = pypdf.PdfReader(book.path)
    not_embedded, notdef = set(), set()
    for page in reader.pages:
        fonts = page.get("/Resources", {}).get("/Font", {})
        for font in fonts.values():
            font = font.get_object()
            name = str(font.get("/BaseFont", font.get("/Subtype")))
            if font.get("/Subtype") == "/Type3":
                continue  # Type 3 字体的字形就写在 PDF 里
            descendant = font["/DescendantFonts"][0].get_object() if "/DescendantFonts" in font else font
            descriptor = descendant.get("/FontDescriptor", {})
            if not any(key in descriptor for key in ("/FontFile", "/FontFile2", "/FontFile3")):
                not_embedded.add(name)
            to_unicode = font.get("/ToUnicode")
            if to_unicode is not None and re.search(rb"<0000>\s*<", to_unicode.get_object().get_data()):
                notdef.add(name)  # 字形 0 是 .notdef：某个字符没有字体能显示（豆腐块）
    assert not not_embedded, f"这些字体没有嵌入 PDF：{sorted(not_embedded)}"
    assert not notdef, f"这些字体里有显示不出的字符（.notdef）：{sorted(notdef)}"
