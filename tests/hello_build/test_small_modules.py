"""hello_build 的小模块：settings、search、assets、slugs、artefacts。"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from hello_build import assets, search, settings, slugs


def test_settings_read_flags_from_the_environment(tmp_path):
    read = settings.Settings.read
    assert read(tmp_path, {}).cold is False and read(tmp_path, {}).execute is True
    assert read(tmp_path, {"HELLO_PYTORCH_COLD": "1"}).cold is True
    assert read(tmp_path, {"HELLO_PYTORCH_COLD": "0"}).cold is False
    assert read(tmp_path, {"HELLO_PYTORCH_EXECUTE": "0"}).execute is False
    assert read(tmp_path, {}).run_notebooks is True
    assert read(tmp_path, {"HELLO_PYTORCH_NOTEBOOKS": "0"}).run_notebooks is False
    assert read(tmp_path, {"HELLO_PYTORCH_BLOCK_TIMEOUT": "7"}).block_timeout == 7
    assert read(tmp_path, {}, site_url="https://x.io/site").site_root == "https://x.io/site/"
    # 相对的缓存目录按构建开始时的当前目录解析：笔记本内核在别的目录里运行，也要指到同一个地方
    assert read(tmp_path, {"HELLO_PYTORCH_CACHE": "rel/cache"}).cache == Path.cwd() / "rel" / "cache"


def test_glossary_terms_are_the_chinese_terms_of_the_table(tmp_path):
    glossary = tmp_path / "glossary.md"
    glossary.write_text(
        "| 中文 | English | 在哪里讲 |\n| --- | --- | --- |\n| 反向传播 | backpropagation | x |\n"
        "| pre-norm（先归一化） | pre-norm | x |\n| GELU | GELU | x |\n| 随机种子 | random seed | x |\n",
        encoding="utf-8",
    )
    assert search.glossary_terms(glossary) == ["反向传播", "随机种子"]


def test_outputs_are_excluded_from_search():
    html = '<div class="language-text highlight"><pre>1</pre></div><svg width="1"></svg><p>正文</p>'
    out = search.exclude_outputs(html)
    assert out.count("data-search-exclude") == 2 and "<p>正文</p>" in out


def test_assets_list_everything_and_say_how_to_get_it(tmp_path):
    with pytest.raises(assets.MissingAssets, match="npm ci"):
        assets.files(tmp_path)
    for source in assets.VENDORED.values():
        target = tmp_path / source
        if source.endswith(("fonts", "chunks/mermaid.esm.min")):
            (target).mkdir(parents=True)
            (target / "a.woff2").write_text("x")
            (target / "a.woff2.map").write_text("x")
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text("x")
    listed = dict(assets.files(tmp_path))
    assert "assets/vendor/katex/fonts/a.woff2" in listed
    assert not any(uri.endswith(".map") for uri in listed), "不带 source map"
    site = tmp_path / "site"
    assert assets.copy_into(site, tmp_path) == len(listed) + 1  # 加上 Mermaid 模块的执行顺序
    assert (site / "assets/vendor/katex/katex.min.js").exists()
    assert json.loads((site / assets.MERMAID_ORDER).read_text(encoding="utf-8")) == []


def test_static_imports_are_read_from_the_head_of_a_minified_module():
    module = 'import{a as b,c as d}from"./x.mjs";import"./y.mjs";import * as z from "../z.mjs";var q=import("./later.mjs");'
    assert assets.static_imports(module) == ["./x.mjs", "./y.mjs", "../z.mjs"]
    assert assets.static_imports('var a=1;import"./x.mjs";') == [], "只读开头的导入语句"


def _modules(tmp_path, sources):
    listed = []
    for uri, text in sources.items():
        path = tmp_path / uri
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        listed.append((uri, path))
    return listed


def test_mermaid_modules_run_one_by_one_with_dependencies_first(tmp_path):
    entry = "assets/vendor/mermaid/mermaid.esm.min.mjs"
    chunk = "assets/vendor/mermaid/chunks/m/"
    listed = _modules(
        tmp_path,
        {
            entry: 'import{a}from"./chunks/m/b.mjs";import"./chunks/m/c.mjs";export default 1;',
            chunk + "b.mjs": 'import"./d.mjs";import"../m/c.mjs";var b=1;',
            chunk + "c.mjs": 'import"./d.mjs";',
            chunk + "d.mjs": "var d=import('./e.mjs');",
            chunk + "e.mjs": "",  # 只被动态导入：画某种图时才加载，不在列表里
        },
    )
    assert assets.evaluation_order(listed) == [chunk + "d.mjs", chunk + "c.mjs", chunk + "b.mjs"]
    assert json.loads(assets.mermaid_order(listed)) == ["chunks/m/d.mjs", "chunks/m/c.mjs", "chunks/m/b.mjs"]
    broken = _modules(tmp_path / "broken", {entry: 'import"./chunks/m/gone.mjs";'})
    with pytest.raises(assets.MissingAssets, match=r"gone\.mjs"):
        assets.evaluation_order(broken)


def test_the_real_mermaid_order_puts_every_import_before_its_importer():
    node_modules = Path(__file__).resolve().parents[2] / "node_modules"
    if not (node_modules / "mermaid").exists():
        pytest.skip("没有 node_modules（npm ci）")
    listed = assets.files(node_modules)
    sources = dict(listed)
    order = assets.evaluation_order(listed)
    assert len(order) == len(set(order)) > 5
    position = {uri: index for index, uri in enumerate([*order, assets.MERMAID_ENTRY])}
    for uri in position:
        base = uri.rsplit("/", 1)[0]
        for relative in assets.static_imports(sources[uri].read_text(encoding="utf-8")):
            target = f"{base}/{relative.removeprefix('./')}"
            assert position[target] < position[uri], f"{uri} 导入的 {target} 要排在它前面"


def test_one_slug_rule_keeps_chinese():
    assert slugs.slugify("3.3 公平的比较怎么做", "-") == "33-公平的比较怎么做"
    assert slugs.slugify("`torch.compile`：编译", "-") == "torchcompile编译"


# ---------------------------------------------------------------- artefacts：冷构建删掉旧产物


def _stale(cache: Path) -> list[Path]:
    files = [cache / name / "old.txt" for name in ("exec", "artefacts", "inductor", "notebooks", "keep")]
    for path in files:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("旧的")
    return files


@pytest.mark.parametrize("cold", [True, False])
def test_a_cold_build_wipes_every_artefact_and_a_warm_one_keeps_them(tmp_path, monkeypatch, cold):
    from hello_build import artefacts
    from hello_build.settings import ARTEFACTS_ENV, INDUCTOR_ENV, Settings

    monkeypatch.delenv(ARTEFACTS_ENV, raising=False)
    monkeypatch.delenv(INDUCTOR_ENV, raising=False)
    files = _stale(tmp_path / "cache")
    artefacts.prepare(Settings(root=tmp_path, cold=cold, cache_root=tmp_path / "cache"))
    assert [p.exists() for p in files] == ([False] * 4 + [True] if cold else [True] * 5)
    assert os.environ[ARTEFACTS_ENV] == str(tmp_path / "cache" / "artefacts"), "子进程从环境变量找到产物目录"


def test_a_directory_the_caller_chose_is_not_wiped(tmp_path, monkeypatch):
    from hello_build import artefacts
    from hello_build.settings import ARTEFACTS_ENV, INDUCTOR_ENV, Settings

    elsewhere = tmp_path / "session-artefacts"
    (elsewhere / "x.pt").parent.mkdir(parents=True)
    (elsewhere / "x.pt").write_text("会话的")
    monkeypatch.setenv(ARTEFACTS_ENV, str(elsewhere))
    monkeypatch.delenv(INDUCTOR_ENV, raising=False)
    artefacts.prepare(Settings(root=tmp_path, cold=True, cache_root=tmp_path / "cache"))
    assert (elsewhere / "x.pt").exists() and os.environ[ARTEFACTS_ENV] == str(elsewhere)


def test_a_cold_zensical_build_also_wipes_old_artefacts(tmp_path, monkeypatch):
    """Zensical 没有钩子：它的冷构建由 hello_build.zensical 在调用 zensical 之前清掉旧产物。"""
    from hello_build import zensical
    from hello_build.settings import ARTEFACTS_ENV, CACHE_ENV, COLD_ENV, INDUCTOR_ENV

    monkeypatch.delenv(ARTEFACTS_ENV, raising=False)
    monkeypatch.delenv(INDUCTOR_ENV, raising=False)
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setenv(COLD_ENV, "1")
    files = _stale(tmp_path / "cache")
    seen = {}

    real_popen = subprocess.Popen

    def fake_popen(command, **kwargs):
        seen["exists"] = [p.exists() for p in files]
        return real_popen(["false"])

    monkeypatch.setattr(zensical.subprocess, "Popen", fake_popen)
    assert zensical.build(tmp_path / "site", root=tmp_path).returncode == 1
    assert seen["exists"] == [False] * 4 + [True], "调用 zensical 之前，旧产物已经删掉"


def test_zensical_clears_only_its_own_cache_never_ours(tmp_path, monkeypatch):
    """zensical build --clean 删掉整个 .cache/（连同执行缓存和检查点）：不用它，只删 Zensical 自己的缓存文件。"""
    from hello_build import zensical

    cache = tmp_path / ".cache"
    ours = [
        cache / name / "keep.txt" for name in ("exec", "artefacts", "inductor", "notebooks", "mkdocs-jupyter")
    ]
    theirs = [cache / "10450421714888733546", cache / "mkdocstrings.json", cache / "plugin" / "x"]
    for path in ours + theirs:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
    commands, real_popen = [], subprocess.Popen
    monkeypatch.setattr(
        zensical.subprocess, "Popen", lambda command, **kw: commands.append(command) or real_popen(["false"])
    )
    monkeypatch.setenv("HELLO_PYTORCH_COLD", "0")
    zensical.build(tmp_path / "site", root=tmp_path)
    assert all(p.exists() for p in ours), "本站的缓存必须留着"
    assert not any(p.exists() for p in theirs), "Zensical 自己的缓存每次清掉"
    assert "--clean" not in commands[0]


def test_a_hanging_zensical_build_is_stopped_with_its_children(tmp_path, monkeypatch):
    """Zensical 里没有单块时限（它在工作线程里渲染）：整个构建有时限，超时时连同子进程一起结束。"""
    from hello_build import zensical

    real_popen = subprocess.Popen
    marker = tmp_path / "child.pid"
    script = f"import subprocess, time; c = subprocess.Popen(['sleep', '60']); open({str(marker)!r}, 'w').write(str(c.pid)); time.sleep(60)"
    monkeypatch.setattr(
        zensical.subprocess, "Popen", lambda command, **kw: real_popen(["python3", "-c", script], **kw)
    )
    monkeypatch.setenv("HELLO_PYTORCH_COLD", "0")
    result = zensical.build(tmp_path / "site", root=tmp_path, timeout=2)
    assert result.returncode == 124
    child = int(marker.read_text())
    time.sleep(0.2)
    assert not Path(f"/proc/{child}").exists() or "Z" in Path(f"/proc/{child}/stat").read_text().split()[2], (
        "超时后子进程也要结束"
    )
