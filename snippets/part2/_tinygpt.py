"""第二部分的共用库：小 GPT 模型、算术任务数据、训练循环、结果存储、预训练检查点、微调实验、LoRA。

各页的 snippet 用 ``from _tinygpt import ...`` 导入这里的代码；导入本模块没有任何副作用（不打印、不训练）。
每个片段在第二部分的某一页上显示一次：
config、attention、mlp、block、gpt → 第 1 页；tasks、batches、evaluate、train、store、checkpoint → 第 2 页；
experiment、verdict → 第 3 页；lora → 第 4 页。

给后面各页用的接口：
- ``GPTConfig``、``GPT``（``model(idx)`` 返回 logits，形状 (B, T, vocab_size)）、``count_parameters``；
- 任务：``VOCAB``、``encode``、``decode``、``format_problem``、``make_split``（训练/验证/测试三份）、
  ``encode_problems``、``get_batch``、``greedy_answers``、``accuracy``；
- 训练：``train``（返回每隔若干步的记录）；
- 结果存储：``cached``、``artefact_path``（键是本文件的源码 + 版本 + 设置）；
- 检查点：``PRETRAIN``、``addition_data()``、``load_or_train_pretrained()``（返回 ``Pretrained``）；
- 微调实验：``FINETUNE``、``LR_GRID``、``SEEDS``、``subtraction_data()``、``make_variant``、``finetune_run``、
  ``finetuned_model``、``run_experiment``；结论：``spread``、``compare``；
- LoRA：``LoRALinear``、``apply_lora``、``merge_lora``。
"""

# --8<-- [start:config]
from dataclasses import dataclass


@dataclass(frozen=True)
class GPTConfig:
    vocab_size: int = 13  # 字符表的大小：0-9、+、-、=
    block_size: int = 8  # 模型一次最多看多少个字符（上下文长度）
    n_layer: int = 2  # Transformer 块的个数 L
    n_head: int = 4  # 注意力头数
    n_embd: int = 64  # 每个字符的向量维度 d
    tie_weights: bool = False  # 输出层是否与词元嵌入共用权重
    gelu: str = "none"  # GELU 怎么算："none" 按定义精确计算，"tanh" 是 GPT-2 用的近似（第 8 页）


# --8<-- [end:config]

