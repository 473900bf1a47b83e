"""Hello PyTorch 的构建钩子（mkdocs hooks）：全站只有这一个钩子模块。

1. 来源：给每个执行代码块（markdown-exec fence）自动加上 ``id="文件:片段"``；代码块出错时，
   警告写明页面、snippet 文件、片段和文件里的行号，严格构建（strict）随之失败。
2. 执行：markdown-exec 1.12.6 没有缓存也没有超时，这里包一层——
   - 缓存：每个代码块的输出按“本块及同一页前面所有块的代码 + torch/Python 版本 + CACHE_VERSION”
     存在 .cache/exec/（同目录库模块 _*.py 的内容也算在内）；只改文字不重新执行，改了 snippet 只重新执行包含它的页面；
     缓存命中的块先不执行，后面的块未命中时再按顺序补跑，保证会话状态正确；
     HELLO_PYTORCH_COLD=1 强制全部重新执行（CI 与 GitHub Pages 总是这样构建）；
   - 超时：单个代码块超过 BLOCK_TIMEOUT_S 秒就在它里面抛出 TimeoutError，构建失败并指出是哪一块；
   - 记录：每页页脚写明代码在构建时运行、用时、版本、是否来自缓存；“运行时间”页列出每页用时；
     site/exec-manifest.json 保存每个代码块的输出，供确定性测试逐块比较。
3. 搜索：把术语表里的中文术语加进 jieba 的词典，搜“反向传播”这样的整词能找到。
4. 资源：把 Mermaid 和 KaTeX 从 node_modules/（package-lock.json 锁定、nox 用 npm ci 安装）
   放进网站的 assets/vendor/，读者的浏览器只向本站请求脚本，从不访问 CDN。
"""

from __future__ import annotations

import contextlib
import copy
import functools
import hashlib
import html
import json
import logging
import os
import platform
import posixpath
import re
import shutil
import signal
import sys
import textwrap
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import distributions, version
from pathlib import Path
from urllib.parse import urljoin

# 构建进程里只用一个线程跑 PyTorch：本站的例子都很小，多线程在 2 核机器上反而更慢、更不稳定；
# 固定线程数也让浮点结果逐次构建一致。必须在任何 snippet 导入 torch 之前设置（tests/conftest.py 同样）。
os.environ.setdefault("OMP_NUM_THREADS", "1")

from markdown_exec._internal import main as _mx_main
from markdown_exec._internal.formatters import python as _mx_python
from markupsafe import Markup
from mkdocs.exceptions import PluginError
from mkdocs.plugins import event_priority
from mkdocs.structure.files import File

# 改变执行环境或缓存格式时加一，旧缓存随之全部失效
CACHE_VERSION = "1"
# 单个代码块的运行时间上限（秒）；本站的例子都在几秒内跑完。测试用环境变量把它调小
BLOCK_TIMEOUT_S = int(os.environ.get("HELLO_PYTORCH_BLOCK_TIMEOUT", "180"))
# 片段名以这个后缀结尾的代码块打印的是测量值（计时），每次构建都不同，确定性比较时跳过
MEASUREMENT_SUFFIX = "_timing"
COLD_ENV = "HELLO_PYTORCH_COLD"
# 只给速度基准（tests/bench.py）用：HELLO_PYTORCH_EXECUTE=0 时什么代码都不运行，只渲染同一个网站，量出“只渲染”的时间
EXECUTE_ENV = "HELLO_PYTORCH_EXECUTE"

# 执行代码块的开头一行，紧跟着的是一行 --8<-- "path:section" 包含语句
_EXEC_FENCE = re.compile(
    r'^(?P<indent>[ \t]*)(?P<fence>```+|~~~+)[ \t]*(?P<info>[^\n]*\bexec="(?:on|1|true|yes)"[^\n]*)\n'
    r'(?P=indent)--8<--[ \t]+"(?P<target>[^"]+)"[ \t]*$',
    re.MULTILINE,
)
_SESSION = re.compile(r'\bsession="([^"]+)"')
_FRAME = re.compile(r'File "<code block: id (?P<path>[^:>"]+):(?P<section>[\w-]+)>", line (?P<line>\d+)')
# markdown-exec 经 mkdocs 的插件日志记录执行错误；过滤器要挂在发出记录的那个 logger 上。
# tests/site/test_failures.py 检查错误信息里带着页面路径，这个名字变了测试会失败。
_EXEC_LOGGER = "mkdocs.plugins.markdown_exec._internal.formatters.base"


# ---------------------------------------------------------------- 1. 来源与错误信息


def _add_ids(markdown: str) -> str:
    def label(match: re.Match[str]) -> str:
        info = match["info"]
        if re.search(r'\bid="', info):
            return match[0]
        target = match["target"]
        head = f'{match["indent"]}{match["fence"]}{info} id="{target}"'
        return f'{head}\n{match["indent"]}--8<-- "{target}"'

    return _EXEC_FENCE.sub(label, markdown)


def _file_line(root: Path, path: str, section: str, line: int) -> int | None:
    """片段里的第 line 行，是 snippet 文件的第几行。"""
    try:
        lines = (root / path).read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    marker = f"[start:{section}]"
    for number, text in enumerate(lines, start=1):
        if marker in text:
            return number + line
    return None


class _NamePage(logging.Filter):
    """在 markdown-exec 的警告前面写上页面，后面写上出错的 snippet 文件行号。"""

    def filter(self, record: logging.LogRecord) -> bool:
        if _build.page and record.levelno >= logging.WARNING:
            message = str(record.msg)
            where = [
                f"{m['path']} 第 {n} 行"
                for m in _FRAME.finditer(message)
                if (n := _file_line(_build.root, m["path"], m["section"], int(m["line"])))
            ]
            suffix = f"\n出错位置：{where[-1]}\n" if where else ""
            record.msg = f"[页面 docs/{_build.page}] {message}{suffix}"
        return True


_filter = _NamePage()


# ---------------------------------------------------------------- 2. 执行：缓存、超时、记录


@dataclass
class _Block:
    id: str
    code: str
    output: str
    seconds: float
    cached: bool
    produced: str
    measurement: bool


@dataclass
class _Session:
    chain: str = ""
    pending: list[tuple[str, str | None, dict]] = field(default_factory=list)
    blocks: list[_Block] = field(default_factory=list)


@dataclass
class _Build:
    root: Path = Path()
    cache: Path = Path()
    cold: bool = False
    execute: bool = True
    dirty: bool = False
    page: str = ""
    sessions: dict[str, _Session] = field(default_factory=dict)
    # 页面 -> 该页的会话名；页面按构建顺序
    pages: dict[str, str] = field(default_factory=dict)
    urls: dict[str, str] = field(default_factory=dict)
    used: set[str] = field(default_factory=set)


_build = _Build()
# mkdocs serve 每次重建都会重新导入本模块：原始函数只取一次，避免层层包裹
_original_run = _mx_python.__dict__.setdefault("_hello_pytorch_original_run", _mx_python._run_python)
_original_format = _mx_main.__dict__.setdefault(
    "_hello_pytorch_original_format", _mx_main.formatters["python"]
)


def _environment() -> str:
    """页脚上给读者看的版本。"""
    return f"torch {version('torch')} · Python {platform.python_version()}"


