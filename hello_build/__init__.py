"""Hello PyTorch 的构建包：MkDocs 通过 hooks.py 调用它，Zensical 通过 mkdocs.yml 里的 Markdown 扩展和代码块格式化函数调用它。

每个模块只管一件事，第一行写明是哪件事：

- ``settings``：从环境变量和配置里读一次的设置；
- ``dialect``：本站的 Markdown 写法——执行代码块、``--8<--`` 包含、snippet 里的具名片段；
- ``store``：带校验和、原子写入的缓存目录（执行缓存和笔记本输出都用它）；
- ``execute``：运行代码块（会话、缓存、超时、写明出处的错误），markdown-exec 公开接口上的自定义代码块；
- ``report``：页脚、运行时间表、执行清单；
- ``notebooks``：页面 -> Jupyter 笔记本（纯函数）、在后台运行笔记本、笔记本的链接；
- ``assets``：网站自带的 Mermaid 与 KaTeX；
- ``search``：让中文搜索认得术语表里的词；
- ``stylesheets``：删掉笔记本网页的 Jupyter 样式里匹配不到的规则；
- ``slugs``：MkDocs 与 Zensical 共用的标题 id 规则；
- ``compat``：依赖的缺陷的绕行办法，每一条都有版本检查、上游链接和测试；
- ``site``：MkDocs 的适配层，持有一次构建的全部状态（只有它和 ``compat`` 导入 mkdocs）。
"""
