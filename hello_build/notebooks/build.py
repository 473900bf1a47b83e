"""页面 -> Jupyter 笔记本（nbformat v4 的字典）。纯函数：只读页面的 Markdown 和 snippet 文件，不运行任何东西。

页面的文字成为 Markdown 单元格（提示框变成引用块，标签页变成加粗的小标题，站内链接变成网站上的绝对地址，
脚注变成上标编号；Mermaid 图保留为 ```mermaid 代码块；公式保留 $…$）；页面执行的每个片段成为一个代码单元格，
顺序与页面相同；页面只展示、不执行的库片段成为 Markdown 里的代码块。开头的准备单元格安装固定版本的依赖、
定义 %%display_as、把本章导入的库模块原样写进当前目录，所以下载的笔记本能在全新的 Jupyter 或 Colab 里独立运行。
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin

from hello_build.dialect import Target, libraries, section_code, segments

# 笔记本第一个单元格安装的包，版本取自 requirements.txt：PINNED 每本都装，IMPORTED 只在本章的代码导入它时才装
PINNED = ("torch", "numpy", "matplotlib")
IMPORTED = ("transformers", "safetensors")


_FOOTNOTE_DEF = re.compile(r"^\[\^(?P<name>[^\]]+)\]:[ \t]*(?P<text>.*)$", re.MULTILINE)
_FOOTNOTE_REF = re.compile(r"\[\^(?P<name>[^\]]+)\](?!:)")
_LINK = re.compile(r"(?<=\]\()(?P<target>[^)\s]+)(?=\))")
_MERMAID = re.compile(
    r"^(?P<open>(?:>[ \t]?)?```+mermaid[^\n]*\n)(?P<body>.*?)(?P<close>^(?:>[ \t]?)?```+[ \t]*$)", re.M | re.S
)
_MERMAID_CLICK = re.compile(r'^(?P<head>\s*click\s+\w+\s+")(?P<target>[^"]+)"', re.MULTILINE)
_CODE = re.compile(
    r"(^(?:>[ \t]?)?(?:`{3,}|~{3,})[^\n]*\n.*?^(?:>[ \t]?)?(?:`{3,}|~{3,})[ \t]*$)", re.M | re.S
)
ADMONITION_LABEL = {
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

INSTALL_CELL = """\
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

DISPLAY_CELL = """\
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

LIBRARY_CELL = """\
# 准备：本章的代码导入同目录的库模块（网站仓库里的 {folder}/ 下的文件）。
# 下面的单元把它们（连同它们导入的别的部分的库模块）原样写进当前目录下的同一位置，这里先建好目录、
# 把 {folder}/ 加进模块搜索路径。
import sys
from pathlib import Path

for folder in {folders}:
    Path(folder).mkdir(parents=True, exist_ok=True)