@functools.cache
def _fingerprint() -> str:
    """缓存键里的“环境”：Python 与平台、线程数，以及已安装的每个发行包的版本（torch、numpy、matplotlib、
    markdown-exec、pygments……任何一个变了，输出或渲染出的 HTML 都可能变）。"""
    packages = sorted(
        f"{d.metadata['Name']}=={d.version}".lower() for d in distributions() if d.metadata["Name"]
    )
    parts = [platform.python_version(), platform.machine(), os.environ.get("OMP_NUM_THREADS", ""), *packages]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _key(chain: str, code: str) -> str:
    return hashlib.sha256(f"{CACHE_VERSION}\0{_fingerprint()}\0{chain}\0{code}".encode()).hexdigest()


def _checksum(entry: dict) -> str:
    return hashlib.sha256(json.dumps([entry["output"], entry["html"]], sort_keys=True).encode()).hexdigest()


def _read_cache(key: str) -> dict | None:
    """读一条缓存；文件损坏、被截断或内容对不上校验和时当作没有，绝不显示。"""
    path = _build.cache / f"{key}.json"
    try:
        entry = json.loads(path.read_text(encoding="utf-8"))
        ok = isinstance(entry["html"], dict) and _checksum(entry) == entry["sha256"]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return entry if ok else None


def _write_cache(key: str, entry: dict) -> None:
    _build.cache.mkdir(parents=True, exist_ok=True)
    entry["sha256"] = _checksum(entry)
    tmp = _build.cache / f"{key}.json.tmp"
    tmp.write_text(json.dumps(entry, ensure_ascii=False), encoding="utf-8")
    tmp.replace(_build.cache / f"{key}.json")


class SnippetTimeoutError(TimeoutError):
    pass


@contextlib.contextmanager
def _time_limit(label: str):
    """在代码块里抛出 SnippetTimeoutError；只在主线程可用（mkdocs build 与 serve 的构建都在主线程）。"""

    def expire(signum, frame):
        raise SnippetTimeoutError(f"{label} 运行超过 {BLOCK_TIMEOUT_S} 秒，被中止")

    try:
        previous = signal.signal(signal.SIGALRM, expire)
    except ValueError:  # 不在主线程：没有超时保护，但照常运行
        yield
        return
    signal.setitimer(signal.ITIMER_REAL, BLOCK_TIMEOUT_S)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _hit(state: _Session, key: str, code: str, id: str | None, extra: dict, entry: dict) -> None:
    """缓存命中：不执行，只记下这一块（后面有块未命中时再按顺序补跑它）。"""
    state.chain = key
    _build.used.add(key)
    state.pending.append((code, id, extra))
    block_id = id or f"#{len(state.blocks) + 1}"
    state.blocks.append(
        _Block(
            block_id,
            code,
            entry["output"],
            entry["seconds"],
            True,
            entry["produced"],
            block_id.endswith(MEASUREMENT_SUFFIX),
        )
    )


def _run(code: str, returncode=None, session=None, id=None, **extra):
    """替换 markdown-exec 的 _run_python：先查缓存，未命中时补跑前面的块再执行本块。"""
    if not _build.execute:
        return ""
    state = _build.sessions.setdefault(session or "", _Session())
    key = _key(state.chain, code)
    entry = None if _build.cold else _read_cache(key)
    if entry is not None:
        _hit(state, key, code, id, extra, entry)
        return entry["output"]
    state.chain = key
    _build.used.add(key)
    block_id = id or f"#{len(state.blocks) + 1}"
    label = f"docs/{_build.page} 的代码块 {block_id}"
    with _time_limit(label):
        for pending_code, pending_id, pending_extra in state.pending:
            _original_run(
                pending_code, returncode=returncode, session=session, id=pending_id, **pending_extra
            )
        state.pending.clear()
        start = time.perf_counter()
        output = _original_run(code, returncode=returncode, session=session, id=id, **extra)
        seconds = time.perf_counter() - start
    produced = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    _write_cache(key, {"output": output, "html": {}, "seconds": seconds, "produced": produced})
    state.blocks.append(
        _Block(block_id, code, output, seconds, False, produced, block_id.endswith(MEASUREMENT_SUFFIX))
    )
    return output


# 影响一个代码块渲染结果（HTML）的选项；代码和会话另算在缓存键里
_RENDER_OPTIONS = ("html", "source", "result", "tabs", "id", "id_prefix", "update_toc", "width", "extra")


def _format(**kwargs):
    """替换 markdown-exec 的 Python 格式化函数：渲染好的 HTML 也缓存起来。

    markdown-exec 为每个代码块新建一个 Markdown 实例来渲染源码和输出，是热构建里最慢的一步；
    命中时直接用缓存的 HTML。输出里生成了标题（会进目录）的块不缓存 HTML，以免目录漏掉它们。
    """
    if not _build.execute:
        return _original_format(**kwargs)
    code, session = kwargs["code"], kwargs.get("session") or ""
    state = _build.sessions.setdefault(session, _Session())
    options = {name: kwargs.get(name) for name in _RENDER_OPTIONS}
    signature = hashlib.sha256(json.dumps(options, sort_keys=True, default=str).encode()).hexdigest()[:16]
    key = _key(state.chain, code)
    entry = None if _build.cold else _read_cache(key)
    if entry is not None and signature in entry["html"]:
        _hit(state, key, code, kwargs.get("id"), kwargs.get("extra") or {}, entry)
        return Markup(entry["html"][signature])
    markup = _original_format(**kwargs)  # 经由 _run：命中输出缓存或真正执行
    entry = _read_cache(key)
    if entry is not None and not re.search(r"<h[1-6][\s>]", str(markup)):
        entry["html"][signature] = str(markup)
        _write_cache(key, entry)
    return markup


def _footer(blocks: list[_Block]) -> str:
    seconds = sum(b.seconds for b in blocks)
    if all(b.cached for b in blocks):
        when = min(b.produced for b in blocks)
        source = f"输出取自构建缓存（产生于 {when}）"
    elif any(b.cached for b in blocks):
        source = "部分输出取自构建缓存，其余在本次构建中运行"
    else:
        source = "输出全部在本次构建中产生"
    return (
        '\n<div class="hp-provenance" markdown="0"><p>'
        f"本页的 {len(blocks)} 个代码块在构建网站时运行，用时 {seconds:.1f} 秒（计时，每次构建不同）；"
        f"{html.escape(_environment())}；{source}。"
        '<a href="{runtime}">各页运行时间</a></p></div>\n'
    )


def _runtime_table() -> str:
    rows = []
    total = 0.0
    for page, session in _build.pages.items():
        blocks = _build.sessions.get(session, _Session()).blocks
        if not blocks:
            continue
        seconds = sum(b.seconds for b in blocks)
        total += seconds
        cached = (
            "是" if all(b.cached for b in blocks) else ("部分" if any(b.cached for b in blocks) else "否")
        )
        item = _notebooks.items.get(page)
        notebook = (
            f"<td>{item.seconds:.2f}</td><td>{'是' if item.cached else '否'}</td>"
            if item
            else "<td></td><td></td>"
        )
        rows.append(
            f'<tr><td><a href="../{html.escape(_build.urls[page])}">{html.escape(page)}</a></td><td>{len(blocks)}</td>'
            f"<td>{seconds:.2f}</td><td>{cached}</td>{notebook}</tr>"
        )
    return (
        "<table><thead><tr><th>页面</th><th>代码块</th><th>用时（秒，计时）</th><th>来自缓存</th>"
        "<th>笔记本用时（秒，计时）</th><th>笔记本来自缓存</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody><tfoot><tr><td>合计</td><td></td><td>{total:.2f}</td><td></td>"
        f"<td>{sum(i.seconds for i in _notebooks.items.values()):.2f}</td><td></td></tr></tfoot></table>"
    )


