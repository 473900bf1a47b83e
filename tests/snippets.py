"""像网站那样运行一个 snippet 文件（测试夹具 run_snippet 与后台预取进程 tests/prefetch.py 共用，导入时没有副作用）。"""

from __future__ import annotations

import contextlib
import io
import runpy
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType

from hello_build import dialect
from hello_build.execute import Executor
from hello_build.settings import Settings
from hello_build.store import Store

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


@dataclass(frozen=True)
class SnippetRun:
    """一个 snippet 文件独立运行一次的结果：它打印的文字和它留下的全局变量。"""

    stdout: str
    ns: MappingProxyType


def run_page_snippet(relpath: str) -> SnippetRun:
    """像网站那样运行：按页面的顺序，一段一段地在页面的会话里运行（hello_build.execute，与构建同一个执行器），
    输出写进本次会话的执行缓存，整站构建就不再运行这些代码块。页面包含 snippet 的每个片段、而且按文件里的顺序
    （tests/site/test_structure.py 检查），所以这和运行整个文件是同一回事。没有页面的文件（如 torchrun 的 worker）
    整个运行一次。"""
    page = relpath.removeprefix("snippets/").removesuffix(".py") + ".md"
    if not (DOCS / page).exists():
        path = ROOT / relpath
        if str(path.parent) not in sys.path:
            sys.path.append(str(path.parent))
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            namespace = runpy.run_path(str(path), run_name="__snippet__")
        return SnippetRun(stdout=buffer.getvalue(), ns=MappingProxyType(namespace))
    markdown = (DOCS / page).read_text(encoding="utf-8")
    blocks = [b for b in dialect.exec_blocks(markdown) if b.target.path == relpath]
    # 只写不读（cold）：每段都真的运行；不设单块时限（测试的时限由 pytest-timeout 管）
    settings = Settings.read(ROOT)
    executor = Executor(replace(settings, cold=True, block_timeout=0), Store(settings.cache / "exec"))
    executor.start_page(page, {b.session for b in blocks}, dialect.libraries(ROOT, page))
    outputs = []
    for block in blocks:
        code = dialect.section_code(ROOT, block.target)
        outputs.append(executor.run(code, session=block.session, id=str(block.target), measure=block.measure))
    (session,) = {b.session for b in blocks}
    return SnippetRun(
        stdout="".join(outputs), ns=MappingProxyType(executor.sessions[(page, session)].module.__dict__)
    )
