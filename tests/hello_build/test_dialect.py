"""hello_build.dialect：执行代码块、包含语句和具名片段只在这里解析；它的结果必须与 pymdownx.snippets 真正包含的一致。"""

from __future__ import annotations

import markdown
import pytest

from hello_build import dialect

SNIPPET = """\
import os

# --8<-- [start:first]
value = 1
# --8<-- [end:first]

def f():
    # --8<-- [start:inner]
    return value + 1
    # --8<-- [end:inner]
"""
FENCE = '```python exec="on" session="s" result="text"\n--8<-- "snippets/x.py:first"\n```\n'


def test_add_ids_labels_exec_fences_once():
    text = "# 页\n\n" + FENCE + '\n```python title="x"\n--8<-- "snippets/x.py:first"\n```\n'
    labelled = dialect.add_ids(text)
    assert 'session="s" result="text" id="snippets/x.py:first"' in labelled
    assert labelled.count('id="') == 1, "只给执行代码块加 id"
    assert dialect.add_ids(labelled) == labelled, "已有 id 的不再加"


def test_section_code_equals_what_pymdownx_snippets_includes(tmp_path):
    (tmp_path / "snippets").mkdir()
    (tmp_path / "snippets" / "x.py").write_text(SNIPPET, encoding="utf-8")
    md = markdown.Markdown(
        extensions=["pymdownx.snippets"],
        extension_configs={"pymdownx.snippets": {"base_path": [str(tmp_path)], "dedent_subsections": True}},
    )
    for section in ("first", "inner"):
        included = md.convert(f'```\n--8<-- "snippets/x.py:{section}"\n```')
        ours = dialect.section_code(tmp_path, f"snippets/x.py:{section}")
        assert ours in included.replace("<p><code>", "").replace("</code></p>", ""), (section, included)
    assert dialect.section_code(tmp_path, "snippets/x.py:inner") == "return value + 1"


def test_first_line_points_into_the_file(tmp_path):
    (tmp_path / "snippets").mkdir()
    (tmp_path / "snippets" / "x.py").write_text(SNIPPET, encoding="utf-8")
    lines = SNIPPET.splitlines()
    assert lines[dialect.first_line(tmp_path, "snippets/x.py:first") - 1] == "value = 1"
    assert lines[dialect.first_line(tmp_path, "snippets/x.py:inner") - 1].strip() == "return value + 1"


def test_the_markdown_extension_adds_ids_before_snippets_expand(tmp_path):
    """在真正的 Markdown 转换里：扩展在 pymdownx.snippets 之前运行，所以 id 里还是包含目标。"""
    seen = []

    class Spy(markdown.preprocessors.Preprocessor):
        def run(self, lines):
            seen.append("\n".join(lines))
            return lines

    class SpyExtension(markdown.Extension):
        def extendMarkdown(self, md):
            md.preprocessors.register(Spy(md), "spy", 31)  # snippets（32）之后

    (tmp_path / "snippets").mkdir()
    (tmp_path / "snippets" / "x.py").write_text(SNIPPET, encoding="utf-8")
    md = markdown.Markdown(
        extensions=["hello_build.dialect", "pymdownx.snippets", SpyExtension()],
        extension_configs={"pymdownx.snippets": {"base_path": [str(tmp_path)], "dedent_subsections": True}},
    )
    md.convert(FENCE)
    assert 'id="snippets/x.py:first"' in seen[0] and "value = 1" in seen[0]


def test_sessions_targets_and_measurements():
    page = FENCE + FENCE.replace('result="text"', 'measure="yes"').replace(":first", ":t")
    assert dialect.sessions(page) == {"s"}
    blocks = dialect.exec_blocks(page)
    assert [(str(b.target), b.session, b.measure) for b in blocks] == [
        ("snippets/x.py:first", "s", False),
        ("snippets/x.py:t", "s", True),
    ]
    assert dialect.measured_targets(page) == {"snippets/x.py:t"}


@pytest.mark.parametrize("value", ["on", "maybe", "take"])
def test_an_unknown_measure_value_is_an_error(value):
    with pytest.raises(ValueError, match="measure"):
        dialect.exec_blocks(FENCE.replace('result="text"', f'measure="{value}"'))


def test_segments_split_prose_code_and_boxes():
    page = """\
前言。

```python exec="on" session="s" result="text"
--8<-- "snippets/x.py:first"
```

!!! note "提示"
    框里的字。

    ```python exec="on" session="s" html="true"
    --8<-- "snippets/x.py:plot"
    ```

=== "标签"

    标签里的字。

```python title="库"
--8<-- "snippets/_lib.py:gpt"
```
"""
    items = dialect.segments(page.splitlines())
    kinds = [item[0] for item in items]
    assert kinds == ["md", "code", "box", "box", "show"]
    assert items[1] == ("code", "snippets/x.py:first", "text")
    title, kind, inner = items[2][1:]
    assert (title, kind) == ("提示", "note")
    assert inner[0] == ("md", "框里的字。") and inner[1] == ("code", "snippets/x.py:plot", "html")
    assert items[3][1:3] == ("标签", None)
    assert items[4] == ("show", "snippets/_lib.py:gpt", "库", "python")


def test_libraries_are_the_private_modules_the_pages_snippet_uses(tmp_path):
    """页面的库模块是它的 snippet 用到的 _*.py：导入的，或者按路径运行的（torchrun 启动的 worker 脚本），
    以及它们再用到的，包括别的部分的（第三部分的 worker 导入第二部分的 _tinygpt）。没用到的不算。"""
    files = {
        "part2/_gpt.py": "from _data import rows\n",
        "part2/_data.py": "rows = 3\n",
        "part2/_unused.py": "",
        "part3/_worker.py": "import os\nfrom _gpt import GPT  # 第二部分的库\nimport _helper\n",
        "part3/_helper.py": "",
        "part3/_runner.py": "",
        "part3/_unused.py": "",
        "part3/page.py": 'from _worker import run\n\nRUNNER = Path("snippets/part3/_runner.py")\n',
    }
    for name, text in files.items():
        (tmp_path / "snippets" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "snippets" / name).write_text(text, encoding="utf-8")
    found = [
        p.relative_to(tmp_path / "snippets").as_posix() for p in dialect.libraries(tmp_path, "part3/page.md")
    ]
    assert found == [
        "part3/_worker.py",
        "part3/_runner.py",
        "part2/_gpt.py",
        "part3/_helper.py",
        "part2/_data.py",
    ]
    assert dialect.libraries(tmp_path, "part2/none.md") == [], "没有 snippet 的页面没有库"
    assert dialect.libraries(tmp_path, "index.md") == []
