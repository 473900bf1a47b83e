"""首页：snippet 单独运行（python snippets/index.py）时打印的内容，原样出现在构建出的页面里。"""

import subprocess
import sys

import torch

from tests.conftest import ROOT


def _run_on_its_own() -> str:
    result = subprocess.run(
        [sys.executable, "snippets/index.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return result.stdout


def test_env_prints_the_installed_torch(run_snippet):
    out = run_snippet("snippets/index.py").stdout
    assert f"PyTorch 版本: {torch.__version__}" in out
    assert f"CUDA 可用: {torch.cuda.is_available()}" in out


def test_page_shows_exactly_what_the_snippet_printed(built_site):
    assert built_site.outputs("index.md") == [_run_on_its_own()]
