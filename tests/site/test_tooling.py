"""工具链自身的检查：GitHub 工作流能通过 actionlint。代码风格（ruff）由 nox -s tests 在运行 pytest 之前检查。"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

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


def test_pages_workflow_publishes_site_dir_with_official_actions():
    text = (ROOT / ".github" / "workflows" / "pages.yml").read_text(encoding="utf-8")
    for needed in ("actions/upload-pages-artifact", "actions/deploy-pages", "path: site", "nox -s docs"):
        assert needed in text, f"pages.yml 里缺少 {needed}"
