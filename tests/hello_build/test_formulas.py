"""hello_build/formulas.py：独立公式按 KaTeX 排出的高度占位，开头（前 OPENING_CHARS 个字）的行内公式在构建时排好，
其余不动；结果进缓存。"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hello_build import formulas
from hello_build.store import Store

ROOT = Path(__file__).resolve().parents[2]
PAGE = (
    (
        "<h1>第 4 章</h1><p>记号：\\(\\mathbf{x}\\) 是向量，\\(a &lt; b\\)。</p>"
        '<div class="arithmatex">\\[\n\\frac{1}{N}\\sum_{i=1}^{N} x_i\n\\]</div>'
        "<h2>4.1</h2><p>后面的 \\(y\\)</p>"
        '<div class="arithmatex">\\[ x \\]</div>'
    )
    .replace("<p>记号：\\(\\mathbf{x}\\)", '<p>记号：<span class="arithmatex">\\(\\mathbf{x}\\)</span>')
    .replace("，\\(a &lt; b\\)", '，<span class="arithmatex">\\(a &lt; b\\)</span>')
    .replace("后面的 \\(y\\)", '后面的 <span class="arithmatex">\\(y\\)</span>')
)


@pytest.fixture
def typesetter(tmp_path):
    if not (ROOT / "node_modules" / "katex").is_dir():
        pytest.fail("缺少 node_modules/katex：nox -s tests 会先运行 npm ci")
    return formulas.Typesetter(ROOT / "node_modules", Store(tmp_path))


def test_height_is_read_from_katex_struts():
    # 基线以上 0.75、以下 0.25 不到一行的最小值：取最小值 0.95 + 0.25
    assert formulas.height_em('<span class="katex-strut" style="height:0.4306em;"></span>') == 1.2
    tall = (
        '<span class="katex-strut" style="height:2.9291em;vertical-align:-1.2777em;"></span>'
        '<span class="katex-strut" style="height:0.6944em;"></span>'
    )
    assert formulas.height_em(tall) == round(2.9291 - 1.2777 + 1.2777, 3)
    with pytest.raises(formulas.KatexFailed):
        formulas.height_em("<span>没有 strut</span>")


def test_display_formulas_get_their_height_and_the_opening_is_typeset(typesetter, monkeypatch):
    monkeypatch.setattr(formulas, "OPENING_CHARS", 40)  # 开头：到第一个独立公式里为止（TeX 原文也算字）
    html = typesetter.reserve(PAGE, "../../katex.min.css")
    heights = [float(h) for h in re.findall(r'style="--tex-height: ([\d.]+)"', html)]
    assert len(heights) == 2, html
    assert heights[0] > 2.5 > heights[1] == 1.2, f"求和与分式比单个字母高：{heights}"
    opening, rest = html.split('<div class="arithmatex"', 1)
    assert opening.count('<span class="arithmatex" data-typeset="">') == 2
    assert opening.count('class="katex"') == 2 and "\\(" not in opening, "开头的行内公式应当已经排好"
    assert "&amp;lt;" not in opening and "a &lt; b" in opening, (
        "TeX 里的 &lt; 先还原成 < 再交给 KaTeX（不转义两次）"
    )
    assert '<span class="arithmatex">\\(y\\)</span>' in rest, "开头以后的行内公式留给浏览器排"
    assert html.startswith('<link rel="stylesheet" href="../../katex.min.css">'), (
        "预先排好的公式需要 KaTeX 的样式表"
    )
    assert html.count("<link") == 1


def test_pages_without_opening_formulas_get_no_stylesheet_and_results_are_cached(typesetter, monkeypatch):
    assert typesetter.reserve("<h1>t</h1><p>没有公式</p>", "k.css") == "<h1>t</h1><p>没有公式</p>"
    page = "<h1>t</h1><h2>a</h2>" + '<div class="arithmatex">\\[ x^2 \\]</div>'
    first = typesetter.reserve(page, "k.css")
    assert "<link" not in first and "--tex-height" in first

    def no_node(*args, **kwargs):
        raise AssertionError("同样的公式第二次构建应当取自缓存，不再调用 node")

    monkeypatch.setattr(formulas, "node", no_node)
    assert formulas.Typesetter(ROOT / "node_modules", typesetter.store).reserve(page, "k.css") == first
