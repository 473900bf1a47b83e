"""第二部分第 6 页：7B、13B、70B 模型的显存账——权重的各种格式、全量微调、LoRA、QLoRA，参数量取自真实的模型形状。"""

# --8<-- [start:shapes]
import torch
from torch import nn

# LLaMA 2 三种规模的形状（Touvron 等 2023 的论文及随模型发布的 config.json）
LLAMA2 = {
    "7B": {"d_model": 4096, "n_layers": 32, "n_heads": 32, "n_kv_heads": 32, "d_ff": 11008, "vocab": 32000},
    "13B": {"d_model": 5120, "n_layers": 40, "n_heads": 40, "n_kv_heads": 40, "d_ff": 13824, "vocab": 32000},
    "70B": {"d_model": 8192, "n_layers": 80, "n_heads": 64, "n_kv_heads": 8, "d_ff": 28672, "vocab": 32000},
}


class DecoderLayer(nn.Module):
    """LLaMA 的一层：注意力的 4 个投影、SwiGLU 前馈层的 3 个投影、2 个 RMSNorm；线性层都没有偏置。"""

    def __init__(self, d_model, n_heads, n_kv_heads, d_ff, device):
        super().__init__()
        # 分组查询注意力（GQA）：K、V 的头比 Q 少，它们的投影也就更窄
        d_kv = d_model // n_heads * n_kv_heads
        self.q_proj = nn.Linear(d_model, d_model, bias=False, device=device)
        self.k_proj = nn.Linear(d_model, d_kv, bias=False, device=device)
        self.v_proj = nn.Linear(d_model, d_kv, bias=False, device=device)
        self.o_proj = nn.Linear(d_model, d_model, bias=False, device=device)
        self.gate_proj = nn.Linear(d_model, d_ff, bias=False, device=device)
        self.up_proj = nn.Linear(d_model, d_ff, bias=False, device=device)
        self.down_proj = nn.Linear(d_ff, d_model, bias=False, device=device)
        self.input_layernorm = nn.RMSNorm(d_model, device=device)
        self.post_attention_layernorm = nn.RMSNorm(d_model, device=device)


def llama_skeleton(d_model, n_layers, n_heads, n_kv_heads, d_ff, vocab):
    # meta 设备上的张量只有形状、没有数据：70B 的骨架也几乎不占内存，却能像真模型一样数参数
    model = nn.Module()
    model.embed_tokens = nn.Embedding(vocab, d_model, device="meta")
    model.layers = nn.ModuleList(
        DecoderLayer(d_model, n_heads, n_kv_heads, d_ff, device="meta") for _ in range(n_layers)
    )
    model.norm = nn.RMSNorm(d_model, device="meta")
    model.lm_head = nn.Linear(d_model, vocab, bias=False, device="meta")  # 输出层不与词元嵌入共用权重
    return model


def llama_param_formula(d_model, n_layers, n_heads, n_kv_heads, d_ff, vocab):
    d_kv = d_model // n_heads * n_kv_heads
    per_layer = 2 * d_model * d_model + 2 * d_model * d_kv + 3 * d_model * d_ff + 2 * d_model
    return n_layers * per_layer + 2 * vocab * d_model + d_model


skeletons = {name: llama_skeleton(**shape) for name, shape in LLAMA2.items()}
real_params = {name: sum(p.numel() for p in model.parameters()) for name, model in skeletons.items()}
formula_params = {name: llama_param_formula(**shape) for name, shape in LLAMA2.items()}
print("| 模型 | $d$ | $L$ | $d_{ff}$ | K/V 头数 | 公式算出的参数量 | meta 骨架数出的参数量 |")
print("|---|---:|---:|---:|---:|---:|---:|")
for name, s in LLAMA2.items():
    print(
        f"| LLaMA 2 {name} | {s['d_model']:,} | {s['n_layers']} | {s['d_ff']:,} | {s['n_kv_heads']} "
        f"| {formula_params[name]:,} | {real_params[name]:,} |"
    )
