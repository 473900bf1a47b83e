"""第二部分第 1 页：从没有参数的加权平均一级一级走到多头因果自注意力和 Transformer 块，每一级都和 PyTorch 对数；
再搭出完整的小 GPT，数清它的参数，验证它看不到未来。"""

# --8<-- [start:embedding]
import torch
import torch.nn.functional as F
from _tinygpt import VOCAB, encode


def show(matrix: torch.Tensor, digits: int = 2) -> None:
    """逐行打印一个二维张量，小数位数固定，方便手算核对。"""
    for row in matrix.tolist():
        print("  " + " ".join(f"{value:{digits + 5}.{digits}f}" for value in row))


torch.manual_seed(0)
tok_emb = torch.nn.Embedding(len(VOCAB), 3)  # 字符表有 13 个字符，每个字符对应一行 3 个可训练的数
ids = torch.tensor(encode("12+"))
vectors = tok_emb(ids)
print("字符编号:", ids.tolist(), "  查表得到的向量，形状", tuple(vectors.shape))
show(vectors, 4)
one_hot = F.one_hot(ids, len(VOCAB)).float()  # 形状 (3, 13)，每行只有一个 1
lookup_is_matmul = torch.equal(vectors, one_hot @ tok_emb.weight)
print("查表的结果 = one-hot 向量乘以权重矩阵:", lookup_is_matmul)
# --8<-- [end:embedding]

# --8<-- [start:average]
import math

