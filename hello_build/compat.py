"""依赖的缺陷的绕行办法，只放在这里。每一条都写明：哪个版本有这个问题、上游的讨论在哪里、怎样检查它还需不需要，
并有测试（tests/hello_build/test_compat.py）。依赖修好之后，检查会发现它不再需要，删掉对应的一条即可。

本模块和 ``site`` 是构建包里仅有的导入 MkDocs 生态（mkdocs、mkdocs-jupyter、mkdocs-print-site-plugin）的模块。
"""

from __future__ import annotations

import html
import re
import warnings
from importlib.metadata import version

from hello_build.slugs import slugify

MKDOCS_JUPYTER = version("mkdocs-jupyter")


class TemplateChanged(RuntimeError):
    """mkdocs-jupyter 生成的网页和这里认得的样子不一样了：绕行办法需要重新检查。"""


# ---------------------------------------------------------------- 1. NotebookFile 不转交 inclusion
# mkdocs-jupyter 0.26.3 的 NotebookFile 把属性转交给被包装的 File，却漏了 File 的类属性 inclusion：包装后的笔记本
# 总是 UNDEFINED，不在导航里的笔记本页就会触发 strict 的“未列入导航”警告。上游：未找到已有的报告
# （https://github.com/danielfrg/mkdocs-jupyter/issues）。检查：包装一个 NOT_IN_NAV 的 File，看 inclusion 对不对。


def notebook_file_forwards_inclusion() -> bool:
    from mkdocs.structure.files import File, InclusionLevel
    from mkdocs_jupyter.plugin import NotebookFile

    file = File("x.ipynb", src_dir="docs", dest_dir="site", use_directory_urls=True)
    file.inclusion = InclusionLevel.NOT_IN_NAV
    return NotebookFile(file, use_directory_urls=True, site_dir="site").inclusion == InclusionLevel.NOT_IN_NAV


def forward_notebook_inclusion() -> bool:
    """需要时打补丁，返回是否打了。"""
    if notebook_file_forwards_inclusion():
        return False
    from mkdocs_jupyter.plugin import NotebookFile

    NotebookFile.inclusion = property(lambda self: self.file.inclusion)
    return True


# ---------------------------------------------------------------- 2. 笔记本网页的模板
# mkdocs-jupyter 0.26.3 的模板：从 CDN 加载 MathJax（custom_mathjax_url 为空时留下 <script src="">，
# 见 https://github.com/danielfrg/mkdocs-jupyter/issues/199）和 Mermaid；把 575 KB 的 Jupyter 样式内联进每一页；
# 把一个 Python 列表当作 <style> 写进页面。本站不让读者的浏览器访问别的主机：去掉这些脚本，公式和图交给本站
# 自己的 KaTeX 与 Mermaid（lazy-assets.js），样式抽成一个共用的文件。认不出模板（样式没找到、还剩外部脚本）时报错。
# 它还把每个代码单元格逐词着色（每个词一个 <span>），也不管单元格的 source_hidden：把库文件写出来的准备单元格
# （%%writefile，笔记本里标了 source_hidden，Jupyter 里默认折叠；同样的代码在章节页上着色显示）改成折叠起来的
# 不着色纯文字：一个库文件就少几千个元素（tests/site/test_html.py 的预算），浏览器打开网页时也不用排版几万字的代码。

_CDN_SCRIPTS = re.compile(
    r'<script src="">\s*</script>|<script type="text/x-mathjax-config">.*?</script>'
    r'|<script type="module">\s*document\.addEventListener\("DOMContentLoaded", async \(\) => \{\s*'
    r"const diagrams = document\.querySelectorAll\(\"\.jp-Mermaid.*?</script>",
    re.S,
)
_JUPYTER_CSS = re.compile(
    r'<style type="text/css">\s*(@charset "UTF-8";\.jupyter-wrapper\{.*?)</style>', re.S
)
_LIST_AS_CSS = re.compile(r"<style>\s*\['.*?'\]\s*</style>", re.S)
_JP_MERMAID = re.compile(r'<div class="jp-Mermaid"><pre class="mermaid">\n?(.*?)</pre></div>', re.S)
_OTHER_HOST_SCRIPT = re.compile(r'<script[^>]*\bsrc="(?:https?:)?//|import\("https?://')
_NB_CODE = re.compile(r'(<div class="highlight-ipynb hl-python"><pre>)(.*?)(</pre></div>)', re.S)


