"""执行预算：每一部分（首页、第一、二、三部分）的代码在一次构建里运行多少秒（页面的墙上时间 + 笔记本内核的 CPU 秒），
上限写在 pyproject.toml 的 [tool.hello_pytorch.budget]，全站只在那里规定。超出时写明是哪一部分、哪几页。"""

from __future__ import annotations

import json
import tomllib
from collections import defaultdict

from tests.conftest import ROOT


def part_of(page: str) -> str:
    return page.split("/")[0] if "/" in page else "home"


def test_each_part_stays_within_its_execution_budget(built_site):
    budget = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["hello_pytorch"][
        "budget"
    ]
    pages = json.loads((built_site.path / "exec-manifest.json").read_text(encoding="utf-8"))
    notebooks = json.loads((built_site.path / "notebook-manifest.json").read_text(encoding="utf-8"))
    seconds: dict[str, dict[str, float]] = defaultdict(dict)
    for page, blocks in pages.items():
        # 笔记本按内核用掉的 CPU 秒算：测试会话里笔记本在后台、以最低优先级和测试同时运行（tests/prefetch.py），
        # 墙上时间取决于当时别的进程占了多少 CPU，CPU 秒不会
        seconds[part_of(page)][page] = sum(b["seconds"] for b in blocks) + notebooks.get(page, {}).get(
            "cpu_seconds", 0.0
        )
    assert set(seconds) == set(budget), f"每一部分都要有预算：{sorted(seconds)} 对 {sorted(budget)}"
    over = []
    for part, per_page in seconds.items():
        total = sum(per_page.values())
        if total > budget[part]:
            biggest = ", ".join(
                f"{p} {s:.0f} 秒" for p, s in sorted(per_page.items(), key=lambda kv: -kv[1])[:4]
            )
            over.append(f"{part}：{total:.0f} 秒，超过预算 {budget[part]} 秒；最耗时的页：{biggest}")
    assert not over, "\n".join(over)