print(
    f"\n两种方法数出的参数量{'全部相同' if formula_params == real_params else '**不同**'}。名字是取整后的叫法："
    + "，".join(f"“{name}”实际有 {n / 1e8:,.1f} 亿个参数" for name, n in real_params.items())
    + "。"
)
# --8<-- [end:shapes]

# --8<-- [start:weights]
GB = 1e9  # 和第一部分第 7 章一样：1 GB = 10^9 字节
MODEL_PARAMS = {"7B": 7e9, "13B": 13e9, "70B": 70e9}  # 名义参数量，和第 7 章一致
WEIGHT_BYTES = {"fp32": 4, "bf16": 2, "int8": 1, "int4": 0.5}  # 每个参数占几个字节

weights_gb = {
    model: {fmt: n * nbytes / GB for fmt, nbytes in WEIGHT_BYTES.items()} for model, n in MODEL_PARAMS.items()
}
print("| 参数量 | " + " | ".join(f"{fmt}（{b} 字节）" for fmt, b in WEIGHT_BYTES.items()) + " |")
print("|---|" + "---:|" * len(WEIGHT_BYTES))
for model, row in weights_gb.items():
    print(f"| {model} | " + " | ".join(f"{gb:,.1f} GB" for gb in row.values()) + " |")
gib_ratio = GB / 2**30
print(
    f"\n1 GB = 10^9 字节；有的工具用 1 GiB = 2^30 = {2**30:,} 字节，"
    f"同样多的字节写成 GiB，数字要乘以 {gib_ratio:.3f}。"
)
# --8<-- [end:weights]


# --8<-- [start:adam_bytes]
# 同一个小模型，三种常见的存法，各用 AdamW 真的训练一步，再把每类张量实际占的字节数加起来
def make_tiny(dtype=torch.float32):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(256, 1024), nn.GELU(), nn.Linear(1024, 256)).to(dtype)


def nbytes(tensors):
    return sum(t.numel() * t.element_size() for t in tensors)


def dtypes(tensors):
    return "、".join(sorted({str(t.dtype).removeprefix("torch.") for t in tensors})) or "—"


def ledger(weights, grads, optimizer, masters=()):
    """一步训练之后，长期留在内存里的五类张量：(字节数, 类型)。"""
    states = [optimizer.state[p] for group in optimizer.param_groups for p in group["params"]]
    tensors = {
        "权重": list(weights),
        "梯度": list(grads),
        "主权重": list(masters),
        "Adam 一阶矩 m": [state["exp_avg"] for state in states],
        "Adam 二阶矩 v": [state["exp_avg_sq"] for state in states],
    }
    return {kind: (nbytes(ts), dtypes(ts)) for kind, ts in tensors.items()}


x = torch.randn(32, 256)

# ① torch.autocast（第 5 页的做法）：模型和优化器都是 fp32，bf16 只出现在前向、反向的计算过程里
autocast_model = make_tiny()
autocast_optimizer = torch.optim.AdamW(autocast_model.parameters(), lr=1e-3)
with torch.autocast("cpu", dtype=torch.bfloat16):
    loss = autocast_model(x).float().pow(2).mean()
loss.backward()
autocast_optimizer.step()
params = list(autocast_model.parameters())
autocast_ledger = ledger(params, [p.grad for p in params], autocast_optimizer)

# ② bf16 权重 + fp32 主权重（ZeRO 论文的记账）：这里手写，DeepSpeed 这类框架在内部做同样的事
tiny = make_tiny(torch.bfloat16)
master = [p.detach().float().requires_grad_() for p in tiny.parameters()]  # fp32 主权重（master weights）
master_optimizer = torch.optim.AdamW(master, lr=1e-3)
tiny(x.bfloat16()).float().pow(2).mean().backward()  # 前向、反向都在 bf16 里：梯度也是 bf16
for m, p in zip(master, tiny.parameters(), strict=True):
    m.grad = p.grad.float()  # 临时转成 fp32 交给优化器，用完就释放
