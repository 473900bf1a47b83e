"""hello_build.execute：会话、缓存、超时、写明出处的错误，以及接进 markdown-exec 公开接口的自定义代码块。"""

from __future__ import annotations

import threading

import markdown
import markdown_exec
import pytest

from hello_build import execute
from hello_build.settings import Settings
from hello_build.store import Store

SNIPPET = """\
# --8<-- [start:define]
from dataclasses import dataclass

@dataclass
class Point:
    x: int

value = 20
print("第一块", value)
# --8<-- [end:define]

# --8<-- [start:use]
print("第二块", value + 1, Point(3))
# --8<-- [end:use]

# --8<-- [start:boom]
numerator = 1
ratio = numerator / 0
# --8<-- [end:boom]

# --8<-- [start:slow]
while True:
    pass
# --8<-- [end:slow]
"""


def code(section: str) -> str:
    from hello_build.dialect import section_code

    return section_code(ROOT, f"snippets/x.py:{section}")


@pytest.fixture
def root(tmp_path):
    global ROOT
    (tmp_path / "snippets").mkdir()
    (tmp_path / "snippets" / "x.py").write_text(SNIPPET, encoding="utf-8")
    ROOT = tmp_path
    return tmp_path


def make(root, **settings):
    executor = execute.Executor(Settings(root=root, **settings), Store(root / ".cache" / "exec"))
    executor.start_page("x.md", {"x"}, [])
    return executor


def run(executor, section):
    return executor.run(code(section), session="x", id=f"snippets/x.py:{section}")


def test_blocks_of_a_session_share_state_and_capture_stdout(root):
    executor = make(root)
    assert run(executor, "define") == "第一块 20\n"
    assert run(executor, "use") == "第二块 21 Point(x=3)\n", "dataclass 需要会话模块在 sys.modules 里"
    assert [b.cached for b in executor.blocks("x.md")] == [False, False]


def test_error_names_page_file_section_line_and_code(root):
    executor = make(root)
    with pytest.raises(markdown_exec.ExecutionError):
        run(executor, "boom")
    message = executor.failures[-1]
    assert "docs/x.md" in message and "snippets/x.py:boom" in message and "ZeroDivisionError" in message
    line = SNIPPET.splitlines().index("ratio = numerator / 0") + 1
    assert f"出错位置：snippets/x.py 第 {line} 行：ratio = numerator / 0" in message
    assert "execute.py" not in message, "回溯里不该有构建包自己的帧"


def test_timeout_stops_a_hanging_block(root):
    executor = make(root, block_timeout=1)
    with pytest.raises(markdown_exec.ExecutionError):
        run(executor, "slow")
    assert "运行超过 1 秒" in executor.failures[-1] and "snippets/x.py:slow" in executor.failures[-1]


def test_a_time_limit_off_the_main_thread_fails_instead_of_being_ignored(root):
    """SIGALRM 只能在主线程里用：不在主线程时，有时限的构建报错（说明怎样明确关掉时限），而不是悄悄不限时。"""
    results = {}

    def in_thread(name, timeout):
        executor = make(root, block_timeout=timeout)
        try:
            results[name] = run(executor, "define")
        except markdown_exec.ExecutionError:
            results[name] = executor.failures[-1]

    for name, timeout in (("有时限", 5), ("不限时", 0)):
        worker = threading.Thread(target=in_thread, args=(name, timeout))
        worker.start()
        worker.join()
    assert "不在主线程" in results["有时限"] and "HELLO_PYTORCH_BLOCK_TIMEOUT=0" in results["有时限"]
    assert results["不限时"] == "第一块 20\n"


def test_cache_hits_replay_earlier_blocks_when_a_later_one_runs(root):
    make_and_run = make(root)
    run(make_and_run, "define")
    run(make_and_run, "use")
    warm = make(root)
    assert run(warm, "define") == "第一块 20\n"
    assert [b.cached for b in warm.blocks("x.md")] == [True]
    # 第二块换了代码：没命中，前面命中的块先补跑，变量才齐全
    output = warm.run(code("use").replace("+ 1", "+ 2"), session="x", id="snippets/x.py:use")
    assert output == "第二块 22 Point(x=3)\n"
    assert [b.cached for b in warm.blocks("x.md")] == [True, False]


