"""笔记本的链接：网站里的下载地址、“在 Colab 中打开”的地址，以及章节页标题下面的三个按钮。"""

from __future__ import annotations

import html
import posixpath
import re

BRANCH = "notebooks"  # .github/workflows/pages.yml 把网站里的 .ipynb 推送到这个分支，Colab 从那里打开
PREFIX = "notebooks/"  # 笔记本在网站里的位置


class NotOnGitHub(ValueError):
    pass


def relative(url: str, base: str) -> str:
    """从网站里的 base 页面到 url 的相对地址（两者都相对网站根，目录形式的地址以 / 结尾）。"""
    base = base or "."
    head, tail = posixpath.split(base)
    base = (head or ".") if "." in tail else base
    rel = posixpath.relpath(url or ".", base)
    return rel + "/" if url.endswith("/") and not rel.endswith("/") else rel


def notebook_uri(page: str) -> str:
    return PREFIX + page.removesuffix(".md") + ".ipynb"


def download_uri(notebook_url: str, uri: str) -> str:
    """mkdocs-jupyter（include_source）把 .ipynb 复制到笔记本网页所在的目录。"""
    return notebook_url + posixpath.basename(uri)


def colab_url(repo_url: str, download: str) -> str:
    repo = re.match(r"^https://github\.com/([^/]+/[^/]+?)(?:\.git)?/?$", repo_url or "")
    if repo is None:
        raise NotOnGitHub(
            f"repo_url 必须是 GitHub 仓库地址（Colab 只能打开 GitHub 上的笔记本），现在是 {repo_url!r}"
        )
    return f"https://colab.research.google.com/github/{repo[1]}/blob/{BRANCH}/{download.removeprefix(PREFIX)}"


def buttons(here: str, page_url: str, notebook_url: str, download: str, colab: str) -> str:
    """here="page"：章节页上的按钮（去笔记本网页）；here="notebook"：笔记本网页上的按钮（回到章节页）。"""
    at = page_url if here == "page" else notebook_url
    web = (
        f'<a class="md-button" href="{relative(notebook_url, at)}">Jupyter 笔记本</a> '
        if here == "page"
        else f'<a class="md-button" href="{relative(page_url, at)}">返回网页</a> '
    )
    return (
        '<p class="hp-notebook-links">'
        + web
        + f'<a class="md-button" href="{relative(download, at)}" download>下载 .ipynb</a> '
        f'<a class="md-button" href="{html.escape(colab)}">在 Colab 中打开</a></p>'
    )