master_optimizer.step()
for m in master:
    m.grad = None
with torch.no_grad():
    for m, p in zip(master, tiny.parameters(), strict=True):
        p.copy_(m)  # 更新后的主权重舍入回 bf16，下一步前向用
master_ledger = ledger(tiny.parameters(), [p.grad for p in tiny.parameters()], master_optimizer, master)

# ③ 纯 bf16：模型直接是 bf16，AdamW 的 m、v 跟着参数也是 bf16，没有主权重
pure = make_tiny(torch.bfloat16)
pure_optimizer = torch.optim.AdamW(pure.parameters(), lr=1e-3)
pure(x.bfloat16()).float().pow(2).mean().backward()
pure_optimizer.step()
pure_ledger = ledger(pure.parameters(), [p.grad for p in pure.parameters()], pure_optimizer)

n_tiny = sum(p.numel() for p in params)
stacks = {
    "① torch.autocast": autocast_ledger,
    "② bf16 权重 + fp32 主权重": master_ledger,
    "③ 纯 bf16": pure_ledger,
}
bytes_per_param = {name: {kind: b / n_tiny for kind, (b, _) in led.items()} for name, led in stacks.items()}
print(
    f"小模型有 {n_tiny:,} 个参数。一步 AdamW 之后，每类张量的字节数 ÷ 参数量（字节/参数，括号里是类型）：\n"
)
print("| | " + " | ".join(stacks) + " |")
print("|---|" + "---:|" * len(stacks))
for kind in autocast_ledger:
    cells = [
        f"{b / n_tiny:g}（{dtype}）" if b else "—" for b, dtype in (led[kind] for led in stacks.values())
    ]
    print(f"| {kind} | " + " | ".join(cells) + " |")
print("| **合计** | " + " | ".join(f"**{sum(per.values()):g}**" for per in bytes_per_param.values()) + " |")
step_counter_bytes = nbytes(state["step"] for state in autocast_optimizer.state.values())
# 为什么要 fp32 主权重：bf16 只有 8 位有效二进制位，小于约 2^-8 的相对更新会被舍入掉
one = torch.tensor(1.0, dtype=torch.bfloat16)
print(
    f"\nAdamW 还为每个参数张量存一个计步器（{len(params)} 个共 {step_counter_bytes} 字节，可以忽略）。"
    f"在 bf16 里 1 + 0.001 = {(one + 0.001).item():g}，在 fp32 里是 {(one.float() + 0.001).item():g}。"
)
# --8<-- [end:adam_bytes]

# --8<-- [start:full_finetune]
# 按 ② 的记账（ZeRO 论文）；① 的合计相同，只是权重、梯度各 4 字节、没有主权重
FULL_FT_BYTES = {"bf16 权重": 2, "bf16 梯度": 2, "fp32 主权重": 4, "Adam m": 4, "Adam v": 4}
FULL_FT_BYTES_PER_PARAM = sum(FULL_FT_BYTES.values())

full_ft_gb = {model: {k: n * b / GB for k, b in FULL_FT_BYTES.items()} for model, n in MODEL_PARAMS.items()}
print("| 参数量 | " + " | ".join(FULL_FT_BYTES) + f" | 合计（{FULL_FT_BYTES_PER_PARAM} 字节/参数） |")
print("|---|" + "---:|" * (len(FULL_FT_BYTES) + 1))
for model, row in full_ft_gb.items():
    cells = " | ".join(f"{gb:,.0f} GB" for gb in row.values())
    print(f"| {model} | {cells} | **{sum(row.values()):,.0f} GB** |")
# --8<-- [end:full_finetune]

# --8<-- [start:lora_count]
LORA_RANK = 8
LORA_TARGETS = ("q_proj", "v_proj")  # LoRA 论文里最常用的设置：只改注意力的 q、v 投影


