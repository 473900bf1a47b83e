"""整本书的 PDF（nox -s pdf；hello_build/pdf.py）。测试会话里只构建一次带打印页的网站、只打印一次（整站一建好就在
后台开始，见 _start_printing），下面每个检查都读同一个 PDF：各章标题按导航顺序都在、书签有每一章每一节；网页上
执行得到的数字原样在 PDF 里；字体全部嵌入、没有缺字；图和公式画好了，不是源码；页内链接都有目标、跳到对的章。

没有 Chromium 或中文字体时跳过并说明原因；CI 里（CI=true）不跳过，直接失败。"""

from __future__ import annotations

import concurrent.futures
import html as html_module
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import pytest

from hello_build import pdf, pdftext
from tests.conftest import AFTER_BUILD, ROOT, WORKER, BuiltSite, mkdocs_build

CHROMIUM = os.environ.get(pdf.CHROMIUM_ENV, pdf.DEFAULT_CHROMIUM)
BOOK = "hello-pytorch.pdf"
PRINT_TIMEOUT = 10 * 60  # 打印 386 页在 2 核上约 45 秒
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
    """比较用：去掉全部空白（PDF 里的换行位置与网页不同）。不做兼容字符统一（NFKC）：它会把部首“⻚”“⼤”并进汉字，
    掩盖 PDF 文字层里的部首（hello_build/pdftext.py 修的就是这个：PDF 里搜“页”要找得到）。"""
    return re.sub(r"\s+", "", text)


@dataclass(frozen=True)
class Book:
    path: Path
    print_page: Path  # 打印的那一页（print_page/index.html），各章拼在一起
    pages: list[str]  # 每一页的文字
    outline: list[tuple[int, str, int]]  # (层级, 书签标题, 页码，从 0 开始)

    @property
    def flat(self) -> str:
        return _flat("".join(self.pages))


def _print(site: BuiltSite) -> tuple[Path, str]:
    """带打印页的构建（与整站构建共用本会话的缓存：什么都不重新运行）和打印，各在一个子进程里。
    返回 (打印用的网站目录, 失败时的说明)。"""
    site_dir = site.path.parent / "site-pdf"
    built = mkdocs_build(
        ROOT / "mkdocs.yml",
        site_dir,
        cwd=ROOT,
        offline=site.offline,
        share_cache=True,
        HELLO_PYTORCH_PDF="true",
    )
    if built.returncode:
        return site_dir, f"带打印页的构建失败：\n{built.stdout[-6000:]}"
    printed = subprocess.run(
        [sys.executable, "-m", "hello_build.pdf", str(site_dir), str(site_dir / BOOK)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=PRINT_TIMEOUT,
        check=False,
    )
    if printed.returncode:
        return site_dir, f"打印失败：\n{printed.stdout[-2000:]}\n{printed.stderr[-6000:]}"
    return site_dir, ""


_background: dict = {}


def _start_printing(site: BuiltSite) -> None:
    """整站一建好就在后台线程里开始构建和打印（conftest.AFTER_BUILD 调用），其余测试照常进行；book 再取结果。"""
    if _background or WORKER is not None or _missing():
        return
    pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="pdf")
    _background["future"] = pool.submit(_print, site)
    pool.shutdown(wait=False)


AFTER_BUILD.append(_start_printing)


@pytest.fixture(scope="module")
def book(built_site) -> Book:
    missing = _missing()
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"CI 里打印 PDF 需要的工具不全：{missing}")
        pytest.skip(f"打印 PDF 需要 Chromium 和中文字体：{missing}（{pdf.__doc__.splitlines()[-1]}）")
    import pypdfium2

    future = _background.get("future")
    site_dir, failure = future.result() if future is not None else _print(built_site)
    assert not failure, failure
    # PDFium（Chromium 自己的 PDF 引擎）取文字和书签：386 页不到 2 秒，pypdf 要半分钟以上
    document = pypdfium2.PdfDocument(site_dir / BOOK)
    try:
        pages = []
        for page in document:
            text = page.get_textpage()
            pages.append(text.get_text_bounded())
            text.close()
            page.close()
        outline = [(mark.level, mark.get_title(), mark.get_dest().get_index()) for mark in document.get_toc()]
    finally:
        document.close()
    return Book(site_dir / BOOK, site_dir / pdf.PRINT_PAGE / "index.html", pages, outline)


