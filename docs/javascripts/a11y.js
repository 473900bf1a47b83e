// 无障碍的小修补（axe-core 检查过的问题）：
// 1. mkdocs-material 的搜索框是 role="dialog"，却没有名字；给它一个，读屏软件才能念出来。
document.querySelectorAll(".md-search[role=dialog]").forEach((dialog) => {
  dialog.setAttribute("aria-label", "搜索");
});

// 2. 放不下、需要横向滚动的宽表格、长公式和长代码行，要能用键盘聚焦后滚动。每次换页、公式排版后都检查一遍。
//    Material 等代码块进入屏幕才装配它（mkdocs.yml 的 content.lazy），那时才给放不下的代码块 tabindex：
//    只靠它，用 Tab 键往下走的读者会越过还没进过屏幕的代码块，所以这里也检查章节页的代码块。
//    量一个元素宽不宽会迫使浏览器先排版它（屏幕外先不排版的内容也一样，见 extra.css 的 content-visibility）：
//    长页面一口气量完是一个上百毫秒的长任务，所以每量大约 30 毫秒就把主线程让出一次。
//    只给了一些元素（刚排好的公式）时，只检查它们所在的和它们里面的区域。
window.helloPytorchFocusScrollables = async (within) => {
  const regions = ".md-typeset__scrollwrap, .md-typeset div.arithmatex, .md-typeset pre:not(.mermaid) > code, .jupyter-wrapper .highlight-ipynb, .jupyter-wrapper .jp-OutputArea-output, .jupyter-wrapper .jp-RenderedMarkdown pre";
  const candidates = within
    ? new Set(within.flatMap((element) => [element.closest(regions), ...element.querySelectorAll(regions)]))
    : document.querySelectorAll(regions);
  // 先让出一次：打开页面时这里在 Material 装配页面的同一个任务里被调用，量宽度另起一个任务，不把那个任务拉长
  await new Promise((resolve) => setTimeout(resolve, 0));
  let start = performance.now();
  for (const region of candidates) {
    if (performance.now() - start > 30) {
      await new Promise((resolve) => setTimeout(resolve, 0));
      start = performance.now();
    }
    if (region?.isConnected && !region.hasAttribute("tabindex") && region.scrollWidth > region.clientWidth) {
      region.tabIndex = 0;
    }
  }
};
document$.subscribe(() => window.helloPytorchFocusScrollables());
// 折叠起来的内容（笔记本网页上写出库文件的单元格）没有排版、量不出宽度：读者点开时再检查（toggle 事件不冒泡，在捕获阶段监听）
document.addEventListener("toggle", (event) => {
  if (event.target.open) window.helloPytorchFocusScrollables([event.target]);
}, true);
