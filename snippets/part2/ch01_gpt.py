"""第二部分第 1 页：搭一个小 GPT，数清它的参数，验证因果注意力看不到未来。"""

# --8<-- [start:layers]
import torch
from _tinygpt import Block, GPTConfig

torch.manual_seed(0)
x = torch.randn(2, 8, 64) * 3 + 1  # 2 个样本、8 个位置，每个位置 d = 64 个数（故意不是均值 0、方差 1）

# LayerNorm：每个位置自己的 d 个数减去平均值、除以标准差，再乘缩放 weight、加平移 bias
ln = torch.nn.LayerNorm(64)
mu = x.mean(dim=-1, keepdim=True)
var = x.var(dim=-1, unbiased=False, keepdim=True)  # 除以 d 的（有偏）方差，不是除以 d-1
ln_by_hand = (x - mu) / torch.sqrt(var + ln.eps) * ln.weight + ln.bias
ln_diff = (ln(x) - ln_by_hand).abs().max().item()
print(f"LayerNorm 与手算公式的最大差别: {ln_diff:.1e}")
y = ln(x)
print(
    f"归一化后每个位置的平均值离 0 最远 {y.mean(dim=-1).abs().max().item():.1e}，"
    f"标准差在 {y.std(dim=-1, unbiased=False).min().item():.4f} 到 {y.std(dim=-1, unbiased=False).max().item():.4f} 之间"
)

# GELU(x) = x·Φ(x)，Φ 是标准正态分布的累积分布函数
z = torch.linspace(-4, 4, 801)
gelu_by_hand = z * 0.5 * (1 + torch.erf(z / 2**0.5))
gelu_diff = (torch.nn.GELU()(z) - gelu_by_hand).abs().max().item()
tanh_diff = (torch.nn.GELU(approximate="tanh")(z) - torch.nn.GELU()(z)).abs().max().item()
print(f"nn.GELU() 与 x·Φ(x) 的最大差别: {gelu_diff:.1e}；tanh 近似与它的最大差别: {tanh_diff:.1e}")
points = torch.tensor([-3.0, -1.0, 0.0, 1.0, 3.0])
print("GELU 在", points.tolist(), "处的值:", [round(v, 4) for v in torch.nn.GELU()(points).tolist()])

# 残差连接：两个子层的最后一个线性层全置 0，子层输出恰好是 0，块就原样传过输入
block = Block(GPTConfig())
with torch.no_grad():
    for layer in (block.attn.proj, block.mlp.proj):
        layer.weight.zero_()
        layer.bias.zero_()
    residual_identity = torch.equal(block(x), x)
print("子层输出全为 0 时，块的输出与输入逐位相同:", residual_identity)
# --8<-- [end:layers]

# --8<-- [start:build]
from _tinygpt import GPT

torch.manual_seed(0)
config = GPTConfig()
model = GPT(config)
print(config)
print(model)
# --8<-- [end:build]

# --8<-- [start:count]
from dataclasses import replace

from _tinygpt import count_parameters


def numel(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


L, d, V, T = config.n_layer, config.n_embd, config.vocab_size, config.block_size
parts = {
    "词嵌入 tok_emb（V·d）": numel(model.tok_emb),
    "位置嵌入 pos_emb（T·d）": numel(model.pos_emb),
    **{f"第 {i} 个块 blocks[{i}]": numel(block) for i, block in enumerate(model.blocks)},
    "最后的 LayerNorm ln_f（2d）": numel(model.ln_f),
    "输出层 head（V·d）": numel(model.head),
}
for name, n in parts.items():
    print(f"{n:>9,}  {name}")
total = count_parameters(model)
print(f"{total:>9,}  合计")

# 按公式计算：每个块 12d² + 13d，加上嵌入、最后的 LayerNorm 和（不绑定时的）输出层
per_block = 12 * d**2 + 13 * d
formula_total = L * per_block + V * d + T * d + 2 * d + V * d
print(f"公式 L(12d²+13d) + Vd + Td + 2d + Vd = {formula_total:,}，与实际计数相等：{formula_total == total}")

tied_model = GPT(replace(config, tie_weights=True))
tied_total = count_parameters(tied_model)
print(f"输出层与词嵌入绑定（tie_weights=True）时：{tied_total:,}，少了 V·d = {total - tied_total:,}")
# --8<-- [end:count]

# --8<-- [start:count_summary]
rule_share = 12 * L * d**2 / total
print(
    f"这个模型有 **{total:,}** 个参数；其中 $12Ld^2$ = {12 * L * d**2:,}，"
    f"占 **{rule_share:.1%}**，嵌入、输出层、偏置和 LayerNorm 加起来只占剩下的 {1 - rule_share:.1%}。"
)
# --8<-- [end:count_summary]

# --8<-- [start:gpt2]
# GPT-2 small 的配置：12 层，d = 768，词表 50257，上下文 1024，输出层与词嵌入绑定
gpt2 = {"L": 12, "d": 768, "V": 50257, "T": 1024}
gpt2_rule = 12 * gpt2["L"] * gpt2["d"] ** 2
gpt2_total = (
    gpt2["L"] * (12 * gpt2["d"] ** 2 + 13 * gpt2["d"]) + (gpt2["V"] + gpt2["T"]) * gpt2["d"] + 2 * gpt2["d"]
)
print(
    f"GPT-2 small 有 $L = {gpt2['L']}$、$d = {gpt2['d']}$，$12Ld^2$ = {gpt2_rule:,}；"
    f"它的词表有 {gpt2['V']:,} 个词，词嵌入就有 {gpt2['V'] * gpt2['d']:,} 个参数。"
    f"输出层与词嵌入绑定，代入上面的公式（去掉最后一项 $Vd$）得到 **{gpt2_total:,}** 个参数，"
    f"$12Ld^2$ 只占其中的 {gpt2_rule / gpt2_total:.1%}：词表大时，嵌入不可忽略。"
)
# --8<-- [end:gpt2]

# --8<-- [start:forward]
from _tinygpt import VOCAB, decode, encode

prompt = "37+48="
idx = torch.tensor([encode(prompt)])  # 形状 (1, 6)：一个样本，6 个字符
print("字符表:", VOCAB)
print("输入编号:", idx.tolist())
logits = model(idx)
print("logits 的形状:", tuple(logits.shape), "  # (样本数, 字符数, 字符表大小)")
next_id = logits[0, -1].argmax().item()
print(f"未训练的模型认为 {prompt!r} 后面最可能是 {decode([next_id])!r}")
# --8<-- [end:forward]

# --8<-- [start:causal]
a = torch.tensor([encode("37+48=08")])
b = a.clone()
b[0, 6:] = torch.tensor(encode("99"))  # 只改最后两个位置（第 6、7 个字符）
with torch.no_grad():
    diff = (model(a) - model(b)).abs().amax(dim=-1)[0]  # 每个位置上 logits 的最大差别
for pos, value in enumerate(diff.tolist()):
    print(f"位置 {pos}（看到 {decode(a[0, : pos + 1])!r:>11}）logits 最大差别: {value:.6f}")
earlier_unchanged = bool((diff[:6] == 0).all())
print("改动之前的 6 个位置完全不受影响:", earlier_unchanged)
# --8<-- [end:causal]
