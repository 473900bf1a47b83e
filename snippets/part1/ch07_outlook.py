"""第 7 章：大模型要多少内存？全量微调和 LoRA 各要训练多少参数？"""

# --8<-- [start:memory]
import torch
from torch import nn

# 每个参数占多少字节
BYTES_PER_PARAM = {
    "fp32 权重": 4,
    "bf16 权重": 2,
    # Adam 训练：权重 + 梯度 + 两份 Adam 状态（m 和 v），合计约 16 字节/参数
    "Adam 训练": 16,
}
MODEL_PARAMS = {"125M": 125e6, "7B": 7e9, "70B": 70e9}
GB = 1e9  # 这里的 GB 指 10^9 字节

memory_gb = {
    model: {kind: n * nbytes / GB for kind, nbytes in BYTES_PER_PARAM.items()}
    for model, n in MODEL_PARAMS.items()
}
# 打印成一张 Markdown 表格
print("| 参数量 | " + " | ".join(BYTES_PER_PARAM) + " |")
print("|---|" + "---:|" * len(BYTES_PER_PARAM))
for model, row in memory_gb.items():
    print(f"| {model} | " + " | ".join(f"{gb:,.2f} GB" for gb in row.values()) + " |")
# --8<-- [end:memory]

# --8<-- [start:memory_summary]
import math

GPU_80GB_BYTES = 80 * 2**30  # 标称“80 GB”的显卡（如 A100 80GB）实际是 80 GiB，约 85.9×10^9 字节
gpus_80gb_for_70b = math.ceil(memory_gb["70B"]["Adam 训练"] * GB / GPU_80GB_BYTES)
print(
    f"用 Adam 全量训练 70B 模型，仅权重、梯度和优化器状态就要约 **{memory_gb['70B']['Adam 训练']:,.0f} GB**，"
    f"要把显存全部用上的话至少也得 **{gpus_80gb_for_70b}** 张 80 GB 显卡——这还没算激活值。"
)
# --8<-- [end:memory_summary]

# --8<-- [start:lora_count]
d_model, rank = 4096, 8
full_params = d_model * d_model  # 一个 d×d 权重矩阵
lora_params = rank * d_model + d_model * rank  # A 是 r×d，B 是 d×r
print(f"一个 {d_model}×{d_model} 的权重矩阵：{full_params:,} 个参数")
print(f"秩 r={rank} 的 LoRA（A 和 B）：{lora_params:,} 个参数，占 {lora_params / full_params:.2%}")

# 假设：像 LLaMA 2 7B 那样有 32 层、隐藏维度 4096，只在每层的 q、v 两个投影上加 LoRA
n_layers, n_adapted = 32, 2
lora_params_7b = n_layers * n_adapted * lora_params
lora_state_gb = lora_params_7b * BYTES_PER_PARAM["Adam 训练"] / GB
frozen_gb = memory_gb["7B"]["bf16 权重"]
print(f"7B 模型上 LoRA 的可训练参数：{lora_params_7b:,} 个，占 {lora_params_7b / MODEL_PARAMS['7B']:.3%}")
print(f"LoRA 微调 7B：冻结的 bf16 权重 {frozen_gb:.1f} GB + LoRA 的训练状态 {lora_state_gb:.3f} GB")
print(f"全量微调 7B（Adam）：{memory_gb['7B']['Adam 训练']:.1f} GB")
# --8<-- [end:lora_count]


# --8<-- [start:lora_layer]
class LoRALinear(nn.Module):
    """冻结的线性层 W，旁边并联一个低秩更新 (alpha/r)·BA。"""

    def __init__(self, base: nn.Linear, rank: int, alpha: float = 1.0):
        super().__init__()
        self.base = base
        self.base.requires_grad_(False)  # 预训练权重不动
        self.lora_a = nn.Parameter(torch.randn(rank, base.in_features) * 0.01)
        # B 从 0 开始：刚加上 LoRA 时，模型的输出和原模型完全一样
        self.lora_b = nn.Parameter(torch.zeros(base.out_features, rank))
        self.scale = alpha / rank

    def forward(self, x):
        return self.base(x) + self.scale * (x @ self.lora_a.T @ self.lora_b.T)


torch.manual_seed(0)
pretrained = nn.Linear(64, 64)  # 假装这是一个预训练好的层
lora_layer = LoRALinear(pretrained, rank=4, alpha=4.0)
x_check = torch.randn(3, 64)
same_at_start = torch.equal(lora_layer(x_check), pretrained(x_check))
trainable = sum(p.numel() for p in lora_layer.parameters() if p.requires_grad)
frozen = sum(p.numel() for p in lora_layer.parameters() if not p.requires_grad)
print("刚加上 LoRA 时输出与原层相同:", same_at_start)
print(f"可训练参数 {trainable:,} 个，冻结参数 {frozen:,} 个")
# --8<-- [end:lora_layer]

