"""本站的 Markdown 写法，只在这里解析一次：执行代码块、``--8<--`` 包含、snippet 文件里的具名片段。

一个执行代码块长这样（页面里永远只有包含语句，没有直接写的代码）::

    ```python exec="on" session="part1/ch05_hello" source="above" result="text"
    --8<-- "snippets/part1/ch05_hello.py:train"
    ```

本模块也是一个 Markdown 扩展（``markdown_extensions: - hello_build.dialect``）：在 pymdownx.snippets
展开包含语句之前，给每个执行代码块加上 ``id="snippets/…py:片段"``，代码块出错时据此写明出处。
MkDocs 和 Zensical 都通过 mkdocs.yml 加载它。
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

from markdown import Extension
from markdown.preprocessors import Preprocessor

EXEC_FENCE = re.compile(
    r'^(?P<indent>[ \t]*)(?P<fence>```+|~~~+)[ \t]*(?P<info>[^\n]*\bexec="(?:on|1|true|yes)"[^\n]*)\n'
    r'(?P=indent)--8<--[ \t]+"(?P<target>[^"]+)"[ \t]*$',
    re.MULTILINE,
)
SESSION = re.compile(r'\bsession="([^"]+)"')
INCLUDE_LINE = re.compile(r'^--8<--[ \t]+"(?P<target>[^"]+)"[ \t]*$')
# 与 pymdownx.snippets 认的片段标记相同
SECTION_MARK = re.compile(
    r"-{1,}8<-{1,}[ \t]+\[[ \t]*(?:start|end)[ \t]*:[ \t]*[a-z][-_0-9a-z]*[ \t]*\]", re.I
)
FENCE_OPEN = re.compile(r"^(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>.*)$")
ADMONITION = re.compile(r'^(?:!!!|\?\?\?\+?)[ \t]+(?P<kind>[\w-]+)(?:[ \t]+"(?P<title>[^"]*)")?[ \t]*$')
TAB = re.compile(r'^===\+?[ \t]+"(?P<title>[^"]*)"[ \t]*$')


@dataclass(frozen=True)
class Target:
    """``snippets/part2/x.py:train`` 这样的包含目标。"""

    path: str
    section: str | None

    @classmethod
    def parse(cls, text: str) -> Target:
        path, _, section = text.partition(":")
        return cls(path, section or None)

    def __str__(self) -> str:
        return f"{self.path}:{self.section}" if self.section else self.path


def add_ids(markdown: str) -> str:
    """给没有 id 的执行代码块加上 ``id="包含目标"``。"""

    def label(match: re.Match[str]) -> str:
        info = match["info"]
        if re.search(r'\bid="', info):
            return match[0]
        head = f'{match["indent"]}{match["fence"]}{info} id="{match["target"]}"'
        return f'{head}\n{match["indent"]}--8<-- "{match["target"]}"'

    return EXEC_FENCE.sub(label, markdown)


# 代码块选项 measure="yes"：这一块打印测量值（计时、加速比、内存），本站测量值的唯一标记。确定性比较跳过它；
# 笔记本里构建时不运行它（带 skip-execution 标签），所以后面不带 measure 的块不能用它定义的变量。
# 测量时笔记本内核不和页面抢 CPU：内核以最低优先级运行（见 hello_build/notebooks/run.py）。
MEASURE_OPTION = "measure"
MEASURE_VALUES = {"no": False, "yes": True}
_MEASURE = re.compile(r'\bmeasure="([^"]*)"')


def measure_option(value: str | bool | None) -> bool:
    """选项 measure 的值 -> 是否打印测量值；别的值让构建失败（写错的选项不能悄悄当成“不是测量”）。"""
    if isinstance(value, bool):  # 已经解析过（验证器把结果交给运行器）
        return value
    flag = MEASURE_VALUES.get((value or "no").strip().lower())
    if flag is None:
        raise ValueError(f'measure="{value}" 无效：只能是 "yes"（这一块打印测量值）或不写')
    return flag


@dataclass(frozen=True)
class ExecBlock:
    """页面里的一个执行代码块：包含哪个片段、属于哪个会话、是否打印测量值（选项 measure="yes"）。"""

    target: Target
    session: str
    measure: bool


def exec_blocks(markdown: str) -> list[ExecBlock]:
    """页面里按顺序执行的代码块。"""
    return [
        ExecBlock(
            Target.parse(m["target"]),
            session[1] if (session := SESSION.search(m["info"])) else "",
            measure_option(measure[1] if (measure := _MEASURE.search(m["info"])) else None),
        )
        for m in EXEC_FENCE.finditer(markdown)
    ]


def measured_targets(markdown: str) -> frozenset[str]:
    """打印测量值（measure="yes"）的执行代码块包含的目标。"""
    return frozenset(str(block.target) for block in exec_blocks(markdown) if block.measure)


def sessions(markdown: str) -> set[str]:
    return set(SESSION.findall(markdown))


def _section_bounds(lines: list[str], section: str) -> tuple[int, int]:
    start = next(i for i, line in enumerate(lines) if re.search(rf"\[start:{re.escape(section)}\]", line))
    end = next(
        i for i, line in enumerate(lines) if i > start and re.search(rf"\[end:{re.escape(section)}\]", line)
    )
    return start, end


def section_code(root: Path, target: Target | str) -> str:
    """与 pymdownx.snippets（dedent_subsections）包含的内容相同：片段里的行，去掉片段标记，再去掉公共缩进。"""
    target = Target.parse(target) if isinstance(target, str) else target
    lines = (root / target.path).read_text(encoding="utf-8").splitlines()
    if target.section:
        start, end = _section_bounds(lines, target.section)
        lines = lines[start + 1 : end]
    return textwrap.dedent("\n".join(line for line in lines if not SECTION_MARK.search(line))).strip("\n")


def first_line(root: Path, target: Target | str) -> int:
    """片段的第 1 行是 snippet 文件的第几行（从 1 数起）。"""
    target = Target.parse(target) if isinstance(target, str) else target
    if not target.section:
        return 1
    lines = (root / target.path).read_text(encoding="utf-8").splitlines()
    start, _ = _section_bounds(lines, target.section)
    return start + 2


# 一段代码用到的库模块：导入它（from _x import … / import _x），或者按路径运行它（"snippets/part3/_x.py"，
# 例如 torchrun 启动的 worker 脚本）
_LIBRARY_USE = re.compile(
    r"^[ \t]*from[ \t]+(_\w+)[ \t]+import\b|^[ \t]*import[ \t]+(_\w+)|(?<![\w.])(_\w+)\.py\b", re.MULTILINE
)


def libraries(root: Path, page: str) -> list[Path]:
    """页面用到的库模块：它的 snippet（docs/part3/x.md ↔ snippets/part3/x.py）导入或按路径运行的 _*.py，以及这些库
    再用到的（间接的也算），例如第三部分的 FSDP worker 导入第二部分的 snippets/part2/_tinygpt.py。执行缓存的键和
    笔记本写出的文件都由它决定：改了页面用到的任何一个库，页面重新运行；没用到的库不写进笔记本。"""
    if Path(page).parent == Path("."):
        return []
    return used_libraries(root, root / "snippets" / Path(page).with_suffix(".py"))


def used_libraries(root: Path, snippet: Path) -> list[Path]:
    """snippet 文件（直接或间接）用到的库模块，先找同一目录，再找别的部分；按第一次用到的顺序。"""
    found: list[Path] = []
    queue = [snippet] if snippet.exists() else []
    while queue:
        source = queue.pop(0)
        for match in _LIBRARY_USE.finditer(source.read_text(encoding="utf-8")):
            name = f"{match[1] or match[2] or match[3]}.py"
            here = snippet.parent / name
            candidates = [here] if here.exists() else sorted((root / "snippets").glob(f"*/{name}"))
            for path in candidates[:1]:  # 同名的库只有一个（tests/site/test_structure.py 检查）
                if path not in found:
                    found.append(path)
                    queue.append(path)
    return found


def segments(lines: list[str]) -> list[tuple]:
    """把页面的 Markdown 切成一串片段：("md", 文字)、("code", 包含目标, 输出方式)、("show", 包含目标, 标题, 语言)、
    ("box", 标题, 种类, 里面的片段)。box 是提示框（种类如 "note"、"bug"）或标签页（种类为 None），里面递归地切开。
    show 是只展示、不执行的代码块，语言取自代码块的头部（python、bash、yaml……）。

    输出方式：text（文字结果）、html（画出的图）、markdown（打印 Markdown 的句子）。
    """
    out: list[tuple] = []
    prose: list[str] = []

    def flush() -> None:
        if any(line.strip() for line in prose):
            out.append(("md", "\n".join(prose).strip("\n")))
        prose.clear()

    i = 0
    while i < len(lines):
        line = lines[i]
        if opening := FENCE_OPEN.match(line):
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
            includes = [m for b in body if (m := INCLUDE_LINE.match(b))]
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
                        language = info.split()[0] if info.split() and "=" not in info.split()[0] else ""
                        out.append(("show", include["target"], title[1] if title else "", language))
            else:
                prose.extend(lines[i : end + 1])
            i = end + 1
            continue
        container = ADMONITION.match(line) or TAB.match(line)
        if container:
            j = i + 1
            while j < len(lines) and (not lines[j].strip() or lines[j].startswith("    ")):
                j += 1
            flush()
            kind = container["kind"] if "kind" in container.groupdict() else None
            out.append(("box", container["title"], kind, segments([text[4:] for text in lines[i + 1 : j]])))
            i = j
            continue
        prose.append(line)
        i += 1
    flush()
    return out


class _AddIds(Preprocessor):
    def run(self, lines: list[str]) -> list[str]:
        return add_ids("\n".join(lines)).split("\n")


class DialectExtension(Extension):
    """在 pymdownx.snippets（优先级 32）展开包含语句之前运行。"""

    def extendMarkdown(self, md) -> None:
        md.preprocessors.register(_AddIds(md), "hello_build_exec_ids", 35)


def makeExtension(**kwargs) -> DialectExtension:
    return DialectExtension(**kwargs)
