"""在后台运行笔记本：每本在自己的空目录、全新的内核里从头到尾运行（nbclient），与执行页面代码的主线程并行。

- 输出按“全部代码单元格 + 环境指纹 + 版本”存进 :class:`~hello_build.store.Store`，只改文字不重新运行；
- ``concurrent.futures`` 的线程池同时运行 ``workers`` 本；
- 让路：内核一启动就把它的进程组调到最低优先级（nice 19，它启动的子进程随之继承）。页面上的代码块（包括量时间
  的块）要用 CPU 时，内核只得到约 1.5% 的份额，不和它抢；页面不用 CPU 时，内核照样用满空闲的核。不用暂停
  （SIGSTOP）：暂停的内核若正拿着和页面共用的文件锁（例如 torch.compile 的编译缓存），页面会一直等下去；
- 打印测量值的单元格（带 skip-execution 标签）构建时不运行：测量值只在页面上量；
- 取消：构建失败时 :meth:`Runner.cancel` 不再开始新的笔记本，并结束正在运行的内核（整个进程组）。
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import os
import shutil
import signal
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from hello_build.execute import fingerprint
from hello_build.figures import as_images
from hello_build.notebooks.build import PageSource, make_notebook
from hello_build.notebooks.links import notebook_uri
from hello_build.store import Store

NOTEBOOK_VERSION = "3"  # 改变笔记本的格式或运行方式时加一，旧的输出缓存随之失效


class NotebookFailed(RuntimeError):
    pass


def kernel_process_group(client: NotebookClient) -> int | None:
    """正在运行的内核的进程组。jupyter_client 用 start_new_session 启动内核，内核和它启动的子进程（例如 torchrun
    的各个进程）同在这一组里；万一内核和构建同组（不该发生），不返回它，免得把构建自己调成最低优先级或结束掉。"""
    provisioner = getattr(getattr(client, "km", None), "provisioner", None)
    process = getattr(provisioner, "process", None)
    if process is None or process.poll() is not None:
        return None
    try:
        group = os.getpgid(process.pid)
    except ProcessLookupError:
        return None
    return None if group == os.getpgrp() else group


def kernel_cpu_seconds(client: NotebookClient) -> float | None:
    """内核进程到现在用了多少 CPU 秒（它自己的，加上它已经等到结束的子进程的，例如 torchrun 的各进程）。
    与墙上时间不同，它不受同时运行的别的进程影响：执行预算（tests/site/test_budget.py）按它算笔记本。"""
    process = getattr(getattr(getattr(client, "km", None), "provisioner", None), "process", None)
    if process is None:
        return None
    try:
        stat = Path(f"/proc/{process.pid}/stat").read_text()
    except OSError:  # 不是 Linux，或者内核已经结束
        return None
    # 第 2 个字段（命令名）带括号、可能含空格：从最后一个右括号之后数；utime、stime、cutime、cstime 是第 14–17 个
    fields = stat.rpartition(")")[2].split()
    return sum(int(value) for value in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def _signal_group(group: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signum)


KERNEL_NICENESS = 19  # 最低优先级


def give_way(client: NotebookClient) -> None:
    """把内核的进程组调到最低优先级；它之后启动的子进程（编译器、torchrun 的各进程）继承这个优先级。

    Linux 开着自动分组调度（autogroup，桌面和服务器发行版的默认）时，CPU 先在会话之间平分，nice 只在同一会话里
    起作用；内核是自己会话的首进程，所以还要把整个会话（autogroup）的 nice 调到最低，见 man 7 sched。"""
    group = kernel_process_group(client)
    if group is None:
        return
    os.setpriority(os.PRIO_PGRP, group, KERNEL_NICENESS)
    autogroup = Path(f"/proc/{group}/autogroup")
    if autogroup.exists():  # 内核没有编进自动分组调度时没有这个文件，nice 已经足够
        autogroup.write_text(str(KERNEL_NICENESS))


@dataclass
class Job:
    page: str  # 生成它的页面，如 part1/ch03_algorithm.md
    uri: str  # 网站里的位置，如 notebooks/part1/ch03_algorithm.ipynb
    path: Path  # 生成的 .ipynb 文件
    nb: dict
    key: str = ""  # 输出缓存的键：全部代码单元格 + 环境指纹 + 版本
    seconds: float = 0.0  # 运行用了多久（墙上时间；取自缓存时是当初那次运行）
    cpu_seconds: float = 0.0  # 内核用了多少 CPU 秒（见 kernel_cpu_seconds）
    cached: bool = False
    ran: bool = False  # 本次构建运行了它
    measures: bool = False  # 含打印测量值的单元格

    def __post_init__(self):
        self.measures = any(
            c["metadata"].get("hello_pytorch", {}).get("measurement") for c in self.nb["cells"]
        )


def output_key(nb: dict, fingerprint: str) -> str:
    code = [cell["source"] for cell in nb["cells"] if cell["cell_type"] == "code"]
    return hashlib.sha256(
        json.dumps([NOTEBOOK_VERSION, fingerprint, code], ensure_ascii=False).encode()
    ).hexdigest()


def job_for(source: PageSource, generated: Path) -> Job:
    """一页的笔记本任务。整站构建和测试会话的预取（tests/prefetch.py）都用它：缓存的键只取决于代码单元格和环境，
    与链接（source.resolve、网址）无关，所以预取不必知道 MkDocs 算出的页面地址，也能和构建得到同一个键。"""
    uri = notebook_uri(source.page)
    nb = make_notebook(source)
    return Job(source.page, uri, generated / uri, nb, output_key(nb, fingerprint()))


def write_notebook(job: Job, cells: list[dict] | None) -> None:
    """把输出填进笔记本，写到 job.path；内容没变就不写（mkdocs-jupyter 的缓存按文件内容命中）。"""
    nb = copy.deepcopy(job.nb)
    code_cells = [cell for cell in nb["cells"] if cell["cell_type"] == "code"]
    for cell, result in zip(code_cells, cells, strict=True) if cells is not None else ():
        cell["outputs"], cell["execution_count"] = result["outputs"], result["execution_count"]
        include = cell["metadata"].get("hello_pytorch", {}).get("include")
        for output in cell["outputs"] if include else ():
            # 显示成 HTML 的 SVG 图换成 <img>（见 hello_build/figures.py 的 as_images）
            html = output.get("data", {}).get("text/html")
            if output["output_type"] == "display_data" and isinstance(html, str):
                output["data"]["text/html"] = as_images(html)
    node = nbformat.from_dict(nb)
    nbformat.validate(node)
    text = nbformat.writes(node)
    if not job.path.exists() or job.path.read_text(encoding="utf-8") != text:
        job.path.parent.mkdir(parents=True, exist_ok=True)
        job.path.write_text(text, encoding="utf-8")


@dataclass
class Runner:
    store: Store
    run_root: Path  # 每本笔记本在这下面有自己的空目录
    timeout: int  # 单个单元格的秒数上限
    workers: int = 2
    _pool: ThreadPoolExecutor | None = None
    _futures: list[Future] = field(default_factory=list)
    _clients: dict[str, NotebookClient] = field(default_factory=dict)
    _cancelled: bool = False
    errors: list[str] = field(default_factory=list)

    # ------------------------------------------------------------ 调度

    def start(self, jobs: list[Job]) -> None:
        """取自缓存的直接填好输出；其余的交给线程池。"""
        pending = []
        for job in jobs:
            entry = self.store.read(job.key)
            if entry is None:
                pending.append(job)
            else:
                job.seconds, job.cached = entry.get("seconds", 0.0), True
                job.cpu_seconds = entry.get("cpu_seconds", 0.0)
                write_notebook(job, entry["cells"])
        self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="notebook")
        self._futures += [self._pool.submit(self._run, job) for job in pending]

    def finish(self) -> None:
        """等全部笔记本运行完；有笔记本出错就报错。"""
        if self._pool is not None:
            for future in self._futures:
                future.result()
            self._futures = []
        if self.errors:
            raise NotebookFailed(self.errors[0])

    def cancel(self) -> None:
        """构建已经失败：不再开始新的笔记本，结束正在运行的内核，等线程退出。"""
        self._cancelled = True
        for client in list(self._clients.values()):
            # nbclient 的内核管理器是异步的，从别的线程关不掉它；直接结束内核的进程组，nbclient 随即发现内核已死
            group = kernel_process_group(client)
            if group is not None:
                _signal_group(group, signal.SIGKILL)
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    # ------------------------------------------------------------ 运行一本

    def _run(self, job: Job) -> None:
        if self._cancelled or self.errors:
            return
        with self.store.exclusive(job.key):
            # 等锁的时候，共用这个缓存的另一个进程可能已经运行完了同一本（测试会话里的预取，见 tests/prefetch.py）
            entry = self.store.read(job.key)
            if entry is not None:
                job.seconds, job.cached = entry.get("seconds", 0.0), True
                job.cpu_seconds = entry.get("cpu_seconds", 0.0)
                write_notebook(job, entry["cells"])
                return
            if self._cancelled or self.errors:
                return
            began = time.perf_counter()
            try:
                cells, job.cpu_seconds = self._execute(job)
            except Exception as error:
                if not self._cancelled:
                    self.errors.append(str(error))
                return
            job.seconds, job.ran = time.perf_counter() - began, True
            self.store.write(
                job.key,
                {
                    "cells": cells,
                    "seconds": job.seconds,
                    "cpu_seconds": job.cpu_seconds,
                    "produced": time.strftime("%Y-%m-%d %H:%M"),
                },
            )
        write_notebook(job, cells)

    def _execute(self, job: Job) -> tuple[list[dict], float]:
        """运行一本，返回每个代码单元格的输出和内核用掉的 CPU 秒。"""
        run_dir = self.run_root / Path(job.uri).with_suffix("")
        shutil.rmtree(run_dir, ignore_errors=True)  # 每本都从空目录开始，像读者下载后第一次运行
        run_dir.mkdir(parents=True)
        nb = nbformat.from_dict(copy.deepcopy(job.nb))
        started: dict = {}  # 正在运行的单元格：超时、内核死掉时没有错误输出，靠它说出是哪一格
        cpu = {"seconds": 0.0}  # 每格运行完读一次：最后一次就是整本的（内核结束之后就读不到了）
        client = NotebookClient(
            nb,
            kernel_name="python3",
            timeout=self.timeout,
            allow_errors=False,
            record_timing=False,
            resources={"metadata": {"path": str(run_dir)}},
            on_cell_start=lambda cell, cell_index: started.update(cell=cell),
            on_cell_executed=lambda **_: cpu.update(seconds=kernel_cpu_seconds(client) or cpu["seconds"]),
            on_notebook_start=lambda notebook: give_way(client),  # 内核已启动，还没运行任何单元格
            shutdown_kernel="immediate",  # 运行完直接结束内核，不等它慢慢退出（每本省下约 2 秒）
        )
        self._clients[job.uri] = client
        # 内核进程自己的日志（不是单元格的输出）写进文件，不混进构建输出；出错时附在错误信息里
        log = run_dir.parent / f"{run_dir.name}.kernel.log"
        try:
            with log.open("w", encoding="utf-8") as stderr:
                client.execute(stderr=stderr)
        except Exception as error:
            failed = next(
                (c for c in nb.cells if any(o.get("output_type") == "error" for o in c.get("outputs", []))),
                started.get("cell"),
            )
            where = (failed or {}).get("metadata", {}).get("hello_pytorch", {}).get("include", "准备单元格")
            raise NotebookFailed(
                f"笔记本 {job.uri}（由 docs/{job.page} 生成）在单元格 {where} 出错：\n{error}\n"
                f"内核日志 {log}：\n{log.read_text(encoding='utf-8')[-2000:]}"
            ) from error
        finally:
            self._clients.pop(job.uri, None)
        results = []
        for cell in nb.cells:
            if cell.cell_type == "code":
                role = cell.metadata.get("hello_pytorch", {}).get("role")
                # %%writefile 打印 Writing/Overwriting，取决于文件之前在不在；不留这种输出
                outputs = [] if role == "library" else [dict(o) for o in cell.outputs]
                results.append(
                    {"outputs": json.loads(json.dumps(outputs)), "execution_count": cell.execution_count}
                )
        return results, cpu["seconds"]
