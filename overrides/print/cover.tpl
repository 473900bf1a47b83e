{#- PDF 的封面（mkdocs-print-site-plugin 的 cover_page_template）。config.extra.book 由 hello_build/book.py 在构建时填入 -#}
<div class="hp-cover">
  <h1 class="hp-cover__title">{{ config.site_name }}</h1>
  <p class="hp-cover__description">{{ config.site_description }}</p>
  <dl class="hp-cover__facts">
    <dt>原文</dt>
    <dd>《从零开始大模型开发与微调：PyTorch 2.0 小练习：Hello PyTorch》，作者署名“禅与计算机程序设计艺术 / Zen and the Art of Computer Programming”（<a href="https://blog.csdn.net/universsky2015">https://blog.csdn.net/universsky2015</a>）。本书改写了讲解、改正了原文的错误（见“勘误”一章），并增加了第二、三部分。</dd>
    <dt>构建日期</dt>
    <dd>{{ config.extra.book.date }}（提交 {{ config.extra.book.commit }}）</dd>
    <dt>PyTorch</dt>
    <dd>{{ config.extra.book.torch }}（书中每个输出都是构建时用这个版本在 CPU 上运行得到的）</dd>
    <dt>网站</dt>
    <dd><a href="{{ config.site_url }}">{{ config.site_url }}</a></dd>
    <dt>许可</dt>
    <dd>{{ config.copyright }}</dd>
  </dl>
</div>