# --8<-- [start:lora_train]
# 玩具“下游任务”：目标层 = 预训练层 + 一个秩为 2 的改动
with torch.no_grad():
    delta = 0.5 * torch.randn(64, 2) @ torch.randn(2, 64) / 8
    target_weight = pretrained.weight + delta
X_task = torch.randn(512, 64)
y_task = X_task @ target_weight.T + pretrained.bias

weight_before = pretrained.weight.detach().clone()
optimizer = torch.optim.Adam([p for p in lora_layer.parameters() if p.requires_grad], lr=1e-2)
lora_losses = []
for step in range(200):
    optimizer.zero_grad()
    loss = nn.functional.mse_loss(lora_layer(X_task), y_task)
    loss.backward()
    optimizer.step()
    lora_losses.append(loss.item())
    if step % 50 == 0 or step == 199:
        print(f"第 {step + 1:3d} 步  损失 {loss.item():.5f}")
base_unchanged = torch.equal(pretrained.weight, weight_before)
print("预训练权重 W 保持不变:", base_unchanged)
# --8<-- [end:lora_train]

# --8<-- [start:exercise_break_even]
# d×k 的矩阵有 d·k 个参数，秩 r 的 A、B 共 r·(d + k) 个：r = d·k / (d + k) 时两者一样多
for d, k in [(64, 64), (d_model, d_model)]:
    break_even = d * k // (d + k)
    print(
        f"{d}×{k} 的矩阵：{d * k:,} 个参数；秩 r={break_even} 的 LoRA 有 {break_even * (d + k):,} 个参数，一样多"
    )
# --8<-- [end:exercise_break_even]


# --8<-- [start:exercise_zero_init]
def train_lora(rank, zero_a=False, steps=200, seed=0):
    """在上面的玩具任务上，从同一个预训练层出发重新训练一个 LoRA 层；alpha 取 rank，让缩放系数 alpha/r 始终为 1。"""
    torch.manual_seed(seed)
    layer = LoRALinear(pretrained, rank=rank, alpha=rank)
    if zero_a:
        with torch.no_grad():
            layer.lora_a.zero_()  # A 也从 0 开始
    opt = torch.optim.Adam([layer.lora_a, layer.lora_b], lr=1e-2)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = nn.functional.mse_loss(layer(X_task), y_task)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses, layer


zero_losses, zero_layer = train_lora(rank=4, zero_a=True, steps=50)
print(f"A、B 都从 0 开始：第 1 步损失 {zero_losses[0]:.5f}，第 50 步损失 {zero_losses[-1]:.5f}")
print("A 的梯度最大绝对值:", zero_layer.lora_a.grad.abs().max().item())
print("B 的梯度最大绝对值:", zero_layer.lora_b.grad.abs().max().item())
# --8<-- [end:exercise_zero_init]

# --8<-- [start:exercise_rank]
print("改动量 delta 的秩:", torch.linalg.matrix_rank(delta).item())
rank_losses = {rank: train_lora(rank)[0] for rank in (1, 2)} | {4: lora_losses}  # 秩 4 就是上面训练的那个
for rank, losses in rank_losses.items():
    print(f"秩 r={rank}：可训练参数 {rank * (64 + 64):4d} 个，第 200 步损失 {losses[-1]:.2e}")
# --8<-- [end:exercise_rank]

# --8<-- [start:exercise_merge]
merged = nn.Linear(64, 64)  # 一个普通的线性层，没有 A、B
with torch.no_grad():
    merged.weight.copy_(pretrained.weight + lora_layer.scale * lora_layer.lora_b @ lora_layer.lora_a)
    merged.bias.copy_(pretrained.bias)
    merge_gap = (merged(X_task) - lora_layer(X_task)).abs().max().item()
print(f"合并后的线性层有 {sum(p.numel() for p in merged.parameters()):,} 个参数")
print(f"它和 LoRA 层在 {len(X_task)} 个输入上的输出最多相差 {merge_gap:.1e}")
# --8<-- [end:exercise_merge]


# --8<-- [start:exercise_gpu]
def largest_model(gpu_gib):
    """显存 gpu_gib GiB 的一张卡，只按 7.1 的每参数字节数，最多放得下多少参数（单位：十亿）。"""
    budget = gpu_gib * 2**30
    lora_bytes = (
        BYTES_PER_PARAM["bf16 权重"] + lora_params_7b / MODEL_PARAMS["7B"] * BYTES_PER_PARAM["Adam 训练"]
    )
    return {
        "bf16 推理": budget / BYTES_PER_PARAM["bf16 权重"] / 1e9,
        "Adam 全量训练": budget / BYTES_PER_PARAM["Adam 训练"] / 1e9,
        "LoRA 微调": budget / lora_bytes / 1e9,
    }


gpu_limits = {gib: largest_model(gib) for gib in (24, 80)}
for gib, limits in gpu_limits.items():
    print(f"{gib} GB 显卡：" + "，".join(f"{kind}最多约 {b:.1f}B 个参数" for kind, b in limits.items()))
# --8<-- [end:exercise_gpu]
