// 无障碍的小修补（axe-core 检查过的问题）：
// 1. mkdocs-material 的搜索框是 role="dialog"，却没有名字；给它一个，读屏软件才能念出来。
document.querySelectorAll(".md-search[role=dialog]").forEach((dialog) => {
  dialog.setAttribute("aria-label", "搜索");
});

// 2. 放不下、需要横向滚动的宽表格、长公式和笔记本里的长代码行，要能用键盘聚焦后滚动。每次换页、公式排版后都检查一遍。
window.helloPytorchFocusScrollables = () => {
  const regions = ".md-typeset__scrollwrap, .md-typeset div.arithmatex, .jupyter-wrapper .highlight-ipynb, .jupyter-wrapper .jp-OutputArea-output, .jupyter-wrapper .jp-RenderedMarkdown pre";
  document.querySelectorAll(regions).forEach((region) => {
    if (region.scrollWidth > region.clientWidth && !region.hasAttribute("tabindex")) {
      region.tabIndex = 0;
    }
  });
};
document$.subscribe(() => window.helloPytorchFocusScrollables());