def _plain_library_cell(match: re.Match[str]) -> str:
    text = html.unescape(re.sub(r"<[^>]+>", "", match[2]))
    if not text.startswith("%%writefile "):
        return match[0]
    path = text.split("\n", 1)[0].removeprefix("%%writefile ")
    lines = text.rstrip("\n").count("\n")
    summary = f"<summary>写入库文件 <code>{html.escape(path)}</code>（共 {lines} 行，点击展开）</summary>"
    return (
        f'<div class="highlight-ipynb hl-python"><details class="hp-library">{summary}<pre>'
        + html.escape(text, quote=False)
        + "</pre></details></div>"
    )


def clean_notebook_page(html_text: str, where: str, stylesheet_link: str) -> tuple[str, str]:
    """返回 (清理后的网页, 抽出来的 Jupyter 样式)。"""
    html_text = _CDN_SCRIPTS.sub("", html_text)
    html_text = _LIST_AS_CSS.sub("", html_text)
    css = _JUPYTER_CSS.search(html_text)
    if css is None:
        raise TemplateChanged(
            f"{where}：mkdocs-jupyter {MKDOCS_JUPYTER} 的输出里找不到 Jupyter 样式，模板可能变了"
        )
    html_text = html_text[: css.start()] + stylesheet_link + html_text[css.end() :]
    # Jupyter 的 Mermaid 块 -> Material 认得的 <pre class="mermaid"><code>，由本站的 Mermaid 画
    html_text = _JP_MERMAID.sub(
        lambda m: f'<pre class="mermaid"><code>{m[1].strip()}</code></pre>', html_text
    )
    html_text = _NB_CODE.sub(_plain_library_cell, html_text)
    leftover = _OTHER_HOST_SCRIPT.search(html_text)
    if leftover:
        raise TemplateChanged(f"{where}：笔记本网页里还有从别的主机加载的脚本：{leftover[0]}")
    return html_text, css[1]


# ---------------------------------------------------------------- 3. 笔记本网页的标题 id
# nbconvert（mkdocs-jupyter 用它渲染）给标题起 id 时去掉了全部汉字（“第 1 步：准备数据”成了 "1"，会重复；
# 上游同类问题：https://github.com/jupyter/nbconvert/issues/1233），mkdocs-jupyter 的侧栏目录又用另一种算法，两者对不上。
# 这里按网站其他页面的规则（hello_build.slugs）重新起 id，再让目录指向它们。

_NB_HEADING = re.compile(
    r'<h(?P<level>[1-6]) id="[^"]*">(?P<body>.*?)<a class="anchor-link" href="#[^"]*">¶</a>', re.S
)


def fix_heading_ids(html_text: str, toc) -> str:
    used: dict[str, int] = {}
    headings: list[tuple[str, str]] = []

    def rename(match: re.Match[str]) -> str:
        text = html.unescape(re.sub(r"<[^>]+>", "", match["body"])).strip()
        base = slugify(text, "-") or "section"
        count = used.get(base, 0)
        used[base] = count + 1
        new = base if count == 0 else f"{base}_{count}"
        headings.append((text, new))
        return f'<h{match["level"]} id="{new}">{match["body"]}<a class="anchor-link" href="#{new}">¶</a>'

    html_text = _NB_HEADING.sub(rename, html_text)

    def within(short: str, full: str) -> bool:
        """short 的字符（去掉空白）按顺序出现在 full 里。"""
        rest = iter(re.sub(r"\s+", "", full))
        return all(char in rest for char in re.sub(r"\s+", "", short))

    def walk(items) -> None:
        for item in items:
            # 目录里的标题丢了行内代码（“torch.compile：…”只剩“：…”），按字符顺序找对应的标题，并补全标题文字
            found = next((n for n, (text, _) in enumerate(headings) if within(item.title, text)), None)
            if found is not None:
                item.title, item.id = headings[found]
                del headings[: found + 1]
            walk(item.children)

    walk(toc)
    return html_text


# ---------------------------------------------------------------- 4. import torch 时的弃用警告
# torch 2.13.0 的 torch/utils/mkldnn.py 用了已经弃用的 @torch.jit.script_method，导入它（torch.compile 会导入它）
# 时发出一条 DeprecationWarning；MkDocs 把它记成带回溯的 INFO，构建日志里多出一屏，
# 与本站的代码无关。上游：torch 自己的源码（https://github.com/pytorch/pytorch/blob/main/torch/utils/mkldnn.py）。
# 只在构建进程里忽略这一条；检查：在新进程里导入 torch.utils.mkldnn，看它还发不发这条警告。

TORCH_JIT_WARNING = r"`torch\.jit\.script_method` is deprecated"


def torch_mkldnn_import_warns() -> bool:
    import subprocess
    import sys

    probe = "import warnings; warnings.simplefilter('always'); import torch.utils.mkldnn"
    result = subprocess.run(
        [sys.executable, "-W", "always", "-c", probe], capture_output=True, text=True, check=False
    )
    return bool(re.search(TORCH_JIT_WARNING, result.stderr))