def lora_param_count(model, r, targets):
    """每个被选中的 d_out × d_in 线性层加上 A（r × d_in）和 B（d_out × r）：r·(d_in + d_out) 个参数。"""
    return sum(
        r * (m.in_features + m.out_features)
        for name, m in model.named_modules()
        if isinstance(m, nn.Linear) and name.endswith(targets)
    )


lora_params = {name: lora_param_count(model, LORA_RANK, LORA_TARGETS) for name, model in skeletons.items()}
for name, n in lora_params.items():
    layer = skeletons[name].layers[0]
    print(
        f"LLaMA 2 {name}: q_proj {layer.q_proj.in_features}→{layer.q_proj.out_features}，"
        f"v_proj {layer.v_proj.in_features}→{layer.v_proj.out_features}，"
        f"r={LORA_RANK} 的 LoRA 参数 {n:,} 个，占全部参数的 {n / real_params[name]:.3%}"
    )
# --8<-- [end:lora_count]

# --8<-- [start:lora_memory]
ADAPTER_BYTES_PER_PARAM = FULL_FT_BYTES_PER_PARAM  # 适配器自己照样用 Adam 训练：按 ① 或 ② 存都是 16 字节/参数


def finetune_memory_gb(model):
    n, n_lora = MODEL_PARAMS[model], lora_params[model]
    adapters = n_lora * ADAPTER_BYTES_PER_PARAM / GB
    return {
        "全量微调": n * FULL_FT_BYTES_PER_PARAM / GB,
        "LoRA（bf16 底座）": n * WEIGHT_BYTES["bf16"] / GB + adapters,
        "QLoRA（int4 底座）": n * WEIGHT_BYTES["int4"] / GB + adapters,
        "其中适配器": adapters,
    }


memory_gb = {model: finetune_memory_gb(model) for model in MODEL_PARAMS}
print("| 参数量 | " + " | ".join(memory_gb["7B"]) + " |")
print("|---|" + "---:|" * len(memory_gb["7B"]))
for model, row in memory_gb.items():
    print(f"| {model} | " + " | ".join(f"{gb:,.2f} GB" for gb in row.values()) + " |")

# QLoRA 的 4 位权重还要存量化常数：每 64 个权重一个 fp32 的缩放因子；
# “双重量化”把这些缩放因子再量化成 8 位，每 256 个共用一个 fp32 常数
absmax_bits = 32 / 64
double_quant_bits = 8 / 64 + 32 / (64 * 256)
print(
    f"\n量化常数：每个权重另加 {absmax_bits} 位，双重量化后只加 {double_quant_bits:.3f} 位，"
    f"相当于 int4 底座再多 {double_quant_bits / 4:.1%}（上表没有计入）。"
)
# --8<-- [end:lora_memory]

# --8<-- [start:plot]
import io
import warnings

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

plt.rcParams["svg.hashsalt"] = "hello-pytorch"
plt.rcParams["svg.fonttype"] = "none"  # 文字以文本写进 SVG，由浏览器用中文字体显示

methods = {
    "bf16 推理（只有权重）": {m: weights_gb[m]["bf16"] for m in MODEL_PARAMS},
    "全量微调": {m: memory_gb[m]["全量微调"] for m in MODEL_PARAMS},
    "LoRA": {m: memory_gb[m]["LoRA（bf16 底座）"] for m in MODEL_PARAMS},
    "QLoRA": {m: memory_gb[m]["QLoRA（int4 底座）"] for m in MODEL_PARAMS},
}
fig, ax = plt.subplots(figsize=(7, 3.8))
width = 0.2
for i, (method, values) in enumerate(methods.items()):
    xs = [j + (i - 1.5) * width for j in range(len(MODEL_PARAMS))]
    ax.bar(xs, list(values.values()), width, label=method)
for gpu_gb, style in ((24, ":"), (80, "--")):
    ax.axhline(gpu_gb, color="black", linestyle=style, linewidth=1)
    # 标注写在坐标轴右边外侧，不压住柱子
    ax.text(1.01, gpu_gb, f"{gpu_gb} GB 显卡", transform=ax.get_yaxis_transform(), fontsize=9, va="center")