def _chapters() -> list[str]:
    return IN_BOOK.findall((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))


def _title(built_site, page: str) -> str:
    match = re.search(r"<h1[^>]*>(.*?)<", built_site.html(page), re.S)
    assert match, f"{page} 没有一级标题"
    return html_module.unescape(match[1]).strip()


def test_every_chapter_is_bookmarked_in_nav_order(book, built_site):
    titles = [_title(built_site, page) for page in _chapters()]
    assert len(titles) >= 24, titles
    # 一级书签还有封面、目录和三个部分的标题；各章按导航顺序出现在它们中间
    top = [(title, page) for depth, title, page in book.outline if depth == 0 and title in titles]
    assert [title for title, _ in top] == titles, f"书签的一级条目与导航里的章节不一致：{top}"
    pages = [page for _, page in top]
    assert pages == sorted(pages), f"各章的书签不是按页码递增的：{top}"
    for title, page in top:
        assert _flat(title) in _flat(book.pages[page]), f"书签“{title}”指向的第 {page + 1} 页上没有这个标题"


def test_the_table_of_contents_prints_the_page_each_part_and_chapter_starts_on(book):
    """目录里的页码（hello_build/pdf.py 从第一遍打印读出来、写进第二遍）就是各部分、各章的书签指向的页。"""
    top = [(title, page) for depth, title, page in book.outline if depth == 0]
    titles = [title for title, _ in top]
    assert "目录" in titles, f"一级书签里没有目录：{titles}"
    toc = top[titles.index("目录")][1]
    expected = [page + 1 for _, page in top[titles.index("目录") + 1 :]]
    printed = [int(line) for line in book.pages[toc].splitlines() if line.strip().isdigit()]
    assert len(expected) >= 27, f"目录之后的一级书签只有 {len(expected)} 个"
    assert printed == expected, (
        f"目录页（第 {toc + 1} 页）印的页码 {printed} 与书签指向的页 {expected} 不一致"
    )


def test_sections_are_bookmarked(book, built_site):
    sections = [depth for depth, _, _ in book.outline if depth == 1]
    assert len(sections) > 3 * len(_chapters()), f"二级书签（各节）只有 {len(sections)} 个"
    html = built_site.html("part2/ch01_gpt.md")
    h2 = [
        html_module.unescape(re.sub(r"<a class=\"headerlink\".*?</a>|<[^>]+>", "", m)).strip()
        for m in re.findall(r"<h2[^>]*>(.*?)</h2>", html, re.S)
    ]
    titles = {_flat(title) for _, title, _ in book.outline}
    missing = [title for title in h2 if _flat(title) not in titles]
    assert not missing, f"part2/ch01_gpt 的这些节没有书签：{missing}"


def test_executed_outputs_are_the_same_numbers_as_on_the_web(book, built_site):
    """网页上执行结果里带数字的行（不含计时），在 PDF 里原样出现：打印的是同一次构建的输出。"""
    sample = []
    for page in ("part1/ch05_hello.md", "part2/ch01_gpt.md", "part2/ch03_finetune.md", "part3/ch01_ddp.md"):
        lines = [line for block in built_site.outputs(page) for line in block.splitlines()]
        numbered = [
            line for line in lines if re.search(r"\d\.\d", line) and not re.search(r"秒|ms|/s|it/s", line)
        ]
        assert numbered, f"{page} 的输出里没有带小数的行"
        sample += numbered[:3]
    flat = book.flat
    missing = [line for line in sample if _flat(line) not in flat]
    assert not missing, f"这些输出行在 PDF 里找不到：{missing}"


