// MathJax 3 的配置（按 mkdocs-material 文档的写法）：只排版 arithmatex 标出的公式，
// 每次 instant 导航换页后重新排版。MathJax 本身由本站自己提供（见 package.json 与 hooks.py）。
window.MathJax = {
  tex: {
    inlineMath: [["\\(", "\\)"]],
    displayMath: [["\\[", "\\]"]],
    processEscapes: true,
    processEnvironments: true,
  },
  options: {
    ignoreHtmlClass: ".*|",
    processHtmlClass: "arithmatex",
  },
};

document$.subscribe(() => {
  MathJax.startup.output.clearCache();
  MathJax.typesetClear();
  MathJax.texReset();
  MathJax.typesetPromise();
});
