"""每章的 Jupyter 笔记本：由页面生成、在全新内核里从头到尾运行、输出与页面相同、可下载、可在 Colab 中打开。

整站构建（built_site）用 nbclient 在全新的内核、各自的空目录里运行过每个笔记本，就像读者下载后在自己的 Jupyter
里运行那样（测试会话里由 tests/prefetch.py 从会话开始就在后台运行，构建取用它们的输出）；这里检查生成的笔记本、
它们的输出和网页。
"""

from __future__ import annotations

import html as html_lib
import json
import os
import re
import textwrap
from pathlib import Path
from urllib.parse import urljoin

import nbformat
import pytest

from hello_build.figures import as_images
from hello_build.notebooks.links import BRANCH
from tests.conftest import DOCS, ROOT

# 构建时可以用环境变量换成别的仓库与网站（GitHub Pages 工作流就这样做），否则是 mkdocs.yml 里的默认值
REPO_URL = (
    os.environ.get("HELLO_PYTORCH_REPO_URL")
    or re.search(
        r'^repo_url: !ENV \[HELLO_PYTORCH_REPO_URL, "([^"]+)"\]', (ROOT / "mkdocs.yml").read_text(), re.M
    )[1]
)
SITE_URL = (
    os.environ.get("HELLO_PYTORCH_SITE_URL")
    or re.search(
        r'^site_url: !ENV \[HELLO_PYTORCH_SITE_URL, "([^"]+)"\]', (ROOT / "mkdocs.yml").read_text(), re.M
    )[1]
)
MAGIC = re.compile(r"\A%%display_as (markdown|html)\n")
INCLUDE = re.compile(r'^\s*--8<--\s+"(?P<path>[^":]+):(?P<section>[\w-]+)"', re.MULTILINE)


# 笔记本网页都由同一个转换器（mkdocs-jupyter）用同一个模板、同一组脚本生成，彼此只差在单元格里有哪些种类的内容。
# 浏览器的逐页检查只打开这两本（离线、图与公式、控制台错误、axe 含颜色对比度、手机宽度）；这两本合起来必须包含笔记本里
# 出现的每一种内容（test_the_notebooks_opened_in_the_browser_contain_every_kind_of_content）。其余每本由读文件的
# 检查覆盖：不从别的主机加载任何东西（tests/site/test_html.py），每个公式原样到达网页、又是章节页上排版过的
# 公式之一（test_every_notebook_formula_reaches_the_page_intact_and_is_typeset_on_its_chapter）。
BROWSER_NOTEBOOKS = ("notebooks/part1/ch03_algorithm/", "notebooks/part3/ch01_ddp/")


def code_pages() -> list[str]:
    """有执行代码块的页面（docs/ 下的相对路径）：每一个都该有笔记本。"""
    return sorted(
        md.relative_to(DOCS).as_posix() for md in DOCS.rglob("*.md") if 'exec="on"' in md.read_text("utf-8")
    )


def section_code(path: str, section: str) -> str:
    """测试自己读片段（与 pymdownx.snippets 的 dedent_subsections 相同）：开始与结束标记之间的行，去掉公共缩进。"""
    text = (ROOT / path).read_text(encoding="utf-8")
    body = re.search(rf"\[start:{section}\]\n(.*?)\n[^\n]*\[end:{section}\]", text, re.S)[1]
    lines = [line for line in body.splitlines() if "--8<--" not in line]
    return textwrap.dedent("\n".join(lines)).strip("\n")


def snippet_cells(nb) -> list[dict]:
    return [c for c in nb.cells if c.get("metadata", {}).get("hello_pytorch", {}).get("role") == "snippet"]


def printed(cell) -> str:
    """一个代码单元“打印”出来的内容：文字输出，或 %%display_as 显示的 Markdown / HTML 原文。"""
    parts = []
    for output in cell.outputs:
        if output.output_type == "stream" and output.name == "stdout":
            parts.append(output.text)
        elif output.output_type == "display_data":
            data = output.data
            parts.append(data.get("text/markdown") or data.get("text/html") or "")
    return "".join(parts)


