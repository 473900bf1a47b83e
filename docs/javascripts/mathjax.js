// MathJax 3 的配置：只排版 arithmatex 标出的公式。MathJax 本身由本站自己提供（见 package.json 与 hooks.py）。
// 启动时不自动排版；就绪后订阅 mkdocs-material 的 document$，首次加载和每次 instant 导航换页都排版一次。
// （如果启动时自动排版、又在订阅里清缓存重排，字符的 CSS 会丢失，公式显示成空白。）
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
  startup: {
    typeset: false,
    ready() {
      MathJax.startup.defaultReady();
      document$.subscribe(() => {
        MathJax.startup.output.clearCache();
        MathJax.typesetClear();
        MathJax.texReset();
        MathJax.typesetPromise();
      });
    },
  },
};
