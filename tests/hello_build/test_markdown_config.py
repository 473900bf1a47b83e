"""本项目 mkdocs.yml 里的 Markdown 配置本身（不用构建整个网站）：包含不能离开仓库、缺文件缺片段就报错、
代码块的输出作为文字显示。用的就是 mkdocs.yml 里的扩展和选项，改了配置，这些测试会变红。"""

from __future__ import annotations

import os

import markdown
import pytest
from mkdocs.config import load_config

from hello_build import execute
from hello_build.settings import Settings
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def config():
    return load_config(str(ROOT / "mkdocs.yml"))


@pytest.fixture
def project(tmp_path, monkeypatch):
    """一个临时的项目根目录（构建总在项目根目录运行，snippets 的 base_path 是 "."）。"""
    root = tmp_path / "project"
    (root / "snippets").mkdir(parents=True)
    monkeypatch.chdir(root)
    return root


def convert(config, text: str) -> str:
    md = markdown.Markdown(extensions=config.markdown_extensions, extension_configs=config.mdx_configs)
    return md.convert(text)


@pytest.mark.parametrize("target", ["../outside-secret.txt", "/etc/hostname"])
def test_includes_cannot_leave_the_project(config, project, target):
    secret = "TOP-SECRET-OUTSIDE"
    (project.parent / "outside-secret.txt").write_text(secret)
    with pytest.raises(Exception) as error:
        html = convert(config, f'```text\n--8<-- "{target}"\n```\n')
        assert secret not in html
    assert (
        "outside-secret" in str(error.value) or "hostname" in str(error.value) or "base" in str(error.value)
    )


def test_missing_file_or_section_fails(config, project):
    (project / "snippets" / "good.py").write_text("# --8<-- [start:ok]\nprint(1)\n# --8<-- [end:ok]\n")
    with pytest.raises(Exception, match="nope"):
        convert(config, '```text\n--8<-- "snippets/nope.py:x"\n```\n')
    with pytest.raises(Exception, match="missing"):
        convert(config, '```text\n--8<-- "snippets/good.py:missing"\n```\n')


HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)> **粗体** [链接](http://example.com)'


def test_text_output_is_escaped_never_injected(config, project):
    (project / "snippets" / "evil.py").write_text(
        f"# --8<-- [start:evil]\nprint({HOSTILE!r})\n# --8<-- [end:evil]\n"
    )
    executor = execute.Executor(Settings(root=project))
    executor.start_page("index.md", {"index"}, [])
    execute.use(executor)
    try:
        page = convert(
            config, '```python exec="on" session="index" result="text"\n--8<-- "snippets/evil.py:evil"\n```\n'
        )
    finally:
        execute.use(None)
    assert "&lt;script&gt;alert" in page, "输出应作为文字显示"
    assert '<script>alert("x")' not in page and "<img src=x onerror" not in page
    assert "<strong>粗体</strong>" not in page, "输出里的 Markdown 不应被渲染"


def test_the_python_fence_is_ours_and_nothing_imports_markdown_exec_internals():
    """执行代码块走本站的格式化函数；仓库里没有任何地方用 markdown-exec 的私有模块。"""
    fences = load_config(str(ROOT / "mkdocs.yml")).mdx_configs["pymdownx.superfences"]["custom_fences"]
    python = next(f for f in fences if f["name"] == "python")
    assert python["format"] is execute.format and python["validator"] is execute.validator
    offenders = [
        path.relative_to(ROOT).as_posix()
        for folder in ("hello_build", "tests", "snippets")
        for path in (ROOT / folder).rglob("*.py")
        if "markdown_exec." + "_internal" in path.read_text(encoding="utf-8")
    ] + (
        ["hooks.py"]
        if "markdown_exec." + "_internal" in (ROOT / "hooks.py").read_text(encoding="utf-8")
        else []
    )
    assert not offenders, offenders
    assert os.path.getsize(ROOT / "hooks.py") > 0
    assert len((ROOT / "hooks.py").read_text(encoding="utf-8").splitlines()) <= 120, "hooks.py 只转交事件"
