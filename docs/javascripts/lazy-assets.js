// 本站自带的 Mermaid 与 KaTeX（由 hooks.py 从 node_modules 放进 assets/vendor/），只在页面需要时加载：
// 没有图也没有公式的页面两者都不请求。读者的浏览器只向本站请求脚本，从不访问 CDN。
(function () {
  const vendor = new URL("../assets/vendor/", document.currentScript.src);
  const loading = {};

  function load(path) {
    if (!loading[path]) {
      loading[path] = new Promise((resolve, reject) => {
        const url = new URL(path, vendor).href;
        const element = document.createElement(path.endsWith(".css") ? "link" : "script");
        if (path.endsWith(".css")) {
          element.rel = "stylesheet";
          element.href = url;
        } else {
          element.src = url;
        }
        element.onload = resolve;
        element.onerror = () => reject(new Error(`无法加载本站的 ${url}`));
        document.head.appendChild(element);
      });
    }
    return loading[path];
  }

  // mkdocs-material 只在页面有 Mermaid 图时才调用 mermaid.initialize / mermaid.render，
  // 而且一旦发现全局变量 mermaid 就不再去 CDN 下载。这里放一个替身：第一次 render 时才加载本站的 Mermaid
  // （ES 模块版，只下载画这种图需要的那部分代码）。
  // securityLevel "antiscript" 让图里的 click 链接可用（首页流程图），同时仍然移除 <script>。
  let mermaidConfig = {};
  let realMermaid = null;
  window.mermaid = {
    initialize(config) {
      mermaidConfig = config;
    },
    async render(...args) {
      if (!realMermaid) {
        realMermaid = (await import(new URL("mermaid/mermaid.esm.min.mjs", vendor).href)).default;
        realMermaid.initialize({ ...mermaidConfig, securityLevel: "antiscript" });
      }
      return realMermaid.render(...args);
    },
  };

  // 公式：pymdownx.arithmatex（generic）把每个公式放进 .arithmatex，行内是 \( … \)，独立成行是 \[ … \]。
  // 页面有公式时才加载 KaTeX；每次（包括 instant 导航换页后）把还没排版的公式排版一遍。
  // 笔记本网页（mkdocs-jupyter）里的公式还是 Markdown 原文 $…$ 和 $$…$$：用 KaTeX 的 auto-render 排版，
  // 它不碰 <code> 和 <pre> 里的内容。
  // 单元里代码以外的文字（Shell 脚本里的 $HOST 不是公式）
  function prose(cell) {
    const copy = cell.cloneNode(true);
    copy.querySelectorAll("pre, code").forEach((code) => code.remove());
    return copy.textContent;
  }

  // 排版分成小段做：每排大约 30 毫秒就把主线程让给浏览器一次。长页面有几百个公式，一口气排完是一个几百毫秒的
  // 长任务，这期间点击、滚动都没有反应（Lighthouse 的总阻塞时间）。让出主线程期间换页（instant 导航）或再次
  // 排版时，已经排好的公式有 data-typeset，不会再排一遍。
  let working = performance.now();
  async function breathe() {
    if (performance.now() - working > 30) {
      await new Promise((resolve) => setTimeout(resolve, 0));
      working = performance.now();
    }
  }

  async function typesetNotebook() {
    const cells = [...document.querySelectorAll(".jupyter-wrapper .jp-RenderedMarkdown:not([data-typeset])")];
    const withMath = cells.filter((cell) => prose(cell).includes("$"));
    if (!withMath.length) return;
    await Promise.all([load("katex/katex.min.css"), load("katex/katex.min.js")]);
    await load("katex/contrib/auto-render.min.js");
    for (const cell of withMath) {
      await breathe();
      if (cell.dataset.typeset !== undefined) continue;
      renderMathInElement(cell, {
        delimiters: [
          { left: "$$", right: "$$", display: true },
          { left: "$", right: "$", display: false },
        ],
        throwOnError: false,
      });
      cell.dataset.typeset = "";
    }
  }

  async function typeset() {
    await typesetNotebook();
    const formulas = [...document.querySelectorAll(".arithmatex:not([data-typeset])")];
    if (!formulas.length) return;
    await Promise.all([load("katex/katex.min.css"), load("katex/katex.min.js")]);
    for (const element of formulas) {
      await breathe();
      if (element.dataset.typeset !== undefined) continue;
      const source = element.textContent.trim();
      const display = element.tagName === "DIV";
      const tex = source.replace(/^\\[([]/, "").replace(/\\[)\]]$/, "");
      katex.render(tex, element, { displayMode: display, throwOnError: false });
      element.dataset.typeset = "";
    }
    await document.fonts.ready; // 字体到位后公式才是最终宽度
    window.helloPytorchFocusScrollables?.();
    // 排版和“放不下的公式能用键盘滚动”都做完了（浏览器测试等这个标记；换页时 .md-content 随页面一起换掉）
    document.querySelector(".md-content")?.setAttribute("data-typeset", "");
  }

  document$.subscribe(() => {
    typeset().catch((error) => console.error(error));
  });
})();
