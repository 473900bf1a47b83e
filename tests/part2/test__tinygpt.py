"""第二部分的共用库：模型的形状、因果性、参数量公式，任务数据，检查点读写，LoRA 的性质。"""

import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

sys.path.append(str(Path(__file__).resolve().parents[2] / "snippets" / "part2"))

import _tinygpt as t

CONFIGS = [
    t.GPTConfig(),
    t.GPTConfig(n_layer=3, n_head=2, n_embd=32, block_size=16),
    t.GPTConfig(n_layer=1, n_head=1, n_embd=8, vocab_size=5, block_size=4, tie_weights=True),
]


def formula(config: t.GPTConfig) -> int:
    L, d, V, T = config.n_layer, config.n_embd, config.vocab_size, config.block_size
    head = 0 if config.tie_weights else V * d
    return L * (12 * d**2 + 13 * d) + V * d + T * d + 2 * d + head


@pytest.mark.parametrize("config", CONFIGS, ids=str)
def test_parameter_count_matches_formula_exactly(config):
    model = t.GPT(config)
    assert t.count_parameters(model) == formula(config), "参数量应等于 L(12d²+13d) + Vd + Td + 2d (+ Vd)"
    block = sum(p.numel() for p in model.blocks[0].parameters())
    assert block == 12 * config.n_embd**2 + 13 * config.n_embd, f"一个块的参数量 {block} 与 12d²+13d 不符"


def test_tied_head_shares_the_embedding():
    model = t.GPT(t.GPTConfig(tie_weights=True))
    assert model.head.weight is model.tok_emb.weight, "tie_weights=True 时输出层与词元嵌入应是同一个参数"
    untied = t.GPT(t.GPTConfig())
    assert t.count_parameters(untied) - t.count_parameters(model) == 13 * 64


