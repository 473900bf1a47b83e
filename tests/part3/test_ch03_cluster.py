"""第三部分第 3 章：16 个进程时的数据分法来自 worker 自己的采样器；进程编号的规则与真实的两节点会合一致。"""

import json
import os
import socket
import subprocess
import sys
import textwrap

import pytest

SNIPPET = "snippets/part3/ch03_cluster.py"


@pytest.fixture(scope="module")
def ns(run_snippet):
    return run_snippet(SNIPPET).ns


def test_layout_table_figures(ns):
    page1, cluster = ns["layouts"]["第 1 页（构建网站时）"], ns["layouts"]["两台 8 卡机器"]
    assert page1["进程总数（world size）"] == "2" and cluster["进程总数（world size）"] == "16"
    assert page1["`RANK`"] == "0、1" and cluster["`RANK`"] == "0 … 15"
    assert cluster["`LOCAL_RANK`（每台机器上）"] == "0 … 7"
    # 第 1 页真的跑过的 2 个进程：每个 rank 32 个样本，每轮 4 步，每步 8 个，合并批量 16
    assert [page1[k] for k in list(page1)[5:]] == ["32", "4", "8", "16"]
    # 16 个进程：64 个样本每个 rank 只有 4 个，不够一整批，每轮 1 步，合并批量 64（不是 8 × 16 = 128）
    assert [cluster[k] for k in list(cluster)[5:]] == ["4", "1", "4", "64"]


def test_data_note_tells_the_real_combined_batch(run_snippet, ns):
    out = run_snippet(SNIPPET).stdout
    assert "合并批量是 64，而不是 8 × 16 = 128" in out
    assert ns["plan_16"]["combined"] == [64] and ns["plan_2"]["combined"] == [16] * 4


def test_env_table(run_snippet, ns):
    out = run_snippet(SNIPPET).stdout
    assert "| `RANK` | 全局编号 | 0 … 15 |" in out
    assert "| `LOCAL_WORLD_SIZE` | 本机的进程数 | 8 |" in out
    assert "| `GROUP_RANK` | 节点编号（会合时领到） | 0、1 |" in out
    assert ns["second_node_first"]["RANK"] == 8
    ranks = ns["torchrun_ranks"](2, 8)
    assert sorted(r["RANK"] for r in ranks) == list(range(16)), "RANK 应不重不漏"


ENV_WORKER = textwrap.dedent(
    """
    import json, os, sys
    keys = ["RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "GROUP_RANK",
            "MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_RESTART_COUNT", "OMP_NUM_THREADS"]
    with open(os.path.join(sys.argv[1], "env" + os.environ["RANK"] + ".json"), "w") as f:
        json.dump({key: os.environ.get(key) for key in keys}, f)
    """
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_torchrun_ranks_match_a_real_two_node_rendezvous(tmp_path, ns):
    """一台机器上启动两个 torchrun，用页面上那样的 c10d 会合参数，像两个节点那样各启动 2 个进程。"""
    worker = tmp_path / "env_worker.py"
    worker.write_text(ENV_WORKER)
    port = free_port()
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc_per_node", "2",
        "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", "ch03-test",
        str(worker), str(tmp_path),
    ]  # fmt: skip
    env = {key: value for key, value in os.environ.items() if key != "OMP_NUM_THREADS"}
    agents = [
        subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for _ in range(2)
    ]
    try:
        outputs = [agent.communicate(timeout=120)[0] for agent in agents]
    finally:
        for agent in agents:
            agent.kill()
    assert all(agent.returncode == 0 for agent in agents), outputs
    seen = [json.loads((tmp_path / f"env{rank}.json").read_text()) for rank in range(4)]
    got = [
        {key: int(e[key]) for key in ("GROUP_RANK", "LOCAL_RANK", "RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE")}
        for e in seen
    ]
    assert sorted(got, key=lambda r: r["RANK"]) == ns["torchrun_ranks"](2, 2)
    # 每个进程的 MASTER_ADDR/MASTER_PORT 相同，而且不是会合端点的端口：是节点 0 为进程组另开的端口
    assert len({(e["MASTER_ADDR"], e["MASTER_PORT"]) for e in seen}) == 1
    assert int(seen[0]["MASTER_PORT"]) != port
    assert {e["TORCHELASTIC_RESTART_COUNT"] for e in seen} == {"0"}
    # 没设置 OMP_NUM_THREADS、每台不止一个进程时，torchrun 把它设成 1
    assert {e["OMP_NUM_THREADS"] for e in seen} == {"1"}
