"""MkDocs 的适配层：一次构建的全部状态都在一个 :class:`Site` 对象里，hooks.py 的每个 on_* 函数只是转交给它。

构建包里只有这里（和 ``compat``）导入 mkdocs；其余模块是普通的 Python，可以单独测试，也能在 Zensical 里用。
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import markdown_exec
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, InclusionLevel

from hello_build import (
    artefacts,
    assets,
    book,
    compat,
    dialect,
    execute,
    formulas,
    pdf,
    report,
    search,
    stylesheets,
)
from hello_build.notebooks import links
from hello_build.notebooks.build import PageSource, pins_from
from hello_build.notebooks.run import Job, NotebookFailed, Runner, job_for, write_notebook
from hello_build.settings import Settings
from hello_build.store import Store

log = logging.getLogger("mkdocs.hooks")

NOTEBOOK_CSS = "assets/notebooks/jupyter.css"
NOTEBOOK_WORKERS = 2


class Site:
    def __init__(self, config, dirty: bool = False):
        root = Path(config.config_file_path).parent
        self.settings = Settings.read(
            root, site_url=config.site_url or "", repo_url=config.repo_url or "", dirty=dirty
        )
        artefacts.prepare(self.settings)
        # markdown-exec 的公开接口：渲染代码块输出时按这份配置新建 Markdown 扩展。不告诉它，它就重用并重置页面的
        # 扩展实例（pymdownx.highlight 的代码块计数），页面后面的代码块的行号锚点从 0 重新编号——冷构建与取自
        # 缓存的热构建不同，同一页里还会出现重复的 id
        markdown_exec.markdown_config.save(config.markdown_extensions, config.mdx_configs)
        self.executor = execute.Executor(
            self.settings, Store(self.settings.cache / "exec"), raise_in_fence=False
        )
        self.executor.forget_snippet_modules()
        execute.use(self.executor)
        self.runner = Runner(
            Store(self.settings.cache / "notebooks" / "outputs"),
            self.settings.cache / "notebooks" / "run",
            self.settings.block_timeout,
            NOTEBOOK_WORKERS,
        )
        self.jobs: dict[str, Job] = {}  # 页面 -> 它的笔记本
        self.sessions: dict[str, set[str]] = {}  # 页面 -> 它的会话
        self.urls: dict[str, str] = {}
        self.notebook_urls: dict[str, str] = {}
        self.page_urls: list[str] = []  # 全部页面的地址（相对网站根目录），PDF 的打印页用
        self.notebook_dests: dict[str, str] = {}
        self.css = ""
        self.formulas = formulas.Typesetter(root / "node_modules", Store(self.settings.cache / "formulas"))
        search.teach_jieba(Path(config.docs_dir) / "glossary.md")
        config.extra["book"] = book.facts(root)  # PDF 的封面（overrides/print/cover.tpl）
        compat.forward_notebook_inclusion()
        compat.quiet_torch_import()

    # ------------------------------------------------------------ 文件：自带的脚本、每章的笔记本

    def files(self, files, config):
        try:
            vendored = assets.files(self.settings.root / "node_modules")
            order = assets.mermaid_order(vendored)
        except assets.MissingAssets as error:
            raise PluginError(str(error)) from error
        for uri, path in vendored:
            files.append(File.generated(config, uri, abs_src_path=str(path)))
        files.append(File.generated(config, assets.MERMAID_ORDER, content=order))
        generated = self.settings.cache / "notebooks" / "site"
        pins = pins_from((self.settings.root / "requirements.txt").read_text(encoding="utf-8"))

        def resolve(path: str) -> str | None:
            linked = files.get_file_from_path(path)
            return linked.url if linked is not None else None

        for page in list(files.documentation_pages()):
            if not page.src_uri.endswith(".md") or not dialect.EXEC_FENCE.search(page.content_string):
                continue
            source = PageSource(
                page=page.src_uri,
                markdown=page.content_string,
                root=self.settings.root,
                site_url=self.settings.site_root,
                page_url=page.url,
                resolve=resolve,
                pins=pins,
                measured=dialect.measured_targets(page.content_string),
            )
            job = job_for(source, generated)
            self.jobs[page.src_uri] = job
            self.urls[page.src_uri] = page.url
            # 普通的 File（不是 File.generated）：mkdocs-jupyter 的包装类从 src_dir + src_uri 找到文件
            files.append(
                File(
                    job.uri,
                    src_dir=str(generated),
                    dest_dir=config.site_dir,
                    use_directory_urls=config.use_directory_urls,
                    inclusion=InclusionLevel.NOT_IN_NAV,
                )
            )
        if not (self.settings.execute and self.settings.run_notebooks):  # 笔记本照样生成，只是没有输出
            for job in self.jobs.values():
                write_notebook(job, None)
        else:  # 冷构建时输出缓存已经删掉了（artefacts.prepare），全部重新运行
            self.runner.start(list(self.jobs.values()))
        return files

    def nav(self, files) -> None:
        self.page_urls = [file.url for file in files.documentation_pages()]
        for page, job in self.jobs.items():
            file = files.get_file_from_path(job.uri)
            self.notebook_urls[page] = file.url  # mkdocs-jupyter 包装后的网页地址
            self.notebook_dests[page] = file.dest_path

    def _is_notebook(self, page) -> bool:
        return page.file.src_uri.startswith(links.PREFIX)

    def pre_page(self, page) -> None:
        if self._is_notebook(page):  # mkdocs-jupyter 按文件内容查它的缓存之前，等后台把笔记本都运行完、写好
            self._finish_notebooks()

    def _finish_notebooks(self) -> None:
        try:
            self.runner.finish()
        except NotebookFailed as error:
            raise PluginError(str(error)) from error

    # ------------------------------------------------------------ 页面

    def page_markdown(self, markdown: str, page) -> str:
        src = page.file.src_uri
        if self._is_notebook(page):
            page.meta["search"] = {"exclude": True}  # 笔记本的文字与它的网页相同，搜索结果只给网页
            page.meta["description"] = (
                "本章的 Jupyter 笔记本：可下载，可在 Colab 中打开，输出来自构建时的一次完整运行。"
            )
            return markdown
        names = dialect.sessions(markdown)
        if names:
            self.sessions[src] = names
            self.urls[src] = page.url
        self.executor.start_page(src, names, dialect.libraries(self.settings.root, src))
        return markdown

    def _blocks(self, page: str) -> list[execute.Block]:
        return self.executor.blocks(page)

    def page_content(self, html_text: str, page, config, files) -> str:
        src = page.file.src_uri
        if self._is_notebook(page):
            return self._notebook_page(html_text, page)
        if self.executor.failures:
            raise PluginError(self.executor.failures[0])
        try:
            katex_css = links.relative(assets.KATEX_CSS, page.url)
            html_text = self.formulas.reserve(html_text, katex_css)
        except formulas.KatexFailed as error:
            raise PluginError(f"{src}：{error}") from error
        blocks = self._blocks(src)
        if blocks:
            html_text = search.exclude_outputs(html_text)
            runtime = files.get_file_from_path("runtime.md")
            runtime_url = links.relative(runtime.url, page.url) if runtime else ""
            html_text += report.footer(blocks, execute.environment(), runtime_url)
        job = self.jobs.get(src)
        if job is not None:  # 标题下面：本章的笔记本、下载、Colab
            html_text = re.sub(r"(</h1>)", lambda m: m[1] + self._buttons(src, "page"), html_text, count=1)
        return html_text

    def _buttons(self, page: str, here: str) -> str:
        job = self.jobs[page]
        notebook_url = self.notebook_urls[page]
        download = links.download_uri(notebook_url, job.uri)
        try:
            colab = links.colab_url(self.settings.repo_url, download)
        except links.NotOnGitHub as error:
            raise PluginError(str(error)) from error
        return links.buttons(here, self.urls[page], notebook_url, download, colab)

    def _notebook_page(self, html_text: str, page) -> str:
        src = next(p for p, job in self.jobs.items() if job.uri == page.file.src_uri)
        stylesheet = f'<link rel="stylesheet" href="{links.relative(NOTEBOOK_CSS, page.url)}">'
        try:
            html_text, self.css = compat.clean_notebook_page(html_text, page.file.src_uri, stylesheet)
        except compat.TemplateChanged as error:
            raise PluginError(str(error)) from error
        html_text = compat.fix_heading_ids(html_text, page.toc)
        # 笔记本里的链接是网站的绝对地址（离开网站也能用）；在网站上改回相对地址，本地预览时不跳到线上
        site = self.settings.site_root
        html_text = re.sub(
            rf'href="{re.escape(site)}([^"]*)"',
            lambda m: f'href="{links.relative(m[1] or ".", page.url)}"',
            html_text,
        )
        page.title = f"{page.title}（Jupyter 笔记本）"
        return self._buttons(src, "notebook") + html_text

    def page_context(self, page, files) -> None:
        if page.file.src_uri == "runtime.md":
            rows = [
                report.Row(
                    src,
                    links.relative(self.urls[src], page.url),
                    self._blocks(src),
                    self.jobs[src].seconds if src in self.jobs else None,
                    self.jobs[src].cached if src in self.jobs else None,
                )
                for src in self.sessions
                if self._blocks(src)
            ]
            page.content = re.sub(
                r'<div class="hp-runtime-table">.*?</div>',
                report.runtime_table(rows),
                page.content,
                count=1,
                flags=re.S,
            )

    # ------------------------------------------------------------ 构建结束

    def build_error(self) -> None:
        self.runner.cancel()  # 构建已经失败：不再开始新的笔记本，关掉正在运行的内核

    def _write_notebook_css(self, site: Path) -> None:
        # 全部笔记本网页（--dirty 构建没重新渲染的也在 site_dir 里）和网站的全部脚本（脚本会给元素加类名）。
        # --dirty 构建一本笔记本都没重新渲染时（self.css 是空的）不走到这里，上一次写的样式表留着
        try:
            pages = [(site / dest).read_text(encoding="utf-8") for dest in self.notebook_dests.values()]
            scripts = [
                path.read_text(encoding="utf-8", errors="replace")
                for pattern in ("*.js", "*.mjs")
                for path in site.rglob(pattern)
            ]
            pruned = stylesheets.prune(self.css, stylesheets.names_in(pages, scripts))
        except (OSError, stylesheets.UnreadableStylesheet) as error:
            raise PluginError(f"Jupyter 样式瘦身失败：{error}") from error
        target = site / NOTEBOOK_CSS
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(pruned.css, encoding="utf-8")
        log.info(
            "Jupyter 样式：保留 %d 条规则、删掉 %d 条匹配不到的（%d KB -> %d KB）",
            pruned.kept,
            pruned.dropped,
            len(self.css.encode()) // 1000,
            len(pruned.css.encode()) // 1000,
        )

    def _fix_print_page(self, site: Path) -> None:
        """PDF 构建（HELLO_PYTORCH_PDF=true）的打印页：补上 print-site 漏加前缀的 id（compat 第 5 条）。
        钩子的 on_post_build 在各插件的之后运行，这时打印页已经写好了。"""
        page = site / pdf.PRINT_PAGE / "index.html"
        if not page.is_file():
            return
        pages = {compat.page_key(url): self.settings.site_root + url for url in self.page_urls}
        fixed, prefixed, outside = compat.fix_print_page(page.read_text(encoding="utf-8"), pages)
        page.write_text(fixed, encoding="utf-8")
        log.info(
            "打印页：给 %d 个 id 补上了所在章节的前缀，%d 个指向书外页面的链接改成网站地址", prefixed, outside
        )

    def post_build(self, config) -> None:
        self._finish_notebooks()  # --dirty 构建可能一个笔记本页面都没渲染：这里同样要等笔记本、报告它们的错误
        site = Path(config.site_dir)
        pages = {src: self._blocks(src) for src in self.sessions}
        (site / "exec-manifest.json").write_text(report.manifest(pages), encoding="utf-8")
        if self.css:
            self._write_notebook_css(site)
        self._fix_print_page(site)
        notebooks = {}
        for page, job in self.jobs.items():
            download = links.download_uri(self.notebook_urls[page], job.uri)
            notebooks[page] = {
                "notebook": job.uri,
                "download": download,
                "colab": links.colab_url(self.settings.repo_url, download),
                "executed": job.ran,
                "seconds": job.seconds,
                "cpu_seconds": job.cpu_seconds,
                "measures": job.measures,
            }
        (site / "notebook-manifest.json").write_text(
            json.dumps(notebooks, ensure_ascii=False, indent=1), encoding="utf-8"
        )
        ran = [job for job in self.jobs.values() if job.ran]
        if ran:
            listing = ", ".join(f"{job.page} {job.seconds:.1f}s" for job in ran)
            log.info("笔记本：本次构建运行了 %d 个（计时）：%s", len(ran), listing)
        # 每次（非 dirty）构建都渲染全部页面，没用到的缓存条目就是过期的（只渲染、不执行时什么都没用到，不清理）
        if not self.settings.dirty and self.settings.execute:
            self.executor.store.evict_unused()
            if self.settings.run_notebooks:
                self.runner.store.evict_unused()
            self.formulas.store.evict_unused()
