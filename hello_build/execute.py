"""运行代码块：会话、缓存、超时，以及写明页面、snippet 文件、片段和行号的错误。

它通过 markdown-exec 的公开接口接进 Markdown：mkdocs.yml 里 pymdownx.superfences 的自定义代码块
``python`` 用 ``markdown_exec.validator`` 解析选项、用本模块的 :func:`format` 生成 HTML，后者调用
``markdown_exec.base_format`` 并把“怎样运行代码”换成 :meth:`Executor.run`。MkDocs 和 Zensical 都走这条路。

- 会话：同一个 ``session`` 的代码块共用一个模块（``sys.modules`` 里有它，dataclass、pickle 都能用）；
- 缓存：代码块的输出和渲染好的 HTML 按“本块及同一会话前面各块的代码 + 库模块 + 环境指纹”存进 :class:`Store`；
  命中的块先不运行，后面有块没命中时再按顺序补跑，保证会话里的变量齐全；
- 超时：单个代码块超过设定的秒数，就在它里面抛出 :class:`SnippetTimeoutError`；
- 错误：代码按 snippet 文件里的真实行号编译，回溯（traceback）直接指向 ``snippets/…py`` 的那一行；
- 测量：带 ``measure="yes"`` 的代码块打印的是测量值（计时、加速比、内存），确定性比较跳过它们。
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import platform
import re
import signal
import sys
import threading
import time
import traceback
import types
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from importlib.metadata import distributions, version
from pathlib import Path

import markdown_exec
from markupsafe import Markup

from hello_build import figures
from hello_build.dialect import MEASURE_OPTION, Target, first_line, measure_option, used_libraries
from hello_build.settings import TIMEOUT_ENV, Settings
from hello_build.store import Store

CACHE_VERSION = "2"  # 改变执行方式或缓存格式时加一，旧缓存随之全部失效


class SnippetTimeoutError(TimeoutError):
    pass


class SnippetError(Exception):
    """代码块出错。消息写明页面、snippet 文件和片段、异常、出错的那一行。"""


def cpu_capability() -> str:
    """PyTorch 在这台机器上选用的 CPU 指令集（如 AVX2、AVX512）。代码、种子、版本都相同，指令集不同，浮点运算的
    舍入就不同，训练出的数也不同：2026-12 实测，part2 的加法模型在一台 AVX-512 的机器上训练到三位全对（100.0%），
    在之前的机器上是 99.8%。"""
    import torch  # 页面的代码块本来就在构建进程里导入 torch

    return torch.backends.cpu.get_cpu_capability()


@cache
def fingerprint() -> str:
    """缓存键里的“环境”：Python 与平台、CPU 指令集、线程数，以及已安装的每个发行包的版本（torch、numpy、
    matplotlib、markdown-exec、pygments……任何一个变了，输出或渲染出的 HTML 都可能变）。"""
    packages = sorted(
        f"{d.metadata['Name']}=={d.version}".lower() for d in distributions() if d.metadata["Name"]
    )
    parts = [
        platform.python_version(),
        platform.machine(),
        cpu_capability(),
        os.environ.get("OMP_NUM_THREADS", ""),
        *packages,
    ]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def environment() -> str:
    """页脚上给读者看的版本。"""
    return f"torch {version('torch')} · Python {platform.python_version()}"


def digest_files(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


@dataclass
class Block:
    id: str
    code: str
    output: str
    seconds: float
    cached: bool
    produced: str
    measurement: bool


@dataclass
class Session:
    page: str
    chain: str
    module: types.ModuleType
    pending: list[tuple[str, str]] = field(default_factory=list)  # 命中缓存、还没补跑的 (代码, id)
    blocks: list[Block] = field(default_factory=list)


# 影响一个代码块渲染结果（HTML）的选项；代码和会话另算在缓存键里
_RENDER_OPTIONS = ("html", "source", "result", "tabs", "id", "id_prefix", "update_toc", "width", "extra")


class Executor:
    def __init__(self, settings: Settings, store: Store | None = None, raise_in_fence: bool = True):
        self.settings = settings
        self.store = store  # None：不缓存（例如 Zensical 构建）
        self.raise_in_fence = raise_in_fence  # False：错误记下来，由 MkDocs 适配层让构建失败
        self.page = ""
        self.sessions: dict[
            tuple[str, str], Session
        ] = {}  # (页面, 会话名) -> 会话：不同页面的同名会话互不相干
        self.failures: list[str] = []

    # ------------------------------------------------------------ 页面与会话

    def start_page(self, page: str, session_names: set[str], libraries: list[Path]) -> None:
        """每一页开始时调用：它的会话从空白开始，缓存链从“库模块的内容”开始。"""
        self.page = page
        chain = digest_files(libraries)
        for name in session_names:
            module = types.ModuleType(_module_name(f"{page}#{name}"))
            module.__dict__["__builtins__"] = __builtins__
            sys.modules[module.__name__] = module  # dataclass、pickle 按 __module__ 找到定义它的模块
            self.sessions[(page, name)] = Session(page, chain, module)

    def blocks(self, page: str) -> list[Block]:
        """一页的全部代码块，按会话名排序后按运行顺序。"""
        return [b for (p, name), state in sorted(self.sessions.items()) if p == page for b in state.blocks]

    def forget_snippet_modules(self) -> None:
        """mkdocs serve 重建时，上一次导入的库模块还在 sys.modules 里；丢掉它们，改过的库才会重新导入。"""
        snippets = str(self.settings.snippets)
        for name, module in list(sys.modules.items()):
            if str(getattr(module, "__file__", "") or "").startswith(snippets):
                del sys.modules[name]

    def session(self, name: str | None, block_id: str | None = None) -> Session:
        """没有适配层告诉我们页面时（Zensical），会话在第一次用到时建立；缓存链同样从 snippet 用到的库模块开始（dialect.used_libraries），
        和 MkDocs 构建算出的键相同，所以 Zensical 也能读 MkDocs 写下的执行缓存。"""
        name = name or "anonymous"
        if (self.page, name) not in self.sessions:
            snippet = (
                self.settings.root / Target.parse(block_id).path if block_id and ":" in block_id else None
            )
            libraries = (
                used_libraries(self.settings.root, snippet)
                if snippet is not None and snippet.parent != self.settings.snippets
                else []
            )
            self.start_page(self.page, {name}, libraries)
        return self.sessions[(self.page, name)]

    # ------------------------------------------------------------ 缓存键

    def _key(self, chain: str, code: str) -> str:
        text = f"{CACHE_VERSION}\0{fingerprint()}\0{chain}\0{code}"
        return hashlib.sha256(text.encode()).hexdigest()

    def _read(self, key: str) -> dict | None:
        if self.store is None or self.settings.cold:
            return None
        return self.store.read(key)

    # ------------------------------------------------------------ 运行

    def run(self, code: str, returncode=None, session=None, id=None, **extra) -> str:
        """markdown-exec 的 ``run`` 接口：返回代码块打印的文字；出错时抛出 ``markdown_exec.ExecutionError``。"""
        if not self.settings.execute:
            return ""
        state = self.session(session, id)
        measurement = measure_option(extra.pop(MEASURE_OPTION, None))
        key = self._key(state.chain, code)
        state.chain = key
        block_id = id or f"#{len(state.blocks) + 1}"
        entry = self._read(key)
        if entry is not None:
            state.pending.append((code, block_id))
            state.blocks.append(
                Block(block_id, code, entry["output"], entry["seconds"], True, entry["produced"], measurement)
            )
            return entry["output"]
        for pending_code, pending_id in state.pending:  # 补跑前面命中缓存的块，会话里的变量才齐全
            self._execute(state, pending_code, pending_id)
        state.pending.clear()
        start = time.perf_counter()
        output = self._execute(state, code, block_id)
        seconds = time.perf_counter() - start
        produced = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        if self.store is not None:
            self.store.write(key, {"output": output, "html": {}, "seconds": seconds, "produced": produced})
        state.blocks.append(Block(block_id, code, output, seconds, False, produced, measurement))
        return output

    def _execute(self, state: Session, code: str, block_id: str) -> str:
        target = Target.parse(block_id) if ":" in block_id or block_id.endswith(".py") else None
        offset = first_line(self.settings.root, target) - 1 if target else 0
        # 按 snippet 文件的绝对路径和真实行号编译：回溯直接指向文件里的那一行，不管当前目录在哪里
        filename = str(self.settings.root / target.path) if target else f"<代码块 {block_id}>"
        if target is not None and str(Path(filename).parent) not in sys.path:
            sys.path.append(
                str(Path(filename).parent)
            )  # 像 `python snippets/part2/x.py` 那样能导入同目录的库模块
        buffer = io.StringIO()
        try:
            compiled = compile("\n" * offset + code, filename, "exec")
            limit = _time_limit(self.settings.block_timeout, f"docs/{self.page} 的代码块 {block_id}")
            # 闹钟在最里层：先解除它，再恢复 stdout 和当前目录，超时信号不会打断恢复
            with contextlib.redirect_stdout(buffer), _cwd(self.settings.root), limit:
                exec(compiled, state.module.__dict__)  # 运行的就是本站自己的 snippet
        except Exception as error:
            message = self._describe(error, block_id, target)
            self.failures.append(message)
            raise markdown_exec.ExecutionError(markdown_exec.code_block("text", message)) from error
        return buffer.getvalue()

    def _describe(self, error: Exception, block_id: str, target: Target | None) -> str:
        trace = traceback.TracebackException.from_exception(error)
        trace.stack = traceback.StackSummary.from_list([f for f in trace.stack if f.filename != __file__])
        absolute = str(self.settings.root / target.path) if target else None
        inside = [f for f in trace.stack if f.filename == absolute]
        where = f"\n出错位置：{target.path} 第 {inside[-1].lineno} 行：{inside[-1].line}" if inside else ""
        trace = "".join(trace.format()).replace(str(self.settings.root) + "/", "")
        return f"[页面 docs/{self.page}] 代码块 {block_id} 运行出错：{type(error).__name__}: {error}{where}\n\n{trace}"

    # ------------------------------------------------------------ 渲染（带 HTML 缓存）

    def format(self, **kwargs) -> Markup:
        """markdown_exec.base_format 加一层缓存：markdown-exec 为每个代码块新建 Markdown 实例来渲染，
        是热构建里最慢的一步；命中时直接用缓存的 HTML。输出里生成了标题（会进目录）的块不缓存 HTML。"""
        code, session = kwargs["code"], kwargs.get("session") or None
        if not self.settings.execute:
            return self._render(**kwargs)
        state = self.session(session, kwargs.get("id"))
        options = {name: kwargs.get(name) for name in _RENDER_OPTIONS}
        # 渲染结果还取决于 Markdown 扩展的配置（例如 pymdownx.highlight 的选项）和放进页面前的整理
        # （hello_build/figures.py 的源码）：它们都进签名
        signature = hashlib.sha256(
            json.dumps(
                [options, markdown_config(kwargs["md"]), _FIGURES_DIGEST], sort_keys=True, default=_stable
            ).encode()
        ).hexdigest()[:16]
        key = self._key(state.chain, code)
        entry = self._read(key)
        if entry is not None and signature in entry["html"]:
            self.run(code, session=session, id=kwargs.get("id"), **(kwargs.get("extra") or {}))
            return Markup(entry["html"][signature])
        markup = self._render(**kwargs)
        if self.store is not None and not re.search(r"<h[1-6][\s>]", str(markup)):
            entry = self.store.read(key)
            if entry is not None:
                entry["html"][signature] = str(markup)
                self.store.write(key, {k: v for k, v in entry.items() if k != "sha256"})
        return markup

    def _render(self, **kwargs) -> Markup:
        html = markdown_exec.base_format(language="python", run=self.run, **kwargs)
        return Markup(figures.inline_svg(str(html), kwargs.get("id") or "block"))


_FIGURES_DIGEST = hashlib.sha256(Path(figures.__file__).read_bytes()).hexdigest()


def _stable(value) -> str:
    """配置里的函数与对象：按名字而不是内存地址写出，签名才在两次构建之间相同。repr 里没有内存地址的对象（例如
    正则表达式）写出 repr，两个只在这种对象里不同的配置就有不同的签名；有地址的只能写出类型名。"""
    if callable(value):
        return (
            f"{getattr(value, '__module__', '')}.{getattr(value, '__qualname__', type(value).__qualname__)}"
        )
    text = repr(value)
    return (
        type(value).__qualname__
        if re.search(r" at 0x[0-9a-f]+", text)
        else f"{type(value).__qualname__}:{text}"
    )


def markdown_config(md) -> list:
    """这个 Markdown 实例里每个扩展的类名和配置（Python-Markdown 的公开接口 ``getConfigs``）。"""
    return [
        [f"{type(ext).__module__}.{type(ext).__qualname__}", ext.getConfigs()]
        for ext in md.registeredExtensions
    ]


def _module_name(session: str) -> str:
    return "hello_pytorch_session_" + re.sub(r"[^0-9a-zA-Z]+", "_", session)


@contextlib.contextmanager
def _cwd(path: Path):
    previous = Path.cwd()
    os.chdir(path)  # 和 `python snippets/x.py` 在仓库根目录运行时一样
    try:
        yield
    finally:
        os.chdir(previous)


@contextlib.contextmanager
def _time_limit(seconds: int, label: str):
    """在代码块里抛出 SnippetTimeoutError；只在主线程可用（mkdocs 与 zensical 的页面都在主线程里渲染）。
    不在主线程时报错，而不是悄悄地不限时。"""

    def expire(signum, frame):
        raise SnippetTimeoutError(f"{label} 运行超过 {seconds} 秒，被中止")

    if not seconds:  # 不限时（测试进程里由 pytest-timeout 管时限，两者不能抢同一个闹钟信号）
        yield
        return
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError(
            f"{label} 不在主线程里运行，单块时限（SIGALRM）用不上：设 {TIMEOUT_ENV}=0 明确关掉时限，"
            "或者在主线程里渲染页面"
        )
    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# ---------------------------------------------------------------- mkdocs.yml 里的自定义代码块

_current: Executor | None = None


def use(executor: Executor | None) -> None:
    """MkDocs 适配层在每次构建开始时登记它的执行器；没有登记时（Zensical）用一个不带缓存的默认执行器。"""
    global _current
    _current = executor


def current() -> Executor:
    """没有登记的执行器时（Zensical 构建），建一个默认的：同样的会话、超时和错误信息，执行缓存读写 .cache/exec/，
    出错时让构建失败。"""
    global _current
    if _current is None:
        settings = Settings.read(Path.cwd())
        _current = Executor(settings, Store(settings.cache / "exec"))
    return _current


def _fail(executor: Executor, message: str, error: Exception) -> None:
    """superfences 吞掉自定义代码块抛出的任何异常（只放过 SuperFencesException），把代码块当普通文字显示：
    所以这里的每个错误都记进 failures（MkDocs 适配层据此让构建失败），独立使用时（Zensical）直接抛出。"""
    from pymdownx.superfences import SuperFencesException

    if isinstance(error, SuperFencesException):
        raise error
    executor.failures.append(message)
    if executor.raise_in_fence:
        raise SuperFencesException(message) from error


def validator(language, inputs, options, attrs, md) -> bool:
    """markdown_exec.validator，再加上本站的 ``measure`` 选项（见 :func:`hello_build.dialect.measure_option`）。
    选项写错（例如 source="abvoe"、measure="on"）也让构建失败。"""
    try:
        measure = measure_option(inputs.pop(MEASURE_OPTION, None))
        if not markdown_exec.validator(language, inputs, options, attrs, md):
            return False
        # 写成 "yes"/"no"：markdown-exec 把 extra 写回它为显示源码生成的代码块选项里，再经过这个验证器
        options["extra"] = {**options.get("extra", {}), MEASURE_OPTION: "yes" if measure else "no"}
        return True
    except Exception as error:
        executor = current()
        _fail(
            executor,
            f"[页面 docs/{executor.page}] 代码块选项 {inputs} 有错：{type(error).__name__}: {error}",
            error,
        )
        return False


def format(source, language, class_name, options, md, **kwargs) -> str:
    executor = current()
    failures = len(executor.failures)
    block = options.get("id") or (source.strip().splitlines() or ["（空代码块）"])[0]
    try:
        # 代码运行出错由 base_format 接住（_execute 已记下写明出处的错误）；到这里的是别的错
        html = executor.format(code=source, md=md, **options)
    except Exception as error:
        _fail(
            executor,
            f"[页面 docs/{executor.page}] 代码块 {block} 渲染出错：{type(error).__name__}: {error}",
            error,
        )
        return ""
    if executor.raise_in_fence and len(executor.failures) > failures:
        from pymdownx.superfences import SuperFencesException  # superfences 只让这种异常穿过去

        raise SuperFencesException(executor.failures[-1])
    return html
