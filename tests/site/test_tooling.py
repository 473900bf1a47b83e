"""工具链自身的检查：GitHub 工作流能通过 actionlint。代码风格（ruff）由 nox -s tests 在运行 pytest 之前检查。"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import COLLECTED, ROOT

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))


def _actionlint() -> str:
    found = shutil.which("actionlint", path=str(Path(sys.executable).parent))
    assert found, "找不到 actionlint：它由 requirements.txt 安装"
    return found


def _lint(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [_actionlint(), "-no-color", str(path)], capture_output=True, text=True, check=False
    )


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_passes_actionlint(workflow):
    result = _lint(workflow)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path):
    """对照组：actionlint 真能发现错误（这里引用了不存在的 job）。"""
    broken = tmp_path / ".github" / "workflows" / "broken.yml"
    broken.parent.mkdir(parents=True)
    broken.write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    needs: [nope]\n    steps:\n      - run: echo hi\n"
    )
    assert _lint(broken).returncode != 0


def _steps(job: dict) -> list[dict]:
    return job.get("steps", [])


def test_pages_workflow_tests_builds_publishes_and_pushes_the_notebooks():
    """工作流本身只能在 GitHub 上运行；这里按结构（而不是按文字）检查它做的事：先跑 nox -s tests，
    再用真实的仓库地址 nox -s docs、把 site/ 交给 Pages；笔记本推到 Colab 打开的那个分支（contents: write）。"""
    import yaml

    from hello_build.notebooks.links import BRANCH

    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "pages.yml").read_text(encoding="utf-8"))
    jobs = workflow["jobs"]
    assert any(step.get("run") == "nox -s tests" for step in _steps(jobs["tests"]))
    build = _steps(jobs["build"])
    docs = next(step for step in build if step.get("run") == "nox -s docs")
    assert "github.repository" in docs["env"]["HELLO_PYTORCH_REPO_URL"], "用真实的仓库地址算 Colab 链接"
    pages = next(
        step for step in build if str(step.get("uses", "")).startswith("actions/upload-pages-artifact@")
    )
    assert pages["with"]["path"] == "site"
    uploads = [step for step in build if str(step.get("uses", "")).startswith("actions/upload-artifact@")]
    assert any(step["with"]["path"].startswith("site/notebooks") for step in uploads)
    notebooks = jobs["notebooks"]
    assert notebooks["permissions"]["contents"] == "write" and set(notebooks["needs"]) == {"tests", "build"}
    assert any(f"git push --force origin HEAD:{BRANCH}" in step.get("run", "") for step in _steps(notebooks))
    assert any(
        str(s.get("uses", "")).startswith("actions/deploy-pages@") for j in jobs.values() for s in _steps(j)
    )


def test_pytest_collects_every_test_file(request):
    """pytest 默认不进入名叫 build、dist 等的目录（norecursedirs）：构建包的单元测试曾经放在 tests/build/ 里，
    从来没有运行过。本次会话收集到的文件（conftest 在收集时记下，-k 取消选中之前）与要测的目录下的全部
    test_*.py 对比。"""
    roots = [(ROOT / arg.split("::")[0]).resolve() for arg in request.config.args]
    collected = request.config.stash[COLLECTED]
    on_disk = {
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "tests").rglob("test_*.py")
        if any(p == root or p.is_relative_to(root) for root in roots)
    }
    assert on_disk, "要测的目录下应当有测试文件"
    assert on_disk - collected == set(), f"pytest 没有收集这些测试文件：{sorted(on_disk - collected)}"