# --8<-- [start:attention]
import torch
import torch.nn as nn
import torch.nn.functional as F


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        assert config.n_embd % config.n_head == 0, "n_embd 必须能被 n_head 整除"
        self.n_head = config.n_head
        # 一个线性层同时算出 Q、K、V 三份：一次矩阵乘法代替三次
        self.qkv = nn.Linear(config.n_embd, 3 * config.n_embd)
        self.proj = nn.Linear(config.n_embd, config.n_embd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        # (B, T, C) -> (B, 头数, T, 每头维度)：每个头独立地做注意力
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        # is_causal=True：第 t 个位置只能看到第 0..t 个位置，看不到“未来”
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.proj(y)


# --8<-- [end:attention]


# --8<-- [start:mlp]
class MLP(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.fc = nn.Linear(config.n_embd, 4 * config.n_embd)
        self.act = nn.GELU(approximate=config.gelu)
        self.proj = nn.Linear(4 * config.n_embd, config.n_embd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.act(self.fc(x)))


# --8<-- [end:mlp]


# --8<-- [start:block]
class Block(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(config.n_embd)
        self.attn = CausalSelfAttention(config)
        self.ln2 = nn.LayerNorm(config.n_embd)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # pre-norm：先归一化再进子层，子层的输出加回残差
        x = x + self.attn(self.ln1(x))
        x = x + self.mlp(self.ln2(x))
        return x


# --8<-- [end:block]


# --8<-- [start:gpt]
class GPT(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.tok_emb = nn.Embedding(config.vocab_size, config.n_embd)
        self.pos_emb = nn.Embedding(config.block_size, config.n_embd)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd)
        self.head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        if config.tie_weights:
            self.head.weight = self.tok_emb.weight  # 同一个参数对象，只算一份

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        T = idx.shape[1]
        if self.config.block_size < T:
            raise ValueError(f"序列长度 {T} 超过了 block_size={self.config.block_size}")
        pos = torch.arange(T, device=idx.device)
        x = self.tok_emb(idx) + self.pos_emb(pos)  # (B, T, d)：字符是什么 + 它在第几位
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x))  # logits，形状 (B, T, vocab_size)


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    # parameters() 对共用的参数只返回一次，所以绑定权重时不会重复计数
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


# --8<-- [end:gpt]

# --8<-- [start:tasks]
from typing import NamedTuple

VOCAB = "0123456789+-="
STOI = {ch: i for i, ch in enumerate(VOCAB)}
PROMPT_LEN = 6  # "37+48="
ANSWER_LEN = 3  # "085"：答案固定写成 3 位，不足补 0


def format_problem(a: int, b: int, op: str) -> tuple[str, str]:
    """(题目, 答案)，例如 (37, 48, "+") -> ("37+48=", "085")。"""
    result = a + b if op == "+" else a - b
    return f"{a:02d}{op}{b:02d}=", f"{result:03d}"


def encode(text: str) -> list[int]:
    return [STOI[ch] for ch in text]


def decode(ids) -> str:
    return "".join(VOCAB[int(i)] for i in ids)


class Split(NamedTuple):
    """三份互不重复的题：训练集用来更新参数，验证集用来做决定（何时停、选学习率），测试集只在最后报告一次。"""

    train: list[tuple[int, int]]
    val: list[tuple[int, int]]
    test: list[tuple[int, int]]


def make_split(op: str, n_val: int, n_test: int, seed: int) -> Split:
    """把一种运算的全部两位数题目随机打乱，分成训练集、验证集和测试集。"""
    if op == "+":
        pairs = [(a, b) for a in range(100) for b in range(100)]
    elif op == "-":
        pairs = [(a, b) for a in range(100) for b in range(a + 1)]  # 只出 a >= b 的题，答案不为负
    else:
        raise ValueError(f"不认识的运算：{op!r}")
    order = torch.randperm(len(pairs), generator=torch.Generator().manual_seed(seed)).tolist()
    shuffled = [pairs[i] for i in order]
    return Split(
        train=shuffled[n_val + n_test :], val=shuffled[:n_val], test=shuffled[n_val : n_val + n_test]
    )


def encode_problems(pairs: list[tuple[int, int]], op: str) -> torch.Tensor:
    """每道题编码成一行 9 个字符的编号：题目 6 个 + 答案 3 个。"""
    return torch.tensor([encode("".join(format_problem(a, b, op))) for a, b in pairs])


# --8<-- [end:tasks]


# --8<-- [start:batches]
def get_batch(data: torch.Tensor, batch_size: int, generator: torch.Generator):
    """随机抽一个小批量。输入是前 8 个字符，目标是后 8 个字符（整体错开一位）。"""
    rows = data[torch.randint(len(data), (batch_size,), generator=generator)]
    x, y = rows[:, :-1], rows[:, 1:].clone()
    # 题目里的数字是随机出的，没法预测；只在答案的 3 个字符上计算损失，-100 表示忽略
    y[:, : PROMPT_LEN - 1] = -100
    return x, y


# --8<-- [end:batches]

# --8<-- [start:evaluate]
import contextlib


@contextlib.contextmanager
def one_thread():
    """临时只用 1 个 CPU 线程：多线程时求和的顺序随线程数变化，结果会差在最后几位小数。
    固定成 1 个线程，同一台机器上每次构建都得到一模一样的数字，也不受机器有几个核影响。"""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@torch.no_grad()
def greedy_answers(model: nn.Module, prompts: torch.Tensor) -> torch.Tensor:
    """贪心生成：每一步取概率最大的字符，接到末尾，再预测下一个，共 ANSWER_LEN 步。"""
    was_training = model.training
    model.eval()
    idx = prompts
    with one_thread():
        for _ in range(ANSWER_LEN):
            logits = model(idx)
            next_id = logits[:, -1, :].argmax(dim=-1, keepdim=True)
            idx = torch.cat([idx, next_id], dim=1)
    model.train(was_training)
    return idx[:, PROMPT_LEN:]


def accuracy(model: nn.Module, data: torch.Tensor) -> float:
    """完全匹配准确率：生成的 3 位答案与正确答案一字不差才算对。"""
    predicted = greedy_answers(model, data[:, :PROMPT_LEN])
    return (predicted == data[:, PROMPT_LEN:]).all(dim=1).float().mean().item()


# --8<-- [end:evaluate]

# --8<-- [start:train]
import math


def answer_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    logits = model(x)
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1), ignore_index=-100)