def test_gelu_option_changes_only_the_activation():
    """默认的 GELU 按定义精确计算（前几页的结果不变）；gelu="tanh" 只换激活函数，参数和随机数的用法都不变。"""
    x = torch.linspace(-4, 4, 81)
    default = t.GPT(t.GPTConfig()).blocks[0].mlp.act
    assert torch.equal(default(x), torch.nn.functional.gelu(x)), "默认应是精确的 GELU"
    torch.manual_seed(0)
    exact = t.GPT(t.GPTConfig()).eval()
    torch.manual_seed(0)
    tanh = t.GPT(t.GPTConfig(gelu="tanh")).eval()
    assert torch.equal(tanh.blocks[0].mlp.act(x), torch.nn.functional.gelu(x, approximate="tanh"))
    for (name, a), (_, b) in zip(exact.state_dict().items(), tanh.state_dict().items(), strict=True):
        assert torch.equal(a, b), f"{name}：换 GELU 不应改变参数的初始化"
    idx = torch.randint(13, (4, 8), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert not torch.equal(exact(idx), tanh(idx)), "两种 GELU 的输出应有差别"


@pytest.mark.parametrize("config", CONFIGS, ids=str)
def test_logits_shape(config):
    torch.manual_seed(0)
    model = t.GPT(config)
    idx = torch.randint(config.vocab_size, (3, config.block_size))
    logits = model(idx)
    assert logits.shape == (3, config.block_size, config.vocab_size), (
        f"logits 形状不对：{tuple(logits.shape)}"
    )


def test_too_long_input_raises():
    model = t.GPT(t.GPTConfig())
    with pytest.raises(ValueError, match="block_size"):
        model(torch.zeros(1, 9, dtype=torch.long))


@pytest.mark.parametrize("cut", range(1, 8))
def test_future_tokens_never_change_earlier_logits(cut):
    torch.manual_seed(0)
    model = t.GPT(t.GPTConfig()).eval()
    a = torch.randint(13, (4, 8))
    b = a.clone()
    b[:, cut:] = (b[:, cut:] + 1 + torch.randint(12, b[:, cut:].shape)) % 13  # 第 cut 位起每个字符都换掉
    with torch.no_grad():
        la, lb = model(a), model(b)
    torch.testing.assert_close(la[:, :cut], lb[:, :cut], rtol=0, atol=0)
    assert not torch.allclose(la[:, cut:], lb[:, cut:]), "改动之后的位置，logits 应该变化"


def test_attention_matches_explicit_masked_softmax():
    """F.scaled_dot_product_attention(is_causal=True) 等于手写的“下三角掩码 + softmax”。"""
    torch.manual_seed(0)
    config = t.GPTConfig()
    attn = t.CausalSelfAttention(config)
    x = torch.randn(2, 8, config.n_embd)
    q, k, v = attn.qkv(x).split(config.n_embd, dim=2)
    h, hd = config.n_head, config.n_embd // config.n_head
    q, k, v = (z.view(2, 8, h, hd).transpose(1, 2) for z in (q, k, v))
    scores = q @ k.transpose(-2, -1) / hd**0.5
    scores = scores.masked_fill(torch.triu(torch.ones(8, 8, dtype=torch.bool), diagonal=1), float("-inf"))
    y = (scores.softmax(dim=-1) @ v).transpose(1, 2).reshape(2, 8, config.n_embd)
    torch.testing.assert_close(attn(x), attn.proj(y))


def test_problem_format_and_encoding():
    assert t.format_problem(37, 48, "+") == ("37+48=", "085")
    assert t.format_problem(85, 37, "-") == ("85-37=", "048")
    assert t.decode(t.encode("12+34=046")) == "12+34=046"
    with pytest.raises(ValueError):
        t.make_split("*", n_val=10, n_test=10, seed=0)


@pytest.mark.parametrize(("op", "total"), [("+", 10_000), ("-", 5_050)])
def test_split_is_disjoint_complete_and_seeded(op, total):
    split = t.make_split(op, n_val=100, n_test=50, seed=3)
    assert len(split.val) == 100 and len(split.test) == 50 and len(split.train) == total - 150
    train, val, test = (set(part) for part in split)
    assert not (train & val or train & test or val & test), "训练集、验证集、测试集不能有相同的题"
    assert t.make_split(op, n_val=100, n_test=50, seed=3) == split, "同一个种子应得到同样的划分"
    assert t.make_split(op, n_val=100, n_test=50, seed=4).test != split.test
    if op == "-":
        assert all(a >= b for a, b in split.train + split.val + split.test), "减法题应满足 a >= b"


def test_batches_mask_the_prompt_and_are_reproducible():
    data = t.encode_problems([(1, 2), (30, 45)], "+")
    x1, y1 = t.get_batch(data, 16, torch.Generator().manual_seed(0))
    x2, y2 = t.get_batch(data, 16, torch.Generator().manual_seed(0))
    assert torch.equal(x1, x2) and torch.equal(y1, y2), "同一个种子应抽到同样的小批量"
    assert x1.shape == y1.shape == (16, 8)
    assert (y1[:, :5] == -100).all(), "题目部分不计损失"
    assert torch.equal(y1[:, 5:], torch.cat([x1[:, 6:], y1[:, -1:]], dim=1)), "目标是输入错开一位"


def test_accuracy_of_an_oracle_and_of_a_wrong_model():
    data = t.encode_problems([(12, 34), (99, 99), (0, 0)], "+")

    class Oracle(torch.nn.Module):
        """总是说出正确答案的“模型”：检验 greedy_answers 与 accuracy 的对齐方式。"""

        def forward(self, idx):
            logits = torch.zeros(idx.shape[0], idx.shape[1], 13)
            for i, row in enumerate(idx):
                a, b = int(t.decode(row[:2])), int(t.decode(row[3:5]))
                answer = t.encode(f"{a + b:03d}")
                logits[i, -1, answer[idx.shape[1] - t.PROMPT_LEN]] = 1.0
            return logits

    assert t.accuracy(Oracle(), data) == 1.0
    assert torch.equal(t.greedy_answers(Oracle(), data[:, : t.PROMPT_LEN]), data[:, t.PROMPT_LEN :])
    torch.manual_seed(0)
    assert t.accuracy(t.GPT(t.GPTConfig()), data) < 1.0


def test_one_thread_restores_the_thread_count():
    before = torch.get_num_threads()
    with t.one_thread():
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_training_is_deterministic_and_reduces_loss():
    train_data, val_data, _ = t.addition_data()
    val = val_data[:200]
    x, y = val[:, :-1], val[:, 1:].clone()
    y[:, : t.PROMPT_LEN - 1] = -100
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        model = t.GPT(t.GPTConfig(n_layer=1, n_embd=32))
        with torch.no_grad():
            initial = t.answer_loss(model, x, y).item()
        runs.append(t.train(model, train_data, val, steps=60, lr=3e-3, eval_every=20))
    assert runs[0] == runs[1], "同样的种子，两次训练的记录应完全相同"
    assert runs[0][-1]["val_loss"] < 0.75 * initial, f"验证损失应下降：{initial:.3f} -> {runs[0]}"


# ---------------------------------------------------------------- 结果存储


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setattr(t, "ARTEFACTS", tmp_path / "part2")
    return tmp_path / "part2"


def test_cached_computes_once_then_reads_back(store):
    calls = []

    def compute():
        calls.append(1)
        return {"weights": torch.arange(3.0), "history": [{"step": 1, "loss": 0.5}]}

    first = t.cached("demo", compute, lr=0.1)
    again = t.cached("demo", compute, lr=0.1)
    assert len(calls) == 1, "同样的设置，第二次应直接读取"
    assert torch.equal(again["weights"], first["weights"]) and again["history"] == first["history"]
    t.cached("demo", compute, lr=0.2)
    assert len(calls) == 2, "设置变了，应重新计算"
    assert sorted(p.suffix for p in store.iterdir() if p.suffix == ".pt") == [".pt", ".pt"]
    assert not list(store.glob("*.partial")), "不应留下写了一半的文件"


def test_cached_key_covers_source_and_versions(monkeypatch):
    path = t.artefact_path("demo", lr=0.1)
    monkeypatch.setattr(t, "SOURCE_DIGEST", "0" * 64)
    assert t.artefact_path("demo", lr=0.1) != path, "库的源码变了，结果文件应换一个"
    monkeypatch.undo()
    monkeypatch.setattr(torch, "__version__", "0.0.0")
    assert t.artefact_path("demo", lr=0.1) != path, "PyTorch 版本变了，结果文件应换一个"
    monkeypatch.undo()
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "ANOTHER_ISA")
    assert t.artefact_path("demo", lr=0.1) != path, "CPU 指令集变了，结果文件应换一个"