# ---------------------------------------------------------------- mkdocs 事件


def on_startup(command, dirty):
    _build.dirty = dirty


def _teach_jieba_the_glossary(docs_dir: Path) -> None:
    """搜索的中文分词（jieba）把“反向传播”切成“反向 / 传播”，读者搜整个词就找不到。
    把术语表里的每个中文术语告诉 jieba，让它们在搜索索引里保持完整；术语表是唯一的词表来源。"""
    try:
        import jieba
    except ImportError:
        return
    glossary = docs_dir / "glossary.md"
    if glossary.exists():
        for term in re.findall(
            r"^\| ([^|（]+?)(?:（[^|]*）)? \| ", glossary.read_text(encoding="utf-8"), re.MULTILINE
        ):
            if re.search(r"[\u4e00-\u9fff]", term) and term != "中文":
                jieba.add_word(term.strip())


def on_config(config):
    # jieba 每次构建都打印“Building prefix dict…”，那不是警告；让构建输出只剩真正的问题
    logging.getLogger("jieba").setLevel(logging.WARNING)
    _teach_jieba_the_glossary(Path(config.docs_dir))
    logger = logging.getLogger(_EXEC_LOGGER)
    for old in [f for f in logger.filters if type(f).__name__ == "_NamePage"]:
        logger.removeFilter(old)
    logger.addFilter(_filter)
    _mx_python._run_python = _run  # 从此 markdown-exec 执行 Python 代码块都经过 _run
    _mx_main.formatters["python"] = _mx_main.formatters["py"] = _format  # 渲染经过 _format
    _build.root = Path(config.config_file_path).parent
    _build.cache = _build.root / ".cache" / "exec"
    _build.cold = os.environ.get(COLD_ENV, "") not in ("", "0")
    _build.execute = os.environ.get(EXECUTE_ENV, "1") != "0"
    _prepare_artefacts()
    # 像 `python snippets/part2/x.py` 那样，snippet 可以导入同目录的库模块（如 snippets/part2/_tinygpt.py）
    snippets = _build.root / "snippets"
    for folder in sorted({p.parent for p in snippets.rglob("*.py")}) if snippets.is_dir() else []:
        if str(folder) not in sys.path:
            sys.path.append(str(folder))
    # mkdocs serve 重建时，上一次导入的库模块还在 sys.modules 里；丢掉它们，改过的库才会被重新导入
    for name, module in list(sys.modules.items()):
        if str(getattr(module, "__file__", "") or "").startswith(str(snippets)):
            del sys.modules[name]
    # mkdocs-jupyter 0.26.3 的 NotebookFile 把属性转交给被包装的文件，却漏了 File 的类属性 inclusion：
    # 包装后的笔记本总是 UNDEFINED，不在导航里的笔记本页就会触发“未列入导航”的警告。让它照实转交
    from mkdocs_jupyter.plugin import NotebookFile

    NotebookFile.inclusion = property(lambda self: self.file.inclusion)
    _build.sessions.clear()
    _build.pages.clear()
    _build.urls.clear()
    _build.used.clear()
    return config


# 构建中被重复使用的产物（执行缓存、笔记本输出都有自己的键；下面这些是代码自己写、自己读的）：
# snippet 的检查点和实验结果（snippets/part2/_tinygpt.py 的 cached()，页面和笔记本内核共用）、
# torch.compile 的 Inductor 编译缓存、笔记本的运行目录、mkdocs-jupyter 的渲染缓存。
# 冷构建（HELLO_PYTORCH_COLD=1）开始时把它们全部删掉：本次构建不读任何在它开始之前写下的东西。
ARTEFACTS_ENV = "HELLO_PYTORCH_ARTEFACTS"
ARTEFACT_DIRS = {
    ARTEFACTS_ENV: "artefacts",
    "TORCHINDUCTOR_CACHE_DIR": "inductor",
}
COLD_WIPED = ("exec", "artefacts", "inductor", "notebooks", "mkdocs-jupyter")


def _prepare_artefacts() -> None:
    """冷构建先删掉本站在 .cache/ 下的全部产物；再把产物目录告诉 snippet 和子进程（笔记本内核、torchrun 的 worker
    继承环境变量，和页面用同一个目录）。调用者事先用环境变量指定了别的目录时（测试会话就是这样，每次会话一个新目录），
    那个目录由调用者负责，构建不删它。"""
    cache = _build.root / ".cache"
    if _build.cold and _build.execute:
        for name in COLD_WIPED:
            owner = next((v for v, n in ARTEFACT_DIRS.items() if n == name), None)
            if owner is None or Path(os.environ.get(owner, cache / name)) == cache / name:
                shutil.rmtree(cache / name, ignore_errors=True)
    for variable, name in ARTEFACT_DIRS.items():
        os.environ.setdefault(variable, str(cache / name))


def _libraries_digest(src_uri: str) -> str:
    folder = _build.root / "snippets" / Path(src_uri).parent
    digest = hashlib.sha256()
    for library in sorted(folder.glob("_*.py")):
        digest.update(library.name.encode() + b"\0" + library.read_bytes())
    return digest.hexdigest()


def on_nav(nav, config, files):
    for item in _notebooks.items.values():
        item.notebook_url = files.get_file_from_path(item.uri).url  # mkdocs-jupyter 包装后的网页地址
    return nav


@event_priority(100)  # 在 mkdocs-jupyter 按文件内容查它的缓存之前，等后台把笔记本运行完、写好
def on_pre_page(page, config, files):
    if page.file.src_uri.startswith(NOTEBOOK_PREFIX):
        _wait_for_notebooks()
    return page


def on_page_markdown(markdown, page, config, files):
    if page.file.src_uri.startswith(NOTEBOOK_PREFIX):
        page.meta["search"] = {"exclude": True}  # 笔记本的文字与它的网页相同，搜索结果只给网页
        page.meta["description"] = (
            "本章的 Jupyter 笔记本：可下载，可在 Colab 中打开，输出来自构建时的一次完整运行。"
        )
        return markdown
    _build.page = page.file.src_uri
    sessions = set(_SESSION.findall(markdown))
    libraries = _libraries_digest(page.file.src_uri)
    for session in sessions:
        # 每次构建都从干净的会话开始（mkdocs serve 重建时，上一次的变量还留在内存里）
        _mx_python._sessions_globals.pop(session, None)
        # 页面的 snippet 会导入同目录的库模块（snippets/<部分>/_*.py）：库一变，这一页的缓存全部失效
        _build.sessions[session] = _Session(chain=libraries)
    if sessions:
        _build.pages[page.file.src_uri] = sorted(sessions)[0]
        _build.urls[page.file.src_uri] = page.url
    return _add_ids(markdown)


# 代码的输出（文字结果块和画出的 SVG 图）不进搜索索引：搜“损失函数”时不该被一屏屏的数字淹没，构建也更快
_OUTPUT_OPENING = re.compile(r'<div class="language-text highlight"|<svg(?=[\s>])')


