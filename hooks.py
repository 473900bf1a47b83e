"""Hello PyTorch 的构建钩子（mkdocs hooks）：全站只有这一个钩子模块。

1. 给每个执行代码块（markdown-exec fence）自动加上 ``id="文件:片段"``，
   这样代码块出错时，markdown-exec 的 traceback 里直接写着出错的 snippet 文件和片段名；
2. 给 markdown-exec 的警告加上出错页面的路径，严格构建（strict）失败时一眼就知道是哪一页。
"""

from __future__ import annotations

import logging
import re

# 执行代码块的开头一行，紧跟着的是一行 --8<-- "path:section" 包含语句
_EXEC_FENCE = re.compile(
    r'^(?P<indent>[ \t]*)(?P<fence>```+|~~~+)[ \t]*(?P<info>[^\n]*\bexec="(?:on|1|true|yes)"[^\n]*)\n'
    r'(?P=indent)--8<--[ \t]+"(?P<target>[^"]+)"[ \t]*$',
    re.MULTILINE,
)

_current_page: list[str] = [""]


def _add_ids(markdown: str) -> str:
    def label(match: re.Match[str]) -> str:
        info = match["info"]
        if re.search(r'\bid="', info):
            return match[0]
        target = match["target"]
        head = f'{match["indent"]}{match["fence"]}{info} id="{target}"'
        return f'{head}\n{match["indent"]}--8<-- "{target}"'

    return _EXEC_FENCE.sub(label, markdown)


class _NamePage(logging.Filter):
    """在 markdown-exec 的警告前面写上出错的页面。"""

    def filter(self, record: logging.LogRecord) -> bool:
        if _current_page[0] and record.levelno >= logging.WARNING:
            record.msg = f"[页面 docs/{_current_page[0]}] {record.msg}"
        return True


_filter = _NamePage()


# markdown-exec 经 mkdocs 的插件日志记录执行错误；过滤器要挂在发出记录的那个 logger 上。
# tests/site/test_failures.py 检查错误信息里确实带着页面路径，这个名字变了测试会失败。
_EXEC_LOGGER = "mkdocs.plugins.markdown_exec._internal.formatters.base"


def on_config(config):
    # jieba 每次构建都打印“Building prefix dict…”，那不是警告；让构建输出只剩真正的问题
    logging.getLogger("jieba").setLevel(logging.WARNING)
    logger = logging.getLogger(_EXEC_LOGGER)
    if _filter not in logger.filters:
        logger.addFilter(_filter)
    return config


def on_page_markdown(markdown, page, config, files):
    _current_page[0] = page.file.src_uri
    return _add_ids(markdown)


def on_page_content(html, page, config, files):
    _current_page[0] = ""
    return html
