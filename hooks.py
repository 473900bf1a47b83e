"""Hello PyTorch 的构建钩子（mkdocs hooks）：全站只有这一个钩子模块。

1. 给每个执行代码块（markdown-exec fence）自动加上 ``id="文件:片段"``，
   这样代码块出错时，markdown-exec 的 traceback 里直接写着出错的 snippet 文件和片段名；
2. 给 markdown-exec 的警告加上出错页面的路径，严格构建（strict）失败时一眼就知道是哪一页；
3. 把 Mermaid 和 MathJax 从 node_modules/（由 package-lock.json 锁定、nox 用 npm ci 安装）
   放进网站的 assets/vendor/，读者的浏览器只向本站请求脚本，从不访问 CDN。
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File

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


# 网站路径 -> node_modules 里的来源（文件或目录）；mkdocs.yml 的 extra_javascript 引用这些网站路径
VENDORED = {
    "assets/vendor/mermaid/mermaid.min.js": "mermaid/dist/mermaid.min.js",
    "assets/vendor/mathjax/tex-chtml.js": "mathjax/es5/tex-chtml.js",
    # MathJax 按需加载的字体和 TeX 扩展，相对 tex-chtml.js 的位置查找
    "assets/vendor/mathjax/output/chtml/fonts/woff-v2": "mathjax/es5/output/chtml/fonts/woff-v2",
    "assets/vendor/mathjax/input/tex/extensions": "mathjax/es5/input/tex/extensions",
}


def on_files(files, config):
    node_modules = Path(config.config_file_path).parent / "node_modules"
    for site_path, source in VENDORED.items():
        origin = node_modules / source
        if not origin.exists():
            raise PluginError(
                f"缺少 {origin}：Mermaid 与 MathJax 由本站自己提供，不从 CDN 加载。"
                "请运行 `nox -s docs`（它会执行 npm ci），或在仓库根目录运行 `npm ci`。"
            )
        for path in sorted(origin.rglob("*")) if origin.is_dir() else [origin]:
            if path.is_file():
                uri = site_path if path == origin else f"{site_path}/{path.relative_to(origin).as_posix()}"
                files.append(File.generated(config, uri, abs_src_path=str(path)))
    return files
