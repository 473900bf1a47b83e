"""单一来源与镜像结构：代码只在 snippets/ 里，页面、snippet、测试三棵树一一对应。

这些规则从文件系统里推出来，没有手工维护的清单。
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tests.conftest import DOCS, ROOT, SNIPPETS

INCLUDE = re.compile(r'^\s*--8<--\s+"(?P<path>[^":]+)(?::(?P<section>[\w-]+))?"\s*$')
SECTION = re.compile(r"^\s*# --8<-- \[(?P<kind>start|end):(?P<name>[\w-]+)\]\s*$")

PAGES = sorted(DOCS.rglob("*.md"))
SNIPPET_FILES = sorted(p for p in SNIPPETS.rglob("*.py") if not p.name.startswith("_"))
# snippets/ 里不是 Python 的文件（如集群上的作业脚本、配置清单）：页面只展示、不执行，放在页面同名的目录里，
# 例如 docs/part3/ch03_cluster.md 展示 snippets/part3/ch03_cluster/train.sbatch。后缀 -> 展示它的代码块的语言
ASSET_LANGUAGES = {".sbatch": "bash", ".sh": "bash", ".yaml": "yaml", ".yml": "yaml"}
ASSETS = sorted(
    p
    for p in SNIPPETS.rglob("*")
    if p.is_file() and p.suffix not in {".py", ".pyc"} and "__pycache__" not in p.parts
)
ANY_FENCE_OPEN = re.compile(r"^(\s*)(```+|~~~+)\s*([\w+-]*)(.*)$")


def fences(md: Path):
    """页面里每个代码块（任何语言）：(行号, 语言, 头部的其余部分, 正文各行)。"""
    lines = md.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        match = ANY_FENCE_OPEN.match(lines[i])
        if match:
            close = match[2]
            body, j = [], i + 1
            while j < len(lines) and not lines[j].strip().startswith(close):
                body.append(lines[j])
                j += 1
            yield i + 1, match[3], match[4], body
            i = j
        i += 1


def python_fences(md: Path):
    """页面里每个 python fence：(行号, 头部, 正文各行)。"""
    for line, language, rest, body in fences(md):
        if language in ("py", "python", "pycon"):
            yield line, rest, body


def asset_includes(md: Path) -> list[tuple[int, str, str, str, str | None]]:
    """页面包含的 snippets/ 里的非 Python 文件：(行号, 语言, 头部的其余部分, 文件, 片段)。"""
    found = []
    for number, language, info, body in fences(md):
        for line in body:
            match = INCLUDE.match(line)
            if match and not match["path"].endswith(".py"):
                found.append((number, language, info, match["path"], match["section"]))
    return found


def includes(md: Path, executed: bool = True) -> list[tuple[str, str]]:
    """页面包含的 (文件, 片段)：executed=True 取执行块，False 取只显示不执行的块。"""
    found = []
    for _, info, body in python_fences(md):
        if ('exec="on"' in info) != executed:
            continue
        for line in body:
            match = INCLUDE.match(line)
            if match:
                found.append((match["path"], match["section"]))
    return found


def sections(snippet: Path) -> list[str]:
    """snippet 里的片段名，按文件顺序；同时检查片段不嵌套、有始有终、代码都在片段里。"""
    names, open_name = [], None
    tree_lines = snippet.read_text(encoding="utf-8").splitlines()
    doc_end = _docstring_end(snippet)
    for number, line in enumerate(tree_lines, start=1):
        match = SECTION.match(line)
        if match:
            if match["kind"] == "start":
                assert open_name is None, f"{snippet}:{number}: 片段 {match['name']} 嵌套在 {open_name} 里"
                open_name = match["name"]
                names.append(open_name)
            else:
                assert open_name == match["name"], f"{snippet}:{number}: end:{match['name']} 与 start 不配对"
                open_name = None
        elif open_name is None and line.strip() and number > doc_end:
            pytest.fail(f"{snippet}:{number}: 这行代码不在任何片段里，页面上看不到它：{line.strip()!r}")
    assert open_name is None, f"{snippet}: 片段 {open_name} 没有 end"
    assert len(names) == len(set(names)), f"{snippet}: 片段名重复"
    return names


def _docstring_end(snippet: Path) -> int:
    import ast

    tree = ast.parse(snippet.read_text(encoding="utf-8"))
    if tree.body and isinstance(tree.body[0], ast.Expr) and isinstance(tree.body[0].value, ast.Constant):
        return tree.body[0].end_lineno
    return 0


@pytest.mark.parametrize("md", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_python_fences_only_include_snippets(md):
    for number, _, body in python_fences(md):
        code = [line for line in body if line.strip()]
        assert code and all(INCLUDE.match(line) for line in code), (
            f"{md.relative_to(ROOT)}:{number}: python 代码块里只能有 --8<-- 包含语句，代码要写在 snippets/ 里"
        )


@pytest.mark.parametrize("md", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_fences_that_include_a_file_contain_nothing_else(md):
    """任何语言的代码块，只要包含了 snippets/ 里的文件，就只能有包含语句：不能一半包含、一半手写。"""
    for number, _, _, body in fences(md):
        code = [line for line in body if line.strip()]
        if any(INCLUDE.match(line) for line in code):
            assert all(INCLUDE.match(line) for line in code), (
                f"{md.relative_to(ROOT)}:{number}: 包含文件的代码块里只能有 --8<-- 包含语句"
            )


@pytest.mark.parametrize("asset", ASSETS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_non_python_snippet_file_is_shown_whole_by_its_page(asset):
    """snippets/<部分>/<页面名>/ 里的文件由 docs/<部分>/<页面名>.md 原样完整地展示一次（可以直接复制），
    代码块的标题是文件的路径，语言与文件的种类相符；页面的测试文件要检查它（提到它的路径）。"""
    rel = asset.relative_to(ROOT).as_posix()
    folder = asset.parent.relative_to(SNIPPETS)
    page = (DOCS / folder).with_suffix(".md")
    assert page.exists(), (
        f"{rel} 应放在某个页面同名的目录里（snippets/<部分>/<页面名>/），找不到 {page.relative_to(ROOT)}"
    )
    language = ASSET_LANGUAGES.get(asset.suffix)
    assert language, f"{rel}：不认识的文件种类 {asset.suffix!r}，请把它和代码块的语言加进 ASSET_LANGUAGES"
    shown = [(md, found) for md in PAGES for found in asset_includes(md) if found[3] == rel]
    assert [md for md, _ in shown] == [page], (
        f"{rel} 应由 {page.relative_to(ROOT)} 展示恰好一次，实际：{[str(md.relative_to(ROOT)) for md, _ in shown]}"
    )
    number, fence_language, info, _, section = shown[0][1]
    where = f"{page.relative_to(ROOT)}:{number}"
    assert section is None, f"{where}: 要展示整个 {rel}（读者直接复制），不要只包含片段 {section}"
    assert 'exec="' not in info, f"{where}: {rel} 只展示，不执行"
    assert fence_language == language, (
        f"{where}: {rel} 应放在 ```{language} 代码块里，实际是 {fence_language!r}"
    )
    assert f'title="{rel}"' in info, f'{where}: 代码块应写明 title="{rel}"，读者知道文件在仓库的哪里'
    test = ROOT / "tests" / folder.parent / f"test_{folder.name}.py"
    assert test.exists() and rel in test.read_text(encoding="utf-8"), (
        f"{rel} 应由 {test.relative_to(ROOT)} 检查（测试里写出它的路径）"
    )


@pytest.mark.parametrize("md", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_page_runs_its_own_snippet_whole_and_in_order(md):
    """页面按文件顺序把 snippet 的每个片段各包含一次：页面上的运行就等于文件独立运行。"""
    found = includes(md)
    if not found:
        return
    mirror = (SNIPPETS / md.relative_to(DOCS)).with_suffix(".py").relative_to(ROOT).as_posix()
    paths = {path for path, _ in found}
    assert paths == {mirror}, f"{md.relative_to(ROOT)} 只应包含它的镜像 {mirror}，实际包含 {sorted(paths)}"
    assert all(section for _, section in found), f"{md.relative_to(ROOT)}: 请按片段名包含，而不是整个文件"
    assert [section for _, section in found] == sections(ROOT / mirror), (
        f"{md.relative_to(ROOT)} 包含的片段（按页面顺序）应与 {mirror} 的片段（按文件顺序）完全一致"
    )


LIBRARIES = sorted(p for p in SNIPPETS.rglob("_*.py") if p.name != "__init__.py")


@pytest.mark.parametrize("md", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_displayed_code_comes_from_a_library_next_to_the_page(md):
    """不执行、只显示的代码块只能来自同目录的库模块（snippets/<部分>/_*.py），页面自己的代码都要执行。"""
    folder = (SNIPPETS / md.relative_to(DOCS)).parent
    for path, section in includes(md, executed=False):
        target = ROOT / path
        assert target.parent == folder and target.name.startswith("_"), (
            f"{md.relative_to(ROOT)} 显示了 {path}:{section}：只显示不执行的只能是 {folder.relative_to(ROOT)}/_*.py 库模块"
        )
        assert section, f"{md.relative_to(ROOT)}: 请按片段名显示库代码"


@pytest.mark.parametrize("library", LIBRARIES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_library_section_is_shown_exactly_once(library):
    rel = library.relative_to(ROOT).as_posix()
    shown = [section for md in PAGES for path, section in includes(md, executed=False) if path == rel]
    expected = sections(library)
    missing = [s for s in expected if s not in shown]
    twice = sorted({s for s in shown if shown.count(s) > 1})
    assert not missing, f"{rel} 的这些片段没有在任何页面上显示：{missing}"
    assert not twice, f"{rel} 的这些片段显示了不止一次：{twice}"
    library_test = ROOT / "tests" / library.relative_to(SNIPPETS).parent / f"test_{library.stem}.py"
    assert library_test.exists(), f"{rel} 没有对应的测试 {library_test.relative_to(ROOT)}"


@pytest.mark.parametrize("md", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_exec_fences_use_the_page_session(md):
    session = md.relative_to(DOCS).with_suffix("").name
    for number, info, _ in python_fences(md):
        if 'exec="on"' in info:
            assert f'session="{session}"' in info, (
                f"{md.relative_to(ROOT)}:{number}: session 应为页面名 {session}"
            )


def test_session_names_are_unique_across_the_site():
    """MkDocs 按页面区分会话；Zensical 没有页面的信息，同名的会话会共用变量。页面名在全站唯一，会话名也就唯一。"""
    names = [
        md.relative_to(DOCS).with_suffix("").name for md in PAGES if 'exec="on"' in md.read_text("utf-8")
    ]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)


@pytest.mark.parametrize("snippet", SNIPPET_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_snippet_has_a_page_and_a_test(snippet):
    rel = snippet.relative_to(SNIPPETS)
    page = (DOCS / rel).with_suffix(".md")
    test = ROOT / "tests" / rel.parent / f"test_{rel.stem}.py"
    assert page.exists(), f"{snippet.relative_to(ROOT)} 没有对应的页面 {page.relative_to(ROOT)}"
    assert test.exists(), f"{snippet.relative_to(ROOT)} 没有对应的测试 {test.relative_to(ROOT)}"
    assert sections(snippet), f"{snippet.relative_to(ROOT)} 没有任何 --8<-- 片段"


class _IgnoreTags(yaml.SafeLoader):
    pass


_IgnoreTags.add_multi_constructor("", lambda loader, suffix, node: None)


def nav_pages() -> list[str]:
    config = yaml.load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"), Loader=_IgnoreTags)

    def walk(items):
        for item in items:
            if isinstance(item, str):
                yield item
            elif isinstance(item, dict):
                for value in item.values():
                    yield from (walk(value) if isinstance(value, list) else [value])

    return list(walk(config["nav"]))


ARTICLE_SECTIONS = [
    "1. 背景介绍",
    "2. 核心概念与联系",
    "3. 核心算法原理 & 具体操作步骤",
    "4. 数学模型和公式 & 详细讲解 & 举例说明",
    "5. 项目实践：代码实例和详细解释说明",
    "6. 实际应用场景",
    "7. 未来应用展望",
    "8. 工具和资源推荐",
    "9. 总结：未来发展趋势与挑战",
    "10. 附录：常见问题与解答",
]


def test_every_article_section_has_its_page_in_order():
    """读过原文的人能在导航里按原来的顺序找到每一节。"""
    titles = []
    for page in nav_pages():
        lines = (DOCS / page).read_text(encoding="utf-8").splitlines()
        titles.append(next(line for line in lines if line.startswith("# ")).removeprefix("# ").strip())
    found = [t for t in titles if t in ARTICLE_SECTIONS]
    assert found == ARTICLE_SECTIONS, f"导航中的原文章节：{found}"


def test_every_page_is_in_the_nav():
    listed = set(nav_pages())
    missing = [str(p.relative_to(DOCS)) for p in PAGES if str(p.relative_to(DOCS)) not in listed]
    assert not missing, f"这些页面不在导航里：{missing}"


def test_readme_table_lists_every_page():
    """README 的“页面 ↔ 代码 ↔ 测试”表格与 docs/ 一致：新页面忘了登记时测试失败。"""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = [str(p.relative_to(ROOT)) for p in PAGES if f"`{p.relative_to(ROOT).as_posix()}`" not in readme]
    assert not missing, f"README 的表格里缺少这些页面：{missing}"
    for snippet in SNIPPET_FILES + ASSETS:
        assert f"`{snippet.relative_to(ROOT).as_posix()}`" in readme, (
            f"README 的表格里缺少 {snippet.relative_to(ROOT)}"
        )


@pytest.mark.parametrize("md", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_page_has_its_own_meta_description(md):
    """搜索引擎和分享卡片用到的页面描述：写在每页开头的 front matter 里。"""
    text = md.read_text(encoding="utf-8")
    match = re.match(r"---\n(.*?)\n---\n", text, re.S)
    assert match, f"{md.relative_to(ROOT)} 缺少 front matter"
    meta = yaml.safe_load(match[1])
    assert isinstance(meta.get("description"), str) and len(meta["description"]) >= 15, (
        f"{md.relative_to(ROOT)} 缺少 description"
    )
