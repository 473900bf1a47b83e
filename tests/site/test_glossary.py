"""术语表说的是真话，页面也照术语表写。

- 术语表的每个词只有一行，不同的行不是同一个英文名：一个概念只用一个中文名字。
- “首次出现”一列链接的，正是按导航顺序第一个用到这个词的章节；中文术语在那里第一次出现时注了英文。
- 一页里，一个术语的英文注释最多出现一次，而且就在这个词在这一页第一次出现的地方（别的页可以再注一次，
  读者可能从任何一页读起）。
- 术语表不用的叫法（词嵌入……）在页面和页面展示、运行的代码里都不出现。

这里说的“页面的正文”“出现”“英文注释”都有确切的含义，见下面的 prose、occurrences、is_gloss。
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import DOCS, ROOT, SNIPPETS
from tests.site.test_structure import nav_pages

ROW = re.compile(r"^\| (?P<zh>[^|]+?) \| (?P<en>[^|]+?) \| \[[^\]]+\]\((?P<page>[^)#]+)\) \|$", re.MULTILINE)
GLOSSARY = (DOCS / "glossary.md").read_text(encoding="utf-8")
ROWS = ROW.findall(GLOSSARY)
PAREN = re.compile(r"（.*?）")
CJK = re.compile(r"[\u4e00-\u9fff]")

# 含有某个术语、意思却不同的常用词。按最长匹配切词时，它们整个被认出来，里面的字不算那个术语出现了一次
# （“价值”里的“值”不是注意力的值，“关键”里的“键”不是注意力的键）。测试说某个词比英文注释出现得早，
# 而那里其实是另一个词时，把那个词加到这里。
OTHER_WORDS = {
    "价值",  # 值
    "数值",
    "取值",
    "值域",
    "平均值",
    "最大值",
    "最小值",
    "绝对值",
    "默认值",
    "返回值",
    "目标值",
    "参照值",
    "精确值",
    "正确值",
    "估计值",
    "差值",
    "峰值",
    "值得",
    "关键",  # 键
    "键里",  # “键里带着库的源码”：缓存的键
    "低秩",  # 秩：“低秩”是形容词（low-rank），第一次讲“秩”在后面
    "采样点",  # 采样：音频的采样点不是按概率抽签
    "采样器",  # DistributedSampler
    "编程作业",  # 作业：课程的作业不是交给调度系统的作业
    "轮流",  # 轮
    "轮次",  # 计时的“中间一半轮次”不是训练的轮
}

# 术语表不用的叫法 -> 术语表用的叫法。页面和 snippets/ 里的代码（页面展示它、打印它的输出）都不许出现
BANNED = {
    "词嵌入": "词元嵌入",  # 词元 = token，token embedding 是“词元嵌入”
    "升温": "预热",  # 学习率的 warmup
    "批量大小": "批大小",
}


@dataclass(frozen=True)
class Entry:
    term: str  # 正文里写的那个词：中文一列去掉括号里的说明
    key: str | None  # 英文注释里必须有的文字（不分大小写）；None：这个词没有别的名字可注
    page: str  # “首次出现”一列链接的页面


def entry(zh: str, en: str, page: str) -> Entry:
    """英文注释必须含有英文名：English 一列去掉括号和反引号后，第一个逗号之前的部分。

    术语本身就是英文（logits、softmax）时，英文名就是它自己，注释改为括号里的中文说明（没有说明就不要求注释）。
    """
    term = PAREN.sub("", zh).strip()
    name = PAREN.sub("", en).replace("`", "").split("，")[0].strip()
    if name.lower() != term.lower():
        return Entry(term, name, page)
    explanation = PAREN.search(en)
    return Entry(term, explanation[0][1:-1] if explanation else None, page)


ENTRIES = [entry(*row) for row in ROWS]
BY_TERM = {e.term: e for e in ENTRIES}
PAGES = [page for page in nav_pages() if page != "glossary.md"]
CHAPTERS = [page for page in PAGES if page.startswith("part")]

FENCE = re.compile(r"^\s*(```+|~~~+)")
TITLE_LINE = re.compile(r"^\s*(#|!!!|\?\?\?|===)")  # 标题，提示框、折叠框、标签页的标题行


def prose(markdown: str) -> str:
    """页面的正文：读者读到的文字。

    去掉 front matter、代码块（包括 Mermaid 图和缩进在提示框里的）、标题行、提示框和标签页的标题行、公式、
    行内代码、HTML 标签、链接地址、脚注编号和加粗记号。公式和行内代码换成一个“¤”，所以“线性层（linear layer，
    `nn.Linear`）”的括号仍然完整。代码块运行时打印出的文字不在 Markdown 里，这里也就不查。
    """
    markdown = re.sub(r"\A---\n.*?\n---\n", "", markdown, flags=re.DOTALL)
    lines, fence = [], None
    for line in markdown.splitlines():
        match = FENCE.match(line)
        if fence:
            if match and line.strip().startswith(fence):
                fence = None
            lines.append("")
        elif match:
            fence = match[1]
            lines.append("")
        else:
            lines.append("" if TITLE_LINE.match(line) else line)
    text = "\n".join(lines)
    text = re.sub(r"\$\$.*?\$\$", "¤", text, flags=re.DOTALL)
    text = re.sub(r"(?<![\\$])\$[^$\n]+?\$", "¤", text)
    text = re.sub(r"`[^`\n]+`", "¤", text)
    text = re.sub(r"\[\^[^\]]+\](?!:)", "", text)  # 脚注编号
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)  # 链接只留文字
    text = re.sub(r"<[^>\n]+>", "", text)
    return text.replace("**", "")


WORDS = sorted({e.term for e in ENTRIES} | OTHER_WORDS, key=len, reverse=True)
BY_FIRST_CHAR: dict[str, list[str]] = {}
for _word in WORDS:
    BY_FIRST_CHAR.setdefault(_word[0], []).append(_word)
ASCII_WORD_CHAR = re.compile(r"[A-Za-z0-9_-]")


def occurrences(text: str) -> list[tuple[int, str]]:
    """从左到右按最长匹配切出术语（OTHER_WORDS 也参加匹配，但不算术语）：[(位置, 术语)]。

    “注意力权重”是一个术语，里面的“注意力”“权重”就不另算；英文术语要是一个完整的词（“QLoRA”里没有“LoRA”）。
    """
    found, i = [], 0
    while i < len(text):
        for word in BY_FIRST_CHAR.get(text[i], ()):
            end = i + len(word)
            if not text.startswith(word, i):
                continue
            if word.isascii() and (
                (i and ASCII_WORD_CHAR.match(text[i - 1]))
                or (end < len(text) and ASCII_WORD_CHAR.match(text[end]))
            ):
                continue
            if word in BY_TERM:
                found.append((i, word))
            i = end - 1
            break
        i += 1
    return found


def is_gloss(text: str, position: int, e: Entry) -> bool:
    """英文注释：术语后面紧跟着一个全角括号（中间不隔任何字符），括号里（配对到对应的右括号）含有英文名。

    所以“权重（见 1.9 节）”不是注释，“线性层（linear layer，`nn.Linear`）”是。
    """
    start = position + len(e.term)
    if e.key is None or not text.startswith("（", start):
        return False
    depth = 0
    for end in range(start, len(text)):
        depth += {"（": 1, "）": -1}.get(text[end], 0)
        if depth == 0:
            return e.key.lower() in text[start + 1 : end].lower()
    return False


@functools.cache
def page_text(page: str) -> str:
    return prose((DOCS / page).read_text(encoding="utf-8"))


@functools.cache
def page_uses(page: str) -> dict[str, list[tuple[int, bool]]]:
    """页面 -> {术语: [(位置, 这里是不是英文注释)]}，按出现的先后。"""
    text, uses = page_text(page), {}
    for position, term in occurrences(text):
        uses.setdefault(term, []).append((position, is_gloss(text, position, BY_TERM[term])))
    return uses


def context(page: str, position: int) -> str:
    text = page_text(page)
    line = text.count("\n", 0, position) + 1
    return f"{page} 第 {line} 行：…{text[max(0, position - 12) : position + 16]}…".replace("\n", " ")


def test_glossary_has_terms():
    assert len(ROWS) >= 40


def test_one_row_per_term_and_per_english_name():
    terms = [e.term for e in ENTRIES]
    assert len(set(terms)) == len(terms), (
        f"术语表里有重复的行：{sorted(t for t in terms if terms.count(t) > 1)}"
    )
    names = [PAREN.sub("", en).replace("`", "").split("，")[0].strip().lower() for _, en, _ in ROWS]
    twice = sorted({n for n in names if names.count(n) > 1})
    assert not twice, f"这些英文名对应了不止一个中文术语（一个概念只用一个中文名字）：{twice}"


def test_the_column_says_what_it_links():
    headers = re.findall(r"^\| 中文 \| English \| (.+?) \|$", GLOSSARY, re.MULTILINE)
    assert headers and set(headers) == {"首次出现"}, headers
    assert "“首次出现”" in GLOSSARY.split("##")[0], "表前的说明要讲清“首次出现”一列指的是什么"


@pytest.mark.parametrize("e", ENTRIES, ids=[e.term for e in ENTRIES])
def test_glossary_links_the_chapter_where_the_term_first_appears(e):
    first = next((page for page in CHAPTERS if e.term in page_uses(page)), None)
    assert first == e.page, f"术语表说“{e.term}”首次出现在 {e.page}，按导航顺序它第一次出现在 {first}"
    position, glossed = page_uses(first)[e.term][0]
    if CJK.search(e.term) and e.key:
        assert glossed, f"“{e.term}”在这里第一次出现，应紧跟着英文注释（{e.key}）：{context(first, position)}"


@pytest.mark.parametrize("page", PAGES)
def test_a_term_is_glossed_at_most_once_per_page_and_at_its_first_use(page):
    problems = []
    for term, uses in page_uses(page).items():
        glosses = [position for position, glossed in uses if glossed]
        if len(glosses) > 1:
            problems.append(
                f"“{term}”注了 {len(glosses)} 次英文：" + "；".join(context(page, p) for p in glosses)
            )
        elif glosses and glosses[0] != uses[0][0]:
            problems.append(
                f"“{term}”的英文注释不在这一页第一次出现的地方：先出现在 {context(page, uses[0][0])}，"
                f"注释在 {context(page, glosses[0])}（那里若是另一个意思的词，把它加进 OTHER_WORDS）"
            )
    assert not problems, "\n".join(problems)


def reader_facing_files() -> list[Path]:
    return sorted(DOCS.rglob("*.md")) + sorted(SNIPPETS.rglob("*.py"))


def banned_in(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    return [f"{path.relative_to(ROOT)}：“{bad}”应写作“{good}”" for bad, good in BANNED.items() if bad in text]


@pytest.mark.parametrize("path", reader_facing_files(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_no_banned_variants(path):
    problems = banned_in(path)
    assert not problems, "\n".join(problems)
