"""首页：snippet 独立运行时打印的内容，原样出现在构建出的页面里。"""

import torch


def test_env_prints_the_installed_torch(run_snippet):
    out = run_snippet("snippets/index.py").stdout
    assert f"PyTorch 版本: {torch.__version__}" in out
    assert f"CUDA 可用: {torch.cuda.is_available()}" in out


def test_page_shows_exactly_what_the_snippet_printed(run_snippet, built_site):
    out = run_snippet("snippets/index.py").stdout
    assert built_site.outputs("index.md") == [out]
