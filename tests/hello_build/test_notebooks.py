"""hello_build.notebooks：页面 -> 笔记本（纯函数）与后台运行（缓存、每本一个空目录、测量留到最后、取消）。"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from dataclasses import replace
from pathlib import Path

import nbformat
import pytest

from hello_build.notebooks.build import PageSource, make_notebook, notebook_pins, pins_from
from hello_build.notebooks.run import Job, NotebookFailed, Runner, kernel_process_group, output_key
from hello_build.store import Store

PAGE = """\
---
description: 说明
---

# 第一页

看[另一页](other.md#标题)和[外面](https://example.com)，还有脚注[^n]。

```python exec="on" session="part9/page" source="above" result="text"
--8<-- "snippets/part9/page.py:one"
```

!!! bug "勘误 1"
    框里。

    ```python exec="on" session="part9/page" measure="yes"
    --8<-- "snippets/part9/page.py:two"
    ```

=== "标签"

    标签里。

```python title="库"
--8<-- "snippets/part9/_lib.py:all"
```

```mermaid
graph LR
A --> B
click A "other/" "另一页"
```

[^n]: 脚注的内容。
"""
SNIPPET = '# --8<-- [start:one]\nfrom _lib import X\nprint("一", X)\n# --8<-- [end:one]\n\n# --8<-- [start:two]\nprint("二")\n# --8<-- [end:two]\n'
LIBRARY = "# --8<-- [start:all]\nX = 42\n# --8<-- [end:all]\n"


@pytest.fixture
def source(tmp_path):
    folder = tmp_path / "snippets" / "part9"
    folder.mkdir(parents=True)
    (folder / "page.py").write_text(SNIPPET, encoding="utf-8")
    (folder / "_lib.py").write_text(LIBRARY, encoding="utf-8")
    return PageSource(
        page="part9/page.md",
        markdown=PAGE,
        root=tmp_path,
        site_url="https://site.example/",
        page_url="part9/page/",
        resolve=lambda path: "part9/other/" if path == "part9/other.md" else None,
        pins={"torch": "9.9", "numpy": "1", "matplotlib": "2"},
        measured=frozenset({"snippets/part9/page.py:two"}),
    )


def test_page_becomes_a_valid_notebook_in_page_order(source):
    nb = make_notebook(source)
    nbformat.validate(nbformat.from_dict(nb))
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    roles = [c["metadata"]["hello_pytorch"]["role"] for c in code]
    assert roles == ["install", "setup", "setup", "library", "snippet", "snippet"]
    assert code[3]["source"] == "%%writefile snippets/part9/_lib.py\n" + LIBRARY.rstrip("\n")
    assert code[4]["source"] == 'from _lib import X\nprint("一", X)'
    assert code[5]["source"] == '%%display_as markdown\nprint("二")'
    assert code[5]["metadata"]["hello_pytorch"]["measurement"] is True
    assert "measurement" not in code[4]["metadata"]["hello_pytorch"]
    # 打印测量值的单元格构建时不运行（nbclient 跳过 skip-execution），前面有一段说明告诉读者为什么没有输出
    assert code[5]["metadata"]["tags"] == ["skip-execution"] and "tags" not in code[4]["metadata"]
    before = nb["cells"][nb["cells"].index(code[5]) - 1]
    assert before["cell_type"] == "markdown" and "计时单元格" in before["source"]
    assert json.dumps(source.pins) in code[0]["source"]


def test_markdown_reads_well_in_jupyter(source):
    text = "\n\n".join(c["source"] for c in make_notebook(source)["cells"] if c["cell_type"] == "markdown")
    assert "https://site.example/part9/other/#标题" in text, "站内链接变成网站上的绝对地址"
    assert "https://example.com" in text
    assert "<sup>[1]</sup>" in text and "## 注释\n\n1. 脚注的内容。" in text
    assert "> **勘误 1**" in text and "!!!" not in text, "提示框变成引用块"
    assert "**标签**" in text and "===" not in text
    assert 'click A "https://site.example/part9/page/other/"' in text, "Mermaid 里可点击的方框指向绝对地址"
    assert "```python\nX = 42\n```" in text, "只展示的库片段是 Markdown 里的代码块"
    assert "description:" not in text


def test_a_shown_file_that_is_not_a_library_keeps_its_language(source):
    """页面只展示的非 Python 文件（如集群的作业清单）：笔记本里用页面代码块的语言展示，不说准备单元格写好了它。"""
    folder = source.root / "snippets" / "part9" / "page"
    folder.mkdir()
    (folder / "job.yaml").write_text("kind: Job\n", encoding="utf-8")
    page = (
        source.markdown
        + '\n```yaml title="snippets/part9/page/job.yaml"\n--8<-- "snippets/part9/page/job.yaml"\n```\n'
    )
    nb = make_notebook(replace(source, markdown=page))
    cells = [c["source"] for c in nb["cells"] if c["cell_type"] == "markdown"]
    (shown,) = [c for c in cells if "job.yaml" in c]
    assert shown.endswith("```yaml\nkind: Job\n```"), shown
    assert "准备单元格" not in shown and "不运行" in shown
    (library,) = [c for c in cells if "X = 42" in c]
    assert "准备单元格已经把整个文件写好" in library


def test_pins_come_from_requirements():
    assert pins_from("torch==2.13.0  # x\nnumpy==2.4.6\nmatplotlib==3.11.2\nruff==1\n") == {
        "torch": "2.13.0",
        "numpy": "2.4.6",
        "matplotlib": "3.11.2",
    }
    assert pins_from("torch==2\nnumpy==1\nmatplotlib==3\ntransformers==5\n")["transformers"] == "5"
    with pytest.raises(ValueError, match="numpy"):
        pins_from("torch==2\nmatplotlib==3\n")


def test_a_package_only_some_chapters_use_is_installed_where_the_code_imports_it():
    pins = {"torch": "2", "numpy": "1", "matplotlib": "3", "transformers": "5", "safetensors": "0.8"}
    assert notebook_pins(pins, "import torch\n") == {"torch": "2", "numpy": "1", "matplotlib": "3"}
    used = notebook_pins(pins, "x = 1\n    from transformers import GPT2Config\nimport safetensors.torch\n")
    assert used == pins
    assert "transformers" not in notebook_pins(pins, "# transformers 在注释里\nname = 'transformers'\n")


def test_output_key_follows_the_code_only(source):
    nb = make_notebook(source)
    prose = json.loads(json.dumps(nb))
    prose["cells"][0]["source"] += "改过的文字"
    assert output_key(prose, "f") == output_key(nb, "f"), "只改文字，笔记本不重新运行"
    code = json.loads(json.dumps(nb))
    next(c for c in code["cells"] if c["cell_type"] == "code")["source"] += "\n# 改"
    assert output_key(code, "f") != output_key(nb, "f")
    assert output_key(nb, "g") != output_key(nb, "f"), "环境变了也重新运行"


def tiny(tmp_path, name: str, cells: list[str], measures: bool = False) -> Job:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    for n, text in enumerate(cells):
        cell = nbformat.v4.new_code_cell(text, id=f"c{n}")
        cell.metadata["hello_pytorch"] = {"role": "snippet", "measurement": measures and n == 0}
        nb.cells.append(cell)
    nb = json.loads(json.dumps(nb))
    return Job(
        f"{name}.md", f"notebooks/{name}.ipynb", tmp_path / "site" / f"{name}.ipynb", nb, output_key(nb, "f")
    )


def runner(tmp_path, workers=2) -> Runner:
    return Runner(Store(tmp_path / "outputs"), tmp_path / "run", timeout=60, workers=workers)


def test_notebooks_run_in_their_own_empty_directory_and_are_cached(tmp_path):
    job = tiny(
        tmp_path, "a", ["import os\nprint(sorted(os.listdir('.')))", "open('left.txt', 'w').write('x')"]
    )
    first = runner(tmp_path)
    first.start([job])
    first.finish()
    assert job.ran and not job.cached
    written = json.loads(job.path.read_text(encoding="utf-8"))
    assert "".join(written["cells"][0]["outputs"][0]["text"]) == "[]\n", "每本都从空目录开始"
    again = tiny(
        tmp_path, "a", ["import os\nprint(sorted(os.listdir('.')))", "open('left.txt', 'w').write('x')"]
    )
    second = runner(tmp_path)
    second.start([again])
    second.finish()
    assert again.cached and not again.ran, "代码没变，取自缓存"


def test_two_runners_sharing_a_store_run_each_notebook_once(tmp_path):
    """测试会话的预取和整站构建共用一个输出缓存：同一本笔记本只运行一次，后到的等锁、再取用先到的结果。"""
    cells = ["import os, time\ntime.sleep(2)\nprint(os.getpid())"]
    jobs = [tiny(tmp_path / name, "same", cells) for name in ("a", "b")]
    runners = [Runner(Store(tmp_path / "outputs"), tmp_path / "run", timeout=60, workers=1) for _ in jobs]
    for run, job in zip(runners, jobs, strict=True):
        run.start([job])
    for run in runners:
        run.finish()
    assert sorted((job.ran, job.cached) for job in jobs) == [(False, True), (True, False)]
    printed = [json.loads(job.path.read_text(encoding="utf-8"))["cells"][0]["outputs"] for job in jobs]
    assert printed[0] == printed[1], "两边的输出是同一次运行的（同一个内核进程号）"


def test_cpu_seconds_count_the_kernels_work_not_its_waiting(tmp_path):
    """执行预算按内核的 CPU 秒算笔记本：忙着算的时间算进去，等待（sleep、被别的进程抢走 CPU）不算。"""
    busy = "import time\nend = time.process_time() + 1.0\nwhile time.process_time() < end:\n    pass"
    job = tiny(tmp_path, "cpu", [busy, "time.sleep(2)"])
    run = runner(tmp_path)
    run.start([job])
    run.finish()
    assert job.cpu_seconds >= 1.0, job.cpu_seconds
    assert job.cpu_seconds <= job.seconds - 1.5, (job.cpu_seconds, job.seconds)
    again = tiny(tmp_path, "cpu", [busy, "time.sleep(2)"])
    cached = runner(tmp_path)
    cached.start([again])
    cached.finish()
    assert again.cached and again.cpu_seconds == job.cpu_seconds, "取自缓存时是当初那次运行的 CPU 秒"


def test_failure_names_the_notebook_page_and_error(tmp_path):
    job = tiny(tmp_path, "bad", ["raise ValueError('只在笔记本里出错')"])
    job.nb["cells"][0]["metadata"]["hello_pytorch"]["include"] = "snippets/bad.py:boom"
    run = runner(tmp_path)
    run.start([job])
    with pytest.raises(NotebookFailed, match=r"notebooks/bad\.ipynb") as error:
        run.finish()
    assert "docs/bad.md" in str(error.value) and "snippets/bad.py:boom" in str(error.value)
    assert "只在笔记本里出错" in str(error.value)


def test_a_cell_whose_kernel_dies_is_named(tmp_path):
    """内核死掉（例如内存不够被杀）时单元格里没有错误输出：报错仍要说出是哪一格，而不是“准备单元格”。"""
    job = tiny(tmp_path, "dies", ["print('先')", "import os; os._exit(1)"])
    job.nb["cells"][1]["metadata"]["hello_pytorch"]["include"] = "snippets/dies.py:exit"
    run = runner(tmp_path)
    run.start([job])
    with pytest.raises(NotebookFailed, match=r"snippets/dies\.py:exit"):
        run.finish()


def test_cancel_shuts_down_a_running_kernel(tmp_path):
    job = tiny(tmp_path, "long", ["import time; time.sleep(60)"])
    run = runner(tmp_path)
    run.start([job])
    deadline = time.time() + 30
    while not run._clients and time.time() < deadline:
        time.sleep(0.1)
    time.sleep(2)  # 内核已经开始运行那个单元格
    started = time.time()
    threading.Thread(target=run.cancel).start()
    run._pool.shutdown(wait=True)
    assert time.time() - started < 20, "取消要关掉内核，而不是等它跑完 60 秒"
    assert not job.ran and not run.errors


def _state(pid: int) -> str:
    """/proc/<pid>/stat 的进程状态：T 是被暂停（SIGSTOP）。"""
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2]


def _wait_for(condition, seconds=30.0):
    deadline = time.time() + seconds
    while not condition():
        assert time.time() < deadline, "等待超时"
        time.sleep(0.05)


def _cpu_seconds(pid: int) -> float:
    """进程用掉的 CPU 时间（用户态 + 内核态，秒），取自 /proc/<pid>/stat。"""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_kernels_give_way_to_the_page_so_measurements_are_not_disturbed(tmp_path):
    """内核和它的子进程以最低优先级运行：页面（这里是测试进程）和一个忙着计算的内核挤在同一个核上时，内核几乎
    分不到 CPU——页面上量的时间不受后台笔记本影响。不让路时两者各得一半。"""
    marker, stop = tmp_path / "child.pid", tmp_path / "stop"
    busy = tiny(
        tmp_path,
        "busy",
        [
            "import os, subprocess, sys, time\n"
            "os.sched_setaffinity(0, {0})\n"
            "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
            f"open({str(marker)!r}, 'w').write(str(child.pid))\n"
            "end = time.time() + 30\n"
            f"while time.time() < end and not os.path.exists({str(stop)!r}):\n"
            "    sum(range(200_000))  # 纯计算；每算一段才看一次停止标记\n"
            "child.kill()\nprint('完成')"
        ],
    )
    own = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {0})
    try:
        run = runner(tmp_path, workers=1)
        run.start([busy])
        _wait_for(lambda: marker.exists() and marker.read_text())
        kernel = run._clients[busy.uri].km.provisioner.process.pid
        child = int(marker.read_text())
        assert os.getpriority(os.PRIO_PROCESS, kernel) == 19, "内核应以最低优先级运行"
        assert os.getpriority(os.PRIO_PROCESS, child) == 19, "内核启动的子进程也一样"
        before, start = _cpu_seconds(kernel), time.perf_counter()
        while time.perf_counter() - start < 1.5:  # 页面在这个核上算 1.5 秒
            sum(range(200_000))
        share = (_cpu_seconds(kernel) - before) / (time.perf_counter() - start)
    finally:
        os.sched_setaffinity(0, own)
        stop.write_text("停")
    run.finish()
    assert busy.ran
    assert share < 0.15, f"页面计算时，同一个核上的内核分到了 {share:.0%} 的 CPU"


def test_skip_execution_cells_are_not_run(tmp_path):
    job = tiny(tmp_path, "skips", ["raise RuntimeError('打印测量值的格子不该在构建时运行')", "print('照常')"])
    job.nb["cells"][0]["metadata"]["tags"] = ["skip-execution"]
    run = runner(tmp_path)
    run.start([job])
    run.finish()
    written = json.loads(job.path.read_text(encoding="utf-8"))
    assert written["cells"][0]["outputs"] == [] and "照常" in "".join(
        written["cells"][1]["outputs"][0]["text"]
    )


def test_the_kernel_process_group_is_never_our_own(monkeypatch):
    """万一内核和构建同在一个进程组，暂停或结束它就会连构建一起暂停：这时不给出进程组。"""
    process = subprocess.Popen(["sleep", "30"])  # 与测试进程同组

    class Client:
        class km:
            class provisioner:
                pass

    Client.km.provisioner.process = process
    try:
        assert kernel_process_group(Client()) is None
    finally:
        process.kill()
        process.wait()
    own = subprocess.Popen(["sleep", "30"], start_new_session=True)
    Client.km.provisioner.process = own
    try:
        assert kernel_process_group(Client()) == own.pid
    finally:
        own.kill()
        own.wait()
