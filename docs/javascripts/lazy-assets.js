// 本站自带的 Mermaid 与 MathJax（由 hooks.py 从 node_modules 放进 assets/vendor/），只在页面需要时加载：
// 没有图也没有公式的页面两者都不请求。读者的浏览器只向本站请求脚本，从不访问 CDN。
(function () {
  const vendor = new URL("../assets/vendor/", document.currentScript.src);
  const loading = {};

  function load(path) {
    if (!loading[path]) {
      loading[path] = new Promise((resolve, reject) => {
        const script = document.createElement("script");
        script.src = new URL(path, vendor).href;
        script.onload = resolve;
        script.onerror = () => reject(new Error(`无法加载本站的 ${script.src}`));
        document.head.appendChild(script);
      });
    }
    return loading[path];
  }

  // mkdocs-material 只在页面有 Mermaid 图时才调用 mermaid.initialize / mermaid.render，
  // 而且一旦发现全局变量 mermaid 就不再去 CDN 下载。这里放一个替身：第一次 render 时才加载本站的 Mermaid。
  // securityLevel "antiscript" 让图里的 click 链接可用（首页流程图），同时仍然移除 <script>。
  let mermaidConfig = {};
  window.mermaid = {
    initialize(config) {
      mermaidConfig = config;
    },
    async render(...args) {
      await load("mermaid/mermaid.min.js"); // 它把全局的 mermaid 换成真的 Mermaid
      window.mermaid.initialize({ ...mermaidConfig, securityLevel: "antiscript" });
      return window.mermaid.render(...args);
    },
  };

  // MathJax：页面里有公式（arithmatex）时才加载；加载后它在 mathjax.js 的 ready() 里自己订阅换页。
  document$.subscribe(() => {
    if (document.querySelector(".arithmatex")) {
      load("mathjax/tex-chtml.js");
    }
  });
})();