def test_two_threads_asking_at_once_compute_once(store):
    import threading
    import time

    calls = []

    def slow():
        calls.append(1)
        time.sleep(0.5)
        return {"value": 42}

    results = []
    threads = [threading.Thread(target=lambda: results.append(t.cached("slow", slow))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1, "文件锁应让第二个调用等第一个算完，然后读取"
    assert results == [{"value": 42}, {"value": 42}]


def test_two_processes_running_one_experiment_share_the_work(store, monkeypatch):
    """页面和笔记本同时跑同一个实验：各算一部分（另一方正在算的先跳过），每次训练只算一次，两边拿到同样的结果。"""
    import threading
    import time

    computed = []

    def fake_run(variant, lr, seed, wait=True):
        def compute():
            computed.append((variant, lr, seed))
            time.sleep(0.2)
            return {"value": f"{variant}-{lr}-{seed}"}

        return t.cached("fake", compute, wait, variant=variant, lr=lr, seed=seed)

    monkeypatch.setattr(t, "finetune_run", fake_run)
    jobs = [("v", lr, seed) for lr in (0.1, 0.2) for seed in (0, 1, 2)]
    results = []
    started = time.perf_counter()
    threads = [threading.Thread(target=lambda: results.append(t.run_all(jobs))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    assert sorted(computed) == sorted(jobs), "每次训练应恰好算一次"
    assert results[0] == results[1] == [{"value": f"v-{lr}-{seed}"} for _, lr, seed in jobs]
    assert seconds < 0.2 * len(jobs) * 0.8, f"两个进程应分担工作，而不是一个算、一个等：{seconds:.2f} 秒"


# 在一份临时复制的库上真的训练：库里任何一行改了，检查点就不能再用（问题 #13：产物的键包含产生它的全部代码）
_RETRAIN = """
import json, sys
sys.path.insert(0, sys.argv[1])
import _tinygpt as t
t.PRETRAIN.update(steps=30, eval_every=10, target_accuracy=None, batch_size=32)
p = t.load_or_train_pretrained(t.GPTConfig(n_layer=1, n_embd=16, n_head=2))
print(json.dumps({"trained_now": p.trained_now, "history": p.history, "file": p.path.name}))
"""


def _pretrain_in_copy(copy_dir: Path) -> dict:
    import json
    import subprocess

    result = subprocess.run(
        [sys.executable, "-c", _RETRAIN, str(copy_dir / "snippets" / "part2")],
        capture_output=True,
        text=True,
        check=True,
        env={**__import__("os").environ, "OMP_NUM_THREADS": "1", "HELLO_PYTORCH_ARTEFACTS": ""},
        timeout=120,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_editing_any_line_of_the_library_retrains_the_checkpoint(tmp_path):
    library = tmp_path / "snippets" / "part2" / "_tinygpt.py"
    library.parent.mkdir(parents=True)
    source = (Path(t.__file__)).read_text(encoding="utf-8")
    library.write_text(source, encoding="utf-8")
    first = _pretrain_in_copy(tmp_path)
    assert first["trained_now"]
    again = _pretrain_in_copy(tmp_path)
    assert not again["trained_now"] and again["history"] == first["history"], "什么都没改，应读取检查点"
    # 改训练循环里的一行（优化器的学习率），配置和 PRETRAIN 都没变
    line = "optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)"
    assert line in source
    library.write_text(source.replace(line, line.replace("lr=lr,", "lr=lr * 0.5,")), encoding="utf-8")
    edited = _pretrain_in_copy(tmp_path)
    assert edited["trained_now"], "改了训练代码，旧检查点不能再用"
    assert edited["file"] != first["file"]
    assert edited["history"] != first["history"], "新代码训练出的记录应不同"
    assert (tmp_path / ".cache" / "part2").is_dir(), "自己运行时结果存在仓库的 .cache/part2/ 下"


# ---------------------------------------------------------------- LoRA


def test_lora_linear_starts_as_the_base_layer_and_trains_only_a_and_b():
    torch.manual_seed(0)
    base = torch.nn.Linear(10, 6)
    layer = t.LoRALinear(base, r=3, alpha=6.0)
    x = torch.randn(4, 10)
    assert torch.equal(layer(x), base(x)), "B 初始化为 0，包上 LoRA 后输出应与原层逐位相同"
    assert {n for n, p in layer.named_parameters() if p.requires_grad} == {"A", "B"}
    assert layer.A.shape == (3, 10) and layer.B.shape == (6, 3)
    assert layer.scaling == 2.0


def test_lora_forward_is_the_formula_and_merge_keeps_outputs():
    torch.manual_seed(0)
    base = torch.nn.Linear(10, 6)
    w0 = base.weight.detach().clone()
    layer = t.LoRALinear(base, r=2, alpha=5.0)
    with torch.no_grad():
        layer.B.normal_()
    x = torch.randn(4, 10)
    expected = x @ (w0 + 2.5 * layer.B @ layer.A).T + base.bias
    before = layer(x)
    torch.testing.assert_close(before, expected)
    layer.merge()
    assert layer.merged
    torch.testing.assert_close(layer(x), before)
    torch.testing.assert_close(base.weight, w0 + 2.5 * layer.B @ layer.A)
    layer.merge()  # 再合并一次不应重复加
    torch.testing.assert_close(layer(x), before)


def test_lora_gradients_reach_only_a_and_b():
    torch.manual_seed(0)
    model = t.GPT(t.GPTConfig())
    t.apply_lora(model, t.LORA_TARGETS, r=2)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, t.LoRALinear):
                m.B.normal_()
    x, y = t.get_batch(t.addition_data()[1], 8, torch.Generator().manual_seed(0))
    t.answer_loss(model, x, y).backward()
    for name, p in model.named_parameters():
        if name.endswith((".A", ".B")):
            assert p.grad is not None and p.grad.abs().sum() > 0, f"{name} 应有梯度"
        else:
            assert p.grad is None, f"{name} 被冻结，不应有梯度"


def test_lora_dropout_only_acts_in_training_mode():
    torch.manual_seed(0)
    layer = t.LoRALinear(torch.nn.Linear(16, 16), r=4, alpha=4.0, dropout=0.5)
    with torch.no_grad():
        layer.B.normal_()
    x = torch.randn(8, 16)
    layer.eval()
    assert torch.equal(layer(x), layer(x)), "eval 模式下 dropout 不起作用，输出确定"
    layer.train()
    assert not torch.equal(layer(x), layer(x)), "train 模式下 dropout 随机丢弃 LoRA 分支的输入"


@pytest.mark.parametrize("r", [1, 4, 8])
def test_apply_lora_count_and_merge_restore_a_plain_gpt(r):
    torch.manual_seed(0)
    config = t.GPTConfig()
    model = t.GPT(config)
    names = t.apply_lora(model, t.LORA_TARGETS, r=r)
    assert len(names) == 4 * config.n_layer
    expected = sum(
        r * (model.get_submodule(n).base.in_features + model.get_submodule(n).base.out_features)
        for n in names
    )
    assert t.count_parameters(model, trainable_only=True) == expected == r * 2 * (256 + 128 + 320 + 320)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, t.LoRALinear):
                m.B.normal_(std=0.02)
    idx = torch.randint(13, (4, 8))
    model.eval()
    with torch.no_grad():
        unmerged = model(idx)
        merged = t.merge_lora(model)
        torch.testing.assert_close(merged(idx), unmerged, rtol=1e-4, atol=1e-4)
    plain = t.GPT(replace(config))
    plain.load_state_dict(merged.state_dict())  # 严格匹配：合并后就是普通 GPT 的结构
    assert t.count_parameters(plain) == t.count_parameters(t.GPT(config))


# ---------------------------------------------------------------- 结论的措辞由数字决定


@pytest.mark.parametrize(
    ("a", "b", "verdict", "words"),
    [
        ([0.80, 0.82, 0.85], [0.60, 0.70, 0.75], 1, "高 14.0 个百分点"),
        ([0.60, 0.70, 0.75], [0.80, 0.82, 0.85], -1, "低 14.0 个百分点"),
        ([0.80, 0.82, 0.85], [0.81, 0.90, 0.95], 0, "分不出高低"),
        ([0.50, 0.90, 0.91], [0.60, 0.62, 0.64], 0, "分不出高低"),  # 平均值高，但有一个种子低于对方
        ([0.70, 0.70, 0.70], [0.70, 0.70, 0.70], 0, "分不出高低"),
    ],
)
def test_comparisons_only_claim_what_the_ranges_support(a, b, verdict, words):
    assert t.difference(a, b) == verdict
    text = t.compare(a, b)
    assert words in text
    if verdict == 0:
        assert not text.startswith(("高", "低")), f"范围重叠时不能说谁高谁低：{text}"


def test_spread_reports_mean_and_range():
    assert t.spread([0.5, 0.6, 0.7]) == "60.0%（50.0%–70.0%）"