def quiet_torch_import() -> None:
    warnings.filterwarnings("ignore", message=TORCH_JIT_WARNING, category=DeprecationWarning)


# ---------------------------------------------------------------- 5. 打印页里没加前缀的 id
# mkdocs-print-site-plugin 2.9 把各章拼成一页时，给章内的 id 加上章的前缀（"fnref:lora" -> "part2-ch04_lora-fnref:lora"），
# 链接的 href 全都跟着改，id 却有两类漏改（mkdocs_print_site_plugin/urls.py 的 update_anchor_ids）：它只改 h1–h6、sup、li
# 上的 id（本站正文里的跳转目标 <span id="erratum-5"> 从来不改）；它用 `<([^\s]+)` 取标签名，中文正文里没有空格，
# <sup id="fnref:…"> 前面的一整段文字都被当成了标签名，脚注引用的 id 也漏改了。结果是 90 个页内链接（73 个 id）
# 指向不存在的目标，同名脚注的 id 在整本书里重复；而 Chromium 打印时每一页都要为每个找不到目标的页内链接查一遍
# 整个文档，打印 386 页从 13 秒变成 93 秒。上游同类问题（英文页面上已修好的脚注链接）：
# https://github.com/timvink/mkdocs-print-site-plugin/issues/41。
# 绕行：打印页写好以后，在每一章里把这样漏改的 id 补上前缀——只改有链接指向“前缀-id”、而“前缀-id”还不存在的那些。
# 检查：拿一段中文加脚注的 HTML 调用上面那个函数，看 sup 的 id 改没改。
# 同一个函数还把指向书外页面（mkdocs.yml 里 print-site 的 exclude，例如运行时间表）的链接从改坏了的 "#runtime"
# 改回网站上那一页的地址：PDF 里点它打开网站。

_PRINT_SECTION = re.compile(r'<section class="print-page" id="(?P<key>[^"]+)"')
_ID = re.compile(r'(?P<head>\sid=")(?P<id>[^"]+)(?=")')


def print_site_prefixes_ids_after_cjk_text() -> bool:
    from mkdocs_print_site_plugin.urls import update_anchor_ids

    return 'id="k-fnref:1"' in update_anchor_ids(
        '<p>中文正文<sup id="fnref:1"><a href="#fn:1">1</a></sup></p>', "k"
    )


def page_key(url: str) -> str:
    """print-site 给一页起的键（它的 urls.get_page_key）：打印页里这一章的 id 和章内 id 的前缀。"""
    from mkdocs_print_site_plugin.urls import get_page_key

    return get_page_key(url)


def fix_print_page(html_text: str, pages: dict[str, str]) -> tuple[str, int, int]:
    """pages：每一页的键 -> 它在网站上的绝对地址。返回改好的打印页、补上前缀的 id 个数和改成网站地址的链接个数。"""
    html_text, prefixed = _prefix_ids(html_text)
    existing = set(re.findall(r'\sid="([^"]+)"', html_text))
    outside = 0

    def to_site(match: re.Match[str]) -> str:
        nonlocal outside
        target = html.unescape(match[2])
        if target in existing:
            return match[0]
        # 只改指向书外页面的；书里的页面（打印页里有以它的键为 id 的一节）的坏链接留给 hello_build.pdf 报错
        for key in sorted(pages.keys() - existing, key=len, reverse=True):
            if target == key or target.startswith(key + "-"):
                outside += 1
                anchor = target[len(key) + 1 :]
                return f'{match[1]}"{html.escape(pages[key] + ("#" + anchor if anchor else ""))}"'
        return match[0]

    html_text = re.sub(r'(<a\s[^>]*?href=)"#([^"]+)"', to_site, html_text)
    return html_text, prefixed, outside


def _prefix_ids(html_text: str) -> tuple[str, int]:
    targets = set(re.findall(r'href="[^"#]*#([^"]+)"', html_text))
    existing = set(re.findall(r'\sid="([^"]+)"', html_text))
    starts = list(_PRINT_SECTION.finditer(html_text))
    parts, fixed, position = [], 0, 0
    for number, start in enumerate(starts):
        end = starts[number + 1].start() if number + 1 < len(starts) else len(html_text)
        key = start["key"]

        def prefix(match: re.Match[str], key: str = key) -> str:
            nonlocal fixed
            wanted = f"{key}-{match['id']}"
            if wanted in targets and wanted not in existing:
                fixed += 1
                return f"{match['head']}{wanted}"
            return match[0]

        parts += [html_text[position : start.start()], _ID.sub(prefix, html_text[start.start() : end])]
        position = end
    parts.append(html_text[position:])
    return "".join(parts), fixed