ax.set_yscale("log")
ax.set_xticks(range(len(MODEL_PARAMS)), list(MODEL_PARAMS))
ax.set_xlabel("模型参数量")
ax.set_ylabel("显存（GB，对数刻度）")
ax.set_title("权重 + 梯度 + 优化器状态（不含激活值）")
ax.legend(fontsize=8, ncols=2, loc="upper left")
buffer = io.StringIO()
with warnings.catch_warnings():
    # 构建机器上的 matplotlib 没有中文字体，只影响它估算文字宽度；SVG 里的中文由浏览器显示
    warnings.filterwarnings("ignore", message="Glyph .* missing from font")
    fig.savefig(buffer, format="svg", metadata={"Date": None}, bbox_inches="tight")
plt.close(fig)
print(buffer.getvalue())
# --8<-- [end:plot]

# --8<-- [start:summary]
m7, m70 = memory_gb["7B"], memory_gb["70B"]


def versus_80gb(gb):
    return "超过一张 80 GB 显卡" if gb > 80 else "一张 80 GB 显卡放得下"


print(
    f"以 7B 模型为例：全量微调要 **{m7['全量微调']:,.0f} GB**，{versus_80gb(m7['全量微调'])}；"
    f"LoRA 把可训练参数降到 **{lora_params['7B']:,}** 个，显存约 **{m7['LoRA（bf16 底座）']:.1f} GB**，"
    f"其中 {m7['LoRA（bf16 底座）'] - m7['其中适配器']:.1f} GB 是冻结的 bf16 权重；"
    f"QLoRA 把底座压成 int4，只要约 **{m7['QLoRA（int4 底座）']:.1f} GB**。"
    f"70B 模型的全量微调要 **{m70['全量微调']:,.0f} GB**；"
    f"QLoRA 约 **{m70['QLoRA（int4 底座）']:.1f} GB**，{versus_80gb(m70['QLoRA（int4 底座）'])}（激活值另算）。"
)
# --8<-- [end:summary]

# --8<-- [start:exercise_lora_all_linear]
ALL_LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
WIDE_RANK = 16
wide_lora_params = {name: lora_param_count(model, WIDE_RANK, ALL_LINEAR) for name, model in skeletons.items()}
for name, n in wide_lora_params.items():
    adapters_gb = n * ADAPTER_BYTES_PER_PARAM / GB
    print(
        f"LLaMA 2 {name}：r={WIDE_RANK}、每层 7 个线性层，LoRA 参数 {n:,} 个"
        f"（是 r={LORA_RANK}、只改 q、v 时的 {n / lora_params[name]:.1f} 倍），占全部参数的 {n / real_params[name]:.2%}；"
        f"适配器 {adapters_gb:.2f} GB，LoRA 合计 {memory_gb[name]['LoRA（bf16 底座）'] - memory_gb[name]['其中适配器'] + adapters_gb:.2f} GB"
    )
# --8<-- [end:exercise_lora_all_linear]


# --8<-- [start:exercise_kv_cache]
def kv_cache_bytes_per_token(shape, nbytes=WEIGHT_BYTES["bf16"]):
    """每生成（或读入）一个词元，每一层都要存下它的键和值：2 × 层数 × d_kv 个数。"""
    d_kv = shape["d_model"] // shape["n_heads"] * shape["n_kv_heads"]
    return 2 * shape["n_layers"] * d_kv * nbytes


CONTEXT = 4096  # LLaMA 2 的上下文长度
shapes_to_compare = {
    **LLAMA2,
    "70B（假如没有 GQA）": {**LLAMA2["70B"], "n_kv_heads": LLAMA2["70B"]["n_heads"]},
}
kv_per_token = {name: kv_cache_bytes_per_token(shape) for name, shape in shapes_to_compare.items()}
print(f"| 模型 | 每个词元（KB） | 一条 {CONTEXT} 个词元的序列（GB） | 多少条这样的序列就和 bf16 权重一样大 |")
print("|---|---:|---:|---:|")
for name, per_token in kv_per_token.items():
    weights = weights_gb[name.split("（")[0]]["bf16"]
    one_sequence = per_token * CONTEXT / GB
    print(f"| {name} | {per_token / 1e3:,.0f} | {one_sequence:.2f} | {weights / one_sequence:.1f} |")
