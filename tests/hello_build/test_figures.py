"""hello_build/figures.py：内联 SVG 去掉 XML 声明和元数据，同一页多张图的 id 不重复，图里的引用仍然指向自己的元素；
笔记本里的图换成 <img>，里面是原样的 SVG（大小写不变），有替代文字和尺寸。"""

from __future__ import annotations

import base64
import html as html_lib
import io
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from hello_build.figures import as_images, inline_svg, prefix_for


def _svg(values, title="t") -> str:
    plt.rcParams["svg.hashsalt"] = "test"
    plt.rcParams["svg.fonttype"] = "none"
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot(values, marker="o", label="损失 & 准确率")
    ax.legend()
    ax.set_title(title)
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", metadata={"Date": None})
    plt.close(fig)
    return buffer.getvalue()


def _ids(html: str) -> list[str]:
    return re.findall(r'\bid="([^"]+)"', html)


def test_two_figures_on_one_page_get_distinct_ids_and_keep_their_references():
    first, second = _svg([1, 2, 3]), _svg([3, 1, 2])
    assert first.startswith("<?xml") and "<!DOCTYPE svg" in first
    assert set(_ids(first)) & set(_ids(second)), "matplotlib 给两张图编出相同的 id（这正是要修的问题）"
    page = inline_svg(f"<div>{first}</div>", "snippets/part1/a.py:one") + inline_svg(
        f"<div>{second}</div>", "snippets/part1/a.py:two"
    )
    ids = _ids(page)
    assert len(ids) == len(set(ids)), "整理之后，同一页里不应有重复的 id"
    assert "<?xml" not in page and "<!DOCTYPE" not in page
    assert "<metadata>" in first and "<metadata" not in page, "RDF 元数据在 HTML 里无效（vnu），应当去掉"
    references = re.findall(r'url\(#([^)]+)\)|href="#([^"]+)"', page)
    assert references, "matplotlib 的 SVG 里有 clip-path 等引用"
    for url, href in references:
        assert (url or href) in ids, f"引用 #{url or href} 找不到它指向的元素"


def test_only_the_ids_change():
    svg = _svg([1, 2])
    scoped = inline_svg(svg, "b")
    prefix = "b-svg0-"
    stripped = re.sub(
        r"<\?xml[^>]*\?>\s*|<!DOCTYPE svg[^>]*>\s*|<metadata>.*?</metadata>\s*", "", svg, flags=re.S
    )
    assert stripped == scoped.replace(prefix, "")
    assert inline_svg(svg, "b") == scoped, "同样的输入每次得到同样的 HTML"


def test_several_figures_in_one_block_are_numbered():
    html = inline_svg(_svg([1]) + _svg([2]), "block")
    assert "block-svg0-figure_1" in html and "block-svg1-figure_1" in html


def test_html_without_svg_is_untouched_and_prefixes_are_safe():
    html = '<pre id="x">&lt;?xml version="1.0"?&gt; &lt;svg id="a"&gt;</pre>'
    assert inline_svg(html, "b") == html
    assert (
        prefix_for("snippets/part2/ch05_speed.py:crossover_plot")
        == "snippets-part2-ch05_speed-py-crossover_plot"
    )


def test_notebook_figures_become_images_of_the_unchanged_svg():
    svg = _svg([1, 2, 3], title="训练集：800 个点")
    html = as_images(f"<div>{svg}</div>" + _svg([3, 2]))
    images = re.findall(r"<img ([^>]*)>", html)
    assert len(images) == 2 and "<svg" not in html, html[:300]
    attrs = dict(re.findall(r'(\w+)="([^"]*)"', images[0]))
    decoded = base64.b64decode(attrs["src"].removeprefix("data:image/svg+xml;base64,")).decode()
    stripped = re.sub(
        r"<\?xml[^>]*\?>\s*|<!DOCTYPE svg[^>]*>\s*|<metadata>.*?</metadata>\s*", "", svg, flags=re.S
    )
    assert decoded == stripped.strip(), (
        "<img> 里应是原样的 SVG（XML 区分大小写：viewBox、clipPath 不能变成小写）"
    )
    assert "viewBox" in decoded and "clipPath" in decoded
    # 2 英寸 × 72 pt = 144 pt = 192 CSS 像素：先留出位置，图解码后页面不跳
    assert (attrs["width"], attrs["height"]) == ("192", "192")
    # 替代文字：标题与图例，不含刻度数字；& 等字符转义
    assert html_lib.unescape(attrs["alt"]) == "图：训练集：800 个点；损失 & 准确率", attrs["alt"]
    assert as_images("<p>没有图</p>") == "<p>没有图</p>"
