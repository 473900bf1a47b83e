"""hello_build.report：页脚说清输出从哪来；运行时间表的链接是相对地址；清单里每个代码块都在。"""

from __future__ import annotations

import json

from hello_build.execute import Block
from hello_build.notebooks.links import relative
from hello_build.report import Row, footer, manifest, runtime_table


def block(cached: bool, seconds: float = 1.0, produced: str = "2026-11-30 12:00 UTC") -> Block:
    return Block("snippets/x.py:a", "print(1)", "1\n", seconds, cached, produced, False)


def test_footer_says_where_the_outputs_came_from():
    fresh = footer([block(False), block(False)], "torch 9 · Python 3", "../runtime/")
    assert "2 个代码块" in fresh and "2.0 秒" in fresh and "输出全部在本次构建中产生" in fresh
    assert 'href="../runtime/"' in fresh
    cached = footer([block(True, produced="2026-11-01 08:00 UTC"), block(True)], "v", "r")
    assert "输出取自构建缓存（产生于 2026-11-01 08:00 UTC）" in cached
    assert "部分输出取自构建缓存" in footer([block(True), block(False)], "v", "r")


def test_runtime_table_links_are_relative_to_the_runtime_page():
    """运行时间页在 runtime/ 下：到 part1/ch01/ 的链接是 ../part1/ch01/，不是写死的字符串。"""
    rows = [
        Row("part1/ch01.md", relative("part1/ch01/", "runtime/"), [block(False, 2.0)], 3.5, False),
        Row("index.md", relative("", "runtime/"), [block(True, 1.0)]),
    ]
    table = runtime_table(rows)
    assert 'href="../part1/ch01/"' in table and 'href=".."' in table
    assert "<td>3.50</td><td>否</td>" in table and "<td>3.00</td>" in table  # 合计


def test_manifest_lists_every_block_with_its_measurement_flag():
    measured = Block("snippets/x.py:t", "t()", "0.1 秒\n", 0.1, False, "p", True)
    data = json.loads(manifest({"x.md": [block(False), measured]}))
    assert [b["measurement"] for b in data["x.md"]] == [False, True]
    assert data["x.md"][0]["output"] == "1\n"
