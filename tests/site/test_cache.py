"""执行缓存：命中时与冷构建的页面相同；该失效时失效；坏掉的缓存条目被忽略并重建，绝不显示。

这些测试用临时小站点（本项目的 mkdocs.yml 与 hooks.py），缓存在各自的临时目录里。
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.conftest import FENCE, ROOT

PAGES = {
    "index.md": "# 首页\n\n第一段文字。\n\n" + FENCE.format(session="index", target="snippets/index.py:one"),
    "other.md": "# 另一页\n\n"
    + FENCE.format(session="other", target="snippets/other.py:first")
    + "\n"
    + FENCE.format(session="other", target="snippets/other.py:second"),
}
SNIPPETS = {
    "index.py": '# --8<-- [start:one]\nprint("首页的输出", 6 * 7)\n# --8<-- [end:one]\n',
    "other.py": (
        "# --8<-- [start:first]\nvalue = 20\nprint('第一块', value)\n# --8<-- [end:first]\n\n"
        "# --8<-- [start:second]\nprint('第二块用到第一块的变量', value + 1)\n# --8<-- [end:second]\n"
    ),
}
FOOTER = re.compile(r'<div class="hp-provenance".*?</div>', re.S)


@pytest.fixture
def site(throwaway, tmp_path):
    class Site:
        def build(self, cold: bool = False, pages=PAGES, snippets=SNIPPETS):
            code, log = throwaway(pages, snippets, HELLO_PYTORCH_COLD="1" if cold else "0")
            assert code == 0, log
            return self

        def manifest(self) -> dict:
            return json.loads((tmp_path / "site" / "exec-manifest.json").read_text(encoding="utf-8"))

        def executed(self) -> dict[str, list[bool]]:
            """每页每个代码块：本次构建是否真的执行了（False 表示取自缓存）。"""
            return {page: [not b["cached"] for b in blocks] for page, blocks in self.manifest().items()}

        def html(self, page: str = "index.html") -> str:
            return (tmp_path / "site" / page).read_text(encoding="utf-8")

        @property
        def cache(self) -> Path:
            return tmp_path / ".cache" / "exec"

    return Site()


def test_cache_hit_gives_the_same_page_as_a_cold_run(site):
    cold = site.build(cold=True).html("other/index.html")
    assert site.executed() == {"index.md": [True], "other.md": [True, True]}
    warm = site.build().html("other/index.html")
    assert site.executed() == {"index.md": [False], "other.md": [False, False]}, (
        "没改任何东西，不该执行任何代码"
    )
    assert FOOTER.sub("", warm) == FOOTER.sub("", cold)
    assert "第二块用到第一块的变量 21" in warm
    assert "输出取自构建缓存" in warm and "输出全部在本次构建中产生" in cold


def test_prose_edit_executes_nothing(site):
    site.build()
    edited = {**PAGES, "index.md": PAGES["index.md"].replace("第一段文字。", "改过的文字。")}
    page = site.build(pages=edited).html()
    assert "改过的文字" in page
    assert site.executed() == {"index.md": [False], "other.md": [False, False]}


def test_snippet_edit_reexecutes_only_its_page_and_replays_earlier_blocks(site):
    site.build()
    edited = {**SNIPPETS, "other.py": SNIPPETS["other.py"].replace("value + 1", "value + 2")}
    page = site.build(snippets=edited).html("other/index.html")
    # 第一块没变、仍取自缓存，但为了给第二块准备变量，它被补跑了一次；第二块重新执行
    assert site.executed() == {"index.md": [False], "other.md": [False, True]}
    assert "第二块用到第一块的变量 22" in page


def test_editing_an_earlier_block_reexecutes_the_later_ones(site):
    site.build()
    edited = {**SNIPPETS, "other.py": SNIPPETS["other.py"].replace("value = 20", "value = 30")}
    page = site.build(snippets=edited).html("other/index.html")
    assert site.executed()["other.md"] == [True, True]
    assert "第二块用到第一块的变量 31" in page


def test_cold_flag_reexecutes_everything(site):
    site.build()
    site.build(cold=True)
    assert site.executed() == {"index.md": [True], "other.md": [True, True]}


@pytest.mark.parametrize("damage", ["truncate", "tamper", "garbage"])
def test_corrupted_entry_is_ignored_and_rebuilt(site, damage):
    site.build()
    entries = sorted(site.cache.glob("*.json"))
    assert len(entries) == 3
    for entry in entries:
        text = entry.read_text(encoding="utf-8")
        if damage == "truncate":
            entry.write_text(text[: len(text) // 2], encoding="utf-8")
        elif damage == "tamper":
            data = json.loads(text)
            data["output"] = "<b>被篡改的输出</b>\n"
            entry.write_text(json.dumps(data), encoding="utf-8")
        else:
            entry.write_bytes(b"\x00\xff not json")
    page = site.build().html()
    assert "被篡改的输出" not in page
    assert "首页的输出 42" in page
    assert site.executed() == {"index.md": [True], "other.md": [True, True]}


def test_stale_entries_are_evicted(site):
    site.build()
    edited = {**SNIPPETS, "index.py": SNIPPETS["index.py"].replace("6 * 7", "6 * 8")}
    site.build(snippets=edited)
    assert len(list(site.cache.glob("*.json"))) == 3, "改动后旧的缓存条目应被删除"


# ---------------------------------------------------------------- 代码自己存下、再读回的产物（检查点、实验结果）

LIBRARY = (ROOT / "snippets" / "part2" / "_tinygpt.py").read_text(encoding="utf-8")
STORE_PAGES = {
    "index.md": "# 首页\n",
    "part2/store.md": "# 存储\n\n" + FENCE.format(session="store", target="snippets/part2/store.py:go"),
}
STORE_SNIPPETS = {
    "part2/_tinygpt.py": LIBRARY,
    # 值取自时钟：重新计算一定得到不同的值，读取存下的结果则得到同一个值
    "part2/store.py": "# --8<-- [start:go]\nimport time\n\nfrom _tinygpt import cached\n\n"
    "print('算出的值', cached('demo', lambda: {'value': str(time.time_ns())})['value'])\n# --8<-- [end:go]\n",
}


def test_stored_results_follow_the_code_and_cold_builds_read_nothing_older(throwaway, tmp_path):
    """问题 #13 的两条保证，在真正的构建里检查：
    1. 产生结果的库改了任何一行（哪怕一行注释），下一次（热）构建算出新的结果，不读旧的；
    2. 冷构建不读任何在它开始之前写下的东西：毒化存下的结果，冷构建看不到它，.cache 里的每个文件都是这次写的。"""
    import time

    import torch

    def build(snippets=STORE_SNIPPETS, cold="1") -> str:
        code, log = throwaway(STORE_PAGES, snippets, HELLO_PYTORCH_COLD=cold)
        assert code == 0, log
        value = re.search(
            r"算出的值 (\d+|POISON)",
            (tmp_path / "site" / "part2" / "store" / "index.html").read_text(encoding="utf-8"),
        )
        assert value, "页面上应有算出的值"
        return value[1]

    first = build()
    stored = list((tmp_path / ".cache" / "artefacts" / "part2").glob("demo-*.pt"))
    assert len(stored) == 1, "构建时结果应存进构建指定的目录"
    assert build(cold="0") == first, "什么都没改的热构建：读取同一份结果"
    torch.save({"value": "POISON"}, stored[0])
    started = time.time()
    second = build()
    assert second != "POISON", "冷构建读到了它开始之前写下的结果"
    assert second != first
    older = [
        path.relative_to(tmp_path).as_posix()
        for path in (tmp_path / ".cache").rglob("*")
        if path.is_file() and path.stat().st_mtime < started - 1
    ]
    assert not older, f"冷构建之后 .cache 里还有它开始之前的文件：{older}"
    edited = {**STORE_SNIPPETS, "part2/_tinygpt.py": LIBRARY + "\n# 只加了一行注释\n"}
    third = build(edited, cold="0")
    assert third != second, "库改了一行，热构建也必须重新计算，不能读旧的结果"


def test_every_executed_page_has_a_provenance_footer(built_site):
    manifest = json.loads((built_site.path / "exec-manifest.json").read_text(encoding="utf-8"))
    for page in manifest:
        html = built_site.html(page)
        assert 'class="hp-provenance"' in html, f"{page} 缺少“代码在构建时运行”的页脚"
        assert "在构建网站时运行" in html and "torch " in html
    runtime = built_site.html("runtime.md")
    for page in manifest:
        assert page in runtime, f"运行时间页缺少 {page}"


def test_editing_a_library_module_reexecutes_the_pages_next_to_it(site):
    """snippet 导入的同目录库模块（_*.py）变了，这一目录下的页面重新执行，别处不受影响。"""
    library = {"part/_lib.py": "FACTOR = 2\n"}
    pages = {
        **PAGES,
        "part/use.md": "# 用库\n\n" + FENCE.format(session="use", target="snippets/part/use.py:go"),
    }
    snippets = {
        **SNIPPETS,
        **library,
        "part/use.py": "# --8<-- [start:go]\nfrom _lib import FACTOR\n\nprint('库给的系数', FACTOR)\n# --8<-- [end:go]\n",
    }
    site.build(pages=pages, snippets=snippets)
    page = site.build(pages=pages, snippets={**snippets, "part/_lib.py": "FACTOR = 3\n"}).html(
        "part/use/index.html"
    )
    assert "库给的系数 3" in page
    assert site.executed() == {"index.md": [False], "other.md": [False, False], "part/use.md": [True]}


def test_render_only_mode_for_the_bench_runs_nothing(site, throwaway):
    """HELLO_PYTORCH_EXECUTE=0（只给 nox -s bench 量“只渲染”用）：同一个网站照样建成，但没有任何代码运行，
    也不清掉别的构建留下的缓存。"""
    site.build()
    cached = sorted(site.cache.glob("*.json"))
    code, log = throwaway(PAGES, SNIPPETS, HELLO_PYTORCH_EXECUTE="0")
    assert code == 0, log
    assert "首页的输出 42" not in site.html() and "第一块 20" not in site.html("other/index.html")
    assert "笔记本：本次构建运行了" not in log, "不运行笔记本"
    notebook = json.loads(site.html("notebooks/index.ipynb"))
    assert all(not cell.get("outputs") for cell in notebook["cells"]), "笔记本照样生成，只是没有输出"
    assert cached and sorted(site.cache.glob("*.json")) == cached, "只渲染的构建不该清掉执行缓存"