def on_page_content(html_text, page, config, files):
    if page.file.src_uri.startswith(NOTEBOOK_PREFIX):
        return _notebook_page(html_text, page, config, files)
    _build.page = ""
    session = _build.pages.get(page.file.src_uri)
    blocks = _build.sessions.get(session, _Session()).blocks if session else []
    if blocks:
        html_text = _OUTPUT_OPENING.sub(lambda m: m[0] + " data-search-exclude", html_text)
        runtime_page = files.get_file_from_path("runtime.md")
        runtime = runtime_page.url_relative_to(page.file) if runtime_page else ""
        html_text += _footer(blocks).replace("{runtime}", html.escape(runtime))
    item = _notebooks.items.get(page.file.src_uri)
    if item is not None:  # 标题下面：本章的笔记本、下载、Colab
        html_text = re.sub(
            r"(</h1>)", lambda m: m[1] + _links(item, page, config, "page"), html_text, count=1
        )
    return html_text


def on_page_context(context, page, config, nav):
    if page.file.src_uri == "runtime.md":
        page.content = page.content.replace("<p>RUNTIME_TABLE</p>", _runtime_table())
    return context


def on_build_error(error):
    _notebooks.stop = True  # 构建已经失败：后台不再开始新的笔记本
    _wait_for_notebooks(report=False)


def on_post_page(output, page, config):
    # 设置了 repo_url，Material 就在每一页的脚本里向 GitHub 的 API 查询星标数。本站的页面只向本站请求：
    # 仓库链接照常显示，去掉触发查询的标记
    return output.replace('class="md-source" data-md-component="source"', 'class="md-source"')


def on_post_build(config):
    manifest = {
        page: [
            {"id": b.id, "code": b.code, "output": b.output, "measurement": b.measurement, "cached": b.cached}
            for b in _build.sessions.get(session, _Session()).blocks
        ]
        for page, session in _build.pages.items()
    }
    site = Path(config.site_dir)
    (site / "exec-manifest.json").write_text(
        json.dumps(manifest, ensure_ascii=False, indent=1), encoding="utf-8"
    )
    if _notebooks.css:
        target = site / NOTEBOOK_CSS
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(_notebooks.css, encoding="utf-8")
    # 每章的笔记本：网站里的位置、下载地址、Colab 链接、本次是否重新运行（测试与基准读它）
    (site / "notebook-manifest.json").write_text(
        json.dumps(
            {
                page: {
                    "notebook": item.uri,
                    "download": _download_uri(item),
                    "colab": _colab_url(config, _download_uri(item)),
                    "executed": item.ran,
                }
                for page, item in _notebooks.items.items()
            },
            ensure_ascii=False,
            indent=1,
        ),
        encoding="utf-8",
    )
    ran = [item for item in _notebooks.items.values() if item.ran]
    if ran:
        listing = ", ".join(f"{item.page} {item.seconds:.1f}s" for item in ran)
        logging.getLogger("mkdocs.hooks").info("笔记本：本次构建运行了 %d 个（计时）：%s", len(ran), listing)
    # 每次（非 dirty）构建都渲染全部页面，没用到的缓存条目就是过期的（只渲染、不执行时什么都没用到，不清理）
    if not _build.dirty and _build.execute and _build.cache.is_dir():
        for entry in _build.cache.glob("*.json"):
            if entry.stem not in _build.used:
                entry.unlink()
        outputs = _build.root / ".cache" / "notebooks" / "outputs"
        for entry in outputs.glob("*.json") if outputs.is_dir() else []:
            if entry.stem not in _notebooks.used:
                entry.unlink()


# ---------------------------------------------------------------- 4. 自带的浏览器脚本

# 网站路径 -> node_modules 里的来源（文件或目录）；docs/javascripts/lazy-assets.js 按需加载这些网站路径
VENDORED = {
    # Mermaid 的 ES 模块版：入口很小，只按需下载画当前图所需的代码块（chunks），不带 .map
    "assets/vendor/mermaid/mermaid.esm.min.mjs": "mermaid/dist/mermaid.esm.min.mjs",
    "assets/vendor/mermaid/chunks/mermaid.esm.min": "mermaid/dist/chunks/mermaid.esm.min",
    # KaTeX：脚本、样式和字体（样式按相对路径找 fonts/）
    "assets/vendor/katex/katex.min.js": "katex/dist/katex.min.js",
    "assets/vendor/katex/katex.min.css": "katex/dist/katex.min.css",
    "assets/vendor/katex/fonts": "katex/dist/fonts",
    # 笔记本网页里的公式是 $…$ 原文，由 KaTeX 的 auto-render 找出来排版
    "assets/vendor/katex/contrib/auto-render.min.js": "katex/dist/contrib/auto-render.min.js",
}
SKIPPED_SUFFIXES = (".map",)


# ---------------------------------------------------------------- 5. 笔记本（Jupyter / Colab）
#
# 每个有执行代码的页面生成一个笔记本：页面文字是 Markdown 单元格，页面包含的每个 snippet 片段是一个代码单元格，
# 顺序与页面相同；开头的准备单元格安装固定版本的依赖、写好本章导入的库模块。笔记本只生成在 .cache/notebooks/
# （不入库），由 mkdocs-jupyter 渲染成网站里的一页并提供下载；GitHub Pages 工作流把它们发布到 NOTEBOOK_BRANCH
# 分支，“在 Colab 中打开”链接指向那里。
#
# 执行：笔记本在构建开始时就交给后台线程，用 nbclient 在全新的内核里从头到尾运行，与执行页面代码的主线程
# 并行（两个核各忙一个）；输出按“全部代码单元格 + 版本”缓存在 .cache/notebooks/outputs/，只改文字不重新运行。
# mkdocs-jupyter 只负责渲染（execute: false），并用它自己的缓存（.cache/mkdocs-jupyter）。

NOTEBOOK_VERSION = "1"  # 改变笔记本的格式或运行方式时加一，旧的输出缓存随之失效
NOTEBOOK_BRANCH = "notebooks"  # .github/workflows/pages.yml 把网站里的 .ipynb 推送到这个分支
NOTEBOOK_PINS = ("torch", "numpy", "matplotlib")  # 笔记本第一个单元格安装的包，版本取自 requirements.txt
NOTEBOOK_PREFIX = "notebooks/"  # 笔记本在网站里的位置
NOTEBOOK_WORKERS = 2  # 同时运行的笔记本内核数

_SECTION_MARK = re.compile(
    r"-{1,}8<-{1,}[ \t]+\[[ \t]*(?:start|end)[ \t]*:[ \t]*[a-z][-_0-9a-z]*[ \t]*\]", re.I
)
_FENCE_OPEN = re.compile(r"^(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>.*)$")
_INCLUDE_LINE = re.compile(r'^--8<--[ \t]+"(?P<target>[^"]+)"[ \t]*$')
_ADMONITION = re.compile(r'^(?:!!!|\?\?\?\+?)[ \t]+(?P<kind>[\w-]+)(?:[ \t]+"(?P<title>[^"]*)")?[ \t]*$')
_TAB = re.compile(r'^===\+?[ \t]+"(?P<title>[^"]*)"[ \t]*$')
_FOOTNOTE_DEF = re.compile(r"^\[\^(?P<name>[^\]]+)\]:[ \t]*(?P<text>.*)$", re.MULTILINE)
_FOOTNOTE_REF = re.compile(r"\[\^(?P<name>[^\]]+)\](?!:)")
_LINK = re.compile(r"(?<=\]\()(?P<target>[^)\s]+)(?=\))")
_MERMAID_CLICK = re.compile(r'^(?P<head>\s*click\s+\w+\s+")(?P<target>[^"]+)"', re.MULTILINE)
_ADMONITION_LABEL = {
    "note": "注意",
    "tip": "提示",
    "info": "说明",
    "warning": "警告",
    "danger": "危险",
    "bug": "勘误",
    "example": "例子",
    "question": "问题",
    "abstract": "摘要",
    "success": "成功",
    "failure": "失败",
    "quote": "引用",
}

