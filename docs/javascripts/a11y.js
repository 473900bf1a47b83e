// 无障碍：mkdocs-material 的搜索框是 role="dialog"，却没有名字；给它一个，读屏软件才能念出来。
document.querySelectorAll(".md-search[role=dialog]").forEach((dialog) => {
  dialog.setAttribute("aria-label", "搜索");
});
