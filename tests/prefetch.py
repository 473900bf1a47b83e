"""测试会话开始时，在第二个进程里提前运行“计算存下的结果”的那几页（第二部分的预训练和微调实验）。

会话的前几分钟，测试进程在跑第一部分那些单线程的测试，第二个核空着；这个进程用它先把实验算起来。两个进程算的是
同一批结果：`cached()` 的文件锁保证同一次训练只算一次，`run_all` 让同时运行同一个实验的两个进程各算一部分。
它写下的执行缓存与测试进程写下的相同（同样的代码、同样的键）。
"""

from __future__ import annotations

import re
import sys

from tests.snippets import ROOT, run_page_snippet

# 调用这些函数的 snippet 会计算（或读取）存下的结果
COMPUTES = re.compile(r"\b(?:run_experiment|load_or_train_pretrained|finetune_run)\(")


def pages_to_prefetch() -> list[str]:
    return [
        path.relative_to(ROOT).as_posix()
        for path in sorted((ROOT / "snippets").rglob("*.py"))
        if not path.name.startswith("_") and COMPUTES.search(path.read_text(encoding="utf-8"))
    ]


if __name__ == "__main__":
    for relpath in sys.argv[1:] or pages_to_prefetch():
        run_page_snippet(relpath)
        print("预取完成：", relpath, flush=True)
