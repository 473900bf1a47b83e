"""第 1 章：数一数 Hello PyTorch 模型有多少个参数，再和几个真实大模型的参数量比一比。"""

# --8<-- [start:count]
import torch
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


# --8<-- [start:exercise_count]
def linear_params(n_in, n_out):
    """nn.Linear(n_in, n_out) 的参数个数：权重矩阵有 n_out × n_in 个数，偏置有 n_out 个数。"""
    return n_out * n_in + n_out


def count_params(module):
    return sum(p.numel() for p in module.parameters())


# 第 3 章的 2 → 16 → 1 网络：两个线性层，中间一个 ReLU
circle_mlp = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 1))
print("nn.ReLU() 的参数个数:", count_params(nn.ReLU()))
print(
    f"2 → 16 → 1 的网络：数出来 {count_params(circle_mlp)} 个，"
    f"按公式 {linear_params(2, 16)} + {linear_params(16, 1)} = {linear_params(2, 16) + linear_params(16, 1)} 个"
)
# 宽的层只用公式算：真的创建一个 4096 × 4096 的层要分配并初始化 1600 多万个数
width_params = {d: linear_params(d, d) for d in (1024, 2048, 4096)}
for d, n in width_params.items():
    print(f"nn.Linear({d}, {d}) 的参数个数: {n:,}")
print(f"宽度从 2048 翻倍到 4096，参数变成 {width_params[4096] / width_params[2048]:.2f} 倍")
# --8<-- [end:exercise_count]

# --8<-- [start:exercise_memory]
import copy

for dtype in (torch.float32, torch.bfloat16):
    model_in_dtype = copy.deepcopy(hello_model).to(dtype)  # 拷贝一份再转换，不动原来的模型
    n_bytes = sum(p.numel() * p.element_size() for p in model_in_dtype.parameters())
    label = str(dtype)  # "torch.float32" 这样的名字
    print(f"{label:<15} 每个参数 {model_in_dtype.weight.element_size()} 字节，Hello 模型共 {n_bytes} 字节")

bf16_bytes = torch.empty((), dtype=torch.bfloat16).element_size()
weight_gb = {name: n * bf16_bytes / 1e9 for name, n in model_sizes.items()}  # 1 GB 按 10⁹ 字节算
for name, gb in weight_gb.items():
    print(f"{name} 的 bf16 权重: {gb:g} GB")
# --8<-- [end:exercise_memory]