sys.path.insert(0, str(Path("{folder}").resolve()))
"""


SKIP_TAG = "skip-execution"  # nbclient 认的标签：构建时不运行这一格
MEASUREMENT_NOTE = (
    "> **计时单元格**：下面这一格打印的是在运行它的机器上量出的时间，每台机器、每次运行都不同。"
    "构建网站时笔记本里不运行它（所以没有输出）；网页上的数字是构建网站时量的，量的时候后台运行的笔记本以最低优先级让路。运行它，看看你的机器上是多少。"
)


@dataclass(frozen=True)
class PageSource:
    """生成一本笔记本需要知道的一切。"""

    page: str  # docs/ 下的路径，如 part1/ch03_algorithm.md
    markdown: str  # 页面的 Markdown 原文（包含语句还没展开）
    root: Path  # 仓库根目录：从这里读 snippet 和库模块
    site_url: str  # 网站的绝对地址，以 / 结尾
    page_url: str  # 这一页相对网站根的地址，如 part1/ch03_algorithm/
    resolve: Callable[[str], str | None]  # 站内页面（docs/ 下的路径）-> 它相对网站根的地址；没有这一页时 None
    pins: dict[str, str]  # 包名 -> 版本
    measured: frozenset[str] = frozenset()  # 打印测量值的包含目标


def pins_from(requirements: str) -> dict[str, str]:
    """requirements.txt 里 PINNED 与 IMPORTED 的版本；PINNED 缺一个就报错。"""
    found = {name: re.search(rf"^{name}==(\S+)", requirements, re.MULTILINE) for name in PINNED + IMPORTED}
    missing = [name for name in PINNED if found[name] is None]
    if missing:
        raise ValueError(f"requirements.txt 里没有 {missing} 的版本")
    return {name: match[1] for name, match in found.items() if match}


def notebook_pins(pins: dict[str, str], code: str) -> dict[str, str]:
    """一本笔记本要装的包：PINNED 全部，IMPORTED 里本章代码导入了的那些。"""
    return {
        name: version
        for name, version in pins.items()
        if name in PINNED or re.search(rf"^\s*(?:import|from)\s+{name}\b", code, re.MULTILINE)
    }


class _Links:
    def __init__(self, source: PageSource):
        self.source = source
        self.url = source.site_url + source.page_url

    def absolute(self, target: str) -> str:
        """页面里的相对链接 -> 网站上的绝对地址（笔记本离开网站后链接照样能用）。"""
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith("//"):
            return target
        path, _, anchor = target.partition("#")
        if not path:
            return self.url + "#" + anchor
        if path.endswith(".md"):
            linked = self.source.resolve(
                posixpath.normpath(posixpath.join(posixpath.dirname(self.source.page), path))
            )
            if linked is not None:
                return self.source.site_url + linked + (f"#{anchor}" if anchor else "")
        return urljoin(self.url, target)

    def jupyter(self, text: str, footnotes: dict[str, int]) -> str:
        """网站的 Markdown 方言 -> Jupyter 能显示的 Markdown：链接变成绝对地址，脚注变成上标编号，
        Mermaid 图里可点击的方框也指向网站上的绝对地址。代码块原样保留。"""
        text = _MERMAID.sub(
            lambda m: (
                m["open"]
                + _MERMAID_CLICK.sub(lambda c: c["head"] + self.absolute(c["target"]) + '"', m["body"])
                + m["close"]
            ),
            text,
        )
        parts = _CODE.split(text)
        for n, part in enumerate(parts):
            if n % 2:
                continue
            part = _LINK.sub(lambda m: self.absolute(m["target"]), part)
            part = _FOOTNOTE_REF.sub(
                lambda m: f"<sup>[{footnotes.setdefault(m['name'], len(footnotes) + 1)}]</sup>", part
            )
            parts[n] = part
        return "".join(parts)


def _flatten(items: list[tuple]) -> list[tuple]:
    """提示框 -> 引用块（开头加粗的标题），标签页 -> 加粗的小标题；相邻的文字合并。"""
    out: list[tuple] = []
    for item in items:
        if item[0] != "box":
            out.append(item)
            continue
        _, title, kind, children = item
        inner = _flatten(children)
        if kind is not None:
            heading = title or ADMONITION_LABEL.get(kind, kind)
            if not inner or inner[0][0] != "md":
                inner.insert(0, ("md", ""))
            inner[0] = ("md", f"**{heading}**\n\n{inner[0][1]}".rstrip())
            inner = [
                ("md", "\n".join(f"> {t}" if t.strip() else ">" for t in part[1].splitlines()))
                if part[0] == "md"
                else part
                for part in inner
            ]
        else:
            inner.insert(0, ("md", f"**{title}**"))
        out.extend(inner)
    merged: list[tuple] = []
    for item in out:
        if item[0] == "md" and merged and merged[-1][0] == "md":
            merged[-1] = ("md", merged[-1][1] + "\n\n" + item[1])
        else:
            merged.append(item)
    return merged


def _cell(kind: str, source: str, index: int, **metadata) -> dict:
    cell = {"cell_type": kind, "id": f"cell-{index:03d}", "metadata": metadata, "source": source}
    if kind == "code":
        cell.update(execution_count=None, outputs=[])
    return cell


def make_notebook(source: PageSource) -> dict:
    links = _Links(source)
    body = re.sub(r"\A---\n.*?\n---\n", "", source.markdown, flags=re.S)
    definitions = {m["name"]: m["text"] for m in _FOOTNOTE_DEF.finditer(body)}
    body = _FOOTNOTE_DEF.sub("", body)
    items = _flatten(segments(body.splitlines()))
    footnotes: dict[str, int] = {}
    cells: list[dict] = []
    title = re.search(r"^# (.+)$", body, re.MULTILINE)
    title = title[1].strip() if title else source.page
    folder = f"snippets/{Path(source.page).parent.as_posix()}".rstrip("/.")
    kinds = {item[2] for item in items if item[0] == "code"}

    def add(kind: str, text: str, **metadata) -> None:
        cells.append(_cell(kind, text, len(cells), **metadata))

    add(
        "markdown",
        f"# {title}\n\n> 这是网站页面[《{title}》]({links.url})的 Jupyter 笔记本，由同一份源文件在构建网站时生成："
        "文字就是页面上的文字，每个代码单元格就是页面上在构建时运行过的那段代码。"
        "从上到下依次运行即可，第一个代码单元格安装固定版本的 CPU 版 PyTorch。"
        "图（Mermaid）在 JupyterLab 4.1 及以上显示为图，在别的环境里显示为图的源码，网页上能看到画好的图。\n>\n"
        "> （可选）在中国大陆打不开 Colab 时，可以下载这个 .ipynb，上传到国内能访问的笔记本服务"
        "（例如魔搭 ModelScope 或百度飞桨 AI Studio 提供的免费 CPU 笔记本环境）运行；"
        "下载依赖慢时，把第一个代码单元格里的 `PIP_MIRROR` 设为国内的 PyPI 镜像。",
    )
    modules = libraries(source.root, source.page)
    written = {library.relative_to(source.root).as_posix() for library in modules}  # 准备单元格写出的文件
    code = "\n".join(
        [section_code(source.root, Target.parse(item[1])) for item in items if item[0] == "code"]
        + [library.read_text(encoding="utf-8") for library in modules]
    )
    pins = notebook_pins(source.pins, code)
    add("code", INSTALL_CELL.format(pins=json.dumps(pins)), hello_pytorch={"role": "install"})
    if kinds & {"markdown", "html"}:
        add("code", DISPLAY_CELL, hello_pytorch={"role": "setup"})
    if modules:
        others = {library.parent.relative_to(source.root).as_posix() for library in modules} - {folder}
        folders = [folder, *sorted(others)]
        add("code", LIBRARY_CELL.format(folder=folder, folders=folders), hello_pytorch={"role": "setup"})
        for library in modules:
            rel = library.relative_to(source.root).as_posix()
            add(
                "code",
                f"%%writefile {rel}\n" + library.read_text(encoding="utf-8").rstrip("\n"),
                hello_pytorch={"role": "library", "file": rel},
                jupyter={"source_hidden": True},
            )
    for item in items:
        if item[0] == "md":
            text = links.jupyter(item[1], footnotes)
            text = re.sub(rf"\A# {re.escape(title)}[ \t]*\n*", "", text).strip("\n")
            if text:
                add("markdown", text)
        elif item[0] == "code":
            code = section_code(source.root, Target.parse(item[1]))
            magic = "" if item[2] == "text" else f"%%display_as {item[2]}\n"
            metadata = {"role": "snippet", "include": item[1], "output": item[2]}
            if item[1] in source.measured:
                # 计时只对运行它的那台机器有意义：构建时不运行这一格（nbclient 跳过带 skip-execution 标签的单元格），
                # 网页上的数字是构建时量的（后台的笔记本让路）；读者运行它，得到自己机器上的数字
                metadata["measurement"] = True
                add("markdown", MEASUREMENT_NOTE)
                add("code", magic + code, hello_pytorch=metadata, tags=[SKIP_TAG])
                continue
            add("code", magic + code, hello_pytorch=metadata)
        else:
            target = Target.parse(item[1])
            code = section_code(source.root, target)
            if target.path in written:
                note = f"`{item[2] or target.path}`（开头的准备单元格已经把整个文件写好，这里只展示，不必运行）："
            else:  # 例如集群上的作业脚本：笔记本里不写出、也不运行它
                note = f"`{item[2] or target.path}`（网站仓库里的文件，这里只展示，笔记本不运行它）："
            add("markdown", f"{note}\n\n```{item[3] or 'python'}\n{code}\n```")
    if footnotes:
        lines = [
            f"{number}. {links.jupyter(definitions.get(name, ''), footnotes)}"
            for name, number in footnotes.items()
        ]
        add("markdown", "## 注释\n\n" + "\n".join(lines))
    return {
        "cells": cells,
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
            "hello_pytorch": {"page": f"docs/{source.page}", "url": links.url},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