def test_diagrams_and_formulas_are_drawn_not_source(book):
    flat = book.flat
    # 只查代码里不会出现的写法：正则表达式里的 \\( 是正常的代码
    for source in ("graphTB", "graphLR", "-->|", "\\frac", "\\mathrm", "\\sqrt{", "\\mathbf"):
        assert source not in flat, f"PDF 里有没画的图或没排版的公式的源码：{source!r}"
    # 画好的图里的文字（Mermaid 的方框）是 PDF 的文字，搜得到（公式的 KaTeX 字形取不回原字符，不查）
    assert _flat("字符编号，形状 (B, T)") in flat, "part2/ch01_gpt 的模型结构图不在 PDF 里"


@pytest.fixture(scope="module")
def reader(book):
    """pypdf 读一次 PDF 的对象（字体、ToUnicode 表、链接），几个检查共用。"""
    import pypdf

    return pypdf.PdfReader(book.path)


def _font_name(font) -> str:
    return str(font.get("/BaseFont", font.get("/Subtype")))


def test_every_font_is_embedded(reader):
    """每个字体都在 PDF 里：TrueType/CFF 字体带着字体程序；Type 3 字体（Chromium 把 Noto CJK 这样的 CFF 字体写成
    Type 3）的字形本身就写在 PDF 里。"""
    not_embedded, used = set(), set()
    for font in pdftext.page_fonts(reader.pages):
        name = _font_name(font)
        used.add(name)
        if font.get("/Subtype") == "/Type3":
            assert "/CharProcs" in font, f"{name}：Type 3 字体没有字形"
            continue
        descendant = font["/DescendantFonts"][0].get_object() if "/DescendantFonts" in font else font
        descriptor = descendant.get("/FontDescriptor", {})
        if not any(key in descriptor for key in ("/FontFile", "/FontFile2", "/FontFile3")):
            not_embedded.add(name)
    assert used, "PDF 里没有字体"
    assert not not_embedded, f"这些字体没有嵌入 PDF：{sorted(not_embedded)}"


def test_the_text_layer_has_ideographs_not_the_radicals_that_share_their_glyphs(reader):
    """PDF 里搜“页”要找得到。Chromium 把和汉字共用一个字形的部首写进 ToUnicode 表（“页”记成“⻚”，见
    hello_build/pdftext.py）。PDFium 取文字时自己把部首换回汉字，上面几个检查因此看不出来；别的阅读器照表取字，
    所以这里直接读每个字体的 ToUnicode 表。"""
    radicals: dict[str, str] = {}
    tables = set()
    for font in pdftext.page_fonts(reader.pages):
        table = font.get("/ToUnicode")
        if table is None or table.idnum in tables:
            continue
        tables.add(table.idnum)
        for text in pdftext.read_cmap(table.get_object().get_data()).values():
            for character in text:
                if ord(character) in pdftext.RADICALS:
                    radicals.setdefault(character, _font_name(font))
    assert len(tables) > 20, f"只找到 {len(tables)} 个 ToUnicode 表"
    assert not radicals, f"PDF 的文字层里有部首（应是同形的汉字）：{radicals}"


class _Text(HTMLParser):
    """文章正文的文字，跳过不进 PDF 文字的部分：脚本、样式、公式（KaTeX 的字形取不回原字符）、图的源码（画成图以后
    文字在 SVG 里）、标题的永久链接符号和代码块的复制按钮。"""

    SKIPPED_TAGS = frozenset({"script", "style", "svg"})
    SKIPPED_CLASSES = frozenset(
        {
            "arithmatex",
            "mermaid",
            "headerlink",
            "md-code__nav",
            "md-clipboard",
            "footnote-backref",
        }
    )
    VOID = frozenset(
        {
            "area",
            "base",
            "br",
            "col",
            "embed",
            "hr",
            "img",
            "input",
            "link",
            "meta",
            "source",
            "track",
            "wbr",
        }
    )

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.depth = 0  # 在跳过的元素里有几层
        self.parts: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag in self.VOID:
            return
        classes = set((dict(attrs).get("class") or "").split())
        if self.depth or tag in self.SKIPPED_TAGS or classes & self.SKIPPED_CLASSES:
            self.depth += 1

    def handle_endtag(self, tag):
        if self.depth and tag not in self.VOID:
            self.depth -= 1

    def handle_data(self, data):
        if not self.depth:
            self.parts.append(data)


