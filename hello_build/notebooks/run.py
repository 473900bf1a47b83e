"""在后台运行笔记本：每本在自己的空目录、全新的内核里从头到尾运行（nbclient），与执行页面代码的主线程并行。

- 输出按“全部代码单元格 + 环境指纹 + 版本”存进 :class:`~hello_build.store.Store`，只改文字不重新运行；
- ``concurrent.futures`` 的线程池同时运行 ``workers`` 本；
- 取消：构建失败时 :meth:`Runner.cancel` 不再开始新的笔记本，并关掉正在运行的内核。
"""

from __future__ import annotations

import copy
import hashlib
import json
import shutil
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from hello_build.store import Store

NOTEBOOK_VERSION = "2"  # 改变笔记本的格式或运行方式时加一，旧的输出缓存随之失效


class NotebookFailed(RuntimeError):
    pass


@dataclass
class Job:
    page: str  # 生成它的页面，如 part1/ch03_algorithm.md
    uri: str  # 网站里的位置，如 notebooks/part1/ch03_algorithm.ipynb
    path: Path  # 生成的 .ipynb 文件
    nb: dict
    key: str = ""  # 输出缓存的键：全部代码单元格 + 环境指纹 + 版本
    seconds: float = 0.0  # 运行用了多久（取自缓存时是当初那次运行）
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


def write_notebook(job: Job, cells: list[dict] | None) -> None:
    """把输出填进笔记本，写到 job.path；内容没变就不写（mkdocs-jupyter 的缓存按文件内容命中）。"""
    nb = copy.deepcopy(job.nb)
    code_cells = [cell for cell in nb["cells"] if cell["cell_type"] == "code"]
    for cell, result in zip(code_cells, cells, strict=True) if cells is not None else ():
        cell["outputs"], cell["execution_count"] = result["outputs"], result["execution_count"]
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
        """构建已经失败：不再开始新的笔记本，关掉正在运行的内核，等线程退出。"""
        self._cancelled = True
        for client in list(self._clients.values()):
            # nbclient 的内核管理器是异步的，从别的线程关不掉它；直接结束内核进程，nbclient 随即发现内核已死
            process = getattr(getattr(getattr(client, "km", None), "provisioner", None), "process", None)
            if process is not None and process.poll() is None:
                process.kill()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    # ------------------------------------------------------------ 运行一本

    def _run(self, job: Job) -> None:
        if self._cancelled or self.errors:
            return
        began = time.perf_counter()
        try:
            cells = self._execute(job)
        except Exception as error:
            if not self._cancelled:
                self.errors.append(str(error))
            return
        job.seconds, job.ran = time.perf_counter() - began, True
        self.store.write(
            job.key, {"cells": cells, "seconds": job.seconds, "produced": time.strftime("%Y-%m-%d %H:%M")}
        )
        write_notebook(job, cells)

    def _execute(self, job: Job) -> list[dict]:
        run_dir = self.run_root / Path(job.uri).with_suffix("")
        shutil.rmtree(run_dir, ignore_errors=True)  # 每本都从空目录开始，像读者下载后第一次运行
        run_dir.mkdir(parents=True)
        nb = nbformat.from_dict(copy.deepcopy(job.nb))
        started: dict = {}  # 正在运行的单元格：超时、内核死掉时没有错误输出，靠它说出是哪一格
        client = NotebookClient(
            nb,
            kernel_name="python3",
            timeout=self.timeout,
            allow_errors=False,
            record_timing=False,
            resources={"metadata": {"path": str(run_dir)}},
            on_cell_start=lambda cell, cell_index: started.update(cell=cell),
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
        return results
