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
import hashlib
import html
import json
import logging
import os
import platform
import re
import signal
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

# 构建进程里只用一个线程跑 PyTorch：本站的例子都很小，多线程在 2 核机器上反而更慢、更不稳定；
# 固定线程数也让浮点结果逐次构建一致。必须在任何 snippet 导入 torch 之前设置（tests/conftest.py 同样）。
os.environ.setdefault("OMP_NUM_THREADS", "1")

from markdown_exec._internal import main as _mx_main
from markdown_exec._internal.formatters import python as _mx_python
from markupsafe import Markup
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File

# 改变执行环境或缓存格式时加一，旧缓存随之全部失效
CACHE_VERSION = "1"
# 单个代码块的运行时间上限（秒）；本站的例子都在几秒内跑完。测试用环境变量把它调小
BLOCK_TIMEOUT_S = int(os.environ.get("HELLO_PYTORCH_BLOCK_TIMEOUT", "180"))
# 片段名以这个后缀结尾的代码块打印的是测量值（计时），每次构建都不同，确定性比较时跳过
MEASUREMENT_SUFFIX = "_timing"
COLD_ENV = "HELLO_PYTORCH_COLD"

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
    return f"torch {version('torch')} · Python {platform.python_version()}"


def _key(chain: str, code: str) -> str:
    return hashlib.sha256(f"{CACHE_VERSION}\0{_environment()}\0{chain}\0{code}".encode()).hexdigest()


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
        rows.append(
            f'<tr><td><a href="../{html.escape(_build.urls[page])}">{html.escape(page)}</a></td><td>{len(blocks)}</td>'
            f"<td>{seconds:.2f}</td><td>{cached}</td></tr>"
        )
    return (
        "<table><thead><tr><th>页面</th><th>代码块</th><th>用时（秒，计时）</th><th>来自缓存</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody><tfoot><tr><td>合计</td><td></td><td>{total:.2f}</td><td></td></tr>"
        "</tfoot></table>"
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
    # 像 `python snippets/part2/x.py` 那样，snippet 可以导入同目录的库模块（如 snippets/part2/_tinygpt.py）
    snippets = _build.root / "snippets"
    for folder in sorted({p.parent for p in snippets.rglob("*.py")}) if snippets.is_dir() else []:
        if str(folder) not in sys.path:
            sys.path.append(str(folder))
    # mkdocs serve 重建时，上一次导入的库模块还在 sys.modules 里；丢掉它们，改过的库才会被重新导入
    for name, module in list(sys.modules.items()):
        if str(getattr(module, "__file__", "") or "").startswith(str(snippets)):
            del sys.modules[name]
    _build.sessions.clear()
    _build.pages.clear()
    _build.urls.clear()
    _build.used.clear()
    return config


def _libraries_digest(src_uri: str) -> str:
    folder = _build.root / "snippets" / Path(src_uri).parent
    digest = hashlib.sha256()
    for library in sorted(folder.glob("_*.py")):
        digest.update(library.name.encode() + b"\0" + library.read_bytes())
    return digest.hexdigest()


def on_page_markdown(markdown, page, config, files):
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
    _build.page = ""
    session = _build.pages.get(page.file.src_uri)
    blocks = _build.sessions.get(session, _Session()).blocks if session else []
    if blocks:
        html_text = _OUTPUT_OPENING.sub(lambda m: m[0] + " data-search-exclude", html_text)
        runtime_page = files.get_file_from_path("runtime.md")
        runtime = runtime_page.url_relative_to(page.file) if runtime_page else ""
        html_text += _footer(blocks).replace("{runtime}", html.escape(runtime))
    return html_text


def on_page_context(context, page, config, nav):
    if page.file.src_uri == "runtime.md":
        page.content = page.content.replace("<p>RUNTIME_TABLE</p>", _runtime_table())
    return context


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
    # 每次（非 dirty）构建都渲染全部页面，没用到的缓存条目就是过期的
    if not _build.dirty and _build.cache.is_dir():
        for entry in _build.cache.glob("*.json"):
            if entry.stem not in _build.used:
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
}
SKIPPED_SUFFIXES = (".map",)


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
    return files
