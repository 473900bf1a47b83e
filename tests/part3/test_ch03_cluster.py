"""第三部分第 3 章：16 个进程时的数据分法来自 worker 自己的采样器；进程编号的规则与真实的两节点会合一致；
集群上的两个作业文件（Slurm 脚本、Kubernetes 的 PyTorchJob）启动的是第 1 页在构建时启动的同一个 worker。"""

import argparse
import ast
import collections
import copy
import json
import os
import socket
import subprocess
import sys
import textwrap

import pytest
import torch
import yaml
from torch.distributed.run import parse_args as parse_torchrun_args
from torch.utils.data import DistributedSampler

from tests.conftest import ROOT

SNIPPET = "snippets/part3/ch03_cluster.py"
SBATCH = ROOT / "snippets/part3/ch03_cluster/train.sbatch"
PYTORCHJOB = ROOT / "snippets/part3/ch03_cluster/pytorchjob.yaml"


def wait_for_all(agents: list[subprocess.Popen], timeout: int) -> None:
    """等几个 torchrun 进程都结束；无论成败都不留下进程。任何一个失败，带上全部输出报错。"""
    try:
        outputs = [agent.communicate(timeout=timeout)[0] for agent in agents]
    finally:
        for agent in agents:
            agent.kill()
    assert all(agent.returncode == 0 for agent in agents), outputs


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
            "MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_RESTART_COUNT", "OMP_NUM_THREADS", "HELLO_POD"]
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
    wait_for_all(agents, timeout=120)
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


# ---------------------------------------------------------------- 集群上的作业文件（页面只展示，不执行）


def site_train_invocation() -> tuple[str, list[str | None]]:
    """第 1 页在构建时怎样启动 worker 训练：从 snippets/part3/ch01_ddp.py 的源码读出 WORKER 和
    run_torchrun(WORKER, "--demo", "train", ...) 的参数。不是常量的参数（本机的临时目录）记作 None。"""
    tree = ast.parse((ROOT / "snippets/part3/ch01_ddp.py").read_text(encoding="utf-8"))
    assigned = {
        node.targets[0].id: node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
    }
    worker = ast.literal_eval(assigned["WORKER"].args[0])  # Path("snippets/part3/_ddp_worker.py")
    calls = [
        [arg.value if isinstance(arg, ast.Constant) else None for arg in node.args[1:]]
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "run_torchrun"
    ]
    (train,) = [args for args in calls if "train" in args]
    return worker, train


def assert_same_worker(script: str, script_args: list[str]) -> str:
    """集群上运行的脚本和参数与第 1 页相同；只有本机的临时目录换成了集群上的目录。返回那个目录。"""
    worker, train = site_train_invocation()
    assert script == worker, f"集群上运行的是 {script}，第 1 页运行的是 {worker}"
    assert len(script_args) == len(train), f"worker 的参数 {script_args} 与第 1 页的 {train} 不同"
    for got, want in zip(script_args, train, strict=True):
        assert want is None or got == want, f"worker 的参数 {script_args} 与第 1 页的 {train} 不同"
    (out,) = [got for got, want in zip(script_args, train, strict=True) if want is None]
    assert out.startswith("/"), "集群上的结果目录应是绝对路径（每台机器上都一样）"
    return out