# 4 个位置，每个位置一个 3 维向量；故意用整数，点积可以心算
X = torch.tensor([[1.0, 0.0, 1.0], [0.0, 2.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
scores = X @ X.T  # scores[i, j] = x_i · x_j
weights = torch.softmax(scores, dim=-1)  # 每一行各自做 softmax
out_average = weights @ X  # 第 i 行 = Σ_j weights[i, j] · x_j
print("分数 X Xᵀ：")
show(scores, 0)
print("权重 softmax(X Xᵀ)：")
show(weights, 4)
print("每行权重之和:", [round(s, 4) for s in weights.sum(dim=-1).tolist()])
row0_by_hand = math.exp(2) / (math.exp(2) + math.exp(0) + math.exp(1) + math.exp(1))
print(f"手算第 0 行第 0 个权重: e² / (e² + e⁰ + e¹ + e¹) = {row0_by_hand:.4f}")
print("输出 = 权重 × X：")
show(out_average, 4)
row2_by_hand = sum(weights[2, j] * X[j] for j in range(4))  # 只算第 2 行：按定义逐项相加
print("第 2 行按定义逐项相加：")
show(row2_by_hand[None], 4)
sdpa_average = F.scaled_dot_product_attention(X, X, X, scale=1.0)  # Q = K = V = X，不缩放
torch.testing.assert_close(out_average, sdpa_average)
print(
    f"与 F.scaled_dot_product_attention(X, X, X, scale=1.0) 一致，最大差别 {(out_average - sdpa_average).abs().max():.1e}"
)
# --8<-- [end:average]

# --8<-- [start:qkv]
import copy

torch.manual_seed(0)
d_k = 2
# 三个可训练的线性层，各自把 3 维向量变成 d_k = 2 维
query_layer, key_layer, value_layer = (torch.nn.Linear(3, d_k) for _ in range(3))
with torch.no_grad():  # 这里只看前向传播的数，不需要记录计算图
    Q, K, V = query_layer(X), key_layer(X), value_layer(X)  # 形状都是 (4, 2)
    scores_qk = Q @ K.T / d_k**0.5
    weights_qk = torch.softmax(scores_qk, dim=-1)
    out_qkv = weights_qk @ V
print("分数 Q Kᵀ / √d_k：")
show(scores_qk, 4)
print("权重：")
show(weights_qk, 4)
print("每行权重之和:", [round(s, 4) for s in weights_qk.sum(dim=-1).tolist()])
print("输出 = 权重 × V，形状", tuple(out_qkv.shape))
show(out_qkv, 4)
sdpa_qkv = F.scaled_dot_product_attention(Q, K, V)  # 默认就除以 √(Q 的最后一维)
torch.testing.assert_close(out_qkv, sdpa_qkv)
print(f"与 F.scaled_dot_product_attention(Q, K, V) 一致，最大差别 {(out_qkv - sdpa_qkv).abs().max():.1e}")
n_qkv_params = sum(p.numel() for layer in (query_layer, key_layer, value_layer) for p in layer.parameters())
print(f"可训练的参数：3 个线性层 × (3×{d_k} 个权重 + {d_k} 个偏置) = {n_qkv_params} 个")
print(
    f"第 1 级的分数矩阵对称: {torch.equal(scores, scores.T)}；"
    f"这一级的对称: {torch.allclose(scores_qk, scores_qk.T)}"
)

# 可训练意味着“看哪里”可以学：复制一份 W_Q、W_K，训练 100 步，目标是让第 3 个位置主要看第 1 个位置
trained_q, trained_k = copy.deepcopy(query_layer), copy.deepcopy(key_layer)
optimizer = torch.optim.SGD([*trained_q.parameters(), *trained_k.parameters()], lr=0.5)
for _ in range(100):
    row3 = torch.softmax(trained_q(X[3]) @ trained_k(X).T / d_k**0.5, dim=-1)  # 第 3 个位置的 4 个权重
    loss = -torch.log(row3[1])  # 第 1 个权重越接近 1，损失越小
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
row3_before, row3_after = weights_qk[3], row3.detach()
print("第 3 行的权重，训练前:", [round(w, 4) for w in row3_before.tolist()])
print("第 3 行的权重，训练 100 步后:", [round(w, 4) for w in row3_after.tolist()])
# --8<-- [end:qkv]

# --8<-- [start:scale]
torch.manual_seed(0)
scale_rows = []
for dim in (4, 64, 1024):
    q = torch.randn(500, 8, dim)  # 500 组，每组 8 个位置；每个分量都是标准正态分布
    k = torch.randn(500, 8, dim)
    dots = q @ k.transpose(1, 2)  # 每组 8×8 个点积
    raw_max = torch.softmax(dots, dim=-1).amax(dim=-1).mean().item()  # 每行最大的权重，取平均
    scaled_max = torch.softmax(dots / dim**0.5, dim=-1).amax(dim=-1).mean().item()
    scale_rows.append((dim, dots.std().item(), raw_max, scaled_max))
    print(
        f"d_k = {dim:>4}：q·k 的标准差 {dots.std().item():5.2f}（√d_k = {dim**0.5:5.2f}）；"
        f"每行最大的权重平均是 {raw_max:.3f}，除以 √d_k 后是 {scaled_max:.3f}"
    )
# --8<-- [end:scale]


# --8<-- [start:mask]
def causal_attention(q, k, v):
    """第 2 级的注意力加上因果掩码：返回输出、权重和加了掩码的分数。"""
    t = q.size(-2)
    visible = torch.tril(torch.ones(t, t, dtype=torch.bool))  # 下三角（含对角线）：j ≤ i 的位置看得见
    masked = (q @ k.transpose(-2, -1) / q.size(-1) ** 0.5).masked_fill(~visible, float("-inf"))
    weights = torch.softmax(masked, dim=-1)  # e^(-∞) = 0：看不见的位置权重正好是 0
    return weights @ v, weights, masked


out_causal, weights_causal, scores_masked = causal_attention(Q, K, V)
print("加了掩码的分数：")
show(scores_masked, 4)
print("权重（对角线以上全是 0）：")
show(weights_causal, 4)
print("每行权重之和:", [round(s, 4) for s in weights_causal.sum(dim=-1).tolist()])
upper_is_zero = bool((weights_causal.triu(diagonal=1) == 0).all())
print("对角线以上的权重全为 0:", upper_is_zero)
sdpa_causal = F.scaled_dot_product_attention(Q, K, V, is_causal=True)
torch.testing.assert_close(out_causal, sdpa_causal)
print(
    f"与 F.scaled_dot_product_attention(Q, K, V, is_causal=True) 一致，最大差别 {(out_causal - sdpa_causal).abs().max():.1e}"
)
zeroed_after = weights_qk.tril()  # 错误的做法：先 softmax，再把未来的权重清零
print("反例：先 softmax 再清零，每行权重之和:", [round(s, 4) for s in zeroed_after.sum(dim=-1).tolist()])
# --8<-- [end:mask]

# --8<-- [start:heads]
torch.manual_seed(0)
B, T, C, n_head = 1, 4, 8, 2  # 1 个样本、4 个位置、每个位置 8 维，分成 2 个头
head_dim = C // n_head  # 每个头 4 维
x_heads = torch.randn(B, T, C)
to_q, to_k, to_v, to_out = (torch.nn.Linear(C, C) for _ in range(4))
with torch.no_grad():
    q, k, v = to_q(x_heads), to_k(x_heads), to_v(x_heads)  # 形状都是 (B, T, C)

    # 写法一：第 h 个头取 Q、K、V 的第 h 段 head_dim 列，各做一次第 3 级的因果注意力，再把结果接起来
    per_head = [
        causal_attention(*(t[..., h * head_dim : (h + 1) * head_dim] for t in (q, k, v)))
        for h in range(n_head)
    ]
    y_loop = to_out(torch.cat([out for out, _, _ in per_head], dim=-1))

    # 写法二：用 view 和 transpose 把“头”变成一个单独的维度，一次算完所有头（库里的写法）
    print(f"q                               {tuple(q.shape)}  (B, T, C)")
    q4 = q.view(B, T, n_head, head_dim)
    print(
        f"q.view(B, T, n_head, head_dim)  {tuple(q4.shape)}  (B, T, 头, 每头维度)  与 q 共用内存: {q4.data_ptr() == q.data_ptr()}"
    )
    q4 = q4.transpose(1, 2)
    print(
        f".transpose(1, 2)                {tuple(q4.shape)}  (B, 头, T, 每头维度)  连续存放: {q4.is_contiguous()}"
    )
    k4, v4 = (t.view(B, T, n_head, head_dim).transpose(1, 2) for t in (k, v))
    y4 = F.scaled_dot_product_attention(q4, k4, v4, is_causal=True)
    print(f"scaled_dot_product_attention    {tuple(y4.shape)}  每个头各做一次注意力")
    y_t = y4.transpose(1, 2)
    print(f".transpose(1, 2)                {tuple(y_t.shape)}  (B, T, 头, 每头维度)")
    y_cat = y_t.contiguous().view(B, T, C)
    print(f".contiguous().view(B, T, C)     {tuple(y_cat.shape)}  各头的结果并排接起来")
    y_heads = to_out(y_cat)
    print(f"to_out(...)                     {tuple(y_heads.shape)}  输出层")
    try:
        q4.view(B, n_head, T * head_dim)  # 不连续的张量，很多形状 view 不出来
    except RuntimeError as error:
        view_error = str(error).split("(")[0].strip()
        print(f"不连续的 q4 想 .view(B, n_head, T * head_dim)：RuntimeError: {view_error}")
torch.testing.assert_close(y_heads, y_loop)
print(f"两种写法一致，最大差别 {(y_heads - y_loop).abs().max():.1e}")
for h, (_, head_weights, _) in enumerate(per_head):
    print(f"第 {h} 个头的权重：")
    show(head_weights[0], 2)
# --8<-- [end:heads]

# --8<-- [start:library]
from _tinygpt import CausalSelfAttention, GPTConfig

library_attn = CausalSelfAttention(GPTConfig(n_embd=C, n_head=n_head))
with torch.no_grad():
    # 库里的 qkv 是一个 C → 3C 的线性层：它的权重就是 Q、K、V 三个权重上下叠在一起
    library_attn.qkv.weight.copy_(torch.cat([to_q.weight, to_k.weight, to_v.weight]))
    library_attn.qkv.bias.copy_(torch.cat([to_q.bias, to_k.bias, to_v.bias]))
    library_attn.proj.load_state_dict(to_out.state_dict())
    y_library = library_attn(x_heads)
torch.testing.assert_close(y_library, y_heads)
print("qkv 的权重形状:", tuple(library_attn.qkv.weight.shape), "= 3 个", tuple(to_q.weight.shape), "叠起来")
print(
    f"库里的 CausalSelfAttention 与上面一步步算的结果一致，最大差别 {(y_library - y_heads).abs().max():.1e}"
)
# --8<-- [end:library]


# --8<-- [start:order]
def plain_attention(inputs):  # 第 2 级：有 Q、K、V，没有掩码，也没有位置信息
    return F.scaled_dot_product_attention(query_layer(inputs), key_layer(inputs), value_layer(inputs))


perm = torch.tensor([2, 0, 3, 1])  # 把 4 个位置打乱的一种方式
with torch.no_grad():
    shuffled_then_attend = plain_attention(X[perm])
    attend_then_shuffle = plain_attention(X)[perm]
torch.testing.assert_close(shuffled_then_attend, attend_then_shuffle)
print(
    "不加掩码：先打乱输入再做注意力 = 先做注意力再打乱输出（差别",
    f"{(shuffled_then_attend - attend_then_shuffle).abs().max():.1e}）",
)

torch.manual_seed(0)
char_emb = torch.nn.Embedding(len(VOCAB), C)
pos_emb = torch.nn.Embedding(8, C)  # 每个位置 0..7 一个可训练的向量
prompts = [torch.tensor([encode(text)]) for text in ("37+48=", "73+84=")]
positions = torch.arange(6)
with torch.no_grad():
    last_without = [library_attn(char_emb(p))[0, -1] for p in prompts]  # 最后一个位置（“=”）的输出
    last_with = [library_attn(char_emb(p) + pos_emb(positions))[0, -1] for p in prompts]
order_blind_diff = (last_without[0] - last_without[1]).abs().max().item()
order_aware_diff = (last_with[0] - last_with[1]).abs().max().item()
print("因果注意力，“=”位置的输出：'37+48=' 与 '73+84=' 的最大差别")
print(f"  只有词元嵌入:        {order_blind_diff:.1e}")
print(f"  词元嵌入 + 位置嵌入: {order_aware_diff:.4f}")
# --8<-- [end:order]

# --8<-- [start:gelu]
# GELU(x) = x·Φ(x)，Φ 是标准正态分布的累积分布函数
z = torch.linspace(-4, 4, 801)
gelu_by_hand = z * 0.5 * (1 + torch.erf(z / 2**0.5))
gelu_diff = (torch.nn.GELU()(z) - gelu_by_hand).abs().max().item()
tanh_diff = (torch.nn.GELU(approximate="tanh")(z) - torch.nn.GELU()(z)).abs().max().item()
print(f"nn.GELU() 与 x·Φ(x) 的最大差别: {gelu_diff:.1e}；tanh 近似与它的最大差别: {tanh_diff:.1e}")
points = torch.tensor([-3.0, -1.0, 0.0, 1.0, 3.0], requires_grad=True)
torch.nn.GELU()(points).sum().backward()
gelu_grad = points.grad.clone()
points.grad = None
torch.relu(points).sum().backward()
relu_grad = points.grad.clone()
print("在", points.tolist(), "处")
print("  GELU 的值:  ", [round(v, 4) for v in torch.nn.GELU()(points).tolist()])
print("  GELU 的导数:", [round(v, 4) for v in gelu_grad.tolist()])
print("  ReLU 的导数:", [round(v, 4) for v in relu_grad.tolist()])
# --8<-- [end:gelu]

# --8<-- [start:layernorm]
torch.manual_seed(0)
x = torch.randn(2, 8, 64) * 3 + 1  # 2 个样本、8 个位置，每个位置 d = 64 个数（故意不是均值 0、方差 1）

# LayerNorm：每个位置自己的 d 个数减去平均值、除以标准差，再乘缩放 weight、加平移 bias
ln = torch.nn.LayerNorm(64)
mu = x.mean(dim=-1, keepdim=True)
var = x.var(dim=-1, unbiased=False, keepdim=True)  # 除以 d 的（有偏）方差，不是除以 d-1
ln_by_hand = (x - mu) / torch.sqrt(var + ln.eps) * ln.weight + ln.bias
ln_diff = (ln(x) - ln_by_hand).abs().max().item()
print(f"LayerNorm 与手算公式的最大差别: {ln_diff:.1e}")
ln_out = ln(x)
ln_std = ln_out.std(dim=-1, unbiased=False)
print(
    f"归一化后每个位置的平均值离 0 最远 {ln_out.mean(dim=-1).abs().max().item():.1e}，"
    f"标准差在 {ln_std.min().item():.4f} 到 {ln_std.max().item():.4f} 之间"
)
ln_scale_diff = (ln(100 * x) - ln_out).abs().max().item()
print(f"输入放大 100 倍，输出最多变了 {ln_scale_diff:.1e}")
# --8<-- [end:layernorm]

# --8<-- [start:residual]
from _tinygpt import Block

# 残差连接：两个子层的最后一个线性层全置 0，子层输出恰好是 0，块就原样传过输入
block = Block(GPTConfig())
with torch.no_grad():
    for layer in (block.attn.proj, block.mlp.proj):
        layer.weight.zero_()
        layer.bias.zero_()
x_in = x.clone().requires_grad_()
block_out = block(x_in)
residual_identity = torch.equal(block_out, x)
print("子层输出全为 0 时，块的输出与输入逐位相同:", residual_identity)
block_out.sum().backward()  # 损失取输出之和：它对输出的梯度全是 1
residual_grad_identity = torch.equal(x_in.grad, torch.ones_like(x))
print("梯度也沿残差路径原样传回（输入的梯度全是 1）:", residual_grad_identity)
# --8<-- [end:residual]

# --8<-- [start:ablation]
import torch.nn as nn
from _tinygpt import GPT, MLP, one_thread


class SwitchBlock(nn.Module):
    """和库里的 Block 一样，只多了两个开关：要不要残差连接，要不要 LayerNorm。"""

    def __init__(self, config: GPTConfig, residual: bool = True, norm: bool = True):
        super().__init__()
        self.residual = residual
        self.ln1 = nn.LayerNorm(config.n_embd) if norm else nn.Identity()
        self.attn = CausalSelfAttention(config)
        self.ln2 = nn.LayerNorm(config.n_embd) if norm else nn.Identity()
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.attn(self.ln1(x))
        x = x + a if self.residual else a
        m = self.mlp(self.ln2(x))
        return x + m if self.residual else m


# 两个开关都打开时，它和库里的 Block 是同一个计算
switch_block, library_block = SwitchBlock(GPTConfig()), Block(GPTConfig())
switch_block.load_state_dict(library_block.state_dict())
with torch.no_grad():
    same_as_library = torch.equal(switch_block(x), library_block(x))
print("两个开关都打开的 SwitchBlock 与库里的 Block 逐位相同:", same_as_library)

DEEP = GPTConfig(n_layer=8, n_embd=16, n_head=2)  # 8 个块，每个位置只有 16 维：又深又窄
VARIANTS = {
    "完整的块": (True, True),
    "去掉残差": (False, True),
    "去掉 LayerNorm": (True, False),
    "两样都去掉": (False, False),
}


def copy_previous_batch(generator: torch.Generator, batch_size: int = 32):
    """玩具任务：8 个随机数字，每个位置要说出前一个数字（第 0 个位置没有前一个，不计损失）。"""
    x = torch.randint(0, 10, (batch_size, DEEP.block_size), generator=generator)
    y = torch.full_like(x, -100)
    y[:, 1:] = x[:, :-1]
    return x, y


def ablation_run(residual: bool, norm: bool, seed: int, steps: int = 40) -> dict:
    torch.manual_seed(seed)
    model = GPT(DEEP)
    model.blocks = nn.ModuleList(SwitchBlock(DEEP, residual, norm) for _ in range(DEEP.n_layer))
    if not norm:
        model.ln_f = nn.Identity()
    # fused=True：所有参数的更新合成一次计算，数学上是同一个更新，小模型上快不少（舍入可能差在最后几位）
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-2, weight_decay=0.0, fused=True)
    generator = torch.Generator().manual_seed(seed)
    losses = []
    with one_thread():
        for step in range(steps):
            x, y = copy_previous_batch(generator)
            if step == 0:  # 训练之前：最后一个块输出里，同一个样本不同位置的向量方向有多接近
                with torch.no_grad():
                    h = model.tok_emb(x) + model.pos_emb(torch.arange(x.shape[1]))
                    for block in model.blocks:
                        h = block(h)
                    unit = F.normalize(h, dim=-1)
                    cosine = unit @ unit.transpose(1, 2)
                    off_diagonal = ~torch.eye(x.shape[1], dtype=torch.bool)
                    same_direction = cosine[:, off_diagonal].mean().item()
            logits = model(x)
            loss = F.cross_entropy(logits.reshape(-1, DEEP.vocab_size), y.reshape(-1), ignore_index=-100)
            optimizer.zero_grad()
            loss.backward()
            if step == 0:  # 第一个和最后一个块里 qkv 权重的梯度有多大
                first_grad = model.blocks[0].attn.qkv.weight.grad.norm().item()
                last_grad = model.blocks[-1].attn.qkv.weight.grad.norm().item()
            optimizer.step()
            losses.append(loss.item())
    return {
        "first_grad": first_grad,
        "last_grad": last_grad,
        "cosine": same_direction,
        "start": losses[0],
        "end": sum(losses[-10:]) / len(losses[-10:]),  # 最后 10 步的平均损失
    }


ablation = {name: ablation_run(*switches, seed=0) for name, switches in VARIANTS.items()}
chance = math.log(10)  # 在 10 个数字里平均地猜，交叉熵就是 ln 10
for name, r in ablation.items():
    print(
        f"{name}：qkv 权重的梯度 最后一个块 {r['last_grad']:.1e}、第一个块 {r['first_grad']:.1e}；"
        f"各位置的余弦相似度 {r['cosine']:.3f}；损失 第 0 步 {r['start']:.3f} → 最后 10 步平均 {r['end']:.3f}"
    )
print(f"平均地猜 10 个数字的损失 ln 10 = {chance:.3f}")
# --8<-- [end:ablation]

# --8<-- [start:ablation_summary]
full, no_res, no_ln, neither = (ablation[name] for name in VARIANTS)
steps_run = ablation_run.__defaults__[0]
sentences = []
learned, stuck = max(full["end"], no_ln["end"]), min(no_res["end"], neither["end"])
if learned < 1 and stuck > chance - 0.1:
    sentences.append(
        f"有残差连接的两种，训练 {steps_run} 步，最后 10 步的平均损失是 {full['end']:.2f} 和 {no_ln['end']:.2f}；"
        f"去掉残差的两种是 {no_res['end']:.2f} 和 {neither['end']:.2f}，几乎就是 $\\ln 10 = {chance:.3f}$："
        "它们只学会了“10 个数字机会均等”，没学会“说出前一个数字”。"
    )
else:
    sentences.append("这一次，有残差和没有残差的损失没有拉开明显的差距，下面的解释不适用于这次的数字。")
if min(no_res["cosine"], neither["cosine"]) > 0.99 and max(full["cosine"], no_ln["cosine"]) < 0.9:
    sentences.append(
        "原因在训练开始之前就看得出来：没有残差时，8 个块之后同一个样本各位置的向量两两之间的余弦相似度平均是 "
        f"{min(no_res['cosine'], neither['cosine']):.3f}，所有位置几乎指向同一个方向，"
        "“哪个位置是哪个数字”在 8 层计算里丢失了；有残差时是 "
        f"{full['cosine']:.2f} 和 {no_ln['cosine']:.2f}，各位置还分得开。"
    )
if neither["first_grad"] * 1e4 < min(no_res["first_grad"], neither["last_grad"]):
    sentences.append(
        f"两样都去掉时，梯度从最后一个块的 {neither['last_grad']:.1e} 缩小到第一个块的 "
        f"{neither['first_grad']:.1e}，前面的层几乎得不到梯度，这就是上面说的梯度消失；"
        f"只去掉残差、留着 LayerNorm 时，第一个块的梯度是 {no_res['first_grad']:.1e}，没有消失，"
        "损失却照样下不去：可见问题不只是梯度太小，还有上面看到的各位置的信息在前向传播里就丢了。"
    )
if no_ln["end"] > full["end"] + 0.1:
    sentences.append(
        f"有残差、去掉 LayerNorm 的模型也在学，但同样 {steps_run} 步，它的损失（{no_ln['end']:.2f}）"
        f"比完整的块（{full['end']:.2f}）高。"
    )
else:
    sentences.append(
        f"有残差时，去掉 LayerNorm 的损失（{no_ln['end']:.2f}）和完整的块（{full['end']:.2f}）差别不大："
        "这个实验没有显示出 LayerNorm 的必要性。"
    )
print("".join(sentences))
# --8<-- [end:ablation_summary]

# --8<-- [start:build]
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
    "词元嵌入 tok_emb（V·d）": numel(model.tok_emb),
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
print(f"输出层与词元嵌入绑定（tie_weights=True）时：{tied_total:,}，少了 V·d = {total - tied_total:,}")
# --8<-- [end:count]

# --8<-- [start:count_summary]
rule_share = 12 * L * d**2 / total
print(
    f"这个模型有 **{total:,}** 个参数；其中 $12Ld^2$ = {12 * L * d**2:,}，"
    f"占 **{rule_share:.1%}**，嵌入、输出层、偏置和 LayerNorm 加起来只占剩下的 {1 - rule_share:.1%}。"
)
# --8<-- [end:count_summary]

# --8<-- [start:gpt2]
# GPT-2 small 的配置：12 层，d = 768，词表 50257，上下文 1024，输出层与词元嵌入绑定
gpt2 = {"L": 12, "d": 768, "V": 50257, "T": 1024}
gpt2_rule = 12 * gpt2["L"] * gpt2["d"] ** 2
gpt2_total = (
    gpt2["L"] * (12 * gpt2["d"] ** 2 + 13 * gpt2["d"]) + (gpt2["V"] + gpt2["T"]) * gpt2["d"] + 2 * gpt2["d"]
)
print(
    f"GPT-2 small 有 $L = {gpt2['L']}$、$d = {gpt2['d']}$，$12Ld^2$ = {gpt2_rule:,}；"
    f"它的词表有 {gpt2['V']:,} 个词元，词元嵌入就有 {gpt2['V'] * gpt2['d']:,} 个参数。"
    f"输出层与词元嵌入绑定，代入上面的公式（去掉最后一项 $Vd$）得到 **{gpt2_total:,}** 个参数，"
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

# --8<-- [start:exercise_count]
count_variants = {}
for change in ({}, {"n_head": 1}, {"n_head": 8}, {"n_layer": 4}, {"n_embd": 128}):  # 每次只改一个设置
    count_variants[str(change)] = n = count_parameters(GPT(replace(config, **change)))
    print(f"{change!s:<16}{n:>9,} 个参数，是本页配置的 {n / total:.2f} 倍")
# --8<-- [end:exercise_count]


# --8<-- [start:exercise_no_mask]
class PeekingAttention(CausalSelfAttention):
    """库里的注意力，只改一处：不加因果掩码，每个位置都看得见全部位置。"""

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = (t.view(B, T, self.n_head, -1).transpose(1, 2) for t in self.qkv(x).split(C, dim=2))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=False)  # 库里是 is_causal=True
        return self.proj(y.transpose(1, 2).reshape(B, T, C))


def without_mask(gpt):
    """同样的权重，每个块换上不加掩码的注意力。"""
    peeking = GPT(gpt.config)
    for peeking_block in peeking.blocks:
        peeking_block.attn = PeekingAttention(gpt.config)
    peeking.load_state_dict(gpt.state_dict())
    return peeking


# (1) 1.12 节的实验：a、b 两串只有最后两个字符不同
with torch.no_grad():
    peek_diff = (without_mask(model)(a) - without_mask(model)(b)).abs().amax(dim=-1)[0]
print("去掉掩码后，每个位置上 logits 的最大差别:", peek_diff.numpy().round(4))


# (2) 作弊就能做好的任务：8 个随机数字，每个位置预测下一个数字
def next_digit_losses(mask, steps=60):
    """训练一个 1 层的小模型 steps 步，再在 256 串新的数字上量每个位置的平均损失。"""
    torch.manual_seed(0)
    tiny = GPTConfig(n_layer=1, n_embd=32, n_head=2)
    net = GPT(tiny) if mask else without_mask(GPT(tiny))
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-2, weight_decay=0.0)
    generator = torch.Generator().manual_seed(0)
    with one_thread():
        for step in range(steps + 1):
            digits = torch.randint(0, 10, (256 if step == steps else 32, 9), generator=generator)
            # 输入是前 8 个数字，目标是后 8 个：整体错开一位
            losses = F.cross_entropy(net(digits[:, :-1]).transpose(1, 2), digits[:, 1:], reduction="none")
            if step == steps:  # 最后这一批不训练，只量损失
                return losses.mean(dim=0).detach()
            optimizer.zero_grad()
            losses.mean().backward()
            optimizer.step()


cheat_losses = {mask: next_digit_losses(mask) for mask in (True, False)}
print("有掩码：位置 0–7 的损失", cheat_losses[True].numpy().round(2))
print("无掩码：位置 0–7 的损失", cheat_losses[False].numpy().round(2))
print(f"对照：10 个数字平均地猜，损失是 ln 10 = {math.log(10):.3f}")
# --8<-- [end:exercise_no_mask]

# --8<-- [start:exercise_no_position]
# 把位置嵌入清零（模型就没有位置信息了），比较两道题在“=”位置的 logits；1 层和 2 层各试一次
no_position_diff = {}
for n_layer in (1, 2):
    torch.manual_seed(0)
    blind = GPT(GPTConfig(n_layer=n_layer))
    with torch.no_grad():
        blind.pos_emb.weight.zero_()
        last_logits = [blind(p)[0, -1] for p in prompts]  # prompts 是 1.7 节的 '37+48=' 和 '73+84='
    no_position_diff[n_layer] = (last_logits[0] - last_logits[1]).abs().max().item()
    print(f"没有位置嵌入、{n_layer} 层：“=”位置的 logits 最大差别 {no_position_diff[n_layer]:.1e}")
# --8<-- [end:exercise_no_position]

# --8<-- [start:exercise_saturation]
# 梯度从注意力的输出（权重 × V）传回每个位置的查询 q_i：量一量每个 q_i 得到的梯度有多长
torch.manual_seed(0)
saturation = {}
for dim in (4, 64, 1024):
    # 200 组、每组 8 个位置的 q、k、v；upstream 是假想的、从下游传回来的梯度
    q_rand, k_rand, v_rand, upstream = (torch.randn(200, 8, n) for n in (dim, dim, 16, 16))
    for divisor in (1, dim**0.5):
        q_leaf = q_rand.clone().requires_grad_()
        (
            torch.softmax(q_leaf @ k_rand.transpose(1, 2) / divisor, dim=-1) @ v_rand * upstream
        ).sum().backward()
        lengths = q_leaf.grad.norm(dim=-1)
        saturation[dim, divisor > 1] = median, tiny, mean = (
            lengths.median().item(),
            (lengths < 1e-3).float().mean().item(),
            q_leaf.grad.abs().mean().item(),
        )
        print(
            f"d_k = {dim:>4}，{'除以 √d_k' if divisor > 1 else '不缩放'}：梯度长度的中位数 {median:.1e}，"
            f"小于 0.001 的占 {tiny:.0%}，各分量绝对值的平均 {mean:.1e}"
        )
# --8<-- [end:exercise_saturation]