def train(
    model: nn.Module,
    train_data: torch.Tensor,
    val_data: torch.Tensor,
    steps: int,
    lr: float,
    batch_size: int = 128,
    seed: int = 0,
    eval_every: int = 100,
    target_accuracy: float | None = None,
) -> list[dict]:
    """用 AdamW 训练至多 steps 步，只更新 requires_grad=True 的参数。

    每 eval_every 步记录一次：这段时间的平均训练损失、验证损失、验证准确率；
    验证准确率达到 target_accuracy 就提前停止。返回这些记录组成的列表。
    """
    generator = torch.Generator().manual_seed(seed)  # 小批量的抽样顺序只由 seed 决定
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    # 学习率先线性预热，再按余弦曲线降到 0
    warmup = max(1, min(50, steps // 10))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: (s + 1) / warmup if s < warmup else 0.5 * (1 + math.cos(math.pi * s / steps))
    )
    val_x, val_y = val_data[:, :-1], val_data[:, 1:].clone()
    val_y[:, : PROMPT_LEN - 1] = -100
    history, running, since = [], 0.0, 0
    model.train()
    with one_thread():
        for step in range(1, steps + 1):
            x, y = get_batch(train_data, batch_size, generator)
            loss = answer_loss(model, x, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            schedule.step()
            running, since = running + loss.item(), since + 1
            if step % eval_every == 0 or step == steps:
                model.eval()
                with torch.no_grad():
                    val_loss = answer_loss(model, val_x, val_y).item()
                record = {
                    "step": step,
                    "train_loss": running / since,
                    "val_loss": val_loss,
                    "val_accuracy": accuracy(model, val_data),
                }
                history.append(record)
                running, since = 0.0, 0
                model.train()
                if target_accuracy is not None and record["val_accuracy"] >= target_accuracy:
                    break
    model.eval()
    return history


# --8<-- [end:train]

# --8<-- [start:store]
import hashlib
import json
import os
import platform
from pathlib import Path

try:
    import fcntl  # 文件锁（Linux、macOS）
except ImportError:  # Windows 没有它：不加锁，最坏是两个进程把同一个结果各算一遍
    fcntl = None

# 检查点和实验结果存在这里。构建网站时由环境变量指定，页面和笔记本共用，同一个结果只算一次；
# 自己运行时放在仓库（或笔记本所在目录）的 .cache/part2/ 下
ARTEFACTS = (
    Path(os.environ.get("HELLO_PYTORCH_ARTEFACTS") or Path(__file__).resolve().parents[2] / ".cache")
    / "part2"
)
# 本文件的全部源码：模型、数据、训练循环、各项设置，改动任何一行，之前存下的结果就都不再使用
SOURCE_DIGEST = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()


def artefact_path(name: str, **settings) -> Path:
    """结果文件的名字里带着“产生它的一切”的指纹：本文件的源码、PyTorch 与 Python 的版本、PyTorch 用的 CPU 指令集
    （换一种指令集，浮点舍入不同，训练出的权重也不同）、这次的设置。"""
    made_by = {
        "source": SOURCE_DIGEST,
        "torch": torch.__version__,
        "cpu": torch.backends.cpu.get_cpu_capability(),
        "python": platform.python_version(),
        "settings": settings,
    }
    digest = hashlib.sha256(json.dumps(made_by, sort_keys=True).encode()).hexdigest()[:20]
    return ARTEFACTS / f"{name}-{digest}.pt"


@contextlib.contextmanager
def exclusive(path: Path, wait: bool = True):
    """同一时刻只有一个进程在算这个结果。拿到文件锁时给出 True；
    wait=False 且另一个进程正拿着锁（正在算）时，不等，立刻给出 False。"""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        if fcntl is not None:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
        yield True


def cached(name: str, compute, wait: bool = True, **settings) -> dict | None:
    """有这份结果就读取；没有就调用 compute() 算出来，存好再返回。返回值只能含张量、数字、字符串、列表和字典。
    wait=False：另一个进程正在算它时不等，返回 None。"""
    path = artefact_path(name, **settings)
    with exclusive(path, wait) as mine:
        if not mine:
            return None
        if path.exists():
            return torch.load(path, weights_only=True)
        result = compute()
        # 先写临时文件，再原子地改名：读的人要么看到完整的文件，要么看不到，不会读到写了一半的
        partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
        torch.save(result, partial)
        os.replace(partial, path)
    return result


# --8<-- [end:store]

# --8<-- [start:checkpoint]
import time
from dataclasses import asdict

# 预训练的全部设置
PRETRAIN = {
    "seed": 0,
    "n_val": 1000,
    "n_test": 1000,
    "steps": 2000,
    "lr": 3e-3,
    "batch_size": 128,
    "eval_every": 25,
    "target_accuracy": 0.99,
}


class Data(NamedTuple):
    train: torch.Tensor
    val: torch.Tensor
    test: torch.Tensor


def addition_data() -> Data:
    split = make_split("+", n_val=PRETRAIN["n_val"], n_test=PRETRAIN["n_test"], seed=PRETRAIN["seed"])
    return Data(*(encode_problems(pairs, "+") for pairs in split))


@dataclass
class Pretrained:
    model: GPT
    config: GPTConfig
    history: list[dict]  # 预训练时每 eval_every 步的记录
    data: Data  # 加法的训练集、验证集、测试集（编码后）
    path: Path  # 检查点文件
    trained_now: bool  # True：这次现场训练的；False：从检查点读取的
    seconds: float


def load_or_train_pretrained(config: GPTConfig | None = None) -> Pretrained:
    """有这份检查点就读取；没有就按固定的随机种子从头预训练，存成检查点。"""
    config = config or GPTConfig()
    data = addition_data()
    trained_now = False

    def pretrain() -> dict:
        nonlocal trained_now
        trained_now = True
        torch.manual_seed(PRETRAIN["seed"])
        model = GPT(config)
        history = train(
            model,
            data.train,
            data.val,
            steps=PRETRAIN["steps"],
            lr=PRETRAIN["lr"],
            batch_size=PRETRAIN["batch_size"],
            seed=PRETRAIN["seed"],
            eval_every=PRETRAIN["eval_every"],
            target_accuracy=PRETRAIN["target_accuracy"],
        )
        return {"config": asdict(config), "state_dict": model.state_dict(), "history": history}

    start = time.perf_counter()
    settings = {"config": asdict(config), "pretrain": PRETRAIN}  # 运行时改了 PRETRAIN，也换一份检查点
    saved = cached("pretrained", pretrain, **settings)
    model = GPT(GPTConfig(**saved["config"]))
    model.load_state_dict(saved["state_dict"])
    model.eval()
    path = artefact_path("pretrained", **settings)
    seconds = time.perf_counter() - start
    return Pretrained(model, config, saved["history"], data, path, trained_now, seconds)


# --8<-- [end:checkpoint]


# --8<-- [start:experiment]
import copy

# 微调实验：新任务是两位数减法。每种做法得到同样的调参机会和同样的训练预算
FINETUNE = {"seed": 1, "n_val": 500, "n_test": 500, "steps": 150, "batch_size": 64, "eval_every": 30}
LR_GRID = (3e-3, 1e-2, 3e-2)  # 每种做法都从这几个学习率里挑（按对数等距）
SEEDS = (0, 1, 2)  # 每个种子换一种初始化（LoRA 的 A、从零训练的整个模型）和一种抽题顺序
# LoRA 加在每个块的这四个线性层上：注意力的 qkv、proj 和 MLP 的 fc、proj
LORA_TARGETS = ("attn.qkv", "attn.proj", "mlp.fc", "mlp.proj")
LORA_RANK, LORA_ALPHA = 4, 8.0


def subtraction_data() -> Data:
    split = make_split("-", n_val=FINETUNE["n_val"], n_test=FINETUNE["n_test"], seed=FINETUNE["seed"])
    return Data(*(encode_problems(pairs, "-") for pairs in split))


def make_variant(variant: str, pretrained: GPT, seed: int) -> nn.Module:
    """四种做法的起点："full"、"last_block"、"lora-r4"（秩可换）和 "scratch"。"""
    torch.manual_seed(seed)
    if variant == "scratch":
        return GPT(pretrained.config)  # 同样的结构，随机初始化，没有预训练
    model = copy.deepcopy(pretrained)
    if variant == "last_block":
        for p in model.parameters():
            p.requires_grad_(False)  # 先全部冻结，再解冻最后一个块、最后的 LayerNorm 和输出层
        for module in (model.blocks[-1], model.ln_f, model.head):
            for p in module.parameters():
                p.requires_grad_(True)
    elif variant.startswith("lora-r"):
        r = int(variant.removeprefix("lora-r"))
        apply_lora(
            model, LORA_TARGETS, r=r, alpha=LORA_ALPHA * r / LORA_RANK
        )  # alpha/r 固定为 LORA_ALPHA / LORA_RANK
    elif variant != "full":
        raise ValueError(f"不认识的做法：{variant!r}")
    return model


def finetune_run(variant: str, lr: float, seed: int, wait: bool = True) -> dict | None:
    """一次微调：记录学习曲线、可训练参数、用时、测试集上的新旧任务准确率和训练后的权重。"""

    def run() -> dict:
        pretrained = load_or_train_pretrained()
        sub = subtraction_data()
        model = make_variant(variant, pretrained.model, seed)
        start = time.perf_counter()
        history = train(
            model,
            sub.train,
            sub.val,
            steps=FINETUNE["steps"],
            lr=lr,
            batch_size=FINETUNE["batch_size"],
            seed=seed,
            eval_every=FINETUNE["eval_every"],
        )
        return {
            "history": history,
            "trainable": count_parameters(model, trainable_only=True),
            "seconds": time.perf_counter() - start,
            "new_test": accuracy(model, sub.test),  # 新任务：减法测试集
            "old_test": accuracy(model, pretrained.data.test),  # 旧任务：加法测试集
            "state_dict": model.state_dict(),
        }

    lora = {"targets": LORA_TARGETS, "rank": LORA_RANK, "alpha": LORA_ALPHA}
    return cached(
        "finetune",
        run,
        wait,
        variant=variant,
        lr=lr,
        seed=seed,
        finetune=FINETUNE,
        pretrain=PRETRAIN,
        lora=lora,
    )


def finetuned_model(variant: str, lr: float, seed: int) -> nn.Module:
    """把 finetune_run 存下的权重装回同样结构的模型。"""
    model = make_variant(variant, load_or_train_pretrained().model, seed)
    model.load_state_dict(finetune_run(variant, lr, seed)["state_dict"])
    return model.eval()


def run_all(jobs: list[tuple[str, float, int]]) -> list[dict]:
    """算完 jobs 里的每一次训练（做法, 学习率, 种子），按顺序返回结果。
    构建网站时，页面和它的笔记本在两个进程里同时跑这个实验：另一个进程正在算的那次先跳过，
    最后再读它的结果，于是两个进程各算一部分，同一次训练只算一次。"""
    for job in jobs:
        finetune_run(*job, wait=False)
    return [finetune_run(*job) for job in jobs]


def run_experiment(variants: list[str]) -> dict[str, dict]:
    """每种做法：先用第一个种子把 LR_GRID 里的学习率各试一次，按验证集准确率选一个；
    再用选中的学习率跑 SEEDS 里的每个种子。测试集不参与任何选择。"""
    tried = run_all([(v, lr, SEEDS[0]) for v in variants for lr in LR_GRID])
    results = {}
    for i, variant in enumerate(variants):
        runs = tried[i * len(LR_GRID) : (i + 1) * len(LR_GRID)]
        sweep = {lr: run["history"][-1]["val_accuracy"] for lr, run in zip(LR_GRID, runs, strict=True)}
        lr = max(LR_GRID, key=lambda candidate: sweep[candidate])  # 并列时取较小的学习率
        results[variant] = {"sweep": sweep, "lr": lr}
    seeded = run_all([(v, results[v]["lr"], seed) for v in variants for seed in SEEDS])
    for i, variant in enumerate(variants):
        results[variant]["runs"] = seeded[i * len(SEEDS) : (i + 1) * len(SEEDS)]
    return results


# --8<-- [end:experiment]


# --8<-- [start:verdict]
def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def spread(values: list[float]) -> str:
    """平均值和范围，例如 "82.3%（80.1%–84.0%）"。"""
    return f"{mean(values):.1%}（{min(values):.1%}–{max(values):.1%}）"


def difference(a: list[float], b: list[float]) -> int:
    """1：a 的每个结果都高于 b 的每个结果；-1：都低于；0：范围重叠，分不出高低。"""
    if min(a) > max(b):
        return 1
    if max(a) < min(b):
        return -1
    return 0


def compare(a: list[float], b: list[float]) -> str:
    """把 difference 写成一句话：范围不重叠才说谁高谁低，否则只说分不出。"""
    gap = (mean(a) - mean(b)) * 100
    verdict = difference(a, b)
    if verdict > 0:
        return f"高 {gap:.1f} 个百分点（{len(a)} 个种子的范围不重叠）"
    if verdict < 0:
        return f"低 {-gap:.1f} 个百分点（{len(a)} 个种子的范围不重叠）"
    return f"平均相差 {abs(gap):.1f} 个百分点，但各种子的范围重叠，分不出高低"


# --8<-- [end:verdict]


# --8<-- [start:lora]
class LoRALinear(nn.Module):
    """把一个冻结的 nn.Linear 包起来：输出 = W x + b + (alpha / r) · B A x，只训练 A 和 B。"""

    def __init__(self, base: nn.Linear, r: int = 4, alpha: float = 8.0, dropout: float = 0.0):
        super().__init__()
        self.base = base
        for p in self.base.parameters():
            p.requires_grad_(False)
        self.r, self.alpha, self.scaling = r, alpha, alpha / r
        # A: (r, d_in)，像 nn.Linear 那样随机初始化；B: (d_out, r)，全零初始化 → 一开始 BA = 0
        self.A = nn.Parameter(torch.empty(r, base.in_features))
        self.B = nn.Parameter(torch.zeros(base.out_features, r))
        nn.init.kaiming_uniform_(self.A, a=math.sqrt(5))
        self.dropout = nn.Dropout(dropout)
        self.merged = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.base(x)
        if not self.merged:
            # 先乘 A 降到 r 维，再乘 B 升回去：从不构造 d_out × d_in 的大矩阵
            out = out + (self.dropout(x) @ self.A.T @ self.B.T) * self.scaling
        return out

    @torch.no_grad()
    def merge(self) -> None:
        """把 (alpha / r) · B A 加进基础权重 W：推理时和普通线性层一样快。"""
        if not self.merged:
            self.base.weight += (self.B @ self.A) * self.scaling
            self.merged = True


def apply_lora(
    model: nn.Module, targets: tuple[str, ...], r: int = 4, alpha: float = 8.0, dropout: float = 0.0
):
    """冻结整个模型，再把名字以 targets 中某一项结尾的 nn.Linear 换成 LoRALinear。"""
    for p in model.parameters():
        p.requires_grad_(False)
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear) and n.endswith(targets)]
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        setattr(parent, child, LoRALinear(getattr(parent, child), r=r, alpha=alpha, dropout=dropout))
    return names


def merge_lora(model: nn.Module) -> nn.Module:
    """合并每个 LoRALinear，并换回普通的 nn.Linear：得到的模型和原来的 GPT 结构完全相同。"""
    for name, module in list(model.named_modules()):
        if isinstance(module, LoRALinear):
            module.merge()
            parent_name, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent_name), child, module.base)
    return model


# --8<-- [end:lora]