def parse_torchrun(argv: list[str], env: dict[str, str], monkeypatch) -> argparse.Namespace:
    """用 torchrun 自己的参数解析器读命令行。命令行里没写的参数，torchrun 从 PET_<参数名> 环境变量里取。"""
    assert argv[0] == "torchrun", argv
    for key in [key for key in os.environ if key.startswith("PET_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return parse_torchrun_args(argv[1:])


# ------------------------------------------------ Slurm


def sbatch_options(script=SBATCH) -> dict[str, str]:
    """脚本开头的 #SBATCH 选项。sbatch 读到第一条命令就不再读 #SBATCH，之后的 #SBATCH 会被悄悄忽略。"""
    options, lines = {}, script.read_text(encoding="utf-8").splitlines()
    first_command = next(
        i for i, line in enumerate(lines) if line.strip() and not line.lstrip().startswith("#")
    )
    for line in lines[:first_command]:
        if line.startswith("#SBATCH "):
            key, _, value = line.removeprefix("#SBATCH ").strip().partition("=")
            options[key.removeprefix("--")] = value
    late = [line for line in lines[first_command:] if line.lstrip().startswith("#SBATCH")]
    assert not late, f"这些 #SBATCH 写在第一条命令之后，sbatch 不会读：{late}"
    return options


# 代替 scontrol、srun、mkdir 的小程序：把自己收到的参数记进 $CALLS，scontrol 还像真的一样列出两台机器
RECORDER = textwrap.dedent(
    """
    import json, os, sys
    name = os.path.basename(sys.argv[0])
    srun_env = {key: value for key, value in os.environ.items() if key.startswith("SRUN_")}
    with open(os.environ["CALLS"], "a") as f:
        f.write(json.dumps({"command": name, "args": sys.argv[1:], "srun_env": srun_env}) + "\\n")
    if name == "scontrol" and sys.argv[1:3] == ["show", "hostnames"]:
        print("node-a")
        print("node-b")
    """
)


def record_sbatch(tmp, script=SBATCH) -> dict:
    """像 Slurm 那样在分到的第一台机器上运行脚本（环境变量按 #SBATCH 的申请填写），只是 scontrol、srun、mkdir
    换成了只记录参数的替身：得到脚本真正会执行的命令，变量都已展开。"""
    for name in ("scontrol", "srun", "mkdir"):
        stub = tmp / name
        stub.write_text(f"#!{sys.executable}\n{RECORDER}", encoding="utf-8")
        stub.chmod(0o755)
    options = sbatch_options(script)
    env = {
        "PATH": f"{tmp}{os.pathsep}{os.environ['PATH']}",
        "CALLS": str(tmp / "calls.jsonl"),
        "SLURM_JOB_ID": "4242",
        "SLURM_JOB_NODELIST": "node-[a-b]",
        "SLURM_NNODES": options["nodes"],
        "SLURM_CPUS_PER_TASK": options["cpus-per-task"],
    }
    result = subprocess.run(
        ["bash", str(script)], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    calls = [json.loads(line) for line in (tmp / "calls.jsonl").read_text(encoding="utf-8").splitlines()]
    return {"options": options, "env": env, "calls": calls}


@pytest.fixture(scope="module")
def sbatch_calls(tmp_path_factory):
    return record_sbatch(tmp_path_factory.mktemp("sbatch"))


def test_sbatch_script_is_valid_bash():
    result = subprocess.run(["bash", "-n", str(SBATCH)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_sbatch_asks_for_the_two_8_gpu_machines_of_this_page(ns, sbatch_calls):
    options = sbatch_calls["options"]
    nnodes, nproc_per_node = ns["LAYOUTS"]["两台 8 卡机器"]
    assert options["nodes"] == str(nnodes) and options["gpus-per-node"] == str(nproc_per_node)
    assert options["ntasks-per-node"] == "1", "每台机器只启动一个 torchrun"
    # Slurm 22.05 起 srun 不继承 --cpus-per-task：脚本要通过 SRUN_CPUS_PER_TASK 把它交给 srun
    (srun,) = [call for call in sbatch_calls["calls"] if call["command"] == "srun"]
    assert srun["srun_env"].get("SRUN_CPUS_PER_TASK") == options["cpus-per-task"], (
        "脚本应 export SRUN_CPUS_PER_TASK，把申请的 CPU 核数交给 srun"
    )


def test_sbatch_runs_the_sites_worker_with_c10d_rendezvous(ns, sbatch_calls, monkeypatch):
    calls, options = sbatch_calls["calls"], sbatch_calls["options"]
    assert [call["command"] for call in calls] == ["scontrol", "mkdir", "srun"]
    scontrol, mkdir, srun = calls
    assert scontrol["args"] == ["show", "hostnames", sbatch_calls["env"]["SLURM_JOB_NODELIST"]]
    args = parse_torchrun(srun["args"], {}, monkeypatch)
    assert args.nnodes == options["nodes"], "机器数来自 Slurm 的 $SLURM_NNODES"
    assert args.nproc_per_node == options["gpus-per-node"], "每台机器的进程数应等于申请的 GPU 数"
    assert not args.standalone
    assert args.rdzv_backend == "c10d"
    assert args.rdzv_endpoint == "node-a:29400", "会合端点应是分到的第一台机器"
    assert args.rdzv_id == sbatch_calls["env"]["SLURM_JOB_ID"], "会合的任务名用 Slurm 的作业号"
    assert args.max_restarts >= 1, "应允许 torchrun 在进程失败后重启整组进程"
    out = assert_same_worker(args.training_script, args.training_script_args)
    assert mkdir["args"] == ["-p", out], "worker 不会自己建结果目录，脚本要先建好"


# ------------------------------------------------ Kubernetes（Kubeflow 训练 operator 的 PyTorchJob）

# operator 给 Master 容器里名叫 pytorchjob-port 的端口的默认值（training-operator v1.9 的 pytorch_types.go）
DEFAULT_MASTER_PORT = "23456"


@pytest.fixture(scope="module")
def job():
    return yaml.safe_load(PYTORCHJOB.read_text(encoding="utf-8"))


def pods(job) -> list[tuple[str, int]]:
    specs = job["spec"]["pytorchReplicaSpecs"]
    return [(kind, index) for kind in ("Master", "Worker") for index in range(specs[kind]["replicas"])]


def container(job, kind: str) -> dict:
    (found,) = [
        c
        for c in job["spec"]["pytorchReplicaSpecs"][kind]["template"]["spec"]["containers"]
        if c["name"] == "pytorch"
    ]
    return found


def operator_env(job, kind: str, index: int) -> dict[str, str]:
    """没有 elasticPolicy 时，training-operator（v1.7 起，这里照 v1.9 的源码 pkg/controller.v1/pytorch/envvar.go
    与 master.go）给每个 Pod 里的容器设置的环境变量。节点编号：Master 是 0，第 i 个 Worker 是 i + 1。"""
    nproc = job["spec"].get("nprocPerNode", "auto")  # 不写时 operator 填 "auto"
    total = len(pods(job))
    node_rank = str(index + (1 if kind == "Worker" else 0))
    master = f"{job['metadata']['name']}-master-0"  # Master Pod 的服务名
    ports = [
        p["containerPort"]
        for p in container(job, "Master").get("ports", [])
        if p["name"] == "pytorchjob-port"
    ]
    port = str(ports[0]) if ports else DEFAULT_MASTER_PORT
    return {
        "PYTHONUNBUFFERED": "1",
        "MASTER_ADDR": master,
        "PET_MASTER_ADDR": master,
        "MASTER_PORT": port,
        "PET_MASTER_PORT": port,
        "WORLD_SIZE": str(total * (int(nproc) if nproc.isdigit() else 1)),
        "RANK": node_rank,
        "PET_NODE_RANK": node_rank,
        "PET_NPROC_PER_NODE": nproc,
        "PET_NNODES": str(total),
    }


def test_pytorchjob_has_one_master_and_workers_that_run_the_same_container(ns, job):
    assert job["apiVersion"] == "kubeflow.org/v1" and job["kind"] == "PyTorchJob"
    specs = job["spec"]["pytorchReplicaSpecs"]
    assert set(specs) == {"Master", "Worker"}
    assert specs["Master"]["replicas"] == 1, "operator 只接受 1 个 Master：它就是节点 0"
    assert all(spec["restartPolicy"] == "OnFailure" for spec in specs.values())
    # 有 elasticPolicy 时规则不同（PET_NNODES 只数 Worker，会合改用 c10d），本页的说明就不对了
    assert "elasticPolicy" not in job["spec"]
    assert specs["Master"]["template"] == specs["Worker"]["template"], "两种 Pod 应运行同一个容器"
    nnodes, nproc_per_node = ns["LAYOUTS"]["两台 8 卡机器"]
    assert len(pods(job)) == nnodes
    # CRD 里 nprocPerNode 是字符串（也可以写 auto、gpu）；写成数字 8 会被 Kubernetes 拒绝
    assert job["spec"]["nprocPerNode"] == str(nproc_per_node)
    assert container(job, "Master")["resources"]["limits"]["nvidia.com/gpu"] == nproc_per_node
    assert "example.com" in container(job, "Master")["image"], "镜像应是一眼能看出要换掉的占位符"


def test_pytorchjob_pods_run_the_sites_worker_with_torchrun_reading_operator_env(ns, job, monkeypatch):
    nnodes, nproc_per_node = ns["LAYOUTS"]["两台 8 卡机器"]
    for kind, index in pods(job):
        spec = container(job, kind)
        env = operator_env(job, kind, index)
        args = parse_torchrun(spec["command"] + spec["args"], env, monkeypatch)
        assert (args.nnodes, args.nproc_per_node) == (str(nnodes), str(nproc_per_node))
        assert not args.standalone, "--standalone 让每个 Pod 只在自己里面会合"
        assert args.rdzv_backend == "static", "没有 elasticPolicy：torchrun 用 static 会合，Master 就是节点 0"
        assert args.node_rank == int(env["PET_NODE_RANK"]) == (0 if kind == "Master" else index + 1)
        assert (args.master_addr, str(args.master_port)) == ("hello-ddp-master-0", DEFAULT_MASTER_PORT)
        out = assert_same_worker(args.training_script, args.training_script_args)
        mounts = [mount["mountPath"] for mount in spec["volumeMounts"]]
        assert out in mounts, "worker 不会自己建结果目录：它应是挂载进来的共享存储"


def test_pytorchjob_pods_rendezvous_from_operator_env_alone(tmp_path, ns, job):
    """在一台机器上启动两个 torchrun，命令行和 PyTorchJob 里的一样（不写任何 torchrun 参数），环境变量是 operator
    会给 Master、Worker 两个 Pod 的那些；只把 Master 的地址换成本机、每个 Pod 的进程数换成 1，worker 换成记录
    环境变量的小脚本。它们只靠这些环境变量就会合成一组：Master 上的进程是 RANK 0。"""
    worker = tmp_path / "env_worker.py"
    worker.write_text(ENV_WORKER)
    port = str(free_port())
    agents = []
    for kind, index in pods(job):
        spec = container(job, kind)
        argv = spec["command"] + spec["args"]
        launcher_options = argv[1 : argv.index(site_train_invocation()[0])]  # torchrun 与 worker 之间的参数
        command = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            *launcher_options,
            str(worker),
            str(tmp_path),
        ]
        env = {key: value for key, value in os.environ.items() if not key.startswith("PET_")}
        env.update(operator_env(job, kind, index))
        env.update(PET_MASTER_ADDR="127.0.0.1", PET_MASTER_PORT=port, PET_NPROC_PER_NODE="1", HELLO_POD=kind)
        agents.append(
            subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        )
    wait_for_all(agents, timeout=60)
    seen = [json.loads((tmp_path / f"env{rank}.json").read_text()) for rank in range(len(agents))]
    got = [
        {key: int(e[key]) for key in ("GROUP_RANK", "LOCAL_RANK", "RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE")}
        for e in seen
    ]
    # operator 给 Pod 的 WORLD_SIZE（Pod 数 × nprocPerNode）和 RANK（Pod 的编号）被 torchrun 换成了每个进程自己的
    assert sorted(got, key=lambda r: r["RANK"]) == ns["torchrun_ranks"](len(agents), 1)
    assert [e["HELLO_POD"] for e in seen] == ["Master", "Worker"], "Master Pod 上的进程应是 RANK 0"


# ---------------------------------------------------------------- 练习的参考答案


def test_exercise_four_by_four_changes_only_where_ranks_live(ns):
    changed = ns["changed"]
    assert changed == ["机器（节点，node）数", "每台机器的进程数", "`LOCAL_RANK`（每台机器上）"], changed
    assert ns["four_by_four"]["每步的合并批量"] == ns["layouts"]["两台 8 卡机器"]["每步的合并批量"] == "64"
    where = ns["where"]
    assert where[2, 8][8] == (1, 0) and where[4, 4][8] == (2, 0) and where[4, 4][9] == (2, 1)
    assert where[4, 4][15] == (3, 3) and where[4, 4][7] == (1, 3)
    assert ns["same_samples"] is True
    # 样本只由 RANK 和进程总数决定：与直接用 RANK 建的采样器一致
    dataset = ns["make_data"]()
    for rank, samples in ns["samples_by_rank"](4, 4).items():
        assert samples == list(ns["make_sampler"](dataset, rank, 16)), rank


# 练习 2 的答案列出的改动：照着改完，两个作业文件就从两台 8 卡机器变成四台 4 卡机器
SBATCH_EDITS_4X4 = {
    "#SBATCH --nodes=2": "#SBATCH --nodes=4",
    "#SBATCH --gpus-per-node=8": "#SBATCH --gpus-per-node=4",
    "--nproc-per-node 8": "--nproc-per-node 4",
}


def test_exercise_four_by_four_edits_are_all_the_job_files_need(tmp_path, ns, job, monkeypatch):
    text = SBATCH.read_text(encoding="utf-8")
    for old, new in SBATCH_EDITS_4X4.items():
        assert text.count(old) == 1, f"答案要改的这一行应在脚本里正好出现一次：{old}"
        text = text.replace(old, new)
    script = tmp_path / "train.sbatch"
    script.write_text(text, encoding="utf-8")
    recorded = record_sbatch(tmp_path, script)
    (srun,) = [call for call in recorded["calls"] if call["command"] == "srun"]
    args = parse_torchrun(srun["args"], {}, monkeypatch)
    assert (args.nnodes, args.nproc_per_node) == ("4", "4")
    assert recorded["options"]["gpus-per-node"] == args.nproc_per_node

    edited = copy.deepcopy(job)
    assert (
        edited["spec"]["nprocPerNode"] == "8"
        and edited["spec"]["pytorchReplicaSpecs"]["Worker"]["replicas"] == 1
    )
    edited["spec"]["nprocPerNode"] = "4"
    edited["spec"]["pytorchReplicaSpecs"]["Worker"]["replicas"] = 3
    for kind in ("Master", "Worker"):
        limits = container(edited, kind)["resources"]["limits"]
        assert limits["nvidia.com/gpu"] == 8
        limits["nvidia.com/gpu"] = 4
    node_ranks = []
    for kind, index in pods(edited):
        env = operator_env(edited, kind, index)
        spec = container(edited, kind)
        args = parse_torchrun(spec["command"] + spec["args"], env, monkeypatch)
        assert (args.nnodes, args.nproc_per_node, env["WORLD_SIZE"]) == ("4", "4", "16")
        node_ranks.append(args.node_rank)
    assert node_ranks == [0, 1, 2, 3]
    assert len(ns["torchrun_ranks"](4, 4)) == 16


def test_exercise_local_rank_as_sampler_rank_silently_uses_half_the_data(ns):
    right, wrong = ns["right"], ns["wrong"]
    assert sorted(i for indices in right for i in indices) == list(range(64)), "传 RANK：每个样本正好一次"
    counts = collections.Counter(i for indices in wrong for i in indices)
    assert len(counts) == 32 and set(counts.values()) == {2}, "误传 LOCAL_RANK：一半的样本，各用两次"
    assert ns["twins"] == [0, 8]
    # 不会报错：每个进程分到的样本数照样相同，DDP 的每一步照样凑得齐
    assert {len(indices) for indices in wrong} == {len(indices) for indices in right} == {4}


def test_exercise_scale_data(ns):
    plan_for, data_plan = ns["plan_for"], ns["data_plan"]
    for world_size in (2, 16, 24):
        expected = data_plan(world_size)
        got = plan_for(64, world_size)
        assert (got["per_rank"], got["steps"], got["combined"]) == (
            expected["per_rank"],
            expected["steps"],
            expected["combined"],
        )
    assert plan_for(64, 24)["slots"] == 48 and plan_for(64, 24, drop_last=False)["slots"] == 72
    assert ns["enough"] == 512
    assert plan_for(512, 16)["combined"] == [128] * 4
    assert set(plan_for(504, 16)["combined"]) != {128} and plan_for(511, 16)["steps"] == 4
    # drop_last=True 丢掉的是打乱后排在最后的 16 个，每轮不同；drop_last=False 重复的是排在最前面的 8 个
    used, dropped = {}, {}
    for epoch in (0, 1):
        samplers = [
            DistributedSampler(range(64), num_replicas=24, rank=r, seed=0, drop_last=True) for r in range(24)
        ]
        for sampler in samplers:
            sampler.set_epoch(epoch)
        perm = torch.randperm(64, generator=torch.Generator().manual_seed(epoch)).tolist()
        used[epoch] = {i for sampler in samplers for i in sampler}
        dropped[epoch] = set(range(64)) - used[epoch]
        assert dropped[epoch] == set(perm[48:])
    assert dropped[0] != dropped[1]
    padded = collections.Counter(
        i
        for r in range(24)
        for i in DistributedSampler(range(64), num_replicas=24, rank=r, seed=0, drop_last=False)
    )
    perm = torch.randperm(64, generator=torch.Generator().manual_seed(0)).tolist()
    assert {i for i, n in padded.items() if n == 2} == set(perm[:8])