# --8<-- [end:exercise_kv_cache]

# --8<-- [start:exercise_bf16_stuck]
# 6.3 的 ③ 和 ②，各用 AdamW 训练 STEPS 步，学习率很小；看 bf16 的权重有多少个真的变了
SMALL_LR, STEPS = 1e-5, 10
small_batch = x[:8].bfloat16()  # 小批量小一些：CPU 上 bf16 的矩阵乘法不快


def train_bf16(with_master: bool):
    net = make_tiny(torch.bfloat16)
    start = [p.detach().clone() for p in net.parameters()]
    if with_master:
        masters = [p.detach().float().requires_grad_() for p in net.parameters()]
        opt = torch.optim.AdamW(masters, lr=SMALL_LR)
    else:
        opt = torch.optim.AdamW(net.parameters(), lr=SMALL_LR)
    for _ in range(STEPS):
        net.zero_grad(set_to_none=True)
        net(small_batch).float().pow(2).mean().backward()
        if with_master:
            for m, p in zip(masters, net.parameters(), strict=True):
                m.grad = p.grad.float()
        opt.step()
        if with_master:
            with torch.no_grad():
                for m, p in zip(masters, net.parameters(), strict=True):
                    p.copy_(m)
    changed = torch.cat([(p != s).flatten() for p, s in zip(net.parameters(), start, strict=True)])
    magnitude = torch.cat([s.float().abs().flatten() for s in start])
    return changed.float().mean().item(), magnitude[changed].max().item(), magnitude.max().item()


bf16_runs = {"③ 纯 bf16": train_bf16(False), "② bf16 权重 + fp32 主权重": train_bf16(True)}
for name, (fraction, largest_changed, largest) in bf16_runs.items():
    print(
        f"{name}：学习率 {SMALL_LR:g}，训练 {STEPS} 步之后，bf16 权重里有 {fraction:.1%} 变了；"
        f"变了的权重原来的绝对值最大 {largest_changed:.4f}（全部权重最大 {largest:.4f}）"
    )
# --8<-- [end:exercise_bf16_stuck]


# --8<-- [start:exercise_saved_activations]
def saved_bytes(net, batch, frozen=()):
    """前向传播一次，数出为反向传播保存下来的张量占多少字节（参数本身不算：它们本来就在内存里）。"""
    for i, layer in enumerate(net):
        for p in layer.parameters():
            p.requires_grad_(i not in frozen)
    storages = {p.untyped_storage().data_ptr() for p in net.parameters()}
    saved = []

    def pack(t):
        if t.untyped_storage().data_ptr() not in storages:
            saved.append(t.numel() * t.element_size())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        net(torch.zeros(batch, 256)).pow(2).mean()
    for p in net.parameters():
        p.requires_grad_(True)
    return sum(saved)


activation_net = make_tiny()
cases = {  # (批大小, 冻结哪些层)；层的编号：0 是第一个线性层，1 是 GELU，2 是第二个线性层
    "批大小 32": (32, ()),
    "批大小 64": (64, ()),
    "批大小 32，冻结第二个线性层": (32, (2,)),
    "批大小 32，冻结第一个线性层": (32, (0,)),
}
activation_bytes = {case: saved_bytes(activation_net, b, frozen) for case, (b, frozen) in cases.items()}
for case, n in activation_bytes.items():
    batch = cases[case][0]
    print(f"{case}：为反向传播保存了 {n:,} 字节，每条样本 {n // (4 * batch):,} 个 fp32 数")
# --8<-- [end:exercise_saved_activations]
