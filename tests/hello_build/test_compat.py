"""hello_build.compat：每条绕行办法的检查都能分辨“还需要”与“不需要了”，办法本身确实管用。"""

from __future__ import annotations

import re

import pytest

from hello_build import compat

NOTEBOOK_PAGE = (
    '<script src=""></script><script type="text/x-mathjax-config">MathJax.Hub.Config({})</script>'
    "<style>['a', 'b']</style>"
    '<style type="text/css">@charset "UTF-8";.jupyter-wrapper{color:red}</style>'
    '<div class="jp-Mermaid"><pre class="mermaid">\ngraph LR\nA-->B</pre></div>'
    '<h2 id="1">第 1 步：准备<a class="anchor-link" href="#1">¶</a></h2>'
    '<h2 id="1">第 1 步：训练<a class="anchor-link" href="#1">¶</a></h2>'
    '<div class="highlight-ipynb hl-python"><pre><span></span><span class="o">%%</span><span class="n">writefile</span>'
    ' <span class="n">lib</span><span class="o">.</span><span class="n">py</span>\n'
    '<span class="n">x</span> <span class="o">=</span> <span class="mi">1</span> <span class="o">&lt;</span> 2\n</pre></div>'
    '<div class="highlight-ipynb hl-python"><pre><span></span><span class="n">y</span> <span class="o">=</span>'
    ' <span class="mi">2</span>\n</pre></div>'
)


def test_notebook_file_inclusion_is_still_broken_on_the_pinned_version_and_the_patch_fixes_it(monkeypatch):
    from mkdocs_jupyter.plugin import NotebookFile

    if "inclusion" in NotebookFile.__dict__:  # 本测试进程里已经打过补丁：先拿掉，看原来的样子
        monkeypatch.delattr(NotebookFile, "inclusion")
    if compat.notebook_file_forwards_inclusion():
        pytest.fail(f"mkdocs-jupyter {compat.MKDOCS_JUPYTER} 已经修好了 inclusion：删掉 compat 里的第 1 条")
    assert compat.forward_notebook_inclusion() is True
    assert compat.notebook_file_forwards_inclusion()
    assert compat.forward_notebook_inclusion() is False, "已经对了就不再打补丁"


def test_notebook_page_is_cleaned_and_keeps_no_other_host():
    cleaned, css = compat.clean_notebook_page(
        NOTEBOOK_PAGE, "notebooks/x.ipynb", '<link rel="stylesheet" href="j.css">'
    )
    assert css == '@charset "UTF-8";.jupyter-wrapper{color:red}'
    assert '<link rel="stylesheet" href="j.css">' in cleaned and "@charset" not in cleaned
    assert "<script" not in cleaned and "['a', 'b']" not in cleaned
    assert '<pre class="mermaid"><code>graph LR\nA-->B</code></pre>' in cleaned
    # 写出库文件的单元格是折叠起来、不着色的纯文字（少几千个元素），其余代码单元格照样逐词着色
    assert (
        '<details class="hp-library"><summary>写入库文件 <code>lib.py</code>（共 1 行，点击展开）</summary>'
        "<pre>%%writefile lib.py\nx = 1 &lt; 2\n</pre></details>"
    ) in cleaned
    assert '<span class="n">y</span> <span class="o">=</span>' in cleaned


def test_unrecognised_template_fails_loudly():
    with pytest.raises(compat.TemplateChanged, match="找不到 Jupyter 样式"):
        compat.clean_notebook_page("<p>没有样式</p>", "notebooks/x.ipynb", "")
    page = NOTEBOOK_PAGE + '<script src="https://cdn.example/x.js"></script>'
    with pytest.raises(compat.TemplateChanged, match="别的主机"):
        compat.clean_notebook_page(page, "notebooks/x.ipynb", "")


class _TocItem:
    def __init__(self, title):
        self.title, self.id, self.children = title, "", []


def test_heading_ids_follow_the_site_rule_and_the_toc_points_at_them():
    toc = [_TocItem("第 1 步：准备"), _TocItem("第 1 步：训练")]
    fixed = compat.fix_heading_ids(NOTEBOOK_PAGE, toc)
    assert 'id="第-1-步准备"' in fixed and 'id="第-1-步训练"' in fixed
    assert [item.id for item in toc] == ["第-1-步准备", "第-1-步训练"]


def test_torch_still_warns_on_import_and_the_filter_silences_only_that():
    import warnings

    if not compat.torch_mkldnn_import_warns():
        pytest.fail(
            "导入 torch.utils.mkldnn 不再发出 torch.jit.script_method 的弃用警告：删掉 compat 里的第 4 条"
        )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        compat.quiet_torch_import()
        warnings.warn(
            "`torch.jit.script_method` is deprecated. Please switch", DeprecationWarning, stacklevel=1
        )
        warnings.warn("别的弃用警告照常显示", DeprecationWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == ["别的弃用警告照常显示"]


def _print_section(key: str) -> str:
    """print-site 2.9 拼出来的一章：标题的 id 加了前缀，中文正文后面的脚注引用 <sup id> 和 <span id> 漏了，
    链接的 href 都加了。"""
    return (
        f'<section class="print-page" id="{key}" heading-number="1"><h1 id="{key}-标题">标题</h1>'
        f'<p>中文正文<sup id="fnref:a"><a class="footnote-ref" href="#{key}-fn:a">1</a></sup></p>'
        f'<p><span id="erratum-1"></span>改正见<a href="#{key}-erratum-1">这里</a></p>'
        f'<div class="footnote"><ol><li id="{key}-fn:a"><p>脚注<a class="footnote-backref" href="#{key}-fnref:a">↩</a>'
        "</p></li></ol></div></section>"
    )


def test_print_site_still_misses_ids_after_chinese_text_and_the_fix_prefixes_them():
    if compat.print_site_prefixes_ids_after_cjk_text():
        pytest.fail("mkdocs-print-site-plugin 已经给中文正文后面的 id 加上前缀了：删掉 compat 里的第 5 条")
    page = (
        _print_section("part1-ch01")
        + _print_section("part1-ch02")
        + '<p>见<a href="#runtime">运行时间</a>，<a href="#runtime-表">表</a>，<a href="#part1-ch01-不存在">坏链接</a></p>'
    )
    pages = {
        "runtime": "https://example.org/site/runtime/",
        "part1-ch01": "https://example.org/site/part1/ch01/",
    }
    fixed, prefixed, outside = compat.fix_print_page(page, pages)
    assert (prefixed, outside) == (4, 2)
    ids = re.findall(r'\sid="([^"]+)"', fixed)
    assert len(ids) == len(set(ids)), f"打印页里有重复的 id：{ids}"
    for key in ("part1-ch01", "part1-ch02"):
        assert f'<sup id="{key}-fnref:a">' in fixed, "脚注引用的 id 没有加上所在章的前缀"
        assert f'<span id="{key}-erratum-1">' in fixed, "正文里跳转目标的 id 没有加上所在章的前缀"
    # 书外的页面（不在打印页里）指向网站；书里的坏链接原样留下，由 hello_build.pdf 打印前报错
    assert (
        'href="https://example.org/site/runtime/"' in fixed
        and 'href="https://example.org/site/runtime/#表"' in fixed
    )
    assert 'href="#part1-ch01-不存在"' in fixed
    assert compat.fix_print_page(fixed, pages) == (fixed, 0, 0), "改过的打印页再改一遍不应有变化"