@pytest.fixture(scope="module")
def manifest(built_site) -> dict:
    return json.loads((built_site.path / "exec-manifest.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def notebook_manifest(built_site) -> dict:
    return json.loads((built_site.path / "notebook-manifest.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def downloaded(built_site, notebook_manifest) -> dict[str, nbformat.NotebookNode]:
    """网站上提供下载的 .ipynb（构建时已运行，带输出）。"""
    return {
        page: nbformat.read(built_site.path / entry["download"], as_version=4)
        for page, entry in notebook_manifest.items()
    }


def test_the_test_sessions_prefetch_computes_the_builds_notebook_keys(downloaded):
    """tests/prefetch.py 在测试会话开始时就运行笔记本，整站构建取用它写下的输出：两边的缓存键必须相同，
    否则预取白做、构建把每本再运行一遍（测试照样通过，只是慢）。键只取决于代码单元格和环境。"""
    from hello_build.execute import fingerprint
    from hello_build.notebooks.run import output_key
    from hello_build.settings import Settings
    from tests.prefetch import notebook_jobs

    prefetched = {job.page: job.key for job in notebook_jobs(Settings.read(ROOT))}
    built = {page: output_key(nb, fingerprint()) for page, nb in downloaded.items()}
    differ = sorted(page for page in built if prefetched.get(page) != built[page])
    assert sorted(prefetched) == sorted(built) and not differ, f"预取与构建的笔记本代码不同：{differ}"


def test_every_page_with_code_has_exactly_one_notebook(built_site, notebook_manifest):
    assert sorted(notebook_manifest) == code_pages(), "有代码的页面与有笔记本的页面应一一对应"
    on_site = sorted(
        p.relative_to(built_site.path).as_posix() for p in (built_site.path / "notebooks").rglob("*.ipynb")
    )
    assert on_site == sorted(entry["download"] for entry in notebook_manifest.values())


@pytest.mark.parametrize("page", code_pages())
def test_notebook_code_is_exactly_the_code_the_page_ran(downloaded, manifest, page):
    nb = downloaded[page]
    nbformat.validate(nb)
    cells = snippet_cells(nb)
    ran = manifest[page]
    assert len(cells) == len(ran), f"{page}：页面运行了 {len(ran)} 个代码块，笔记本有 {len(cells)} 个代码单元"
    for cell, block in zip(cells, ran, strict=True):
        include = cell.metadata["hello_pytorch"]["include"]
        assert include == block["id"], f"{page}：顺序不同，笔记本是 {include}，页面是 {block['id']}"
        code = MAGIC.sub("", cell.source)
        assert code.strip() == block["code"].strip(), f"{page}：{include} 的代码与页面运行的不同"
        path, _, section = include.partition(":")
        assert code == section_code(path, section), f"{page}：{include} 与 snippet 文件里的片段不同"
    # 页面上只展示、不运行的库代码（如 _tinygpt.py 的片段）也都在笔记本里，顺序相同
    markdown = (DOCS / page).read_text(encoding="utf-8")
    shown = [
        (m["path"], m["section"])
        for m in INCLUDE.finditer(markdown)
        if f"{m['path']}:{m['section']}" not in {b["id"] for b in ran}
    ]
    text_cells = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    for path, section in shown:
        assert section_code(path, section) in text_cells, f"{page}：页面展示的 {path}:{section} 不在笔记本里"


@pytest.mark.parametrize("page", code_pages())
def test_notebook_starts_by_installing_pinned_cpu_torch(downloaded, page):
    install = downloaded[page].cells[1]
    assert install.metadata["hello_pytorch"]["role"] == "install"
    required = dict(re.findall(r"^([\w-]+)==(\S+)", (ROOT / "requirements.txt").read_text(), re.M))
    pins = json.loads(re.search(r"^PINS = (\{.*\})$", install.source, re.M)[1])
    code = "\n".join(c.source for c in downloaded[page].cells if c.cell_type == "code")
    # 每本都装 torch、numpy、matplotlib；只有部分章节用的包（如 transformers），代码导入了才装
    imported = {name for name in required if re.search(rf"^\s*(?:import|from)\s+{name}\b", code, re.M)}
    expected = {name for name in ("torch", "numpy", "matplotlib")} | (
        imported & {"transformers", "safetensors"}
    )
    assert set(pins) == expected, f"{page}：安装单元装的包 {sorted(pins)}，应为 {sorted(expected)}"
    assert all(pins[name] == required[name] for name in pins), "安装单元的版本必须来自 requirements.txt"
    assert "--index-url" in install.source and "/whl/cpu" in install.source, "应安装 CPU 版 PyTorch"
    assert install.outputs and "依赖就绪" in printed(install), "构建时安装单元应发现依赖已经就绪"
    written = [c.source.split("\n", 1) for c in downloaded[page].cells if c.source.startswith("%%writefile ")]
    paths = [head.removeprefix("%%writefile ") for head, _ in written]
    for path, body in zip(paths, (body for _, body in written), strict=True):
        assert body == (ROOT / path).read_text(encoding="utf-8").rstrip("\n"), f"{path} 与仓库里的不同"
    # 本章的代码和写出的库导入的库模块（例如第三部分的 worker 导入第二部分的 _tinygpt）都要写出，笔记本才能独立运行
    code = "\n".join(c.source for c in downloaded[page].cells if c.cell_type == "code")
    imported = set(re.findall(r"^\s*(?:from|import)\s+(_\w+)", code, re.M))
    missing = imported - {Path(path).stem for path in paths}
    assert not missing, f"{page}：笔记本缺少库模块 {sorted(missing)}"


def _expected_outputs(manifest, page) -> list[tuple[str, str | None]]:
    return [(b["id"], None if b["measurement"] else b["output"]) for b in manifest[page]]


def assert_same_outputs(nb, manifest, page, where: str) -> None:
    for cell, (block_id, expected) in zip(snippet_cells(nb), _expected_outputs(manifest, page), strict=True):
        errors = [o for o in cell.outputs if o.output_type == "error"]
        assert not errors, f"{where} {page} 的 {block_id} 出错：{errors}"
        if expected is None:  # measure="yes" 的代码块打印测量值：只在页面上量，笔记本里构建时不运行它
            assert cell.execution_count is None and not cell.outputs, f"{where} {page} 的 {block_id} 不该运行"
            continue
        # 笔记本里的 SVG 图换成了 <img>（hello_build/figures.py 的 as_images），换之前是和网页同一段打印输出
        expected = as_images(expected)
        assert printed(cell).rstrip() == expected.rstrip(), (
            f"{where} {page} 的 {block_id} 输出与页面不同：\n笔记本：{printed(cell)[:500]!r}\n页面：{expected[:500]!r}"
        )


@pytest.mark.parametrize("page", code_pages())
def test_built_notebook_has_the_pages_outputs(downloaded, manifest, page):
    nb = downloaded[page]
    code = [c for c in nb.cells if c.cell_type == "code"]
    skipped = [c for c in code if "skip-execution" in c.metadata.get("tags", [])]
    assert all(c.metadata["hello_pytorch"].get("measurement") for c in skipped), (
        "只有打印测量值的单元格不运行"
    )
    counts = [c.execution_count for c in code if c not in skipped]
    assert counts == list(range(1, len(counts) + 1)), f"{page}：应在一个内核里从上到下依次运行，实际 {counts}"
    stderr = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.get("name") == "stderr"]
    assert not stderr, f"{page}：读者会看到警告输出：{stderr[:2]}"
    assert_same_outputs(nb, manifest, page, "构建时运行的笔记本")


@pytest.mark.parametrize("page", code_pages())
def test_page_links_to_its_notebook_a_download_and_colab(built_site, notebook_manifest, page):
    entry = notebook_manifest[page]
    html = built_site.html(page)
    bar = re.search(r'<p class="hp-notebook-links">(.*?)</p>', html, re.S)
    assert bar, f"{page} 的标题下面没有笔记本链接"
    links = dict(
        (text, href)
        for href, text in re.findall(r'<a class="md-button" href="([^"]+)"[^>]*>([^<]+)</a>', bar[1])
    )
    assert set(links) == {"Jupyter 笔记本", "下载 .ipynb", "在 Colab 中打开"}, links
    stem = page.removesuffix(".md")
    page_url = "http://site/" + ("" if stem == "index" else f"{stem}/")
    notebook_page = urljoin(page_url, links["Jupyter 笔记本"]).removeprefix("http://site/")
    assert (built_site.path / notebook_page / "index.html").exists() or (
        built_site.path / notebook_page
    ).exists()
    download = urljoin(page_url, links["下载 .ipynb"]).removeprefix("http://site/")
    assert download == entry["download"] and (built_site.path / download).is_file()
    owner_repo = REPO_URL.removeprefix("https://github.com/")
    expected_colab = f"https://colab.research.google.com/github/{owner_repo}/blob/{BRANCH}/{download.removeprefix('notebooks/')}"
    assert links["在 Colab 中打开"] == expected_colab == entry["colab"]


@pytest.mark.parametrize("page", code_pages())
def test_notebook_markdown_reads_well_in_jupyter(downloaded, page):
    text = "\n".join(c.source for c in downloaded[page].cells if c.cell_type == "markdown")
    outside_code = re.sub(r"^(>\s?)?```.*?^(>\s?)?```", "", text, flags=re.S | re.M)
    assert not re.search(r"^\s*(!!!|\?\?\?)", outside_code, re.M), "提示框（admonition）应改成引用块"
    assert not re.search(r'^\s*=== "', outside_code, re.M), "选项卡应改成小标题"
    assert not re.search(r"\]\((?!https?://)[^)]*\.md\b", outside_code), "相对的 .md 链接在 Jupyter 里打不开"
    assert not re.search(r"\]\(#", outside_code), "页内锚点应改成网站上的绝对地址"
    assert not re.search(r"\[\^[^\]]+\]", outside_code), "脚注应改成上标编号"
    for link in re.findall(r"\]\((https?://[^)\s]+)\)", outside_code):
        if link.startswith(SITE_URL):
            assert "/notebooks/" not in link
    source = (DOCS / page).read_text(encoding="utf-8")
    assert source.count("```mermaid") == text.count("```mermaid"), "Mermaid 图保留为 ```mermaid 代码块"
    if "$" in re.sub(r"`[^`]*`", "", source):
        assert "$" in outside_code, "公式保留 $…$ 写法，Jupyter 用 MathJax 显示"


@pytest.mark.parametrize("page", code_pages())
def test_notebook_page_renders_outputs_without_other_hosts(built_site, notebook_manifest, page):
    download = notebook_manifest[page]["download"]
    html = (built_site.path / Path(download).parent / "index.html").read_text(encoding="utf-8")
    assert "jp-OutputArea-output" in html, "笔记本网页应显示运行的输出"
    assert not re.search(r'<script[^>]*src="(https?:)?//|import\("https?://', html), "不能从别的主机加载脚本"
    assert "jupyter.css" in html and "@charset" not in html, "Jupyter 样式应是共用的文件，不内联"
    ids = re.findall(r'<h[1-6] id="([^"]*)"', html)
    assert len(ids) == len(set(ids)), f"标题的 id 有重复：{ids}"
    toc = re.findall(r'<a href="#([^"]*)" class="md-nav__link">', html)
    assert toc and all(anchor in ids for anchor in toc), f"侧栏目录指向不存在的标题：{set(toc) - set(ids)}"


def test_a_notebook_that_fails_fails_the_build_and_says_where(throwaway):
    """页面上运行正常、只在笔记本里出错的代码，也让严格构建失败，并指出笔记本、页面和片段。"""
    code, log = throwaway(
        {
            "index.md": "# 首页\n\n"
            + '```python exec="on" session="i" result="text"\n--8<-- "snippets/index.py:only"\n```\n'
        },
        {
            "index.py": '# --8<-- [start:only]\nimport sys\nif "ipykernel" in sys.modules:\n    raise RuntimeError("只在笔记本里出错")\nprint("网页上没问题")\n# --8<-- [end:only]\n'
        },
    )
    assert code != 0, "笔记本出错，构建必须失败"
    assert "notebooks/index.ipynb" in log and "docs/index.md" in log
    assert "snippets/index.py:only" in log and "只在笔记本里出错" in log


def notebook_features(nb) -> set[str]:
    """一本笔记本里出现的各种内容：Markdown 单元格里的图、公式、表格、引用块，代码单元格的隐藏源码，各种输出。"""
    found = set()
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            found |= {
                name
                for name, present in {
                    "Mermaid 图": "```mermaid" in cell.source,
                    "公式": "$" in cell.source,
                    "表格": re.search(r"^\|[ :-]*-{3}", cell.source, re.M) is not None,
                    "引用块": cell.source.startswith(">"),
                }.items()
                if present
            }
            continue
        if cell.metadata.get("jupyter", {}).get("source_hidden"):
            found.add("隐藏的源码")
        for output in cell.outputs:
            found.add(f"输出 {output.output_type}")
            found |= {f"输出 {mime}" for mime in output.get("data", {})}
            if '<img class="hp-figure"' in output.get("data", {}).get("text/html", ""):
                found.add("SVG 图")
    return found


def test_the_notebooks_opened_in_the_browser_contain_every_kind_of_content(downloaded, notebook_manifest):
    """浏览器测试只在两本笔记本的网页上做逐页检查（BROWSER_NOTEBOOKS，见本文件开头）：这两本合起来必须
    包含所有笔记本里出现的每一种内容，不然新的那种内容就没有在浏览器里检查过。"""
    by_url = {
        f"notebooks/{entry['notebook'].removeprefix('notebooks/').removesuffix('.ipynb')}/": page
        for page, entry in notebook_manifest.items()
    }
    checked = set().union(*(notebook_features(downloaded[by_url[url]]) for url in BROWSER_NOTEBOOKS))
    everywhere = set().union(*(notebook_features(nb) for nb in downloaded.values()))
    assert len(everywhere) >= 8, f"特征提取应当找到多种内容：{everywhere}"
    assert everywhere - checked == set(), f"这些内容只出现在浏览器没有打开的笔记本里：{everywhere - checked}"


_FENCED = re.compile(
    r"^(`{3,}|~{3,}).*?^\1", re.S | re.M
)  # Markdown 单元格里的代码块（Shell 的 $HOST 不是公式）
_INLINE_CODE = re.compile(r"`[^`\n]+`")
NOTEBOOK_MATH = re.compile(r"\$\$(.+?)\$\$|\$([^$\n]+)\$", re.S)
_ARITHMATEX = re.compile(r'class="arithmatex"(?: style="[^"]*")?>(.*?)</(?:span|div)>', re.S)
# 页面开头在构建时排好的行内公式（hello_build/formulas.py）：TeX 原文在 KaTeX 输出的 annotation 里
_PRERENDERED = re.compile(r'<annotation encoding="application/x-tex">(.*?)</annotation>', re.S)


def notebook_formulas(nb) -> list[str]:
    """笔记本 Markdown 单元格里代码以外的公式（$…$ 与 $$…$$ 之间的 TeX），按出现顺序。"""
    found = []
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            prose = _INLINE_CODE.sub("", _FENCED.sub("", _QUOTE_MARKS.sub("", cell.source)))
            found += [_squeeze(block or inline) for block, inline in NOTEBOOK_MATH.findall(prose)]
    return found


_QUOTE_MARKS = re.compile(r"^(?:[ \t]*>[ \t]?)+", re.M)  # 引用块每行开头的 >：不是公式的一部分


def _squeeze(text: str) -> str:
    """空白只作分隔（TeX 与 HTML 都不在乎有几个空格、换不换行）。"""
    return " ".join(text.split())


def chapter_formulas(html: str) -> set[str]:
    """章节页上 pymdownx.arithmatex 输出的公式（去掉 \\( \\) 与 \\[ \\]）——浏览器测试在章节页上检查它们都排版了。"""
    found = {_squeeze(html_lib.unescape(source).strip()[2:-2]) for source in _ARITHMATEX.findall(html)}
    return found | {_squeeze(html_lib.unescape(tex).strip()) for tex in _PRERENDERED.findall(html)}


def test_every_notebook_formula_reaches_the_page_intact_and_is_typeset_on_its_chapter(
    built_site, downloaded, notebook_manifest
):
    """浏览器只在两本笔记本的网页上检查公式（BROWSER_NOTEBOOKS）。其余的公式由这里保证：每个公式（1）是同一章的章节页上
    的公式之一——浏览器测试在章节页上检查过它由 KaTeX 排版、没有出错（两种网页用同一个 KaTeX）；（2）原样出现
    在笔记本网页的文字里——Markdown 转换没有把 _ 或 * 当成强调、把它拆坏，网页上的 lazy-assets.js 找得到它。"""
    checked = 0
    for page, entry in notebook_manifest.items():
        formulas = notebook_formulas(downloaded[page])
        typeset = chapter_formulas(built_site.html(page))
        stem = (
            entry["notebook"].removesuffix(".ipynb").removesuffix("/index")
        )  # notebooks/index.ipynb 是笔记本首页
        web = built_site.path / stem / "index.html"
        text = _squeeze(html_lib.unescape(re.sub(r"<[^>]+>", "", web.read_text(encoding="utf-8"))))
        for tex in formulas:
            assert tex in typeset, f"{page} 的笔记本里有章节页上没有的公式：{tex!r}"
            assert tex in text, (
                f"{entry['notebook']} 的网页上，公式 {tex!r} 没有原样出现（被 Markdown 转换改坏了？）"
            )
        checked += len(formulas)
    assert checked >= 50, f"应当找到并检查笔记本里的公式，只找到 {checked} 个"


def test_formula_extraction_skips_code_and_quote_marks():
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("> 链式法则：\n>\n> $$\n> \\frac{a}{b} = w_i\n> $$\n\n`$HOST` 与 $x$")
    ]
    assert notebook_formulas(nb) == ["\\frac{a}{b} = w_i", "x"]
    assert chapter_formulas('<div class="arithmatex">\\[\n\\frac{a}{b} = w_i\n\\]</div>') == {
        "\\frac{a}{b} = w_i"
    }
