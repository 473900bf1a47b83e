"""标题 id 的规则：MkDocs（toc 扩展）、Zensical 和笔记本网页共用同一个函数，中文标题的锚点在哪里都一样。

mkdocs.yml 里写 ``slugify: !!python/name:hello_build.slugs.slugify``；两个工具都能解析这种写法。
"""

from pymdownx.slugs import slugify as _make

slugify = _make(case="lower")  # 保留中文，英文转小写，空白变成 -
