"""Hello PyTorch 的开发任务。读者：`nox -s serve`；维护者：`nox -s tests`。"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import nox

ROOT = Path(__file__).parent
REQUIREMENTS = ROOT / "requirements.txt"

nox.options.reuse_venv = "yes"
# uv（`pip install "nox[uv]"` 一并装上）建虚拟环境、装依赖只要十几秒，pip 要近两分钟；没有 uv 时退回 virtualenv + pip
nox.options.default_venv_backend = "uv|virtualenv"
nox.options.sessions = ["lint", "tests"]

# mkdocs-material 的“MkDocs 2.0”横幅不是本站的问题，关掉它，好让构建输出里只有本站的警告
BUILD_ENV = {"NO_MKDOCS_2_WARNING": "1", "PYTHONHASHSEED": "0"}


def _pip_find_links() -> str:
    """这台机器给 pip 配的本地安装包目录（pip 的 find-links 设置，例如放着 CPU 版 torch 的目录）；没有时为空。"""
    if os.environ.get("PIP_FIND_LINKS"):
        return os.environ["PIP_FIND_LINKS"]
    found = subprocess.run(
        [sys.executable, "-m", "pip", "config", "get", "global.find-links"],
        capture_output=True,
        text=True,
        check=False,
    )
    return found.stdout.strip() if found.returncode == 0 else ""


def _install_requirements(session: nox.Session) -> None:
    """requirements.txt 没变就不再安装，热启动只花几秒。"""
    digest = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    stamp = Path(session.virtualenv.location) / ".requirements.sha256"
    if stamp.exists() and stamp.read_text() == digest:
        return
    env = {}
    if session.virtualenv.venv_backend == "uv":
        # 像 pip 一样在安装时把 .py 编译成字节码：不然每个导入 torch 的进程（测试、内核、torchrun 的各 rank）第一次
        # 都要自己编译，而且会有几个进程同时编译同一批文件
        env["UV_COMPILE_BYTECODE"] = "1"
        links = _pip_find_links()
        if links:
            # uv 不读 pip 的配置文件：把本地安装包目录告诉它，否则它会从索引下载别的 torch 构建
            env["UV_FIND_LINKS"] = links
    session.install("-r", str(REQUIREMENTS), env=env)
    stamp.write_text(digest)


def _install_browser_assets(session: nox.Session, dev: bool = False) -> None:
    """网站自带的 Mermaid 与 KaTeX：按 package-lock.json 用 npm ci 装进 node_modules/（不入库）。

    dev=True 时连同开发用的 Lighthouse 一起装（只有 nox -s audit 需要）。
    """
    mode = "dev" if dev else "site"
    digest = hashlib.sha256((ROOT / "package-lock.json").read_bytes()).hexdigest()
    stamp = ROOT / "node_modules" / ".package-lock.sha256"
    installed = stamp.read_text().split() if stamp.exists() else []
    if installed and installed[0] == digest and (installed[1] == "dev" or not dev):
        return
    omit = [] if dev else ["--omit=dev"]
    session.run("npm", "ci", *omit, "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error")
    stamp.write_text(f"{digest} {mode}")


def _pin(name: str) -> str:
    """从 requirements.txt 读出某个包的精确版本，版本只写在那一个地方。"""
    match = re.search(rf"^{re.escape(name)}==\S+", REQUIREMENTS.read_text(), re.MULTILINE)
    if match is None:
        raise ValueError(f"requirements.txt 里没有 {name} 的版本")
    return match[0]


@nox.session
def docs(session: nox.Session) -> None:
    """严格构建网站到 site/。"""
    _install_requirements(session)
    _install_browser_assets(session)
    # python -m：当前目录（仓库根目录）在模块搜索路径上，mkdocs.yml 才能找到构建包 hello_build
    session.run(
        "python", "-m", "mkdocs", "build", "--strict", "--site-dir", "site", *session.posargs, env=BUILD_ENV
    )


@nox.session
def serve(session: nox.Session) -> None:
    """本地预览：http://127.0.0.1:8000 ，改动 docs/ 或 snippets/ 自动重建。"""
    _install_requirements(session)
    _install_browser_assets(session)
    # 本地预览时网站就在 127.0.0.1:8000 的根上（mkdocs.yml 的 site_url 默认是发布的地址，路径里带仓库名）
    env = {**BUILD_ENV, "HELLO_PYTORCH_SITE_URL": "http://127.0.0.1:8000/"}
    session.run("python", "-m", "mkdocs", "serve", "--dev-addr", "127.0.0.1:8000", *session.posargs, env=env)


