"""Hello PyTorch 的 MkDocs 钩子：只有一件事——把 MkDocs 的事件转交给构建包 hello_build 里的 Site 对象。

一次构建的全部状态都在那个对象里（hello_build/site.py）；怎样执行代码、缓存、生成和运行笔记本、
写页脚和运行时间表，见 hello_build 各模块的第一行说明。
"""

from __future__ import annotations

import os

# 构建进程里只用一个线程跑 PyTorch：本站的例子都很小，多线程在 2 核机器上反而更慢、更不稳定；
# 固定线程数也让浮点结果逐次构建一致。必须在任何 snippet 导入 torch 之前设置（tests/conftest.py 同样）。
os.environ.setdefault("OMP_NUM_THREADS", "1")

from mkdocs.plugins import event_priority

from hello_build.site import Site

_site: Site | None = None
_dirty = False


def on_startup(command, dirty):
    global _dirty
    _dirty = dirty


def on_config(config):
    global _site
    if _site is not None:  # mkdocs serve 重建：上一次的后台笔记本先停下
        _site.build_error()
    _site = Site(config, dirty=_dirty)
    return config


@event_priority(100)  # 在 mkdocs-jupyter 之前：它要把我们生成的 .ipynb 包装成页面
def on_files(files, config):
    return _site.files(files, config)


def on_nav(nav, config, files):
    _site.nav(files)
    return nav


@event_priority(100)  # 在 mkdocs-jupyter 按文件内容查它的缓存之前
def on_pre_page(page, config, files):
    _site.pre_page(page)
    return page


def on_page_markdown(markdown, page, config, files):
    return _site.page_markdown(markdown, page)


def on_page_content(html, page, config, files):
    return _site.page_content(html, page, config, files)


def on_page_context(context, page, config, nav):
    _site.page_context(page, None)
    return context


def on_post_build(config):
    _site.post_build(config)


def on_build_error(error):
    if _site is not None:
        _site.build_error()


def on_shutdown():
    """构建或预览结束（包括 Ctrl-C，它不触发 on_build_error）：不再开始排队的笔记本，关掉正在运行的内核。"""
    if _site is not None:
        _site.build_error()