_INSTALL_CELL = """\
# 准备：安装与网站构建时完全相同的依赖（CPU 版 PyTorch，体积小，不需要显卡）。已经装好就什么也不做。
import importlib.metadata
import subprocess
import sys

PINS = {pins}
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"  # PyTorch 官方的 CPU 版安装包索引
# 可选：在中国大陆下载慢时，设为国内的 PyPI 镜像，例如 "https://pypi.tuna.tsinghua.edu.cn/simple"（清华大学）。
# 镜像里的 torch 和 PyPI 上的一样：Linux 上是带 CUDA 的版本，比 CPU 版大得多，但同样能在 CPU 上运行
PIP_MIRROR = None


def installed(name):
    try:
        return importlib.metadata.version(name).split("+")[0]  # "2.13.0+cpu" 也算 2.13.0
    except importlib.metadata.PackageNotFoundError:
        return None


missing = [name for name, wanted in PINS.items() if installed(name) != wanted]
index = ["--index-url", PIP_MIRROR] if PIP_MIRROR else []
if "torch" in missing:
    torch_index = index or ["--index-url", TORCH_CPU_INDEX]
    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", f"torch=={{PINS['torch']}}", *torch_index])
others = [f"{{name}}=={{PINS[name]}}" for name in missing if name != "torch"]
if others:
    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", *index, *others])
if any(name in sys.modules for name in missing):
    print("刚换了已经导入过的包：请先重启内核（Colab：代码执行程序 → 重启会话），再从下一个单元接着运行。")
print("依赖就绪：" + "，".join(f"{{name}} {{installed(name)}}" for name in PINS))
"""

_DISPLAY_CELL = """\
# 准备：网站上有几段代码打印的是 Markdown（表格、结论）或 HTML（SVG 图），网页把它们显示成表格和图。
# 笔记本里用单元格魔法命令 %%display_as 做同样的事：运行单元格里的代码，把打印出来的内容按 Markdown 或 HTML 显示。
import contextlib
import io

from IPython import get_ipython
from IPython.core.magic import register_cell_magic
from IPython.display import HTML, Markdown, display


@register_cell_magic
def display_as(kind, cell):
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(cell, "<单元格>", "exec"), get_ipython().user_ns)
    display(Markdown(printed.getvalue()) if kind.strip() == "markdown" else HTML(printed.getvalue()))
"""

_LIBRARY_CELL = """\
# 准备：本章的代码导入同目录的库模块（网站仓库里的 {folder}/ 下的文件）。
# 下面的单元把它们原样写进当前目录下的 {folder}/，这里先建好目录、加进模块搜索路径。
import sys
from pathlib import Path

Path("{folder}").mkdir(parents=True, exist_ok=True)
sys.path.insert(0, str(Path("{folder}").resolve()))
"""


@dataclass
class _Notebook:
    page: str  # 生成它的页面，如 part1/ch03_algorithm.md
    uri: str  # 网站里的位置，如 notebooks/part1/ch03_algorithm.ipynb
    path: Path  # 生成的文件
    nb: dict
    key: str  # 输出缓存的键：全部代码单元格 + 版本
    page_url: str = ""
    file: File | None = None
    # 笔记本网页的地址（mkdocs-jupyter 包装之后才知道），如 notebooks/part1/ch03_algorithm/
    notebook_url: str = ""
    seconds: float = 0.0  # 在后台运行用了多久（取自缓存时是当初那次运行）
    cached: bool = False
    ran: bool = False  # 本次构建在后台运行了它


@dataclass
class _Notebooks:
    items: dict[str, _Notebook] = field(default_factory=dict)  # 页面 -> 笔记本
    threads: list = field(default_factory=list)
    error: str = ""
    css: str = ""
    stop: bool = False
    used: set[str] = field(default_factory=set)


_notebooks = _Notebooks()


def _section_code(path: str, section: str | None) -> str:
    """与 pymdownx.snippets（dedent_subsections）包含的内容相同：片段里的行，去掉片段标记，再去掉公共缩进。"""
    lines = (_build.root / path).read_text(encoding="utf-8").splitlines()
    if section:
        start = next(i for i, line in enumerate(lines) if re.search(rf"\[start:{section}\]", line))
        end = next(i for i, line in enumerate(lines) if i > start and re.search(rf"\[end:{section}\]", line))
        lines = lines[start + 1 : end]
    return textwrap.dedent("\n".join(line for line in lines if not _SECTION_MARK.search(line))).strip("\n")


def _segments(lines: list[str]) -> list[tuple]:
    """把页面的 Markdown 切成：("md", 文字)、("code", 包含目标, 输出方式)、("show", 包含目标, 标题)。"""
    out: list[tuple] = []
    prose: list[str] = []

    def flush() -> None:
        if any(line.strip() for line in prose):
            out.append(("md", "\n".join(prose).strip("\n")))
        prose.clear()

    i = 0
    while i < len(lines):
        line = lines[i]
        if opening := _FENCE_OPEN.match(line):
            fence = opening["fence"]
            end = next(
                (
                    j
                    for j in range(i + 1, len(lines))
                    if lines[j].strip().startswith(fence[0] * len(fence))
                    and not lines[j].strip().strip(fence[0])
                ),
                len(lines),
            )
            body = [b.strip() for b in lines[i + 1 : end] if b.strip()]
            includes = [m for b in body if (m := _INCLUDE_LINE.match(b))]
            info = opening["info"]
            if body and len(includes) == len(body):
                flush()
                for include in includes:
                    if re.search(r'\bexec="(?:on|1|true|yes)"', info):
                        kind = (
                            "html" if 'html="true"' in info else ("text" if "result=" in info else "markdown")
                        )
                        out.append(("code", include["target"], kind))
                    else:
                        title = re.search(r'title="([^"]*)"', info)
                        out.append(("show", include["target"], title[1] if title else ""))
            else:
                block = lines[i : end + 1]
                if info.startswith("mermaid"):
                    block = [
                        _MERMAID_CLICK.sub(lambda m: m["head"] + _absolute(m["target"]) + '"', b)
                        for b in block
                    ]
                prose.extend(block)
            i = end + 1
            continue
        container = _ADMONITION.match(line) or _TAB.match(line)
        if container:
            j = i + 1
            while j < len(lines) and (not lines[j].strip() or lines[j].startswith("    ")):
                j += 1
            inner = _segments([text[4:] for text in lines[i + 1 : j]])
            flush()
            if "kind" in container.groupdict():
                title = container["title"] or _ADMONITION_LABEL.get(container["kind"], container["kind"])
                if not inner or inner[0][0] != "md":
                    inner.insert(0, ("md", ""))
                inner[0] = ("md", f"**{title}**\n\n{inner[0][1]}".rstrip())
                inner = [
                    ("md", "\n".join(f"> {t}" if t.strip() else ">" for t in item[1].splitlines()))
                    if item[0] == "md"
                    else item
                    for item in inner
                ]
            else:
                inner.insert(0, ("md", f"**{container['title']}**"))
            out.extend(inner)
            i = j
            continue
        prose.append(line)
        i += 1
    flush()
    merged: list[tuple] = []
    for item in out:
        if item[0] == "md" and merged and merged[-1][0] == "md":
            merged[-1] = ("md", merged[-1][1] + "\n\n" + item[1])
        else:
            merged.append(item)
    return merged


