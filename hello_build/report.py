"""报告：每页的页脚（代码在构建时运行了多久、用的版本、输出从哪来）、“运行时间”页的表、执行清单。"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass

from hello_build.execute import Block


def footer(blocks: list[Block], environment: str, runtime_url: str) -> str:
    seconds = sum(b.seconds for b in blocks)
    if all(b.cached for b in blocks):
        source = f"输出取自构建缓存（产生于 {min(b.produced for b in blocks)}）"
    elif any(b.cached for b in blocks):
        source = "部分输出取自构建缓存，其余在本次构建中运行"
    else:
        source = "输出全部在本次构建中产生"
    return (
        '\n<div class="hp-provenance"><p>'
        f"本页的 {len(blocks)} 个代码块在构建网站时运行，用时 {seconds:.1f} 秒（计时，每次构建不同）；"
        f"{html.escape(environment)}；{source}。"
        f'<a href="{html.escape(runtime_url)}">各页运行时间</a></p></div>\n'
    )


@dataclass
class Row:
    page: str  # docs/ 下的路径
    url: str  # 从“运行时间”页到这一页的相对地址
    blocks: list[Block]
    notebook_seconds: float | None = None
    notebook_cached: bool | None = None


def _yes(flags: list[bool]) -> str:
    return "是" if all(flags) else ("部分" if any(flags) else "否")


def runtime_table(rows: list[Row]) -> str:
    body = []
    for row in rows:
        seconds = sum(b.seconds for b in row.blocks)
        notebook = (
            f"<td>{row.notebook_seconds:.2f}</td><td>{'是' if row.notebook_cached else '否'}</td>"
            if row.notebook_seconds is not None
            else "<td></td><td></td>"
        )
        body.append(
            f'<tr><td><a href="{html.escape(row.url)}">{html.escape(row.page)}</a></td><td>{len(row.blocks)}</td>'
            f"<td>{seconds:.2f}</td><td>{_yes([b.cached for b in row.blocks])}</td>{notebook}</tr>"
        )
    total = sum(b.seconds for row in rows for b in row.blocks)
    notebooks = sum(row.notebook_seconds or 0.0 for row in rows)
    return (
        "<table><thead><tr><th>页面</th><th>代码块</th><th>用时（秒，计时）</th><th>来自缓存</th>"
        "<th>笔记本用时（秒，计时）</th><th>笔记本来自缓存</th></tr></thead>"
        f"<tbody>{''.join(body)}</tbody><tfoot><tr><td>合计</td><td></td><td>{total:.2f}</td><td></td>"
        f"<td>{notebooks:.2f}</td><td></td></tr></tfoot></table>"
    )


def manifest(pages: dict[str, list[Block]]) -> str:
    """site/exec-manifest.json：每页每个代码块的 id、代码、输出、是否测量值、是否取自缓存、用时。"""
    return json.dumps(
        {
            page: [
                {
                    "id": b.id,
                    "code": b.code,
                    "output": b.output,
                    "measurement": b.measurement,
                    "cached": b.cached,
                    "seconds": b.seconds,
                }
                for b in blocks
            ]
            for page, blocks in pages.items()
        },
        ensure_ascii=False,
        indent=1,
    )
