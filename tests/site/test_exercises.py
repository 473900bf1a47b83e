"""每个讲内容的章节页以“小结”和“练习”结尾；每道练习都有折叠起来的参考答案，写代码的答案在构建时真的运行。

页面的写法（docs/part1/ch03_algorithm.md 是样板）：

    ## 3.5 小结            （本页的节有编号就接着编号，没有编号就只写“小结”）
    - 3–6 条要点
    ## 3.6 练习
    1. **理解**：……        （标签是 理解 / 动手 / 探索 之一）
    2. **动手**：……
    ### 参考答案
    ??? success "练习 1"
        ……（动手题的答案里有执行代码块，包含本页 snippet 的具名片段）

答案放在全部练习之后、自己的标题下面：笔记本从页面生成，在 Jupyter 和 Colab 里折叠不起来，读者也能先做题再看答案。
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import DOCS, ROOT

TEACHING_PAGES = sorted(p for p in DOCS.glob("part*/ch*.md"))
KINDS = ("理解", "动手", "探索")
H2 = re.compile(r"^## (?:\d+\.\d+ )?(?P<title>.+)$", re.MULTILINE)
EXERCISE = re.compile(r"^(?P<n>\d+)\. \*\*(?P<kind>[^*]+)\*\*：", re.MULTILINE)
SOLUTION = re.compile(r'^\?\?\? success "练习 (?P<n>\d+)"\n(?P<body>(?:(?: {4}.*)?\n)*)', re.MULTILINE)
EXEC_INCLUDE = re.compile(r'^ {4}```python exec="on"[^\n]*\n {4}--8<-- "(?P<target>[^"]+)"', re.MULTILINE)


def parse(text: str) -> dict:
    """页面 -> 小结的要点、练习（编号、标签、正文）和答案（编号 -> 正文）。"""
    headings = [(m["title"].strip(), m.start(), m.end()) for m in H2.finditer(text)]
    titles = [title for title, _, _ in headings]
    if titles[-2:] != ["小结", "练习"]:
        return {"titles": titles}
    summary = text[headings[-2][2] : headings[-1][1]]
    exercises_part, _, solutions_part = text[headings[-1][2] :].partition("\n### 参考答案\n")
    exercises = [(int(m["n"]), m["kind"]) for m in EXERCISE.finditer(exercises_part)]
    solutions = {int(m["n"]): m["body"] for m in SOLUTION.finditer(solutions_part)}
    return {
        "titles": titles,
        "bullets": [line for line in summary.splitlines() if line.startswith("- ")],
        "exercises": exercises,
        "has_solutions_heading": bool(solutions_part),
        "solutions": solutions,
    }


def has_code(text: str) -> bool:
    return 'exec="on"' in text


def check(md: Path, docs: Path = DOCS) -> None:
    text = md.read_text(encoding="utf-8")
    page = parse(text)
    name = md.relative_to(docs).as_posix()
    assert "bullets" in page, f"{name}：最后两个二级标题应是“小结”和“练习”，实际是 {page['titles'][-2:]}"
    assert 3 <= len(page["bullets"]) <= 6, f"{name}：小结应有 3–6 条要点，实际 {len(page['bullets'])} 条"
    exercises = page["exercises"]
    assert 3 <= len(exercises) <= 6, f"{name}：应有 3–6 道练习，实际 {len(exercises)} 道"
    assert [n for n, _ in exercises] == list(range(1, len(exercises) + 1)), f"{name}：练习编号应从 1 连续"
    assert all(kind in KINDS for _, kind in exercises), f"{name}：练习的标签只能是 {KINDS}：{exercises}"
    assert page["has_solutions_heading"], f"{name}：全部练习之后应有“### 参考答案”"
    assert sorted(page["solutions"]) == [n for n, _ in exercises], (
        f'{name}：每道练习都要有折叠的答案（??? success "练习 n"），实际有 {sorted(page["solutions"])}'
    )
    hands_on = [n for n, kind in exercises if kind == "动手"]
    if has_code(text):
        assert len(hands_on) >= 2, f"{name}：有代码的页面至少要有 2 道动手题，实际 {len(hands_on)} 道"
    stem = md.stem
    for n in hands_on:
        targets = EXEC_INCLUDE.findall(page["solutions"][n])
        assert targets, f"{name}：动手题 {n} 的答案里应有在构建时运行的代码块"
        assert all(Path(t.partition(":")[0]).stem in (stem, f"{stem}_exercises") for t in targets), (
            f"{name}：动手题 {n} 的答案应包含本页的 snippet 文件：{targets}"
        )


@pytest.mark.parametrize("md", TEACHING_PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_teaching_page_ends_with_summary_and_exercises(md):
    check(md)


def test_every_part_has_teaching_pages():
    assert {md.parent.name for md in TEACHING_PAGES} == {"part1", "part2", "part3"}
    assert len(TEACHING_PAGES) >= 20


GOOD = """# t

## 1.1 正文

```python exec="on" session="x"
--8<-- "snippets/part1/x.py:a"
```

## 1.2 小结

- 一
- 二
- 三

## 1.3 练习

1. **理解**：为什么？
2. **动手**：改一改。
3. **动手**：再改。

### 参考答案

??? success "练习 1"
    因为。

??? success "练习 2"
    ```python exec="on" session="x" source="above" result="text"
    --8<-- "snippets/part1/x.py:exercise_a"
    ```

??? success "练习 3"
    ```python exec="on" session="x" source="above" result="text"
    --8<-- "snippets/part1/x.py:exercise_b"
    ```
"""


@pytest.mark.parametrize(
    ("broken", "message"),
    [
        (GOOD.replace("## 1.2 小结", "## 1.2 总结"), "最后两个二级标题"),
        (GOOD.replace("- 三\n", ""), "3–6 条要点"),
        (GOOD.replace("3. **动手**：再改。\n", ""), "3–6 道练习"),
        (GOOD.replace("**理解**", "**思考**"), "标签"),
        (GOOD.replace('??? success "练习 1"\n    因为。\n', ""), "每道练习都要有"),
        (GOOD.replace("### 参考答案\n", ""), "参考答案"),
        (GOOD.replace("2. **动手**", "2. **理解**"), "至少要有 2 道动手题"),
        (
            GOOD.replace('    --8<-- "snippets/part1/x.py:exercise_b"', '    --8<-- "snippets/part1/y.py:b"'),
            "本页的",
        ),
        (
            GOOD.replace(
                '    ```python exec="on" session="x" source="above" result="text"\n    --8<-- "snippets/part1/x.py:exercise_a"\n    ```\n',
                "    见上。\n",
            ),
            "构建时运行",
        ),
    ],
)
def test_the_check_catches_each_missing_piece(tmp_path, broken, message):
    good = tmp_path / "x.md"
    good.write_text(GOOD, encoding="utf-8")
    check(good, tmp_path)
    bad = tmp_path / "x.md"
    bad.write_text(broken, encoding="utf-8")
    with pytest.raises(AssertionError, match=message):
        check(bad, tmp_path)
