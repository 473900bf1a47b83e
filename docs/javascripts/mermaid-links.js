// 让 Mermaid 图里的方框可以点击（首页流程图用 click 链接到各章）。
// mkdocs-material 初始化 Mermaid 时不设 securityLevel，默认的 "strict" 会禁用 click；
// "antiscript" 允许链接，同时仍然移除图中的 <script>。
if (typeof mermaid !== "undefined") {
  const initialize = mermaid.initialize.bind(mermaid);
  mermaid.initialize = (config) => initialize({ ...config, securityLevel: "antiscript" });
}
