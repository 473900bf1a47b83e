"""分片训练 worker：分片形状随进程数变化，4 个 rank 时结果仍与不切分的模型一致。"""

import sys
from pathlib import Path

import torch

sys.path.append(str(Path(__file__).resolve().parents[2] / "snippets" / "part3"))

import _ddp_worker
import _fsdp_worker as f

WORKER = Path("snippets/part3/_fsdp_worker.py")


def test_batch_and_model_are_deterministic():
    (x1, y1), (x2, y2) = f.make_batch(), f.make_batch()
    assert x1.shape == (f.GLOBAL_BATCH, 16) and y1.shape == (f.GLOBAL_BATCH, 4)
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert f.make_model()(x1).shape == (f.GLOBAL_BATCH, 4)


def test_four_ranks_each_hold_a_quarter_and_still_match_unsharded(tmp_path):
    world_size = 4
    logs = _ddp_worker.run_torchrun(WORKER, "--out", str(tmp_path), nproc=world_size)
    assert sorted(logs) == list(range(world_size)), f"应有 {world_size} 个 rank 的日志"
    results = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(world_size)]
    reference = f.make_model()
    optimizer = torch.optim.Adam(reference.parameters(), lr=f.LR)
    x, y = f.make_batch()
    for _ in range(f.STEPS):
        loss = torch.nn.functional.mse_loss(reference(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    for name, p in reference.named_parameters():
        shards = [result["local"][name] for result in results]
        assert all(s.shape[0] == p.shape[0] // world_size for s in shards), (
            f"{name}: 4 个 rank 每个应保存 1/4 行，实际 {[tuple(s.shape) for s in shards]}"
        )
        torch.testing.assert_close(
            torch.cat(shards), p.detach(), rtol=1e-5, atol=1e-6, msg=f"{name} 与不切分不同"
        )
        for result in results:
            assert torch.equal(result["full"][name], results[0]["full"][name]), (
                "每个 rank 收集到的完整参数应相同"
            )
    assert "0.weight 完整形状 (16, 16) → 本 rank 保存 (4, 16)" in logs[3][0]
    # 混合精度那一步：4 个 rank 时分片是 1/4 行，仍是 fp32；每个 rank 长期保存的状态 16 字节/参数
    for r in range(world_size):
        mixed = torch.load(tmp_path / f"mixed{r}.pt", weights_only=True)
        assert mixed["kinds"]["前向时收集的完整参数"] == ("torch.bfloat16", (16, 16))
        assert mixed["kinds"]["梯度分片"] == ("torch.float32", (4, 16))
        assert mixed["state_bytes"] == 16 * mixed["local_params"]
    # 小 GPT：参数切成 4 份，激活值却不切——每个 rank 为自己的 16 道题保存一整份，按清单逐字节相同
    for r in range(world_size):
        gpt = torch.load(tmp_path / f"gpt{r}.pt", weights_only=True)
        for name, bf16, recompute in f.GPT_VARIANTS:
            expected = expected_saved_bytes(f.GPT_BATCH // world_size, 2 if bf16 else 4, recompute)
            assert gpt[name]["saved_bytes"] == expected, (r, name, gpt[name]["saved_bytes"], expected)
            assert gpt[name]["state_bytes"] == 16 * gpt[name]["local_params"]


def expected_saved_bytes(batch: int, compute: int, recompute: bool) -> int:
    """小 GPT 前向一次为反向传播保存的字节：把每个保存的张量逐项列出来（与页面上的公式分开写，互相核对）。

    compute 是计算类型每个数的字节（fp32 4、bf16 2）；logsumexp 和 log_softmax 的输出总是 fp32，编号是 int64。"""
    config = f.GPTConfig()
    n, d, seq = batch * config.block_size, config.n_embd, config.block_size
    fp32, int64 = 4, 8
    block = [  # (个数, 每个的字节)
        (n * d, compute),  # 第一个 LayerNorm 的输入
        (2 * n, compute),  # 它的均值和标准差的倒数
        (n * d, compute),  # 它的输出 = qkv 线性层的输入
        (3 * n * d, compute),  # q、k、v（同一块存储）
        (batch * config.n_head * seq, fp32),  # SDPA 的 logsumexp
        (n * d, compute),  # SDPA 的输出 = 输出投影的输入
        (n * d, compute),  # 第二个 LayerNorm 的输入
        (2 * n, compute),
        (n * d, compute),  # 它的输出 = MLP 第一层的输入
        (4 * n * d, compute),  # MLP 第一层的输出 = GELU 的输入
        (4 * n * d, compute),  # GELU 的输出 = MLP 第二层的输入
    ]
    outside = [
        (n, int64),  # 字符编号
        (seq, int64),  # 位置编号
        (n * d, compute),  # 最后一个 LayerNorm 的输入
        (2 * n, compute),
        (n * d, compute),  # 它的输出 = 输出层的输入
        (n * config.vocab_size, fp32),  # log_softmax 的输出
        (n, int64),  # 目标
        (1, fp32),  # 交叉熵的一个标量
    ]
    per_block = n * d * compute if recompute else sum(count * size for count, size in block)
    return config.n_layer * per_block + sum(count * size for count, size in outside)


def test_saved_bytes_listing_agrees_with_a_plain_single_process_model():
    """清单本身的核对：不切分、不启动进程的小 GPT（bf16 用 .to(bfloat16)）数出来的字节与清单相同。"""
    x, y = f.get_batch(f.addition_data().train, 32, torch.Generator().manual_seed(0))
    x, y = x.clone(), y.clone()
    for name, bf16, recompute in f.GPT_VARIANTS:
        torch.manual_seed(0)
        model = f.GPT(f.GPTConfig())
        if bf16:
            model = model.to(torch.bfloat16)
        if recompute:
            for i, block in enumerate(model.blocks):
                model.blocks[i] = f.Checkpointed(block)
        saved = f.SavedTensors()
        with saved:
            loss = f.gpt_loss(model, x, y)
        loss.backward()
        assert saved.nbytes == expected_saved_bytes(32, 2 if bf16 else 4, recompute), name
