// 本站自带的 Mermaid 与 KaTeX（由 hooks.py 从 node_modules 放进 assets/vendor/），只在页面需要时加载：
// 没有图也没有公式的页面两者都不请求。读者的浏览器只向本站请求脚本，从不访问 CDN。
(function () {
  const vendor = new URL("../assets/vendor/", document.currentScript.src);
  const loading = {};

  function load(path) {
    // 构建时已经放进页面的样式表（页面开头在构建时排好的公式要用，见 hello_build/formulas.py）不再加载一次
    const present = [...document.querySelectorAll('link[rel="stylesheet"]')].some((link) => link.href === new URL(path, vendor).href);
    if (present) loading[path] ??= Promise.resolve();
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
  // 画一张图要几十到上百毫秒，这期间页面不响应：打开页面时只画屏幕上看得见的图；读者开始滚动以后，
  // 每张图等它离屏幕不到一屏时就画（IntersectionObserver），滚到它时已经画好。读者一直不往下翻，
  // 屏幕外的图就一直不画，也不加载 Mermaid。打印前（beforeprint）和 helloPytorchDrawDiagrams() 画出全部。
  // “离屏幕不到一屏”：图和公式用同一个距离
  const NEAR_SCREEN = { rootMargin: "100% 0px" };
  const ON_SCREEN = { rootMargin: "0px" };

  let mermaidConfig = {};
  let realMermaid = null;
  const claimed = new WeakSet();
  const waiting = new Set();
  const widen = new Set(); // 还按“看得见才画”等着的图：读者一滚动，改成离屏幕不到一屏就画
  let scrolled = false;
  window.addEventListener(
    "scroll",
    () => {
      scrolled = true;
      widen.forEach((watch) => watch(NEAR_SCREEN));
      widen.clear();
    },
    { once: true, passive: true },
  );

  function nearScreen(element) {
    return new Promise((resolve) => {
      let observer = null;
      const watch = (options) => {
        observer?.disconnect();
        observer = new IntersectionObserver((entries) => entries.some((entry) => entry.isIntersecting) && done(), options);
        observer.observe(element);
      };
      const done = () => {
        observer.disconnect();
        waiting.delete(done);
        widen.delete(watch);
        resolve();
      };
      watch(scrolled ? NEAR_SCREEN : ON_SCREEN);
      if (!scrolled) widen.add(watch);
      waiting.add(done);
    });
  }

  window.helloPytorchDrawDiagrams = () => [...waiting].forEach((done) => done());
  window.addEventListener("beforeprint", window.helloPytorchDrawDiagrams);

  window.mermaid = {
    initialize(config) {
      mermaidConfig = config;
    },
    async render(id, text) {
      // Material 按文档顺序为每个 <pre class="mermaid"> 调用 render(id, 图的源码)，画好之前代码块还在原处
      const source = [...document.querySelectorAll("pre.mermaid")].find(
        (element) => !claimed.has(element) && element.textContent === text,
      );
      if (source) {
        claimed.add(source);
        await nearScreen(source);
      }
      realMermaid ??= loadMermaid();
      return (await realMermaid).render(id, text);
    },
  };

  // Mermaid 的入口静态导入了近二十个模块，直接 import 入口，它们在同一个任务里一口气执行完（一个近百毫秒的长任务）。
  // 所以先并行下载全部模块（modulepreload 只下载、编译，不执行），再按构建时算好的顺序（依赖在前，
  // 见 hello_build/assets.py 的 MERMAID_ORDER）一个一个 import，每执行一个就把主线程让给浏览器一次
  async function loadMermaid() {
    const response = await fetch(new URL("mermaid/order.json", vendor));
    if (!response.ok) throw new Error(`无法加载本站的 ${response.url}`);
    const modules = [...(await response.json()), "mermaid.esm.min.mjs"].map((path) => new URL(`mermaid/${path}`, vendor).href);
    for (const href of modules) {
      const link = document.createElement("link");
      link.rel = "modulepreload";
      link.href = href;
      document.head.appendChild(link);
    }
    let mermaid = null;
    for (const href of modules) {
      mermaid = (await import(href)).default;
      await new Promise((resolve) => setTimeout(resolve, 0));
    }
    mermaid.initialize({ ...mermaidConfig, securityLevel: "antiscript" });
    return mermaid;
  }

  // 公式：pymdownx.arithmatex（generic）把每个公式放进 .arithmatex，行内是 \( … \)，独立成行是 \[ … \]。
  // 笔记本网页（mkdocs-jupyter）里的公式还是 Markdown 原文 $…$ 和 $$…$$：用 KaTeX 的 auto-render 按单元排版，
  // 它不碰 <code> 和 <pre> 里的内容。
  // 页面有公式时才加载 KaTeX。排好的公式元素很多（一个公式几十个），长页面全部排好会让浏览器每次排版都慢上
  // 几十毫秒：所以和图一样，公式离屏幕不到一屏时才排版；打印前（beforeprint，同步）和
  // helloPytorchTypesetAll() 排完全部。排版分成小段做：每排大约 30 毫秒就把主线程让给浏览器一次。
  // 已经排好的元素有 data-typeset，不会再排一遍（包括 instant 导航换页后）。

  // 单元里代码以外的文字（Shell 脚本里的 $HOST 不是公式）
  function prose(cell) {
    const copy = cell.cloneNode(true);
    copy.querySelectorAll("pre, code").forEach((code) => code.remove());
    return copy.textContent;
  }

  let working = performance.now();
  async function breathe() {
    if (performance.now() - working > 30) {
      await new Promise((resolve) => setTimeout(resolve, 0));
      working = performance.now();
    }
  }

  function typesetOne(element) {
    if (element.dataset.typeset !== undefined || !element.isConnected) return;
    if (element.classList.contains("arithmatex")) {
      const source = element.textContent.trim();
      const tex = source.replace(/^\\[([]/, "").replace(/\\[)\]]$/, "");
      katex.render(tex, element, { displayMode: element.tagName === "DIV", throwOnError: false });
    } else {
      renderMathInElement(element, {
        delimiters: [
          { left: "$$", right: "$$", display: true },
          { left: "$", right: "$", display: false },
        ],
        throwOnError: false,
      });
    }
    element.dataset.typeset = "";
  }

  const untypeset = new Set(); // 页面上还没排版的公式（笔记本：单元）
  const queue = [];
  let katexReady = null;
  let draining = null;

  const mathObserver = new IntersectionObserver(
    (entries) => {
      for (const entry of entries) {
        if (entry.isIntersecting && untypeset.delete(entry.target)) {
          mathObserver.unobserve(entry.target);
          queue.push(entry.target);
        }
      }
      drain();
    },
    NEAR_SCREEN,
  );

  function drain() {
    draining ??= (async () => {
      const done = [];
      try {
        await katexReady;
        while (queue.length) {
          await breathe();
          const element = queue.shift();
          typesetOne(element);
          done.push(element);
        }
        await document.fonts.ready; // 字体到位后公式才是最终宽度
        await window.helloPytorchFocusScrollables?.(done);
      } catch (error) {
        console.error(error);
      } finally {
        draining = null;
      }
      if (queue.length) await drain();
    })();
    return draining;
  }

  // 排完页面上全部公式、检查过放不下的公式能否用键盘滚动以后，给 .md-content 加上 data-typeset（浏览器测试等它）
  window.helloPytorchTypesetAll = async () => {
    queue.push(...untypeset);
    untypeset.forEach((element) => mathObserver.unobserve(element));
    untypeset.clear();
    await drain();
    document.querySelector(".md-content")?.setAttribute("data-typeset", "");
  };

  // 打印前同步排完（打印不等异步任务）；KaTeX 还没加载完时做不到，只能打印原文
  window.addEventListener("beforeprint", () => {
    if (typeof katex === "undefined") return;
    for (const element of [...untypeset, ...queue]) {
      if (element.classList.contains("arithmatex") || typeof renderMathInElement !== "undefined") {
        typesetOne(element);
      }
    }
  });

  function findMath() {
    const cells = [...document.querySelectorAll(".jupyter-wrapper .jp-RenderedMarkdown:not([data-typeset])")];
    const withMath = cells.filter((cell) => prose(cell).includes("$"));
    const formulas = [...document.querySelectorAll(".arithmatex:not([data-typeset])")];
    if (!withMath.length && !formulas.length) return;
    const scripts = [load("katex/katex.min.css"), load("katex/katex.min.js")];
    katexReady = Promise.all(withMath.length ? [...scripts, scripts[1].then(() => load("katex/contrib/auto-render.min.js"))] : scripts);
    for (const element of [...withMath, ...formulas]) {
      untypeset.add(element);
      mathObserver.observe(element);
    }
    // 折起来的答案（<details>）里的公式也排好：它们不显示，排版不引起重新排版，只花 KaTeX 的计算时间
    //（分成小段）；打开答案时公式已经排好，无障碍检查看到的也不是 TeX 原文
    const folded = [...untypeset].filter((element) => element.closest("details:not([open])"));
    katexReady.then(
      () => {
        folded.forEach((element) => untypeset.delete(element) && mathObserver.unobserve(element));
        queue.push(...folded);
        drain();
      },
      () => {}, // KaTeX 加载失败由 drain() 报告，这里不再报一次
    );
  }

  document$.subscribe(() => {
    try {
      findMath();
    } catch (error) {
      console.error(error);
    }
  });
})();