def _web_characters(built_site, page: str) -> set[str]:
    html = built_site.html(page)
    start = html.index('<article class="md-content__inner md-typeset">')
    parser = _Text()
    parser.feed(html[start : html.index("</article>", start)])
    return set(_flat("".join(parser.parts)))


def test_no_character_is_missing_from_the_fonts(book, built_site):
    """没有豆腐块：网页正文用到的每个字符都在 PDF 的文字里。没有字体能显示的字符会印成 .notdef 字形（豆腐块），
    PDF 里它没有对应的 Unicode 字符，取出的文字里就没有它。"""
    flat = set(book.flat)
    missing = {}
    for page in _chapters():
        for character in sorted(_web_characters(built_site, page) - flat):
            missing.setdefault(character, page)
    assert not missing, f"这些字符在 PDF 的文字里没有（没有字体能显示？）：{missing}"


def _internal_links(reader) -> list[tuple[int, int]]:
    """PDF 里的页内链接：(链接所在的页, 目的地所在的页)，页码从 0 开始。指向不存在的目的地就失败。"""
    named = reader.named_destinations
    found = []
    for number, page in enumerate(reader.pages):
        for annotation in page.get("/Annots") or []:
            annotation = annotation.get_object()
            if annotation.get("/Subtype") != "/Link":
                continue
            action = annotation.get("/A")
            destination = annotation.get("/Dest")
            if destination is None and action is not None and action.get("/S") == "/GoTo":
                destination = action.get("/D")
            if destination is None:
                continue  # 外部网址（/URI）
            if isinstance(destination, str):
                assert destination in named, f"第 {number + 1} 页的链接指向不存在的目的地 {destination!r}"
                found.append((number, reader.get_destination_page_number(named[destination])))
            else:
                found.append((number, reader.get_page_number(destination[0].get_object())))
    return found


def test_cross_references_land_on_the_chapter_they_name(book, reader, built_site):
    """第 2 章里“第 4 章”的链接，在 PDF 里跳到第 4 章所在的页。"""
    links = _internal_links(reader)
    assert len(links) > 50, f"PDF 里只有 {len(links)} 个页内链接"
    titles = [_title(built_site, page) for page in _chapters()]
    starts = {title: page for depth, title, page in book.outline if depth == 0 and title in titles}
    order = [*sorted(starts.values()), len(book.pages)]

    def pages_of(page: str) -> range:
        start = starts[_title(built_site, page)]
        return range(start, next(p for p in order if p > start))

    source, target = pages_of("part1/ch02_concepts.md"), pages_of("part1/ch04_math.md")
    assert any(a in source and b in target for a, b in links), "第 2 章里没有跳到第 4 章的链接"


class _Anchors(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.ids: list[str] = []
        self.fragments: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id"):
            self.ids.append(attrs["id"])
        href = attrs.get("href") or ""
        if tag == "a" and href.startswith("#") and len(href) > 1:
            self.fragments.append(href[1:])


def test_ids_are_unique_across_the_book_and_every_link_inside_it_has_a_target(book):
    """各章拼成一页以后，id 在整本书里不重复（同名的脚注在每章都有），页内链接都指向存在的 id。"""
    anchors = _Anchors()
    anchors.feed(book.print_page.read_text(encoding="utf-8"))
    repeated = sorted({id_ for id_ in anchors.ids if anchors.ids.count(id_) > 1})
    assert not repeated, f"打印页里这些 id 重复：{repeated[:20]}"
    ids = set(anchors.ids)
    broken = sorted({target for target in anchors.fragments if target not in ids})
    assert not broken, f"打印页里这些链接没有目标：{broken[:20]}"
    assert sum("fnref:" in target for target in anchors.fragments) >= 20, (
        "脚注的“返回正文”链接不够多：测试没有查到它们"
    )