@nox.session
def zensical(session: nox.Session) -> None:
    """用 Zensical（Material for MkDocs 的后继者）严格构建同一个 mkdocs.yml 到 site-zensical/。

    Zensical 没有 hooks: 和 mkdocs-jupyter：代码块照样执行（本站的自定义代码块），没有执行缓存、页脚和笔记本；
    Mermaid 与 KaTeX 构建完再复制进网站。两者的差别见 README。
    """
    _install_requirements(session)
    _install_browser_assets(session)
    session.run("python", "-m", "hello_build.zensical", "site-zensical", *session.posargs, env=BUILD_ENV)


@nox.session
def pdf(session: nox.Session) -> None:
    """整本书的 PDF：构建带打印页的网站到 site-pdf/（mkdocs-print-site-plugin 把各章拼成一页），再用 Chromium
    把那一页打印成 site/hello-pytorch.pdf。需要 Chromium 和中文字体（Debian：apt-get install chromium
    fonts-noto-cjk）；nox -s docs 和 nox -s serve 不需要它们。"""
    _install_requirements(session)
    _install_browser_assets(session)
    # 笔记本网页不进 PDF：这次构建不运行笔记本（新克隆的仓库上省下几分钟）；各章的代码块照常执行或取用缓存
    env = {**BUILD_ENV, "HELLO_PYTORCH_PDF": "true", "HELLO_PYTORCH_NOTEBOOKS": "0"}
    session.run("python", "-m", "mkdocs", "build", "--strict", "--site-dir", "site-pdf", env=env)
    session.run("python", "-m", "hello_build.pdf", "site-pdf", "site/hello-pytorch.pdf", env=BUILD_ENV)


LINTED = ["snippets", "tests", "hooks.py", "hello_build", "noxfile.py"]


@nox.session
def tests(session: nox.Session) -> None:
    """运行全部测试：先查代码风格（ruff，一秒钟），再运行 pytest——每个 snippet 的行为测试、构建包的单元测试、
    严格构建（MkDocs 与 Zensical）和构建出的网站检查。"""
    _install_requirements(session)
    _install_browser_assets(session)
    session.run("ruff", "check", *LINTED)
    session.run("ruff", "format", "--check", *LINTED)
    session.run("pytest", *session.posargs, env=BUILD_ENV)


@nox.session
def bench(session: nox.Session) -> None:
    """构建速度基准：只渲染、单独运行、冷构建、热构建、改文字、改 snippet，打印表格并检查目标。"""
    _install_requirements(session)
    _install_browser_assets(session)
    session.run("python", "tests/bench.py", env=BUILD_ENV)


@nox.session
def audit(session: nox.Session) -> None:
    """审计每一页：Lighthouse（桌面与手机）和 HTML 校验器 vnu，打印表格并检查目标（见 tests/audit.py）。

    需要 Chromium 和 Java（Debian：apt-get install chromium default-jre-headless）；Lighthouse 与 vnu 由 npm 装进
    node_modules/。`nox -s audit -- part1/ch03_algorithm/` 只审计列出的页面。
    """
    _install_requirements(session)
    _install_browser_assets(session, dev=True)
    session.run("python", "-m", "mkdocs", "build", "--strict", "--site-dir", "site", env=BUILD_ENV)
    session.run("python", "tests/audit.py", *session.posargs, env=BUILD_ENV)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff 检查与格式检查（snippets、tests、钩子、noxfile）。"""
    session.install(_pin("ruff"))
    session.run("ruff", "check", *LINTED)
    session.run("ruff", "format", "--check", *LINTED)