_page_context: dict = {}


def _absolute(target: str) -> str:
    """页面里的相对链接 -> 网站上的绝对地址（笔记本离开网站后链接照样能用）。"""
    if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith("//"):
        return target
    files, page_url, src_uri = _page_context["files"], _page_context["url"], _page_context["src_uri"]
    path, _, anchor = target.partition("#")
    if not path:
        return page_url + "#" + anchor
    if path.endswith(".md"):
        linked = files.get_file_from_path(
            posixpath.normpath(posixpath.join(posixpath.dirname(src_uri), path))
        )
        if linked is not None:
            return _page_context["site"] + linked.url + (f"#{anchor}" if anchor else "")
    return urljoin(page_url, target)


def _jupyter_markdown(text: str, footnotes: dict[str, int]) -> str:
    """网站的 Markdown 方言 -> Jupyter 能显示的 Markdown：链接变成绝对地址，脚注变成上标编号。"""
    parts = re.split(
        r"(^(?:>[ \t]?)?(?:`{3,}|~{3,})[^\n]*\n.*?^(?:>[ \t]?)?(?:`{3,}|~{3,})[ \t]*$)",
        text,
        flags=re.M | re.S,
    )
    for n, part in enumerate(parts):
        if n % 2:  # 代码块原样保留
            continue
        part = _LINK.sub(lambda m: _absolute(m["target"]), part)
        part = _FOOTNOTE_REF.sub(
            lambda m: f"<sup>[{footnotes.setdefault(m['name'], len(footnotes) + 1)}]</sup>", part
        )
        parts[n] = part
    return "".join(parts)


def _pins() -> dict[str, str]:
    text = (_build.root / "requirements.txt").read_text(encoding="utf-8")
    return {name: re.search(rf"^{name}==(\S+)", text, re.MULTILINE)[1] for name in NOTEBOOK_PINS}


def _cell(kind: str, source: str, index: int, **metadata) -> dict:
    cell = {"cell_type": kind, "id": f"cell-{index:03d}", "metadata": metadata, "source": source}
    if kind == "code":
        cell.update(execution_count=None, outputs=[])
    return cell


