"""全测试共用的工具：仓库路径、独立运行 snippet、构建整个网站（每次测试会话只构建一次）。"""

from __future__ import annotations

import fcntl
import functools
import html as html_lib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.snippets import run_page_snippet

# 与构建一致（见 hooks.py）：snippet 在测试里也只用一个线程跑 PyTorch
os.environ.setdefault("OMP_NUM_THREADS", "1")

# 本次测试会话的缓存根目录（执行缓存、笔记本输出、snippet 存下的检查点和实验结果、torch.compile 的编译缓存）：
# 一个新建的空目录，snippet 测试、整站构建和笔记本内核共用——同一段代码在一次会话里只运行一次，也绝不读会话开始
# 之前的东西。snippet 测试把每个代码块的输出写进执行缓存，整站构建随后直接取用，只运行笔记本。
# 临时小站点（throwaway）不用它：它们测的正是构建自己怎样管理 .cache/。
# 用 pytest-xdist 分成几个进程（worker）运行时（可选，见 README），主进程建好这个目录，各 worker 继承它的环境变量、共用它。
SESSION_VARIABLES = ("HELLO_PYTORCH_CACHE", "HELLO_PYTORCH_ARTEFACTS", "TORCHINDUCTOR_CACHE_DIR")
WORKER = os.environ.get("PYTEST_XDIST_WORKER")  # "gw0"、"gw1"……；主进程和不用 -n 的运行里是 None
_OWNER = not (WORKER and "HELLO_PYTORCH_TEST_SESSION" in os.environ)  # 建目录、最后删目录的那个进程
if _OWNER:
    _SESSION_DIR = Path(tempfile.mkdtemp(prefix="hello-pytorch-tests-"))
    os.environ["HELLO_PYTORCH_TEST_SESSION"] = str(_SESSION_DIR)
    os.environ["HELLO_PYTORCH_CACHE"] = str(_SESSION_DIR)
    os.environ["HELLO_PYTORCH_ARTEFACTS"] = str(_SESSION_DIR / "artefacts")
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(_SESSION_DIR / "inductor")
else:
    _SESSION_DIR = Path(os.environ["HELLO_PYTORCH_TEST_SESSION"])


_prefetch: subprocess.Popen | None = None


