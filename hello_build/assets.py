"""网站自带的浏览器脚本：Mermaid 与 KaTeX 从 node_modules/（package-lock.json 锁定，npm ci 安装）放进网站，
读者的浏览器只向本站请求脚本，从不访问 CDN。docs/javascripts/lazy-assets.js 按需加载这些网站路径。

也可以单独运行：``python -m hello_build.assets site/``（Zensical 没有钩子，构建完再把它们复制进网站）。
"""

from __future__ import annotations

import json
import posixpath
import re
import shutil
import sys
from pathlib import Path

KATEX_CSS = (
    "assets/vendor/katex/katex.min.css"  # 页面开头在构建时排好的公式也要用它（hello_build/formulas.py）
)

# 网站路径 -> node_modules 里的来源（文件或目录）
VENDORED = {
    # Mermaid 的 ES 模块版：入口很小，只按需下载画当前图所需的代码块（chunks），不带 .map
    "assets/vendor/mermaid/mermaid.esm.min.mjs": "mermaid/dist/mermaid.esm.min.mjs",
    "assets/vendor/mermaid/chunks/mermaid.esm.min": "mermaid/dist/chunks/mermaid.esm.min",
    # KaTeX：脚本、样式和字体（样式按相对路径找 fonts/）
    "assets/vendor/katex/katex.min.js": "katex/dist/katex.min.js",
    KATEX_CSS: "katex/dist/katex.min.css",
    "assets/vendor/katex/fonts": "katex/dist/fonts",
    # 笔记本网页里的公式是 $…$ 原文，由 KaTeX 的 auto-render 找出来排版
    "assets/vendor/katex/contrib/auto-render.min.js": "katex/dist/contrib/auto-render.min.js",
}
SKIPPED_SUFFIXES = (".map",)

MERMAID_ENTRY = "assets/vendor/mermaid/mermaid.esm.min.mjs"
# Mermaid 的入口静态导入的全部模块，依赖在前：lazy-assets.js 先并行下载它们，再按这个顺序一个一个执行，
# 每执行一个就把主线程让给浏览器一次。直接 import 入口时，它们（Mermaid 11 是 18 个）在同一个任务里执行完，
# 是一个 65～100 毫秒的长任务（Lighthouse 的 "Unattributable"，part1/ch02_concepts 第一屏有图）。
MERMAID_ORDER = "assets/vendor/mermaid/order.json"
# 压缩后的 ES 模块开头的静态导入：import{a as b}from"./x.mjs"; import"./y.mjs"; import*as c from"./z.mjs";
_STATIC_IMPORT = re.compile(r'\s*import\s*(?:[\w$*{}\s,]+?\s*from\s*)?"([^"]+)"\s*;?')


class MissingAssets(RuntimeError):
    pass


def files(node_modules: Path) -> list[tuple[str, Path]]:
    """(网站路径, 来源文件) 的列表；node_modules 里缺了什么就报错，说清楚怎样装上。"""
    found = []
    for site_path, source in VENDORED.items():
        origin = node_modules / source
        if not origin.exists():
            raise MissingAssets(
                f"缺少 {origin}：Mermaid 与 KaTeX 由本站自己提供，不从 CDN 加载。"
                "请运行 `nox -s docs`（它会执行 npm ci），或在仓库根目录运行 `npm ci`。"
            )
        for path in sorted(origin.rglob("*")) if origin.is_dir() else [origin]:
            if path.is_file() and not path.name.endswith(SKIPPED_SUFFIXES):
                uri = site_path if path == origin else f"{site_path}/{path.relative_to(origin).as_posix()}"
                found.append((uri, path))
    return found


def static_imports(module: str) -> list[str]:
    """一个 ES 模块开头的静态导入（相对路径，按书写顺序）；动态的 import("…") 不算，它们画某种图时才加载。"""
    found, position = [], 0
    while match := _STATIC_IMPORT.match(module, position):
        found.append(match[1])
        position = match.end()
    return found


def evaluation_order(listed: list[tuple[str, Path]], entry: str = MERMAID_ENTRY) -> list[str]:
    """入口静态导入的全部模块的网站路径，每个模块排在它导入的模块之后（后序遍历），不含入口本身。

    导入了不在网站上的模块时报错：那是 Mermaid 的文件布局变了，要看一看。"""
    sources = dict(listed)
    order: list[str] = []
    seen: set[str] = set()

    def visit(uri: str) -> None:
        seen.add(uri)
        base = uri.rsplit("/", 1)[0]
        for relative in static_imports(sources[uri].read_text(encoding="utf-8")):
            target = posixpath.normpath(posixpath.join(base, relative))
            if target not in sources:
                raise MissingAssets(f"{uri} 导入的 {relative} 不在网站上（Mermaid 的文件布局变了？）")
            if target not in seen:
                visit(target)
        order.append(uri)

    visit(entry)
    return order[:-1]


def mermaid_order(listed: list[tuple[str, Path]]) -> str:
    """MERMAID_ORDER 的内容：相对 assets/vendor/mermaid/ 的路径列表。"""
    prefix = MERMAID_ENTRY.rsplit("/", 1)[0] + "/"
    return json.dumps([uri.removeprefix(prefix) for uri in evaluation_order(listed)], indent=0)


def copy_into(site_dir: Path, node_modules: Path) -> int:
    listed = files(node_modules)
    for uri, path in listed:
        target = site_dir / uri
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    (site_dir / MERMAID_ORDER).write_text(mermaid_order(listed), encoding="utf-8")
    return len(listed) + 1


if __name__ == "__main__":
    root = Path(__file__).resolve().parents[1]
    count = copy_into(Path(sys.argv[1]), root / "node_modules")
    print(f"复制了 {count} 个文件到 {sys.argv[1]}")