def _make_notebook(src_uri: str, markdown: str, files, site_url: str, page_url: str) -> dict:
    _page_context.update(files=files, url=site_url + page_url, src_uri=src_uri, site=site_url)
    body = re.sub(r"\A---\n.*?\n---\n", "", markdown, flags=re.S)
    definitions = {m["name"]: m["text"] for m in _FOOTNOTE_DEF.finditer(body)}
    body = _FOOTNOTE_DEF.sub("", body)
    segments = _segments(body.splitlines())
    footnotes: dict[str, int] = {}
    cells: list[dict] = []
    title = re.search(r"^# (.+)$", body, re.MULTILINE)
    title = title[1].strip() if title else src_uri
    folder = f"snippets/{Path(src_uri).parent.as_posix()}".rstrip("/.")
    libraries = sorted((_build.root / folder).glob("_*.py")) if folder != "snippets" else []
    kinds = {item[2] for item in segments if item[0] == "code"}

    def add(kind: str, source: str, **metadata) -> None:
        cells.append(_cell(kind, source, len(cells), **metadata))

    intro = (
        f"# {title}\n\n> 这是网站页面[《{title}》]({_page_context['url']})的 Jupyter 笔记本，由同一份源文件在构建网站时生成："
        "文字就是页面上的文字，每个代码单元格就是页面上在构建时运行过的那段代码。"
        "从上到下依次运行即可，第一个代码单元格安装固定版本的 CPU 版 PyTorch。"
        "图（Mermaid）在 JupyterLab 4.1 及以上显示为图，在别的环境里显示为图的源码，网页上能看到画好的图。\n>\n"
        "> （可选）在中国大陆打不开 Colab 时，可以下载这个 .ipynb，上传到国内能访问的笔记本服务"
        "（例如魔搭 ModelScope 或百度飞桨 AI Studio 提供的免费 CPU 笔记本环境）运行；"
        "下载依赖慢时，把第一个代码单元格里的 `PIP_MIRROR` 设为国内的 PyPI 镜像。"
    )
    add("markdown", intro)
    add("code", _INSTALL_CELL.format(pins=json.dumps(_pins())), hello_pytorch={"role": "install"})
    if kinds & {"markdown", "html"}:
        add("code", _DISPLAY_CELL, hello_pytorch={"role": "setup"})
    if libraries:
        add("code", _LIBRARY_CELL.format(folder=folder), hello_pytorch={"role": "setup"})
        for library in libraries:
            rel = library.relative_to(_build.root).as_posix()
            add(
                "code",
                f"%%writefile {rel}\n" + library.read_text(encoding="utf-8").rstrip("\n"),
                hello_pytorch={"role": "library", "file": rel},
                jupyter={"source_hidden": True},
            )
    for item in segments:
        if item[0] == "md":
            text = _jupyter_markdown(item[1], footnotes)
            text = re.sub(rf"\A# {re.escape(title)}[ \t]*\n*", "", text).strip("\n")
            if text:
                add("markdown", text)
        elif item[0] == "code":
            path, _, section = item[1].partition(":")
            code = _section_code(path, section or None)
            magic = "" if item[2] == "text" else f"%%display_as {item[2]}\n"
            add(
                "code", magic + code, hello_pytorch={"role": "snippet", "include": item[1], "output": item[2]}
            )
        else:
            path, _, section = item[1].partition(":")
            code = _section_code(path, section or None)
            note = f"`{item[2] or path}`（开头的准备单元格已经把整个文件写好，这里只展示，不必运行）："
            add("markdown", f"{note}\n\n```python\n{code}\n```")
    if footnotes:
        lines = [
            f"{number}. {_jupyter_markdown(definitions.get(name, ''), footnotes)}"
            for name, number in footnotes.items()
        ]
        add("markdown", "## 注释\n\n" + "\n".join(lines))
    return {
        "cells": cells,
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
            "hello_pytorch": {"page": f"docs/{src_uri}", "url": _page_context["url"]},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def _outputs_path(key: str) -> Path:
    return _build.root / ".cache" / "notebooks" / "outputs" / f"{key}.json"


def _read_outputs(key: str) -> dict | None:
    """一条笔记本输出缓存：{"cells": 每个代码单元格的输出, "seconds": 运行用时, "produced": 何时}；坏了就当没有。"""
    try:
        entry = json.loads(_outputs_path(key).read_text(encoding="utf-8"))
        digest = hashlib.sha256(json.dumps(entry["cells"], sort_keys=True).encode()).hexdigest()
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return entry if digest == entry.get("sha256") else None


def _write_outputs(key: str, cells: list[dict], seconds: float) -> None:
    path = _outputs_path(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(json.dumps(cells, sort_keys=True).encode()).hexdigest()
    produced = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    entry = {"cells": cells, "seconds": seconds, "produced": produced, "sha256": digest}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(entry, ensure_ascii=False), encoding="utf-8")
    tmp.replace(path)


def _write_notebook(item: _Notebook, cells: list[dict] | None) -> None:
    """把输出填进笔记本，写到 item.path；内容没变就不写（mkdocs-jupyter 的缓存按文件内容命中）。"""
    import nbformat

    nb = copy.deepcopy(item.nb)
    code_cells = [cell for cell in nb["cells"] if cell["cell_type"] == "code"]
    for cell, result in zip(code_cells, cells, strict=True) if cells is not None else ():
        cell["outputs"], cell["execution_count"] = result["outputs"], result["execution_count"]
    node = nbformat.from_dict(nb)
    nbformat.validate(node)
    text = nbformat.writes(node)
    if not item.path.exists() or item.path.read_text(encoding="utf-8") != text:
        item.path.parent.mkdir(parents=True, exist_ok=True)
        item.path.write_text(text, encoding="utf-8")


def _execute_notebook(item: _Notebook) -> list[dict]:
    """在全新的内核里从头到尾运行笔记本（nbclient）。同一部分的笔记本共用一个运行目录（第二部分的检查点只训练一次）。"""
    import nbformat
    from nbclient import NotebookClient

    run_dir = (
        _build.root
        / ".cache"
        / "notebooks"
        / "run"
        / (Path(item.page).parent.as_posix().strip(".") or "home")
    )
    run_dir.mkdir(parents=True, exist_ok=True)
    nb = nbformat.from_dict(copy.deepcopy(item.nb))
    client = NotebookClient(
        nb,
        kernel_name="python3",
        timeout=BLOCK_TIMEOUT_S,  # 单个单元格的上限，与页面代码块相同
        allow_errors=False,
        record_timing=False,
        resources={"metadata": {"path": str(run_dir)}},
    )
    # 内核进程自己的日志（不是单元格的输出）写进文件，不混进构建输出；出错时附在错误信息里
    log = run_dir / f"kernel-{Path(item.page).stem}.log"
    with log.open("w", encoding="utf-8") as stderr:
        try:
            client.execute(stderr=stderr)
        except Exception as error:
            failed = next(
                (c for c in nb.cells if any(o.get("output_type") == "error" for o in c.get("outputs", []))),
                None,
            )
            where = (failed or {}).get("metadata", {}).get("hello_pytorch", {}).get("include", "准备单元格")
            raise RuntimeError(
                f"笔记本 {item.uri}（由 docs/{item.page} 生成）在单元格 {where} 出错：\n{error}\n"
                f"内核日志 {log}：\n{log.read_text(encoding='utf-8')[-2000:]}"
            ) from error
    results = []
    for cell in nb.cells:
        if cell.cell_type == "code":
            role = cell.metadata.get("hello_pytorch", {}).get("role")
            # %%writefile 打印 Writing/Overwriting，取决于文件之前在不在；不留这种输出
            outputs = [] if role == "library" else [dict(o) for o in cell.outputs]
            results.append(
                {"outputs": json.loads(json.dumps(outputs)), "execution_count": cell.execution_count}
            )
    return results


def _execute_group(groups: list[list[_Notebook]]) -> None:
    """一个后台线程：一次取一组（同一部分的笔记本共用运行目录，必须依次运行），直到取完或出错。"""
    while groups and not _notebooks.stop and not _notebooks.error:
        try:
            group = groups.pop(0)
        except IndexError:
            return
        for item in group:
            if _notebooks.stop or _notebooks.error:
                return
            began = time.perf_counter()
            try:
                cells = _execute_notebook(item)
            except Exception as error:  # 交给主线程：它在渲染笔记本页面之前报错，构建失败
                _notebooks.error = str(error)
                return
            item.seconds, item.ran = time.perf_counter() - began, True
            _write_outputs(item.key, cells, item.seconds)
            _write_notebook(item, cells)


def _start_notebooks(pending: list[_Notebook]) -> None:
    import threading

    groups: dict[str, list[_Notebook]] = {}
    for item in pending:
        groups.setdefault(Path(item.page).parent.as_posix(), []).append(item)
    # 大的组先开始；第二部分（训练）最重，两个线程分头运行，另一个核上主线程在执行页面的代码
    queue = sorted(groups.values(), key=len, reverse=True)
    _notebooks.threads = [
        threading.Thread(target=_execute_group, args=(queue,), name=f"notebooks-{n}", daemon=True)
        for n in range(min(NOTEBOOK_WORKERS, len(queue)))
    ]
    for thread in _notebooks.threads:
        thread.start()


def _wait_for_notebooks(report: bool = True) -> None:
    """等后台线程都结束；report=True 时把后台的错误当作构建错误抛出。"""
    for thread in _notebooks.threads:
        thread.join()
    _notebooks.threads = []
    if report and _notebooks.error:
        raise PluginError(_notebooks.error)


def _colab_url(config, download: str) -> str:
    repo = re.match(r"^https://github\.com/([^/]+/[^/]+?)(?:\.git)?/?$", config.repo_url or "")
    if repo is None:
        raise PluginError(
            f"repo_url 必须是 GitHub 仓库地址（Colab 只能打开 GitHub 上的笔记本），现在是 {config.repo_url!r}"
        )
    return f"https://colab.research.google.com/github/{repo[1]}/blob/{NOTEBOOK_BRANCH}/{download.removeprefix(NOTEBOOK_PREFIX)}"


def _prepare_notebooks(files, config) -> None:

    from mkdocs.structure.files import InclusionLevel

    _notebooks.stop = True
    _wait_for_notebooks(report=False)
    _notebooks.__init__()
    site_url = (config.site_url or "").rstrip("/") + "/"
    generated = _build.root / ".cache" / "notebooks" / "site"
    pending = []
    for page in list(files.documentation_pages()):
        if not page.src_uri.endswith(".md"):
            continue
        markdown = page.content_string
        if not _EXEC_FENCE.search(markdown):
            continue
        nb = _make_notebook(page.src_uri, markdown, files, site_url, page.url)
        code = [cell["source"] for cell in nb["cells"] if cell["cell_type"] == "code"]
        key = hashlib.sha256(
            json.dumps([NOTEBOOK_VERSION, _fingerprint(), code], ensure_ascii=False).encode()
        ).hexdigest()
        uri = NOTEBOOK_PREFIX + page.src_uri.removesuffix(".md") + ".ipynb"
        item = _Notebook(page.src_uri, uri, generated / uri, nb, key, page.url)
        _notebooks.items[page.src_uri] = item
        _notebooks.used.add(key)
        entry = None if _build.cold else _read_outputs(key)
        if not _build.execute:
            _write_notebook(item, None)
        elif entry is None:
            pending.append(item)
        else:
            item.seconds, item.cached = entry.get("seconds", 0.0), True
            _write_notebook(item, entry["cells"])
        # 普通的 File（不是 File.generated）：mkdocs-jupyter 的包装类从 src_dir + src_uri 找到文件
        item.file = File(
            uri,
            src_dir=str(generated),
            dest_dir=config.site_dir,
            use_directory_urls=config.use_directory_urls,
            inclusion=InclusionLevel.NOT_IN_NAV,
        )
        files.append(item.file)
    _start_notebooks(pending)


@event_priority(100)  # 在 mkdocs-jupyter 之前：它要把我们生成的 .ipynb 包装成页面
def on_files(files, config):
    node_modules = Path(config.config_file_path).parent / "node_modules"
    for site_path, source in VENDORED.items():
        origin = node_modules / source
        if not origin.exists():
            raise PluginError(
                f"缺少 {origin}：Mermaid 与 KaTeX 由本站自己提供，不从 CDN 加载。"
                "请运行 `nox -s docs`（它会执行 npm ci），或在仓库根目录运行 `npm ci`。"
            )
        for path in sorted(origin.rglob("*")) if origin.is_dir() else [origin]:
            if path.is_file() and not path.name.endswith(SKIPPED_SUFFIXES):
                uri = site_path if path == origin else f"{site_path}/{path.relative_to(origin).as_posix()}"
                files.append(File.generated(config, uri, abs_src_path=str(path)))
    _prepare_notebooks(files, config)
    return files


# mkdocs-jupyter 的模板自带从 CDN 加载的 MathJax 和 Mermaid，还把 600 KB 的 Jupyter 样式内联进每一页。
# 本站不让读者的浏览器访问别的主机：去掉这些脚本，公式和图交给本站自己的 KaTeX 与 Mermaid（lazy-assets.js），
# 样式抽成一个共用的文件（浏览器只下载一次）。模板变了、又出现外部脚本时构建失败，而不是悄悄放过。
_CDN_SCRIPTS = re.compile(
    r'<script src="">\s*</script>|<script type="text/x-mathjax-config">.*?</script>'
    r'|<script type="module">\s*document\.addEventListener\("DOMContentLoaded", async \(\) => \{\s*'
    r"const diagrams = document\.querySelectorAll\(\"\.jp-Mermaid.*?</script>",
    re.S,
)
_JUPYTER_CSS = re.compile(
    r'<style type="text/css">\s*(@charset "UTF-8";\.jupyter-wrapper\{.*?)</style>', re.S
)
_LIST_AS_CSS = re.compile(
    r"<style>\s*\['.*?'\]\s*</style>", re.S
)  # mkdocs-jupyter 把 Python 列表当样式写进页面
_JP_MERMAID = re.compile(r'<div class="jp-Mermaid"><pre class="mermaid">\n?(.*?)</pre></div>', re.S)
NOTEBOOK_CSS = "assets/notebooks/jupyter.css"
_NB_HEADING = re.compile(
    r'<h(?P<level>[1-6]) id="[^"]*">(?P<body>.*?)<a class="anchor-link" href="#[^"]*">¶</a>', re.S
)


def _fix_heading_ids(html_text: str, page) -> str:
    """mkdocs-jupyter 给标题的 id 去掉了全部汉字（“第 1 步：准备数据”成了 "1"，会重复），侧栏目录的锚点又用另一种算法，
    两者对不上。这里按网站其他页面的规则（pymdownx.slugs）重新给标题起 id，再让目录指向它们。"""
    from pymdownx.slugs import slugify

    slug = slugify(case="lower")
    used: dict[str, int] = {}
    headings: list[tuple[str, str]] = []

    def rename(match: re.Match[str]) -> str:
        text = html.unescape(re.sub(r"<[^>]+>", "", match["body"])).strip()
        base = slug(text, "-") or "section"
        count = used.get(base, 0)
        used[base] = count + 1
        new = base if count == 0 else f"{base}_{count}"
        headings.append((text, new))
        return f'<h{match["level"]} id="{new}">{match["body"]}<a class="anchor-link" href="#{new}">¶</a>'

    html_text = _NB_HEADING.sub(rename, html_text)

    def within(short: str, full: str) -> bool:
        """short 的字符（去掉空白）按顺序出现在 full 里。"""
        rest = iter(re.sub(r"\s+", "", full))
        return all(char in rest for char in re.sub(r"\s+", "", short))

    def walk(items) -> None:
        for item in items:
            # 目录里的标题丢了行内代码（“torch.compile：…”只剩“：…”），按字符顺序找对应的标题，并补全标题文字
            found = next((n for n, (text, _) in enumerate(headings) if within(item.title, text)), None)
            if found is not None:
                item.title, item.id = headings[found]
                del headings[: found + 1]
            walk(item.children)

    walk(page.toc)
    return html_text


def _download_uri(item: _Notebook) -> str:
    """mkdocs-jupyter（include_source）把 .ipynb 复制到笔记本网页所在的目录。"""
    return item.notebook_url + posixpath.basename(item.uri)


def _links(item: _Notebook, page, config, here: str) -> str:
    from mkdocs.utils import get_relative_url

    download = _download_uri(item)
    web = (
        f'<a class="md-button" href="{get_relative_url(item.notebook_url, page.url)}">Jupyter 笔记本</a> '
        if here == "page"
        else f'<a class="md-button" href="{get_relative_url(item.page_url, page.url)}">返回网页</a> '
    )
    return (
        '<p class="hp-notebook-links">'
        + web
        + f'<a class="md-button" href="{get_relative_url(download, page.url)}" download>下载 .ipynb</a> '
        f'<a class="md-button" href="{html.escape(_colab_url(config, download))}">在 Colab 中打开</a></p>'
    )


def _notebook_page(html_text: str, page, config, files) -> str:
    from mkdocs.utils import get_relative_url

    item = next(i for i in _notebooks.items.values() if i.uri == page.file.src_uri)
    html_text = _CDN_SCRIPTS.sub("", html_text)
    html_text = _LIST_AS_CSS.sub("", html_text)
    html_text = _fix_heading_ids(html_text, page)
    css = _JUPYTER_CSS.search(html_text)
    if css is None:
        raise PluginError(f"{page.file.src_uri}：mkdocs-jupyter 的输出里找不到 Jupyter 样式，模板可能变了")
    _notebooks.css = css[1]
    link = f'<link rel="stylesheet" href="{get_relative_url(NOTEBOOK_CSS, page.url)}">'
    html_text = html_text[: css.start()] + link + html_text[css.end() :]
    # Jupyter 的 Mermaid 块 -> Material 认得的 <pre class="mermaid"><code>，由本站的 Mermaid 画
    html_text = _JP_MERMAID.sub(
        lambda m: f'<pre class="mermaid"><code>{m[1].strip()}</code></pre>', html_text
    )
    # 笔记本里的链接是网站的绝对地址（离开网站也能用）；在网站上改回相对地址，本地预览时不跳到线上
    site = (config.site_url or "").rstrip("/") + "/"
    html_text = re.sub(
        rf'href="{re.escape(site)}([^"]*)"',
        lambda m: f'href="{get_relative_url(m[1] or ".", page.url)}"',
        html_text,
    )
    leftover = re.search(r'<script[^>]*\bsrc="(?:https?:)?//|import\("https?://', html_text)
    if leftover:
        raise PluginError(f"{page.file.src_uri}：笔记本网页里还有从别的主机加载的脚本：{leftover[0]}")
    page.title = f"{page.title}（Jupyter 笔记本）"
    return _links(item, page, config, "notebook") + html_text