def pytest_collection_finish(session):
    """要运行第二部分的测试或整站构建时，先在第二个进程里把第二部分的实验算起来（见 tests/prefetch.py）。"""
    global _prefetch
    wanted = any(("tests/part2/" in item.nodeid or "tests/site/" in item.nodeid) for item in session.items)
    first = WORKER in (None, "gw0")  # 两个 worker 都收集全部测试；只让一个启动预取
    if wanted and first and os.environ.get("HELLO_PYTORCH_PREFETCH", "1") != "0":
        log = (_SESSION_DIR / "prefetch.log").open("w", encoding="utf-8")
        _prefetch = subprocess.Popen(
            [sys.executable, "-m", "tests.prefetch"],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


COLLECTED = pytest.StashKey[
    set
]()  # 本次会话收集到的测试文件（相对仓库根目录），tests/site/test_tooling.py 用


def pytest_itemcollected(item):
    item.config.stash.setdefault(COLLECTED, set()).add(item.path.relative_to(ROOT).as_posix())


# 测试的顺序：
#   0. snippet 与构建包的测试——它们把代码块的输出写进执行缓存，整站构建随后取用；
#   1. 只构建临时小站点的测试——这时整站构建已经在后台开始了（pytest_runtest_setup），两者各用一个核；
#   2. 用整站构建（built_site）的测试，浏览器检查排最后。整站只构建一次（见 built_site）。
# 按单个测试分类，不按文件：同一个文件里只建临时小站点的测试（如 test_cache.py 的前两个）归第 1 类，和整站构建同时进行。
# 用 pytest-xdist 并行时（`-n 2 --dist loadfile --no-loadscope-reorder`，可选）：一个文件的测试只在一个 worker 里运行，
# 同一个 snippet 在一个进程里只运行一次；并行时先到的 worker 构建整站，另一个等它。
# （--dist loadgroup 在 pytest 9.2 上不起作用：xdist 3.8 改写的是 pytest 已经不用的 item._nodeid。）
_BUILT: set[str] = set()  # 用到整站构建的测试（nodeid）


# 整站一建好就在后台开始工作的测试文件（见 AFTER_BUILD）：PDF 的构建与打印、浏览器的逐页检查
_BACKGROUND = ("test_pdf.py", "test_browser.py")


def _order(item) -> tuple[int, int]:
    if item.nodeid in _BUILT:
        # 后台有工作的测试排在最后（浏览器检查最后）：它们最慢的那部分在后台进行时，其余用到整站的测试
        # （大多是单线程的 Python）照常运行，等到轮到它们，后台的结果多半已经好了
        name = item.path.name
        return 2, _BACKGROUND.index(name) + 1 if name in _BACKGROUND else 0
    return (1 if item.path.parent.name == "site" else 0), 0


def pytest_collection_modifyitems(config, items):
    _BUILT.update(item.nodeid for item in items if "built_site" in item.fixturenames)
    items.sort(key=_order)  # sort 是稳定的：同一类里保持收集的顺序


def pytest_runtest_setup(item):
    """snippet 测试（第 0 类）都跑完了，执行缓存就齐了：这时就在后台开始整站构建，和只建临时小站点的测试
    （第 1 类，单线程）同时进行，用上另一个核；用到它的测试（第 2 类）再等它完成（见 built_site）。"""
    if _BUILT and _order(item)[0] >= 1:
        _start_full_build()


def pytest_unconfigure(config):
    for process in (_prefetch, _full_build):
        if process is not None and process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    if _OWNER:
        shutil.rmtree(_SESSION_DIR, ignore_errors=True)


_TEXT_BLOCK = re.compile(
    r'<div class="language-text highlight"[^>]*><pre>.*?<code>(.*?)</code></pre></div>', re.S
)
_TAG = re.compile(r"<[^>]+>")

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
SNIPPETS = ROOT / "snippets"

# 构建全站的时间上限（秒）；全站冷构建在 2 核上应远低于它
BUILD_TIMEOUT = 20 * 60


_run_snippet = functools.cache(run_page_snippet)


@pytest.fixture(scope="session")
def run_snippet():
    """run_snippet("snippets/part1/ch05_hello.py") -> SnippetRun；同一文件在一次测试会话里只运行一次。"""
    return _run_snippet


# 断网的命名空间里只有回环接口，而且默认是关着的；打开它，本机进程之间（如 torchrun 的各进程）照样能通信
OFFLINE_PREFIX = ["unshare", "--net", "sh", "-c", 'ip link set lo up 2>/dev/null; exec "$@"', "sh"]


def can_unshare_net() -> bool:
    """能否在没有网络的命名空间里运行（root 下的 unshare --net）。"""
    if not shutil.which("unshare"):
        return False
    return subprocess.run(["unshare", "--net", "true"], capture_output=True, check=False).returncode == 0


def mkdocs_build(
    config: Path,
    site_dir: Path,
    cwd: Path,
    timeout: int = BUILD_TIMEOUT,
    offline: bool = False,
    share_cache: bool = False,
    **env_extra: str,
):
    """用 --strict 构建一个站点，返回 CompletedProcess（stdout 与 stderr 合并）。

    默认是冷构建（不读任何旧缓存）。share_cache=True 时与本次测试会话共用缓存目录：它是会话开始时新建的，
    snippet 测试已经把代码块的输出写了进去。offline=True 时在没有网络的命名空间里构建（unshare --net）。
    """
    command, env = _mkdocs_command(config, site_dir, offline, share_cache, **env_extra)
    return _build(command, cwd, env, share_cache, timeout)


def _mkdocs_command(
    config: Path, site_dir: Path, offline: bool, share_cache: bool, **env_extra: str
) -> tuple[list[str], dict]:
    env = {
        **os.environ,
        "NO_MKDOCS_2_WARNING": "1",
        "HELLO_PYTORCH_COLD": "0" if share_cache else "1",
        **env_extra,
    }
    if not share_cache:
        for variable in SESSION_VARIABLES:
            env.pop(variable, None)
    prefix = OFFLINE_PREFIX if offline else []
    command = [
        *prefix,
        sys.executable,
        "-m",
        "mkdocs",
        "build",
        "--strict",
        "-f",
        str(config),
        "-d",
        str(site_dir),
    ]
    return command, env


def zensical_build(
    root: Path, site_dir: Path, share_cache: bool, timeout: int = BUILD_TIMEOUT, **env_extra: str
):
    """用 Zensical 严格构建（hello_build.zensical：构建完再放进自带的 Mermaid 与 KaTeX）。"""
    command = [sys.executable, "-m", "hello_build.zensical", str(site_dir)]
    return _build(command, root, {**os.environ, **env_extra}, share_cache, timeout)


def _build(command: list[str], cwd: Path, env: dict, share_cache: bool, timeout: int):
    """运行一次构建，stdout 与 stderr 合并；不共用会话缓存时去掉会话的缓存变量（读不到会话里的任何东西）。"""
    if not share_cache:
        env = {key: value for key, value in env.items() if key not in SESSION_VARIABLES}
    return subprocess.run(
        command,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        check=False,
    )


@dataclass(frozen=True)
class BuiltSite:
    path: Path
    log: str
    offline: bool

    def html(self, page: str) -> str:
        """page 是 docs/ 下的 Markdown 路径，例如 "part1/ch05_hello.md"。"""
        stem = page.removesuffix(".md")
        rel = "index.html" if stem == "index" else f"{stem.removesuffix('/index')}/index.html"
        return (self.path / rel).read_text(encoding="utf-8")

    def outputs(self, page: str) -> list[str]:
        """页面上每个执行结果块（result="text"）的纯文本，按页面顺序。"""
        return [html_lib.unescape(_TAG.sub("", block)) for block in _TEXT_BLOCK.findall(self.html(page))]


_full_build: subprocess.Popen | None = None


def _start_full_build() -> None:
    """在后台开始整站构建，输出写进会话目录里的 built-site.log（不用 pytest-xdist 时；并行时由 built_site 构建）。"""
    global _full_build
    if _full_build is not None or WORKER is not None:
        return
    command, env = _mkdocs_command(
        ROOT / "mkdocs.yml", _SESSION_DIR / "built-site", can_unshare_net(), share_cache=True
    )
    log = (_SESSION_DIR / "built-site.log").open("w", encoding="utf-8")
    _full_build = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )


@pytest.fixture(scope="session")
def built_site() -> BuiltSite:
    """整个网站的严格构建，一次测试会话只做一次；缓存是本会话新建的（不读会话开始之前的任何东西），snippet 测试
    已经运行过的代码块直接取用。能断网时就在断网的命名空间里构建。snippet 测试跑完时它已经在后台开始了
    （pytest_runtest_setup），这里等它完成。

    两个 pytest-xdist 进程都要用它时，先拿到文件锁的那个构建，另一个等它构建完，读同一个目录和日志。"""
    site_dir = _SESSION_DIR / "built-site"
    log_file, status_file = _SESSION_DIR / "built-site.log", _SESSION_DIR / "built-site.status"
    offline = can_unshare_net()
    _start_full_build()
    with (_SESSION_DIR / "built-site.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not status_file.exists() and _full_build is not None:
            try:
                code = _full_build.wait(timeout=BUILD_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(_full_build.pid, signal.SIGKILL)
                code = f"超过 {BUILD_TIMEOUT} 秒"
            status_file.write_text(str(code), encoding="utf-8")
        elif not status_file.exists():
            result = mkdocs_build(ROOT / "mkdocs.yml", site_dir, cwd=ROOT, offline=offline, share_cache=True)
            log_file.write_text(result.stdout, encoding="utf-8")
            status_file.write_text(str(result.returncode), encoding="utf-8")
    log = log_file.read_text(encoding="utf-8")
    assert status_file.read_text(encoding="utf-8") == "0", f"严格构建失败：\n{log[-8000:]}"
    site = BuiltSite(path=site_dir, log=log, offline=offline)
    for callback in AFTER_BUILD:
        callback(site)
    return site


# 整站建好后立刻调用的函数（测试模块导入时登记）：tests/site/test_browser.py 在后台开始逐页检查，tests/site/test_pdf.py 开始构建和打印 PDF
AFTER_BUILD: list = []


# ---------------------------------------------------------------- 临时小站点（测失败模式与保证）

FENCE = '```python exec="on" session="{session}" source="above" result="text"\n--8<-- "{target}"\n```\n'


def _project_config_without_nav() -> str:
    text = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    head, sep, _ = text.rpartition("\nnav:\n")
    assert sep, "mkdocs.yml 应以 nav: 结尾"
    return head + "\n"


@pytest.fixture
def throwaway(tmp_path):
    """临时小站点：本项目的 mkdocs.yml、hooks.py、构建包 hello_build 与 requirements.txt 原样复制，只换掉导航和页面。

    返回 build(pages, snippets, assets=True, tool="mkdocs", **env) -> (returncode, log)；tool="zensical" 时
    用 Zensical 构建到 site-zensical/（没有钩子，缓存照常在小站点自己的 .cache/ 里）。
    """

    def build(
        pages: dict[str, str],
        snippets: dict[str, str] | None = None,
        assets: bool = True,
        tool: str = "mkdocs",
        **env: str,
    ):
        shutil.copy(ROOT / "hooks.py", tmp_path / "hooks.py")
        for package in ("hello_build", "overrides"):  # 构建包与主题覆盖：和本项目用的完全相同
            shutil.copytree(
                ROOT / package,
                tmp_path / package,
                dirs_exist_ok=True,
                ignore=shutil.ignore_patterns("__pycache__"),
            )
        shutil.copy(ROOT / "requirements.txt", tmp_path / "requirements.txt")  # 笔记本的安装单元从这里取版本
        modules = tmp_path / "node_modules"
        if assets and not modules.exists():
            modules.symlink_to(ROOT / "node_modules", target_is_directory=True)
        for static in ("javascripts", "stylesheets"):
            shutil.copytree(ROOT / "docs" / static, tmp_path / "docs" / static, dirs_exist_ok=True)
        (tmp_path / "snippets").mkdir(exist_ok=True)
        nav = "".join(f"  - {name}\n" for name in pages)
        (tmp_path / "mkdocs.yml").write_text(_project_config_without_nav() + "nav:\n" + nav, encoding="utf-8")
        for name, text in pages.items():
            path = tmp_path / "docs" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(text), encoding="utf-8")
        for name, text in (snippets or {}).items():
            path = tmp_path / "snippets" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(text), encoding="utf-8")
        if tool == "zensical":
            result = zensical_build(tmp_path, tmp_path / "site-zensical", share_cache=False, **env)
        else:
            result = mkdocs_build(
                tmp_path / "mkdocs.yml", tmp_path / "site", cwd=tmp_path, timeout=300, **env
            )
        return result.returncode, result.stdout

    return build
