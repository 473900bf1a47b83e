"""hello_build.stylesheets：删掉笔记本网页上匹配不到的 Jupyter 样式规则。

这里查规则的取舍；删掉之后浏览器里每个元素的样式不变，由 tests/site/test_browser.py 在真实的笔记本网页上比较。
"""

from __future__ import annotations

import pytest
import tinycss2

from hello_build import stylesheets


def selectors(css: str) -> list[str]:
    """样式表里的每条规则的选择器（条件规则里的也算），按出现顺序。"""
    found = []
    for rule in tinycss2.parse_stylesheet(css, skip_whitespace=True, skip_comments=True):
        if rule.type == "qualified-rule":
            found.append(tinycss2.serialize(rule.prelude).strip())
        elif rule.type == "at-rule" and rule.content and rule.lower_at_keyword == "media":
            found += [
                f"@media{tinycss2.serialize(rule.prelude)}: {s}"
                for s in selectors(tinycss2.serialize(rule.content))
            ]
    return found


def test_a_selector_that_needs_a_class_no_page_uses_is_dropped():
    css = ".w .jp-Cell{color:red}.w .jp-Unused{color:blue}.w .jp-Cell.jp-mod-active{color:green}"
    pruned = stylesheets.prune(css, {"w", "jp-Cell"})
    assert selectors(pruned.css) == [".w .jp-Cell"]
    assert (pruned.kept, pruned.dropped) == (1, 2)


def test_only_the_unmatchable_selectors_of_a_list_are_dropped():
    pruned = stylesheets.prune(".w .a,.w .gone,.w p{margin:0}", {"w", "a"})
    assert selectors(pruned.css) == [".w .a,.w p"]


def test_classes_inside_parentheses_are_not_required():
    # :not(.x) 正是在 x 不出现时匹配；:is()/:where()/:has() 里是一组备选。按最外层逗号切分，不能切进括号里
    css = (
        ".w .a:not(.absent){color:red}.w :is(.a:hover,.absent) .b{color:blue}.w .a:has(.absent){color:green}"
    )
    pruned = stylesheets.prune(css, {"w", "a", "b"})
    assert selectors(pruned.css) == [
        ".w .a:not(.absent)",
        ".w :is(.a:hover,.absent) .b",
        ".w .a:has(.absent)",
    ]


def test_rules_without_classes_and_at_rules_are_kept():
    css = (
        '@charset "UTF-8";.w{--jp-x:1px}[data-md-color-scheme=slate] .w{--jp-x:2px}.w body{font-size:14px}'
        ".w [data-jp-theme-light=true] ::selection{color:red}"
        "@keyframes blink{50%{background-color:transparent}}"
    )
    pruned = stylesheets.prune(css, {"w"})
    assert pruned.css.startswith('@charset "UTF-8";')
    assert "@keyframes blink{50%{background-color:transparent}}" in pruned.css
    assert selectors(pruned.css) == [
        ".w",
        "[data-md-color-scheme=slate] .w",
        ".w body",
        ".w [data-jp-theme-light=true] ::selection",
    ]


def test_conditional_rules_are_pruned_inside_and_dropped_when_empty():
    css = (
        "@media print{.w .a{color:red}.w .gone{color:blue}}@media (min-width:4320px){.w .gone{font-size:2em}}"
    )
    pruned = stylesheets.prune(css, {"w", "a"})
    assert selectors(pruned.css) == ["@media print: .w .a"]
    assert "4320px" not in pruned.css


def test_class_names_come_from_the_pages_and_from_every_script():
    page = '<div class="jupyter-wrapper"><div class="jp-Cell  jp-mod-noOutputs">x</div></div><script>el.classList.add("inline-added")</script>'
    script = 'e.className="md-typeset__scrollwrap";'
    names = stylesheets.names_in([page], [script])
    assert {
        "jupyter-wrapper",
        "jp-Cell",
        "jp-mod-noOutputs",
        "inline-added",
        "md-typeset__scrollwrap",
    } <= names
    pruned = stylesheets.prune(".w .md-typeset__scrollwrap{margin:0}.w .jp-Cell{padding:0}", names | {"w"})
    assert pruned.dropped == 0


def test_class_attributes_are_read_however_they_are_quoted():
    page = "<p class='single one'>x</p><td CLASS=bare>y</td><span class=\"a&amp;b\">z</span>"
    assert {"single", "one", "bare", "a&b"} <= stylesheets.names_in([page], [])


def test_a_list_with_a_vendor_prefixed_member_is_kept_or_dropped_whole():
    # Chromium 不认识 ::-moz-placeholder，整个列表都不用；删掉它、留下另一半，另一半就生效了
    css = ".w .a::-webkit-input-placeholder,.w .gone::-moz-placeholder{color:red}.w .gone::-moz-x,.w .gone2{color:blue}"
    pruned = stylesheets.prune(css, {"w", "a"})
    assert selectors(pruned.css) == [".w .a::-webkit-input-placeholder,.w .gone::-moz-placeholder"]


def test_other_at_rules_are_kept_as_they_are():
    css = "@layer base{.w .gone{color:red}}@font-face{font-family:x;src:local(x)}@import url(a.css);"
    pruned = stylesheets.prune(css, {"w"})
    assert "@layer base{.w .gone{color:red}}" in pruned.css and "@font-face" in pruned.css
    assert "@import url(a.css);" in pruned.css


def test_a_stylesheet_it_cannot_read_fails_loudly():
    with pytest.raises(stylesheets.UnreadableStylesheet, match="第 1 行"):
        stylesheets.prune('.w .a{color:red}.w "unclosed\n{color:blue}', {"w", "a"})
