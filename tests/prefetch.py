"""测试会话开始时，在第二个进程里提前做整站构建要做的两件事，用上测试进程空出来的那个核：

1. 运行“计算存下的结果”的那几页（第二部分的预训练和微调实验）。会话的前几分钟，测试进程在跑第一部分那些单线程
   的测试，第二个核空着；这个进程用它先把实验算起来。两个进程算的是同一批结果：`cached()` 的文件锁保证同一次
   训练只算一次，`run_all` 让同时运行同一个实验的两个进程各算一部分。它写下的执行缓存与测试进程写下的相同。
2. 运行每一章的笔记本（和整站构建一样：全新的内核、空目录、最低优先级，见 hello_build.notebooks.run），把输出
   写进本次会话的笔记本输出缓存。整站构建随后直接取用；还在运行的那一本，构建等它写完（缓存记录的文件锁）。
   笔记本只需要代码，不需要页面的输出，所以不必等 snippet 测试；测试进程要用 CPU 时，最低优先级的内核让路。
"""

from __future__ import annotations

import re
import sys

from hello_build import dialect
from hello_build.notebooks.build import PageSource, pins_from
from hello_build.notebooks.run import Job, NotebookFailed, Runner, job_for
from hello_build.settings import Settings
from hello_build.store import Store
from tests.snippets import DOCS, ROOT, run_page_snippet

# 调用这些函数的 snippet 会计算（或读取）存下的结果
COMPUTES = re.compile(r"\b(?:run_experiment|load_or_train_pretrained|finetune_run)\(")


def pages_to_prefetch() -> list[str]:
    return [
        path.relative_to(ROOT).as_posix()
        for path in sorted((ROOT / "snippets").rglob("*.py"))
        if not path.name.startswith("_") and COMPUTES.search(path.read_text(encoding="utf-8"))
    ]


def notebook_jobs(settings: Settings) -> list[Job]:
    """每个有代码的页面的笔记本任务，与整站构建的缓存键相同（hello_build.notebooks.run.job_for）。
    页面地址和站内链接只影响 Markdown 单元格、不影响键，这里按 MkDocs 的目录式地址给出，链接不解析。"""
    pins = pins_from((ROOT / "requirements.txt").read_text(encoding="utf-8"))
    jobs = []
    for md in sorted(DOCS.rglob("*.md")):
        markdown = md.read_text(encoding="utf-8")
        if not dialect.EXEC_FENCE.search(markdown):
            continue
        page = md.relative_to(DOCS).as_posix()
        source = PageSource(
            page=page,
            markdown=markdown,
            root=ROOT,
            site_url=settings.site_root,
            page_url="" if page == "index.md" else page.removesuffix(".md") + "/",
            resolve=lambda _path: None,
            pins=pins,
            measured=dialect.measured_targets(markdown),
        )
        jobs.append(job_for(source, settings.cache / "notebooks" / "prefetch"))
    return jobs


# 单元格时限：最低优先级的内核在两个核都忙时几乎分不到 CPU，一格可能等上几分钟；真卡住的单元格由整站构建
# 按正常的时限（hello_build.settings）报告
PREFETCH_CELL_TIMEOUT = 900


def run_notebooks(settings: Settings) -> None:
    """一本接一本地运行（另一个核留给测试进程）；一本出错不影响后面的（整站构建会再运行它，在测试里报告错误）。"""
    store = Store(settings.cache / "notebooks" / "outputs")
    for job in notebook_jobs(settings):
        runner = Runner(store, settings.cache / "notebooks" / "run", PREFETCH_CELL_TIMEOUT, workers=1)
        runner.start([job])
        try:
            runner.finish()
        except NotebookFailed as error:
            print("预取的笔记本出错：", error, flush=True)
        else:
            print(f"预取完成：{job.uri}（{job.seconds:.0f} 秒，CPU {job.cpu_seconds:.0f} 秒）", flush=True)


if __name__ == "__main__":
    for relpath in sys.argv[1:] or pages_to_prefetch():
        run_page_snippet(relpath)
        print("预取完成：", relpath, flush=True)
    if not sys.argv[1:]:
        run_notebooks(Settings.read(ROOT))
