"""构建速度基准（nox -s bench）：在这台机器上一次跑完，打印一张表并检查比例目标。

在临时副本里测量，不动工作区和它的缓存：
- 只渲染：同一个网站（连同每章的笔记本网页），什么代码都不运行（HELLO_PYTORCH_EXECUTE=0）；
- 每个 snippet 单独运行（python snippets/...）的时间之和；
- 冷构建（HELLO_PYTORCH_COLD=1）；不改任何东西的热构建；只改文字后的构建；改一个 snippet 后的构建。
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COPIED = ["docs", "snippets", "mkdocs.yml", "hooks.py", "hello_build", "overrides", "requirements.txt"]
PROSE_PAGE = "docs/part1/ch05_hello.md"
EDITED_SNIPPET = "snippets/part1/ch04_math.py"


def copy_project(target: Path) -> Path:
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, target / name)
    (target / "node_modules").symlink_to(ROOT / "node_modules", target_is_directory=True)
    return target


def build(project: Path, cold: bool = False, execute: bool = True) -> float:
    env = {
        **os.environ,
        "NO_MKDOCS_2_WARNING": "1",
        "HELLO_PYTORCH_COLD": "1" if cold else "0",
        "HELLO_PYTORCH_EXECUTE": "1" if execute else "0",
    }
    start = time.perf_counter()
    result = subprocess.run(
        # 不加 -q：-q 会把警告也压掉，strict 就发现不了出错的代码块
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(project / "site")],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"构建失败（{project}）：\n{result.stdout}\n{result.stderr}")
    return seconds


def executed_notebooks(project: Path) -> list[str]:
    """本次构建在后台重新运行了笔记本的页面。"""
    manifest = json.loads((project / "site" / "notebook-manifest.json").read_text(encoding="utf-8"))
    return [page for page, entry in manifest.items() if entry["executed"]]


def executed_pages(project: Path) -> list[str]:
    manifest = json.loads((project / "site" / "exec-manifest.json").read_text(encoding="utf-8"))
    return [page for page, blocks in manifest.items() if any(not b["cached"] for b in blocks)]


FOOTER = re.compile(r'<div class="hp-provenance".*?</div>', re.S)


def pages_html(project: Path) -> dict[str, str]:
    """构建出的每一页，去掉写着用时和缓存来源的页脚（以及运行时间页本身）。"""
    site = project / "site"
    return {
        str(page.relative_to(site)): FOOTER.sub("", page.read_text(encoding="utf-8"))
        for page in site.rglob("*.html")
        if "runtime" not in page.parts
    }


def standalone_total(project: Path) -> float:
    total = 0.0
    for snippet in sorted((project / "snippets").rglob("*.py")):
        if snippet.name.startswith("_"):
            continue
        start = time.perf_counter()
        subprocess.run([sys.executable, str(snippet)], cwd=project, capture_output=True, check=True)
        total += time.perf_counter() - start
    return total


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="hello-pytorch-bench-") as tmp:
        base = Path(tmp)
        render_only = build(copy_project(base / "render"), execute=False)
        # 再来两次：把 Python 与 mkdocs 的导入缓存热起来（笔记本网页也用上 mkdocs-jupyter 的缓存，和热构建一样），取最短
        render_only = min(
            render_only, build(base / "render", execute=False), build(base / "render", execute=False)
        )
        project = copy_project(base / "site")
        standalone = standalone_total(project)
        shutil.rmtree(project / ".cache", ignore_errors=True)  # 单独运行留下的检查点也不能让冷构建占便宜
        cold = build(project, cold=True)
        cold_pages = pages_html(project)
        warm = build(project)
        warm_executed = executed_pages(project) + executed_notebooks(project)
        warm_pages = pages_html(project)
        differing = sorted(name for name in cold_pages if warm_pages.get(name) != cold_pages[name])
        page = project / PROSE_PAGE
        page.write_text(page.read_text(encoding="utf-8") + "\n基准测试加的一句话。\n", encoding="utf-8")
        prose = build(project)
        prose_executed = executed_pages(project) + executed_notebooks(project)
        snippet = project / EDITED_SNIPPET
        text = snippet.read_text(encoding="utf-8")
        first_section = re.search(r"^# --8<-- \[start:[\w-]+\]\n", text, re.MULTILINE)
        snippet.write_text(text.replace(first_section[0], first_section[0] + "# 基准测试改动\n", 1))
        edited = build(project)
        edit_executed = executed_pages(project)
        edit_notebooks = executed_notebooks(project)

    rows = [
        ("只渲染（什么代码都不运行）", render_only),
        ("每个 snippet 单独运行之和", standalone),
        ("冷构建", cold),
        ("热构建（无改动）", warm),
        ("只改文字后的构建", prose),
        ("改一个 snippet 后的构建", edited),
    ]
    print("\n| 测量（秒，这台机器，计时） | 时间 |\n| --- | ---: |")
    for name, seconds in rows:
        print(f"| {name} | {seconds:.1f} |")
    expected_pages = [f"part1/{Path(EDITED_SNIPPET).stem}.md"]
    checks = [
        (
            "冷构建 ≤ 1.25 ×（只渲染 + 单独运行之和）",
            cold <= 1.25 * (render_only + standalone),
            cold / (render_only + standalone),
        ),
        ("热构建 ≤ 1.3 × 只渲染", warm <= 1.3 * render_only, warm / render_only),
        ("改文字后的构建 ≤ 1.3 × 只渲染", prose <= 1.3 * render_only, prose / render_only),
    ]
    print("\n| 目标 | 比例 | 结果 |\n| --- | ---: | --- |")
    for name, ok, ratio in checks:
        print(f"| {name} | {ratio:.2f} | {'达到' if ok else '未达到'} |")
    snippet_ok = (
        edit_executed == expected_pages
        and edit_notebooks == expected_pages
        and not prose_executed
        and not warm_executed
        and not differing
    )
    print(
        f"| 热构建（全部取自缓存）与冷构建页面不同的：{differing or '无'} | | {'达到' if not differing else '未达到'} |"
    )
    print(
        f"| 热构建重新执行的页面或笔记本：{warm_executed or '无'} | | {'达到' if not warm_executed else '未达到'} |"
    )
    print(
        f"| 改文字后重新执行的页面或笔记本：{prose_executed or '无'} | | {'达到' if not prose_executed else '未达到'} |"
    )
    print(
        f"| 改 {EDITED_SNIPPET} 后重新执行的页面：{edit_executed}，重新运行的笔记本：{edit_notebooks} | | "
        f"{'达到' if snippet_ok else '未达到'} |"
    )
    return 0 if all(ok for _, ok, _ in checks) and snippet_ok else 1


if __name__ == "__main__":
    sys.exit(main())
