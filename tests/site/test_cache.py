"""缓存与产物在真正的构建里：执行缓存的接线、snippet 存下的结果跟着代码走、冷构建不读任何旧东西、每页有页脚。

这些测试用临时小站点（本项目的 mkdocs.yml、hooks.py 与构建包），缓存在各自的临时目录里。缓存本身的规则
（键、校验和、补跑、清理）由 tests/hello_build 下的单元测试检查。
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
    + FENCE.format(session="other", target="snippets/other.py:second")
    # 执行块后面的普通代码块：它的行号锚点 id 在冷构建和取自缓存的热构建里必须相同
    + "\n```bash\necho 普通的代码块\n```\n",
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
            # 这里测的是执行缓存：笔记本不运行（HELLO_PYTORCH_NOTEBOOKS=0），它们的缓存由 tests/site/test_notebooks.py 测
            code, log = throwaway(
                pages, snippets, HELLO_PYTORCH_COLD="1" if cold else "0", HELLO_PYTORCH_NOTEBOOKS="0"
            )
            assert code == 0, log
            assert "笔记本：本次构建运行了" not in log, (
                "HELLO_PYTORCH_NOTEBOOKS=0：页面照常执行，笔记本不运行"
            )
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


def test_the_cache_is_wired_into_real_builds(site, throwaway):
    """真正的构建里，执行缓存怎样用：键怎样算、坏条目怎样处理由 tests/hello_build 的单元测试检查，这里只检查接线。

    冷构建全部运行；什么都没改的热构建一块都不运行、页面与冷构建相同；只改文字不运行；改一个 snippet 只重新运行
    那一页（前面取自缓存的块先补跑）；旧条目被清掉；只渲染的构建（速度基准用）什么都不运行、也不动缓存。"""
    cold = site.build(cold=True).html("other/index.html")
    assert site.executed() == {"index.md": [True], "other.md": [True, True]}
    warm = site.build().html("other/index.html")
    assert site.executed() == {"index.md": [False], "other.md": [False, False]}, (
        "没改任何东西，不该运行任何代码"
    )
    assert FOOTER.sub("", warm) == FOOTER.sub("", cold)
    assert "输出取自构建缓存" in warm and "输出全部在本次构建中产生" in cold
    prose = {**PAGES, "index.md": PAGES["index.md"].replace("第一段文字。", "改过的文字。")}
    assert "改过的文字" in site.build(pages=prose).html()
    assert site.executed() == {"index.md": [False], "other.md": [False, False]}
    edited = {**SNIPPETS, "other.py": SNIPPETS["other.py"].replace("value + 1", "value + 2")}
    page = site.build(snippets=edited).html("other/index.html")
    assert site.executed() == {"index.md": [False], "other.md": [False, True]}
    assert "第二块用到第一块的变量 22" in page
    assert len(list(site.cache.glob("*.json"))) == 3, "改动后旧的缓存条目应被删掉"
    cached = sorted(site.cache.glob("*.json"))
    code, log = throwaway(PAGES, edited, HELLO_PYTORCH_EXECUTE="0", HELLO_PYTORCH_COLD="0")
    assert code == 0, log
    assert "首页的输出 42" not in site.html(), "只渲染：不运行代码"
    assert "笔记本：本次构建运行了" not in log, "只渲染：不运行笔记本"
    assert sorted(site.cache.glob("*.json")) == cached, "只渲染的构建不该清掉执行缓存"


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
        code, log = throwaway(STORE_PAGES, snippets, HELLO_PYTORCH_COLD=cold, HELLO_PYTORCH_NOTEBOOKS="0")
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
