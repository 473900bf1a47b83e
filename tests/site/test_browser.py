"""在真实浏览器（Debian 的 Chromium，由 Playwright 驱动）里检查构建出的每一页。

每一页：不向本站以外的主机发任何请求；没有控制台错误和未捕获的异常；每个 Mermaid 图都画成了 SVG；
每个公式都排版了；没有图或公式的页面不加载 Mermaid / KaTeX；axe-core 查不出严重的无障碍问题（每个章节页，颜色对比度只查 CONTRAST_PAGES）；
375 像素宽的手机视口里没有横向滚动。笔记本网页只在两本上做这些检查（BROWSER_NOTEBOOKS：它们包含笔记本里的每一种
内容；其余各本由读文件的检查覆盖，见 tests/site/test_notebooks.py），另外每本都打开一次，比较瘦身后的 Jupyter
样式和完整样式算出的元素样式。全站：代码复制按钮、深浅色切换、中文搜索。
没有 Chromium 时整个模块跳过（CI 里则报错，见下面的 CHROMIUM）。
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import queue
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from importlib.resources import files
from pathlib import Path
from urllib.request import urlopen

import pytest
import tinycss2

from hello_build import pdf
from tests.conftest import AFTER_BUILD, DOCS, WORKER, BuiltSite
from tests.site.test_notebooks import BROWSER_NOTEBOOKS

# Debian 的 Chromium；别处（如 GitHub 的 Ubuntu 运行器上预装的 Chrome）用环境变量指定
CHROMIUM = os.environ.get(pdf.CHROMIUM_ENV, pdf.DEFAULT_CHROMIUM)
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # 除了 127.0.0.1（本站的测试服务器），任何主机名都解析不了：页面要去别处取东西时，请求照样记下来（request 事件），但发不出去
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]
INSTALL_HINT = "apt-get update && apt-get install -y chromium fonts-noto-cjk"

if not Path(CHROMIUM).exists():
    message = f"浏览器测试需要 Debian 的 Chromium（{CHROMIUM}），请先安装：{INSTALL_HINT}"
    if os.environ.get("CI"):
        raise RuntimeError(message)
    print(f"\n!!! 跳过浏览器测试：{message}\n")
    pytest.skip(message, allow_module_level=True)

from axe_playwright_python.sync_playwright import Axe  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402

# Material 把 Mermaid 图画进一个 closed 的 shadow root；测试在页面脚本运行前把它改成 open，才看得见 SVG
OPEN_SHADOW_ROOTS = """
const attach = Element.prototype.attachShadow;
Element.prototype.attachShadow = function (init) { return attach.call(this, { ...init, mode: "open" }); };
"""

# 允许保留的 axe 问题：每一条都写明理由（目前没有）
AXE_ALLOWED: dict[str, str] = {}


def page_urls() -> list[str]:
    """每个 Markdown 页面，以及有代码的页面各自的笔记本网页（notebooks/...）。"""
    urls, notebooks = [], []
    for md in sorted(DOCS.rglob("*.md")):
        rel = md.relative_to(DOCS).with_suffix("").as_posix()
        url = "" if rel == "index" else rel.removesuffix("/index") + "/"
        urls.append(url)
        if 'exec="on"' in md.read_text(encoding="utf-8"):
            notebooks.append(f"notebooks/{url}")
    return urls + notebooks


serve_directory = pdf.serve  # 在 127.0.0.1 的随机空闲端口上提供一个目录，给出基础 URL（打印 PDF 用的同一个）


@pytest.fixture(scope="module")
def serve():
    """serve(site_dir) -> 基础 URL。"""
    with contextlib.ExitStack() as stack:
        yield lambda site_dir: stack.enter_context(serve_directory(site_dir))


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@dataclass
class PageReport:
    url: str
    outside_requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    requested: list[str] = field(default_factory=list)
    mermaid_sources: int = 0
    mermaid_svgs: int = 0
    formulas: int = 0
    typeset: int = 0
    formula_errors: int = 0

    def problems(self) -> list[str]:
        found = []
        if self.outside_requests:
            found.append(f"向其他主机发出请求：{self.outside_requests}")
        if self.errors:
            found.append(f"控制台错误或页面异常：{self.errors}")
        if self.mermaid_svgs != self.mermaid_sources:
            found.append(f"Mermaid 图 {self.mermaid_sources} 个，画成 SVG 的 {self.mermaid_svgs} 个")
        if self.typeset != self.formulas or self.formula_errors:
            found.append(
                f"公式 {self.formulas} 个，排版成功 {self.typeset} 个，出错 {self.formula_errors} 个"
            )
        loads_mermaid = any(url.endswith("mermaid.esm.min.mjs") for url in self.requested)
        loads_katex = any(url.endswith("katex.min.js") for url in self.requested)
        if loads_mermaid != bool(self.mermaid_sources):
            found.append(f"Mermaid 脚本的加载与页面是否有图不符（加载={loads_mermaid}）")
        if loads_katex != bool(self.formulas):
            found.append(f"KaTeX 的加载与页面是否有公式不符（加载={loads_katex}）")
        return found


def visit(
    browser, base: str, path: str, wait_ms: int = 20_000, tab=None, **context_args
) -> tuple[PageReport, object, object]:
    """打开一页，等 Mermaid 和 KaTeX 完成（最多 wait_ms 毫秒），返回 (报告, page, context)。调用者负责关闭 context。

    tab 是逐页检查复用的标签页（见 open_tab）：同一个标签页接着打开下一页，省下每页新开浏览器上下文和渲染进程的时间，
    这时返回的 context 是 None。请求不拦截（拦截会关掉浏览器缓存）：本站以外的主机名在 CHROMIUM_ARGS 里就解析不了，
    request 事件照样记下每个请求。"""
    report = PageReport(url=base + path)
    if tab is None:
        context = browser.new_context(**context_args)
        context.add_init_script(OPEN_SHADOW_ROOTS)
        page = context.new_page()
    else:
        context, page = None, tab

    def on_request(request):
        url = request.url
        if url.startswith(base) or url.startswith(("data:", "blob:")):
            report.requested.append(url)
        else:
            report.outside_requests.append(url)

    def on_console(msg):
        if msg.type == "error":
            report.errors.append(msg.text)

    def on_error(exc):
        report.errors.append(str(exc))

    page.on("request", on_request)
    page.on("console", on_console)
    page.on("pageerror", on_error)
    try:
        _load(page, report, wait_ms)
    finally:
        if tab is not None:  # 复用的标签页：这一页的记录到此为止
            page.remove_listener("request", on_request)
            page.remove_listener("console", on_console)
            page.remove_listener("pageerror", on_error)
    return report, page, context


def open_tab(browser, scheme: str):
    """逐页检查用的标签页：一个浏览器上下文里的一个页面，按配色打开；调用者关闭返回的 context。"""
    context = browser.new_context(color_scheme=scheme)
    context.add_init_script(OPEN_SHADOW_ROOTS)
    return context, context.new_page()


def _load(page, report: PageReport, wait_ms: int) -> None:
    page.goto(report.url, wait_until="load")
    report.mermaid_sources = page.locator("pre.mermaid, div.mermaid").count()
    report.formulas = page.locator(".arithmatex").count()
    # 笔记本网页：公式是 Markdown 单元里的 $…$ 原文，lazy-assets.js 排版后给单元加上 data-typeset
    # 代码块以外的 $ 才是公式（笔记本里的 Shell 脚本有 $HOST 这样的变量）
    prose = "c => { const d = c.cloneNode(true); d.querySelectorAll('pre, code').forEach(e => e.remove()); return d.textContent; }"
    notebook_math = page.evaluate(
        f"() => [...document.querySelectorAll('.jupyter-wrapper .jp-RenderedMarkdown')]"
        f".filter(c => ({prose})(c).includes('$')).length"
    )
    # 图和公式都是离屏幕不到一屏时才画、才排版（见 test_diagrams_and_formulas_wait_until_near_the_screen）；
    # 这里让页面把它们全部画好、排好，再检查每一个
    if report.formulas or notebook_math:
        # 排完全部公式、等字体、再给放不下的公式加 tabindex，最后标记 data-typeset
        page.evaluate("() => window.helloPytorchTypesetAll()")
        page.wait_for_selector(".md-content[data-typeset]", state="attached", timeout=wait_ms)
    if report.mermaid_sources:
        page.evaluate("() => window.helloPytorchDrawDiagrams()")
        # 等待渲染完成：每个 Mermaid 图有 SVG
        page.wait_for_function(
            """(diagrams) => [...document.querySelectorAll('div.mermaid')]
                .filter(d => d.shadowRoot && d.shadowRoot.querySelector('svg')).length >= diagrams""",
            arg=report.mermaid_sources,
            timeout=wait_ms,
        )
    if not (report.mermaid_sources or report.formulas or notebook_math):
        page.wait_for_timeout(300)  # 让页面脚本跑完，好收集错误
    report.mermaid_svgs = page.evaluate(
        "() => [...document.querySelectorAll('div.mermaid')]"
        ".filter(d => d.shadowRoot && d.shadowRoot.querySelector('svg')).length"
    )
    report.typeset = page.locator(".arithmatex .katex").count()
    report.formula_errors = page.locator(
        ".arithmatex .katex-error, .jp-RenderedMarkdown .katex-error"
    ).count()
    notebook_cells = page.locator(".jupyter-wrapper .jp-RenderedMarkdown[data-typeset]")
    report.formulas += notebook_cells.count()
    report.typeset += page.locator(".jupyter-wrapper .jp-RenderedMarkdown[data-typeset]:has(.katex)").count()


@pytest.fixture(scope="module")
def site_url(built_site, serve):
    return serve(built_site.path)


def test_the_notebooks_opened_in_the_browser_are_real_notebook_pages():
    assert set(BROWSER_NOTEBOOKS) <= set(page_urls()), "浏览器打开的笔记本网页必须存在"


# 颜色对比度（axe 的 color-contrast 规则）占 axe 用时的七成，它查的是主题给每种元素配的颜色，与是哪一页无关：
# 只在这几页上查，它们合起来包含章节页上出现的每一种元素（test_contrast_pages_contain_every_kind_of_element），
# 其余章节页照样做 axe 的其他检查（标题、标签、替代文字、id……）。深色模式抽查的页面和 BROWSER_NOTEBOOKS 也查对比度。
CONTRAST_PAGES = (
    "",
    "part1/ch03_algorithm/",
    "part1/ch05_hello/",
    "part2/ch04_lora/",  # 有 span.nd（装饰器）。part2/ch01_gpt 也有，但元素是这页的三倍，对比度检查在那页多花约 10 秒
    "part3/ch02_sharding/",
    "part3/ch03_cluster/",
)


class _Kinds(HTMLParser):
    """标签名.类名；KaTeX 排好的公式（构建时排好的开头几个，见 hello_build/formulas.py）里面的元素不算：
    它们的颜色都继承正文，CONTRAST_PAGES 上的公式在浏览器里排好后照样查对比度。"""

    VOID = frozenset(
        {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
    )

    def __init__(self):
        super().__init__()
        self.kinds: set[str] = set()
        self.katex_depth = 0  # 在 .katex 里面时是从 .katex 起的层数

    def handle_starttag(self, tag, attrs):
        names = (dict(attrs).get("class") or "").split()
        if self.katex_depth == 0:
            self.kinds |= {f"{tag}.{name}" for name in names}
        if tag in self.VOID:
            return
        if self.katex_depth or "katex" in names:
            self.katex_depth += 1

    def handle_endtag(self, tag):
        if self.katex_depth and tag not in self.VOID:
            self.katex_depth -= 1


def element_kinds(html: str) -> set[str]:
    """正文（article）里出现的每一种元素：标签名.类名，例如 div.admonition、span.k（代码里的关键字）。"""
    article = re.search(r'<article class="md-content__inner.*?</article>', html, re.S)
    assert article, "页面应有正文 <article>"
    parser = _Kinds()
    parser.feed(article[0])
    return parser.kinds


def test_contrast_pages_contain_every_kind_of_element(built_site):
    chapters = [path for path in page_urls() if not path.startswith("notebooks/")]
    kinds = {
        path: element_kinds((built_site.path / path / "index.html").read_text("utf-8")) for path in chapters
    }
    checked = set().union(*(kinds[path] for path in CONTRAST_PAGES))
    missing = set().union(*kinds.values()) - checked
    where = {kind: [path for path in chapters if kind in kinds[path]][:3] for kind in sorted(missing)}
    assert not missing, f"这些元素只出现在不查颜色对比度的页面上（把其中一页加进 CONTRAST_PAGES）：{where}"


def axe_problems(page, contrast: bool = True) -> list[str]:
    problems = []
    options = {"resultTypes": ["violations"]}
    if not contrast:
        options["rules"] = {"color-contrast": {"enabled": False}}
    violations = Axe().run(page, options=options).response["violations"]
    for violation in violations:
        if violation["impact"] in ("serious", "critical") and violation["id"] not in AXE_ALLOWED:
            nodes = [node["target"] for node in violation["nodes"][:3]]
            problems.append(f"axe {violation['impact']}：{violation['id']}（{violation['help']}）{nodes}")
    return problems


def check_page(tab, base: str, path: str, scheme: str) -> list[str]:
    """一页的全部检查：离线、图与公式、axe（浅色时再看手机宽度），返回找到的问题。tab 是这个配色的标签页（open_tab）。"""
    name = f"{path or '首页'}（{'深色' if scheme == 'dark' else '浅色'}）"
    try:
        report, page, _context = visit(None, base, path, tab=tab)
    except Exception as error:  # 等待渲染超时：把已知情况一起报告
        return [f"{name} 没有在 20 秒内画完图或排完公式：{error}"]
    if scheme == "dark":
        body = page.get_attribute("body", "data-md-color-scheme")
        problems = [] if body == "slate" else [f"深色模式没有生效（data-md-color-scheme={body}）"]
        return problems + report.problems() + axe_problems(page)
    problems = report.problems() + axe_problems(
        page, contrast=path in BROWSER_NOTEBOOKS or path in CONTRAST_PAGES
    )
    # 同一次打开，再看手机宽度：375 像素宽时不能横向滚动；看完恢复桌面宽度，标签页接着打开下一页
    page.set_viewport_size({"width": 375, "height": 812})
    page.wait_for_timeout(100)
    widths = page.evaluate(
        "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    page.set_viewport_size(DESKTOP)
    if widths[0] > widths[1]:
        problems.append(f"375px 宽时可以横向滚动：{widths}")
    return problems


DESKTOP = {"width": 1280, "height": 720}  # Playwright 默认的视口


# 深色模式抽查有图、有公式、有代码和图表的页面
DARK_PAGES = ["", "part1/ch02_concepts/", "part1/ch05_hello/"]
# 每页的检查彼此独立，两个浏览器同时查：大部分时间花在浏览器里（排版、axe），两个核都用得上
WORKERS = 2


def check_pages(base: str, items: list[tuple[str, str]], workers: int = WORKERS) -> dict:
    """{(页面, 配色): 问题}。Playwright 的同步接口不能跨线程共用，所以每个线程启动自己的 Playwright 和 Chromium，
    从同一个队列里取页面。"""
    work: queue.Queue = queue.Queue()
    for item in items:
        work.put(item)

    def worker() -> dict:
        found, tabs = {}, {}
        with sync_playwright() as playwright:
            own = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                while True:
                    try:
                        path, scheme = work.get_nowait()
                    except queue.Empty:
                        return found
                    if scheme not in tabs:
                        tabs[scheme] = open_tab(own, scheme)
                    found[path, scheme] = check_page(tabs[scheme][1], base, path, scheme)
            finally:
                own.close()

    results: dict = {}
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        for part in pool.map(lambda _: worker(), range(workers)):
            results.update(part)
    return results


# 浏览器打开的页面：每个章节页，笔记本网页只开 BROWSER_NOTEBOOKS
OPENED = [path for path in page_urls() if not path.startswith("notebooks/") or path in BROWSER_NOTEBOOKS]
SWEEP = [(path, "light") for path in OPENED] + [(path, "dark") for path in DARK_PAGES]
_background: dict = {}  # 后台的逐页检查：{"future": Future, "stack": 提供网站的服务器}


def _start_sweep(site: BuiltSite) -> None:
    """整站一建好就在后台线程里开始逐页检查（conftest.AFTER_BUILD 调用），其余测试照常进行；
    page_problems 再取结果。Chromium 的进程用另一个核，测试进程这时多半在跑单线程的检查。"""
    if _background or WORKER is not None:  # pytest-xdist 的 worker 不一定运行本模块：要用时再查
        return
    stack = contextlib.ExitStack()
    base = stack.enter_context(serve_directory(site.path))
    pool = stack.enter_context(concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="sweep"))
    _background.update(future=pool.submit(check_pages, base, SWEEP), stack=stack)


AFTER_BUILD.append(_start_sweep)


@pytest.fixture(scope="module")
def page_problems(site_url) -> dict[tuple[str, str], list[str]]:
    if "future" in _background:
        try:
            return _background["future"].result()
        finally:
            _background["stack"].close()
    return check_pages(site_url, SWEEP)


@pytest.mark.parametrize("path", OPENED)
def test_page_works_offline_renders_and_is_accessible(page_problems, path):
    problems = page_problems[path, "light"]
    assert not problems, f"{path or '首页'}：\n" + "\n".join(problems)


@pytest.mark.parametrize("path", DARK_PAGES)
def test_dark_palette_is_accessible_too(page_problems, path):
    problems = page_problems[path, "dark"]
    assert not problems, f"{path or '首页'}（深色）：\n" + "\n".join(problems)


def test_copy_button_copies_the_code(browser, site_url):
    _report, page, context = visit(
        browser, site_url, "part1/ch05_hello/", permissions=["clipboard-read", "clipboard-write"]
    )
    try:
        # 复制按钮在代码块进入屏幕时才装上（mkdocs.yml 的 content.lazy）：先滚到代码块
        block = page.locator("div.language-python.highlight").first
        block.scroll_into_view_if_needed()
        code = block.locator("code").text_content()
        block.hover()
        block.locator("button.md-code__button[data-md-type=copy]").click()
        copied = page.evaluate("() => navigator.clipboard.readText()")
    finally:
        context.close()
    assert copied.strip() == code.strip()
    assert "import" in copied or "torch" in copied


def test_code_blocks_are_set_up_when_they_reach_the_screen(browser, site_url):
    """打开长页面时，Material 只装配屏幕上的代码块（复制按钮等，mkdocs.yml 的 content.lazy）：一次装配全部要量
    每个代码块的宽度，是一个上百毫秒的长任务。放不下、要横向滚动的代码块，不管在哪一屏，a11y.js 都给它
    tabindex（分成小段量），用 Tab 键往下走的读者不会越过它；滚到代码块时复制按钮也装上了。"""
    path, height = "part1/ch05_hello/", 1000
    page = browser.new_page(viewport={"width": 412, "height": height})
    blocks_js = """() => [...document.querySelectorAll('.md-typeset pre:not(.mermaid) > code')]
        .filter((code) => code.getClientRects().length)
        .map((code) => ({
            top: Math.round(code.getBoundingClientRect().top),
            wide: code.scrollWidth > code.clientWidth,
            focusable: code.getAttribute('tabindex') === '0',
            button: !!code.closest('pre').querySelector('button.md-code__button'),
        }))"""
    try:
        page.goto(site_url + path, wait_until="load")
        page.wait_for_timeout(1_500)
        blocks = page.evaluate(blocks_js)
        far = [b for b in blocks if b["top"] > 3 * height]
        assert [b for b in far if b["wide"]], f"{path} 几屏以外没有放不下的代码块，换一页测：{blocks[:8]}"
        assert not any(b["button"] for b in far), (
            "打开页面时，几屏以外的代码块就装上了复制按钮（content.lazy 没有生效）"
        )
        unreachable = [b for b in blocks if b["wide"] and not b["focusable"]]
        assert not unreachable, f"放不下的代码块不能用键盘聚焦：{unreachable}"
        last = page.locator(".md-typeset div.highlight:visible").last
        last.scroll_into_view_if_needed()
        last.locator("button.md-code__button").wait_for(timeout=10_000)
    finally:
        page.close()


# mkdocs-jupyter 自带的完整 Jupyter 样式；构建只把其中可能匹配的规则写进网站（hello_build/stylesheets.py）
FULL_JUPYTER_CSS = files("mkdocs_jupyter") / "templates" / "mkdocs_html" / "assets" / "index.css"
FULL_URL = "http://127.0.0.1/__full-jupyter.css"  # 测试的路由提供完整样式的地址
# 和布局有关的值（宽、高、位置）取决于排版的进度，不比较；其余凡是 Jupyter 样式写到的属性都比较
LAYOUT_PROPERTIES = {"width", "height", "top", "left", "right", "bottom", "transform-origin"}

# 笔记本正文（.jupyter-wrapper）里的每个元素按“标签、类名、data-* 属性，连同它的每一层祖先”归类。同一类元素
# （一本笔记本里成百上千个同样的代码词、表格格子，各本笔记本里同样的单元格）只比较前两个，它们本身和 ::before、
# ::after 的样式逐个属性比较。正文以外是 Material 的页头、导航：Jupyter 样式里不限于正文的几条规则（table、
# .highlight pre……）不带类名或只带页面上有的类名，不会被删；那里的自动外边距（margin: auto）又跟着滚动条变，
# 比较起来不稳定。
STYLES_OF_NEW_KINDS = """([properties, seen]) => {
  // 简写属性（border、margin……）展开成各个分量：几条边不一样时，简写读出来是空的
  const longhands = [...new Set(properties.flatMap((p) => {
    const probe = document.createElement("div").style;
    probe.setProperty(p, "initial");
    return probe.length ? [...probe] : [p];
  }))].sort();
  const kind = (el) => el.tagName + [...el.classList].sort().map((c) => "." + c).join("")
    + [...el.attributes].filter((a) => a.name.startsWith("data-")).map((a) => `[${a.name}=${a.value}]`).join("");
  const paths = new Map(), counts = new Map(seen.map((key) => [key, 2])), out = {};
  for (const el of document.querySelectorAll(".jupyter-wrapper, .jupyter-wrapper *")) {
    const path = (paths.get(el.parentElement) ?? "") + " > " + kind(el);
    paths.set(el, path);
    const n = (counts.get(path) || 0) + 1;
    counts.set(path, n);
    if (n > 2) continue;
    for (const pseudo of ["", "::before", "::after"]) {
      const style = getComputedStyle(el, pseudo || null);
      const shown = !pseudo || !["none", "normal"].includes(style.content);  // 没有 content 的伪元素不显示
      out[`${path} #${n}${pseudo}`] = shown
        ? longhands.map((p) => `${p}: ${style.getPropertyValue(p)}`).join("; ") : "不显示";
    }
  }
  return out;
}"""


def declared_properties(css: str) -> list[str]:
    """样式表的规则（含 @media 里的）写到的属性名，不含自定义属性、带浏览器前缀的和过渡（见 NO_TRANSITIONS）。"""
    names, rules = set(), tinycss2.parse_stylesheet(css, skip_whitespace=True, skip_comments=True)
    while rules:
        rule = rules.pop()
        if rule.type == "qualified-rule":
            for item in tinycss2.parse_blocks_contents(
                rule.content, skip_whitespace=True, skip_comments=True
            ):
                if item.type == "declaration" and not item.name.startswith(("-", "transition")):
                    names.add(item.lower_name)
        elif rule.type == "at-rule" and rule.lower_at_keyword == "media" and rule.content:
            rules += tinycss2.parse_rule_list(rule.content, skip_whitespace=True, skip_comments=True)
    return sorted(names - LAYOUT_PROPERTIES)


# 把笔记本网页的 Jupyter 样式换成另一份：换 <link> 的地址，等它加载
SWAP_STYLESHEET = """async (href) => {
  const link = document.querySelector('link[rel=stylesheet][href*="jupyter"]');
  if (link.href !== href)
    await new Promise((loaded, failed) => { link.onload = loaded; link.onerror = failed; link.href = href; });
}"""
# 颜色过渡：屏幕外的元素在被查询样式时才开始过渡，取到的是过渡起点的颜色。比较时关掉过渡（两份样式一样关），
# 过渡属性本身也就不比较
NO_TRANSITIONS = "*, *::before, *::after { transition: none !important; }"


def notebook_styles(tab, url: str, properties: list[str], seen: set[str]) -> dict[str, tuple[str, str]]:
    """打开一本笔记本的网页、排好全部公式；浅色、深色下，seen 以外的每类元素在网站的 Jupyter 样式和完整样式下
    各自的样式：{类: (网站, 完整)}。完整样式由路由在 FULL_URL 提供。"""
    tab.goto(url, wait_until="load")
    tab.add_style_tag(content=NO_TRANSITIONS)
    tab.evaluate("() => window.helloPytorchTypesetAll()")
    tab.wait_for_selector(".md-content[data-typeset]", state="attached", timeout=20_000)
    # 图也全部画好（屏幕附近的图自己会画：画到一半时取样式，两次取到的元素就不一样），字体加载完
    diagrams = tab.evaluate("() => document.querySelectorAll('pre.mermaid, div.mermaid').length")
    tab.evaluate("() => window.helloPytorchDrawDiagrams()")
    tab.wait_for_function(
        "(n) => document.querySelectorAll('div.mermaid').length >= n", arg=diagrams, timeout=20_000
    )
    tab.evaluate("() => document.fonts.ready.then(() => true)")
    site_href = tab.evaluate("() => document.querySelector('link[rel=stylesheet][href*=\"jupyter\"]').href")
    styles = {}
    for scheme, order in (("default", (site_href, FULL_URL)), ("slate", (FULL_URL, site_href))):
        tab.evaluate("(scheme) => document.body.setAttribute('data-md-color-scheme', scheme)", scheme)
        old = sorted(key.removeprefix(scheme + " ") for key in seen if key.startswith(scheme + " "))
        found = {}
        for href in order:
            tab.evaluate(SWAP_STYLESHEET, href)
            found[href] = tab.evaluate(STYLES_OF_NEW_KINDS, [properties, old])
        assert found[site_href].keys() == found[FULL_URL].keys(), f"{url}：换样式前后的元素不同"
        styles |= {
            f"{scheme} {key}": (found[site_href][key], found[FULL_URL][key]) for key in found[site_href]
        }
    return styles


def changed_properties(site: str, full: str) -> str:
    """两份 "属性: 值; …" 里不同的属性。"""
    if "不显示" in (site, full):
        return f"\n  网站：{site[:200]}\n  完整样式：{full[:200]}"
    pairs = zip(site.split("; "), full.split("; "), strict=True)
    return "".join(f"\n  {ours}（完整样式：{theirs}）" for ours, theirs in pairs if ours != theirs)


NOTEBOOK_PAGES = [path for path in page_urls() if path.startswith("notebooks/")]


def test_the_slimmed_jupyter_stylesheet_styles_every_notebook_element_like_the_full_one(browser, site_url):
    """网站上的 Jupyter 样式删掉了匹配不到的规则（hello_build/stylesheets.py）：每本笔记本的网页上，每一类元素
    在浅色和深色下算出的样式（Jupyter 样式写到的每个属性，布局算出的宽、高、位置除外；不含悬停、聚焦等状态）
    都和换上 mkdocs-jupyter 的完整样式时一样。"""
    full = FULL_JUPYTER_CSS.read_text(encoding="utf-8")
    served = urlopen(site_url + "assets/notebooks/jupyter.css").read().decode()
    assert len(served) < len(full) / 3, "网站上的 Jupyter 样式应已删掉匹配不到的规则"
    properties = declared_properties(full)
    assert len(properties) > 80, properties
    context = browser.new_context(viewport={"width": 1350, "height": 900})
    context.route(FULL_URL, lambda route: route.fulfill(body=full, content_type="text/css"))
    tab = context.new_page()
    differences, seen = [], set()
    try:
        for path in NOTEBOOK_PAGES:
            styles = notebook_styles(tab, site_url + path, properties, seen)
            differences += [
                f"{path} {key}：{changed_properties(*pair)}"
                for key, pair in styles.items()
                if pair[0] != pair[1]
            ]
            seen |= {key.rsplit(" #", 1)[0] for key in styles}
    finally:
        context.close()
    assert len(seen) > 500, f"只比较了 {len(seen)} 类元素"
    assert not differences, f"瘦身后的 Jupyter 样式改变了 {len(differences)} 处样式，例如：\n" + "\n".join(
        differences[:4]
    )


def test_library_cells_are_folded_and_scroll_by_keyboard_once_opened(browser, site_url):
    """笔记本网页上写出库文件的单元格折叠着（和 Jupyter 里一样，打开网页时不排版几万字的代码）；读者点开以后，
    放不下的代码要能用键盘聚焦后滚动（a11y.js 在 toggle 事件里补上 tabindex）。"""
    _report, page, context = visit(browser, site_url, "notebooks/part3/ch03_cluster/")
    try:
        folded = page.locator("details.hp-library")
        count = folded.count()
        closed = page.evaluate(
            "() => [...document.querySelectorAll('details.hp-library')].every((d) => !d.open)"
        )
        region = folded.first.locator("xpath=ancestor::div[contains(@class, 'highlight-ipynb')][1]")
        before = region.get_attribute("tabindex")
        folded.first.locator("summary").click()
        page.wait_for_function(
            "() => document.querySelector('details.hp-library').closest('.highlight-ipynb').tabIndex === 0",
            timeout=5_000,
        )
        text = folded.first.locator("pre").inner_text()
    finally:
        context.close()
    assert count >= 3 and closed, "写出库文件的单元格应当折叠"
    assert before is None, "折叠时量不出宽度，不该有 tabindex"
    assert text.startswith("%%writefile snippets/part3/_ddp_worker.py\n"), text[:80]


def test_palette_toggle_switches_light_and_dark(browser, site_url):
    _report, page, context = visit(browser, site_url, "", color_scheme="light")
    try:
        before = page.get_attribute("body", "data-md-color-scheme")
        page.locator("label.md-header__button[for^='__palette']:visible").first.click()
        after = page.get_attribute("body", "data-md-color-scheme")
    finally:
        context.close()
    assert (before, after) == ("default", "slate")


def test_formulas_are_typeset_after_instant_navigation(browser, site_url):
    """instant 导航换页后，新页面的公式也要排版（lazy-assets.js 在 document$ 上为新页面找公式）：
    屏幕附近的自己排好，其余的在 helloPytorchTypesetAll() 之后全部排好。"""
    report, page, context = visit(browser, site_url, "part1/ch02_concepts/")
    try:
        page.locator("a.md-footer__link--next").click()
        page.wait_for_url("**/ch03_algorithm/")
        formulas = page.locator(".arithmatex").count()
        page.evaluate("() => window.helloPytorchTypesetAll()")
        page.wait_for_function(
            "n => document.querySelectorAll('.arithmatex .katex').length >= n",
            arg=formulas,
            timeout=20_000,
        )
        errors = report.errors
    finally:
        context.close()
    assert formulas > 0
    assert not errors


def test_diagrams_and_formulas_wait_until_near_the_screen(browser, site_url):
    """长页面上的图和公式离屏幕不到一屏时才画、才排版：打开页面时屏幕外的都还是原文（Mermaid 也还没加载），
    滚到附近就画好、排好；折起来的答案里的公式不用排版整页，打开页面后就排好——读者看到的总是画好的。"""
    path = "part3/ch01_ddp/"  # 第一张图和最后几个公式都在好几屏以下，最后一个公式在折起来的答案里
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.add_init_script(OPEN_SHADOW_ROOTS)
    page = context.new_page()
    requested = []
    page.on("request", lambda request: requested.append(request.url))
    shown = ".arithmatex:not(details .arithmatex)"
    try:
        page.goto(site_url + path, wait_until="load")
        page.wait_for_timeout(1_500)
        where = page.evaluate(
            """(shown) => ({
                diagram: document.querySelector('pre.mermaid, div.mermaid').getBoundingClientRect().top,
                formula: [...document.querySelectorAll(shown)].at(-1).getBoundingClientRect().top,
                folded: document.querySelectorAll('details:not([open]) .arithmatex').length,
                typeset: document.querySelectorAll(shown + ' .katex').length,
                drawn: document.querySelectorAll('div.mermaid').length,
            })""",
            shown,
        )
        assert min(where["diagram"], where["formula"]) > 3 * 800 and where["folded"], (
            f"{path} 的图或公式离页面开头太近，或者没有折起来的公式，换一页测：{where}"
        )
        assert where["drawn"] == 0 and where["typeset"] == 0, f"屏幕外的图和公式在打开页面时就画了：{where}"
        assert not any(url.endswith("mermaid.esm.min.mjs") for url in requested), (
            "还没有图要画，就加载了 Mermaid"
        )

        page.locator("pre.mermaid").first.scroll_into_view_if_needed()
        page.wait_for_function(
            "() => [...document.querySelectorAll('div.mermaid')].some(d => d.shadowRoot?.querySelector('svg'))",
            timeout=20_000,
        )
        page.locator(shown).last.scroll_into_view_if_needed()
        page.wait_for_function(
            "(shown) => [...document.querySelectorAll(shown)].at(-1).querySelector('.katex')",
            arg=shown,
            timeout=20_000,
        )
        # 折起来的答案里的公式已经排好（它们不显示，排版它们不引起重新排版），打开答案就能看
        page.wait_for_function(
            "() => [...document.querySelectorAll('details:not([open]) .arithmatex')].every(e => e.querySelector('.katex'))",
            timeout=20_000,
        )
    finally:
        context.close()


def test_diagrams_below_the_screen_wait_for_the_reader_to_scroll(browser, site_url):
    """打开页面时只画屏幕上看得见的图（画一张图要上百毫秒，读者不往下翻就不必画）；读者一滚动，离屏幕不到一屏的图
    就画好。窗口高度取成让第一张图正好在屏幕下方一屏以内。"""
    path = "part3/ch01_ddp/"
    first = ".md-content pre.mermaid, .md-content div.mermaid"
    probe = browser.new_page(viewport={"width": 1280, "height": 800})
    try:
        probe.goto(site_url + path, wait_until="load")
        top = probe.evaluate("(s) => document.querySelector(s).getBoundingClientRect().top", first)
    finally:
        probe.close()
    height = int(top / 1.5)  # 图在一屏到两屏之间：以前的做法打开页面就会画它
    context = browser.new_context(viewport={"width": 1280, "height": height})
    context.add_init_script(OPEN_SHADOW_ROOTS)
    page = context.new_page()
    drawn = (
        "() => [...document.querySelectorAll('div.mermaid')].some(d => d.shadowRoot?.querySelector('svg'))"
    )
    try:
        page.goto(site_url + path, wait_until="load")
        page.wait_for_timeout(1_500)
        assert not page.evaluate(drawn), (
            f"{path}：屏幕下方的图在读者滚动之前就画了（窗口高 {height}，图在 {top:.0f}）"
        )
        page.mouse.wheel(0, 40)
        page.wait_for_function(drawn, timeout=20_000)
    finally:
        context.close()


@pytest.mark.parametrize("width", [1350, 412])
def test_typesetting_formulas_does_not_move_the_page(browser, site_url, width):
    """排版公式时页面不跳（Lighthouse 的累积布局偏移 CLS）：页面开头的行内公式打开页面时已经排好，独立公式排版前
    已经占好排版后的高度（hello_build/formulas.py）。在桌面和手机宽度上排完全部公式，每个独立公式的高度
    变化不到 3 像素，第一个二级标题没有移动。"""
    path = "part1/ch04_math/"  # 第一个二级标题之前有行内公式，第一屏里有独立公式
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    measure = """() => {
        const heading = document.querySelector('.md-content h2');
        const opening = [...document.querySelectorAll('.arithmatex')]
            .filter(e => e.compareDocumentPosition(heading) & Node.DOCUMENT_POSITION_FOLLOWING);
        return {
            heights: [...document.querySelectorAll('div.arithmatex')].map(e => e.getBoundingClientRect().height),
            heading: heading.getBoundingClientRect().top + scrollY,
            opening: opening.map(e => e.querySelector('.katex') !== null),
        };
    }"""
    try:
        page.goto(site_url + path, wait_until="domcontentloaded")
        before = page.evaluate(measure)
        assert before["opening"] and all(before["opening"]), (
            f"{path} 第一个二级标题之前的行内公式在打开页面时就应当排好：{before['opening']}"
        )
        page.wait_for_load_state("load")
        page.evaluate("window.helloPytorchTypesetAll()")
        page.wait_for_selector(".md-content[data-typeset]", state="attached", timeout=20_000)
        after = page.evaluate(measure)
        changed = [
            (n, round(a - b, 1))
            for n, (b, a) in enumerate(zip(before["heights"], after["heights"], strict=True))
            if abs(a - b) >= 3
        ]
        assert not changed, f"{path}（宽 {width}）排版后高度变了的独立公式（第几个，变了多少像素）：{changed}"
        assert abs(after["heading"] - before["heading"]) < 3, (
            f"{path}（宽 {width}）排版后第一个二级标题从 {before['heading']:.0f} 移到 {after['heading']:.0f}"
        )
    finally:
        context.close()


@pytest.mark.parametrize(
    ("query", "expected"),
    [("反向传播", "part1/ch02_concepts/"), ("损失函数", "part1/ch04_math/"), ("微调", "part1/ch07_outlook/")],
)
def test_chinese_search_finds_the_pages(browser, site_url, query, expected):
    _report, page, context = visit(browser, site_url, "")
    try:
        box = page.locator("input.md-search__input")
        box.click()
        box.fill(query)
        box.press("End")  # 中文是直接插入的文字，没有按键事件；按一下键，搜索才开始
        page.wait_for_selector(".md-search-result__item", timeout=20_000)
        hrefs = page.eval_on_selector_all(".md-search-result__item a", "links => links.map(a => a.href)")
    finally:
        context.close()
    assert any(expected in href for href in hrefs), f"搜索“{query}”没有找到 {expected}：{hrefs[:10]}"


# ---------------------------------------------------------------- 对照组：坏页面必须被查出来


@pytest.fixture
def broken_site(built_site, tmp_path):
    """把构建好的首页改坏一处，放进一个临时目录（其余文件链接到构建好的网站），不必另建一个网站。"""

    def build(edit) -> Path:
        site = tmp_path / "broken"
        site.mkdir()
        for entry in built_site.path.iterdir():
            if entry.name != "index.html":
                (site / entry.name).symlink_to(entry)
        (site / "index.html").write_text(edit((built_site.path / "index.html").read_text(encoding="utf-8")))
        return site

    return build


def test_a_broken_mermaid_diagram_is_caught(browser, serve, broken_site):
    site = broken_site(
        lambda html: re.sub(
            r'(<pre class="mermaid"><code>).*?(</code>)',
            r"\1graph TD\nA[未闭合 --> \2",
            html,
            count=1,
            flags=re.S,
        )
    )
    try:
        report, _page, context = visit(browser, serve(site), "", wait_ms=3_000)
        context.close()
        problems = report.problems()
    except Exception as error:  # 等不到 SVG 也算查出来了
        problems = [str(error)]
    assert problems, "坏掉的 Mermaid 图应当被浏览器测试查出来"


def test_a_script_from_another_host_is_caught(browser, serve, broken_site):
    site = broken_site(
        lambda html: html.replace("</body>", '<script src="https://cdn.example.com/x.js"></script></body>')
    )
    report, _page, context = visit(browser, serve(site), "")
    context.close()
    assert any("cdn.example.com" in url for url in report.outside_requests)
    assert report.problems()
