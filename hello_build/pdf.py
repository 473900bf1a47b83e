"""整本书的 PDF：mkdocs-print-site-plugin 把各章拼成一页（print_page/），这里用无头 Chromium 把它打印出来。

打印的就是网站本身：同一次构建的 HTML、同样的输出和图，什么都不重新运行。打印之前做读者滚动时浏览器
才做的事——排好全部公式、画好全部图、展开折起来的答案——然后检查一遍，还有没画的图、没排的公式、没有目标的
页内链接就失败。印两遍：第二遍的目录带页码（页码从第一遍的 PDF 里读出来）。

用法：``python -m hello_build.pdf 网站目录 输出.pdf``（``nox -s pdf`` 先构建带打印页的网站，再这样调用）。
需要 Chromium（Debian：``apt-get install chromium fonts-noto-cjk``，路径可用 HELLO_PYTORCH_CHROMIUM 指定）。
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from hello_build import pdftext

CHROMIUM_ENV = "HELLO_PYTORCH_CHROMIUM"
DEFAULT_CHROMIUM = "/usr/bin/chromium"
PRINT_PAGE = "print_page/"  # mkdocs-print-site-plugin 的 print_page_basename

# 读者滚动时才做的事，打印前一次做完（docs/javascripts/lazy-assets.js 提供这两个函数）
PREPARE = """async () => {
    document.querySelectorAll('details').forEach((details) => { details.open = true; });
    await window.helloPytorchTypesetAll?.();
    window.helloPytorchDrawDiagrams?.();
}"""
DRAWN = "() => !document.querySelector('.md-content pre.mermaid')"
# 目录（print-site 的 #print-page-toc）里每个条目指向的 id，和把页码写进条目
TOC_TARGETS = """() => [...document.querySelectorAll('#print-page-toc a[href*="#"]')]
    .map((a) => decodeURIComponent(new URL(a.href).hash.slice(1)))"""
NUMBER_TOC = """(numbers) => document.querySelectorAll('#print-page-toc a[href*="#"]')
    .forEach((a, index) => { a.dataset.page = numbers[index]; })"""
# 页内链接（章节之间的交叉引用、脚注）都要有目标：PDF 里它们是跳转；找不到目标的链接在 PDF 里失效，而且 Chromium
# 打印每一页时都要为每个这样的链接查一遍整个文档（见 hello_build/compat.py 第 5 条：386 页从 13 秒变成 93 秒）
LEFT_UNDONE = """() => ({
    diagrams: document.querySelectorAll('.md-content pre.mermaid').length,
    formulas: document.querySelectorAll('.md-content .arithmatex:not([data-typeset])').length,
    links: [...document.querySelectorAll('a[href*="#"]')]
        .map((a) => new URL(a.href))
        .filter((url) => url.pathname === location.pathname && url.hash.length > 1)
        .map((url) => decodeURIComponent(url.hash.slice(1)))
        .filter((id) => !document.getElementById(id)),
})"""


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def serve(site_dir: Path) -> Iterator[str]:
    """在本机一个空闲端口上提供网站目录（打印页引用的脚本、样式都按网站的相对路径取）。"""
    handler = functools.partial(_QuietHandler, directory=str(site_dir))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@dataclass(frozen=True)
class Printed:
    path: Path
    seconds: float

    @property
    def size_mb(self) -> float:
        return self.path.stat().st_size / 2**20


class NotReady(RuntimeError):
    """打印页上还有没画的图、没排版的公式（打印出来就是源码）或找不到目标的页内链接：宁可失败。"""


def _print_pdf(page, out: Path) -> None:
    # 纸张、页边距和页码（“页码 / 总页数”）都由网站的打印样式决定（docs/stylesheets/extra.css 的 @page），
    # 不用 Chromium 自己的页眉页脚：print-site 插件的样式也有 @page 页码，两套会同时印出来
    page.pdf(
        path=str(out),
        prefer_css_page_size=True,
        print_background=True,
        display_header_footer=False,
        outline=True,  # 书签：每章、每节（由标题生成）
        tagged=True,
    )


def destination_pages(pdf: Path, names: list[str]) -> list[int]:
    """PDF 里这些具名目的地（Chromium 为每个页内链接的目标写一个，名字就是元素的 id）所在的页，从 0 开始。"""
    import pypdfium2
    import pypdfium2.raw as pdfium_c

    document = pypdfium2.PdfDocument(pdf)
    try:
        pages = []
        for name in names:
            destination = pdfium_c.FPDF_GetNamedDestByName(document.raw, name.encode("utf-8"))
            if not destination:
                raise NotReady(f"PDF 里没有目录条目 #{name} 的目的地")
            pages.append(pdfium_c.FPDFDest_GetDestPageIndex(document.raw, destination))
        return pages
    finally:
        document.close()


def print_book(site_dir: Path, out: Path, chromium: str | None = None, timeout_s: float = 300) -> Printed:
    from playwright.sync_api import sync_playwright

    site_dir, out = Path(site_dir), Path(out)
    if not (site_dir / PRINT_PAGE / "index.html").is_file():
        raise FileNotFoundError(
            f"{site_dir / PRINT_PAGE} 不存在：先用 HELLO_PYTORCH_PDF=true 构建网站（nox -s pdf）"
        )
    chromium = chromium or os.environ.get(CHROMIUM_ENV, DEFAULT_CHROMIUM)
    start = time.perf_counter()
    out.parent.mkdir(parents=True, exist_ok=True)
    with serve(site_dir) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 1400}, color_scheme="light")
            page.set_default_timeout(timeout_s * 1000)
            page.goto(url + PRINT_PAGE, wait_until="load")
            page.evaluate(PREPARE)
            page.wait_for_function(DRAWN)
            page.evaluate("document.fonts.ready")
            left = page.evaluate(LEFT_UNDONE)
            if any(left.values()):
                raise NotReady(
                    f"打印页上还有没画的图 {left['diagrams']} 张、没排版的公式 {left['formulas']} 个、"
                    f"找不到目标的页内链接 {len(left['links'])} 个 {sorted(set(left['links']))[:10]}"
                )
            page.emulate_media(media="print")
            # 目录的页码：Chromium 不支持 CSS 的 target-counter()。先印一遍，从 PDF 的具名目的地读出每个目录条目
            # 指向的页，写进目录（extra.css 把它排在行尾），再印一遍。页码只占目录行尾原本空着的地方，分页不变；
            # 第二遍印完再核对一次，变了就失败
            targets = page.evaluate(TOC_TARGETS)
            _print_pdf(page, out)
            numbers = destination_pages(out, targets)
            page.evaluate(NUMBER_TOC, [number + 1 for number in numbers])
            _print_pdf(page, out)
            if destination_pages(out, targets) != numbers:
                raise NotReady("目录写上页码以后分页变了：目录里的页码会对不上")
        finally:
            browser.close()
    # 复制、搜索 PDF 里的文字时，“页”“见”这些字是汉字而不是同形的部首（见 hello_build/pdftext.py）
    pdftext.repair(out, pdftext.radical_equivalents(pdftext.font_file()))
    return Printed(out, time.perf_counter() - start)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    printed = print_book(Path(argv[0]), Path(argv[1]))
    print(f"{printed.path}：{printed.size_mb:.1f} MB，用时 {printed.seconds:.0f} 秒")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
