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