def test_cold_settings_read_no_cache(root):
    run(make(root), "define")
    cold = make(root, cold=True)
    run(cold, "define")
    assert [b.cached for b in cold.blocks("x.md")] == [False]


def test_a_library_change_changes_the_chain(root):
    library = root / "snippets" / "_lib.py"
    library.write_text("A = 1\n", encoding="utf-8")
    first = make(root)
    first.start_page("x.md", {"x"}, [library])
    run(first, "define")
    library.write_text("A = 2\n", encoding="utf-8")
    second = make(root)
    second.start_page("x.md", {"x"}, [library])
    run(second, "define")
    assert [b.cached for b in second.blocks("x.md")] == [False], "库变了，这一页的缓存全部失效"


class _Dist:
    def __init__(self, name, version):
        self.metadata, self.version = {"Name": name}, version


@pytest.mark.parametrize("package", ["torch", "numpy", "matplotlib", "markdown-exec", "pygments"])
def test_fingerprint_covers_every_installed_version(monkeypatch, package):
    names = ["torch", "numpy", "matplotlib", "markdown-exec", "pygments"]
    monkeypatch.setattr(execute, "distributions", lambda: [_Dist(n, "1.0") for n in names])
    execute.fingerprint.cache_clear()
    before = execute.fingerprint()
    monkeypatch.setattr(
        execute, "distributions", lambda: [_Dist(n, "2.0" if n == package else "1.0") for n in names]
    )
    execute.fingerprint.cache_clear()
    assert execute.fingerprint() != before, f"{package} 换了版本，缓存必须失效"
    execute.fingerprint.cache_clear()


def test_fingerprint_covers_python_cpu_and_threads(monkeypatch):
    execute.fingerprint.cache_clear()
    before = execute.fingerprint()
    monkeypatch.setattr(execute, "cpu_capability", lambda: "ANOTHER_ISA")
    execute.fingerprint.cache_clear()
    assert execute.fingerprint() != before, "换一种 CPU 指令集，输出可能不同，缓存必须失效"
    monkeypatch.undo()
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    execute.fingerprint.cache_clear()
    assert execute.fingerprint() != before
    monkeypatch.undo()
    monkeypatch.setattr(execute.platform, "python_version", lambda: "3.99.0")
    execute.fingerprint.cache_clear()
    assert execute.fingerprint() != before
    execute.fingerprint.cache_clear()


def _markdown(root, executor):
    execute.use(executor)
    return markdown.Markdown(
        extensions=["hello_build.dialect", "pymdownx.snippets", "pymdownx.superfences"],
        extension_configs={
            "pymdownx.snippets": {"base_path": [str(root)], "dedent_subsections": True, "check_paths": True},
            "pymdownx.superfences": {
                "custom_fences": [
                    {
                        "name": "python",
                        "class": "python",
                        "validator": execute.validator,
                        "format": execute.format,
                    }
                ]
            },
        },
    )


def test_the_custom_fence_runs_and_caches_rendered_html(root):
    page = (
        '```python exec="on" session="x" source="above" result="text"\n--8<-- "snippets/x.py:define"\n```\n'
    )
    first = make(root)
    html = _markdown(root, first).convert(page)
    assert "第一块 20" in html and "dataclass" in html, "源码在上、输出在下"
    warm = make(root)
    assert _markdown(root, warm).convert(page) == html
    assert [b.cached for b in warm.blocks("x.md")] == [True]
    execute.use(None)


