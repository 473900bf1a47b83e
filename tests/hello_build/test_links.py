"""hello_build.notebooks.links：相对地址与 MkDocs 的算法一致；Colab 地址由 repo_url 算出。"""

from __future__ import annotations

import pytest
from mkdocs.utils import get_relative_url

from hello_build.notebooks import links

CASES = [
    ("notebooks/part1/ch03/", "part1/ch03/"),
    ("part1/ch03/", "notebooks/part1/ch03/"),
    ("notebooks/index/", ""),
    ("notebooks/index/index.ipynb", "notebooks/index/"),
    ("", "notebooks/index/"),
    ("runtime/", "part1/x/"),
    ("notebooks/index/", "index.html"),
    ("assets/notebooks/jupyter.css", "notebooks/part2/ch01_gpt/"),
]


@pytest.mark.parametrize(("url", "base"), CASES)
def test_relative_matches_mkdocs(url, base):
    assert links.relative(url, base) == get_relative_url(url, base or ".")


def test_colab_url_from_the_repository():
    url = links.colab_url("https://github.com/o/r", "notebooks/part1/x/x.ipynb")
    assert url == "https://colab.research.google.com/github/o/r/blob/notebooks/part1/x/x.ipynb"
    assert links.colab_url("https://github.com/o/r.git/", "notebooks/a.ipynb").endswith(
        "/o/r/blob/notebooks/a.ipynb"
    )
    with pytest.raises(links.NotOnGitHub):
        links.colab_url("https://gitlab.com/o/r", "notebooks/a.ipynb")


def test_buttons_point_both_ways():
    page = links.buttons(
        "page", "part1/x/", "notebooks/part1/x/", "notebooks/part1/x/x.ipynb", "https://colab/x"
    )
    assert 'href="../../notebooks/part1/x/"' in page and "download" in page and "https://colab/x" in page
    back = links.buttons("notebook", "part1/x/", "notebooks/part1/x/", "notebooks/part1/x/x.ipynb", "c")
    assert 'href="../../../part1/x/">返回网页' in back and 'href="x.ipynb"' in back
