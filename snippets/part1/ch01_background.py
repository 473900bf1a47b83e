"""第 1 章：数一数 Hello PyTorch 模型有多少个参数，再和几个真实大模型的参数量比一比。"""

# --8<-- [start:count]
import torch
import torch.nn.functional as F
from torch import nn

torch.manual_seed(0)
# 文章第 5 章用的模型：一个 10 维输入、1 维输出的线性层
hello_model = nn.Linear(10, 1)
hello_params = sum(p.numel() for p in hello_model.parameters())
for name, p in hello_model.named_parameters():
    print(f"{name:>6}: 形状 {tuple(p.shape)}，{p.numel()} 个参数")
print("Hello PyTorch 模型的参数总数:", hello_params)
# --8<-- [end:count]

# --8<-- [start:compare]
# 公开论文里给出的参数量（出处见本页脚注）
model_sizes = {
    "GPT-2（2019）": 1.5e9,
    "GPT-3（2020）": 175e9,
    "LLaMA 2 7B（2023）": 7e9,
    "LLaMA 2 70B（2023）": 70e9,
}
size_ratios = {name: n / hello_params for name, n in model_sizes.items()}
for name, n in model_sizes.items():
    print(f"{name}：{n / 1e9:g}B（{n / 1e8:g} 亿）个参数，约为 Hello 模型的 {size_ratios[name]:.1e} 倍")
# --8<-- [end:compare]

# --8<-- [start:summary]
gpt3_ratio = size_ratios["GPT-3（2020）"]
mantissa, exponent = f"{gpt3_ratio:.1e}".split("e")
print(
    f"第 5 章的模型只有 **{hello_params}** 个参数；GPT-3 的参数量大约是它的 "
    f"**${mantissa} \\times 10^{{{int(exponent)}}}$** 倍，相差约 {int(exponent)} 个数量级。"
)
# --8<-- [end:summary]

# --8<-- [start:sdpa]
# 形状：(批大小, 注意力头数, 序列长度, 每个位置的向量维度)；PyTorch 的融合内核要求这样的 4 维输入
q, k, v = (torch.randn(2, 2, 5, 8) for _ in range(3))

# 按公式手写注意力：softmax(QK^T / sqrt(d)) V
scores = q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5
manual_attention = torch.softmax(scores, dim=-1) @ v
# PyTorch 2.0 起的融合实现，一个函数完成同样的计算
fused_attention = F.scaled_dot_product_attention(q, k, v)
attention_matches = torch.allclose(manual_attention, fused_attention, atol=1e-5)
print("输出形状:", tuple(fused_attention.shape))
attention_max_diff = (manual_attention - fused_attention).abs().max().item()
print("手写版与 scaled_dot_product_attention 一致（容差 1e-5）:", attention_matches)
print(f"两者的最大绝对差: {attention_max_diff:.1e}")
# --8<-- [end:sdpa]