def test_a_markdown_config_change_is_not_served_from_the_html_cache(root):
    """同一个代码块，Markdown 扩展的配置变了（这里：代码高亮加行号），缓存的 HTML 不能再用。"""
    page = '```python exec="on" session="x" source="above"\n--8<-- "snippets/x.py:define"\n```\n'
    plain = _markdown(root, make(root)).convert(page)
    again = _markdown(root, make(root)).convert(page)
    assert again == plain, "配置没变：同样的 HTML（签名在两个 Markdown 实例之间相同）"
    numbered = _markdown(root, make(root))
    numbered.registerExtensions(["pymdownx.highlight"], {"pymdownx.highlight": {"linenums": True}})
    assert numbered.convert(page) != plain, "配置变了：重新渲染，而不是取用旧的 HTML"
    execute.use(None)


def test_measure_option_marks_the_block(root):
    page = '```python exec="on" session="x" measure="yes"\n--8<-- "snippets/x.py:define"\n```\n'
    executor = make(root)
    _markdown(root, executor).convert(page)
    assert [b.measurement for b in executor.blocks("x.md")] == [True]
    execute.use(None)


def test_standalone_fence_raises_so_the_build_fails(root):
    """没有 MkDocs 适配层时（Zensical），出错的代码块让 Markdown 转换本身失败，而不是悄悄渲染出错误信息。"""
    from pymdownx.superfences import SuperFencesException

    page = '```python exec="on" session="x" result="text"\n--8<-- "snippets/x.py:boom"\n```\n'
    executor = make(root)
    assert executor.raise_in_fence
    with pytest.raises(SuperFencesException, match=r"snippets/x\.py:boom"):
        _markdown(root, executor).convert(page)
    quiet = make(root)
    quiet.raise_in_fence = False
    _markdown(root, quiet).convert(page)
    assert quiet.failures, "适配层模式下记下错误，由适配层让构建失败"
    execute.use(None)


@pytest.mark.parametrize(
    "options",
    ['source="abvoe"', 'width="80px"', 'measure="maybe"'],  # 渲染时出错 / 检查选项时出错 / 本站的选项写错
)
def test_a_wrong_option_fails_instead_of_showing_the_block_as_text(root, options):
    """superfences 吞掉自定义代码块的异常、把块当普通文字显示；选项写错也必须让构建失败。"""
    from pymdownx.superfences import SuperFencesException

    page = f'```python exec="on" session="x" {options}\n--8<-- "snippets/x.py:define"\n```\n'
    with pytest.raises(SuperFencesException, match=r"docs/x\.md"):
        _markdown(root, make(root)).convert(page)
    quiet = make(root)
    quiet.raise_in_fence = False
    _markdown(root, quiet).convert(page)
    assert quiet.failures and "docs/x.md" in quiet.failures[0]
    execute.use(None)


def test_same_session_name_on_two_pages_shares_nothing(root):
    executor = make(root)
    run(executor, "define")
    executor.start_page("other.md", {"x"}, [])
    with pytest.raises(markdown_exec.ExecutionError):
        run(executor, "use")  # 另一页的同名会话里没有 value
    assert "NameError" in executor.failures[-1]
    assert [b.output for b in executor.blocks("x.md")] == ["第一块 20\n"], "第一页的记录还在"


def test_editing_an_earlier_block_misses_every_later_one(root):
    first = make(root)
    run(first, "define")
    run(first, "use")
    edited = make(root)
    edited.run(code("define").replace("value = 20", "value = 30"), session="x", id="snippets/x.py:define")
    assert run(edited, "use") == "第二块 31 Point(x=3)\n", "后面的块代码没变，但它前面的变了，必须重新运行"
    assert [b.cached for b in edited.blocks("x.md")] == [False, False]


def test_config_objects_enter_the_signature_by_content_not_by_address():
    """HTML 缓存签名里的配置对象：没有内存地址的按内容写出（两个不同的正则表达式签名不同），有地址的只写类型名
    （每次构建都相同）。"""
    import re as re_module

    assert execute._stable(re_module.compile("a")) != execute._stable(re_module.compile("b"))
    assert execute._stable(object()) == execute._stable(object()) == "object"
    assert execute._stable(len) == "builtins.len"
    assert execute._stable({"b", "a"}) == execute._stable({"a", "b"}) != execute._stable({"a"})
