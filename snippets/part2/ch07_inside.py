"""第二部分第 7 页：取出预训练加法模型的注意力权重，画热图、读出每个头在看哪里、去掉一个头验证；
再用贪心、温度和 top-k 采样生成答案，看温度怎样改变分布、为什么算术要用贪心。"""

# --8<-- [start:load]
import torch
from _tinygpt import PROMPT_LEN, decode, encode, format_problem, greedy_answers, load_or_train_pretrained

pretrained = load_or_train_pretrained()
model = pretrained.model
test_data = pretrained.data.test
# 三道题：个位进位、不进位、两次进位（百位是 1）
PROBLEMS = [(37, 48), (21, 34), (68, 57)]
problems = torch.tensor([encode("".join(format_problem(a, b, "+"))) for a, b in PROBLEMS])
answers = greedy_answers(model, problems[:, :PROMPT_LEN])
for row, answer in zip(problems, answers, strict=True):
    mark = "✓" if torch.equal(answer, row[PROMPT_LEN:]) else "✗"
    print(f"{decode(row[:PROMPT_LEN])}{decode(answer)}  {mark}")
# --8<-- [end:load]

# --8<-- [start:capture]
import math

from _tinygpt import CausalSelfAttention, one_thread


def attention_weights(attn: CausalSelfAttention, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """按第 1 页的公式把注意力重算一遍：返回权重 (B, 头数, T, T) 和由它算出的模块输出。"""
    B, T, C = x.shape
    head_dim = C // attn.n_head
    q, k, v = attn.qkv(x).split(C, dim=2)
    q, k, v = (t.view(B, T, attn.n_head, head_dim).transpose(1, 2) for t in (q, k, v))
    scores = q @ k.transpose(-2, -1) / math.sqrt(head_dim)
    causal = torch.ones(T, T, dtype=torch.bool).tril()  # 下三角：第 t 行只保留第 0..t 列
    weights = scores.masked_fill(~causal, float("-inf")).softmax(dim=-1)
    y = (weights @ v).transpose(1, 2).contiguous().view(B, T, C)
    return weights, attn.proj(y)


@torch.no_grad()
def capture_attention(model: torch.nn.Module, idx: torch.Tensor) -> tuple[torch.Tensor, float]:
    """前向传播一次，用钩子记下每层注意力模块的输入，重算权重。
    返回权重 (层数, B, 头数, T, T)，以及重算的输出与模块真实输出的最大差别。"""
    weights, gaps = [], []

    def hook(module, inputs, output):
        w, recomputed = attention_weights(module, inputs[0])
        weights.append(w)
        gaps.append((recomputed - output).abs().max().item())

    handles = [block.attn.register_forward_hook(hook) for block in model.blocks]
    try:
        with one_thread():
            model(idx)
    finally:
        for handle in handles:
            handle.remove()  # 钩子用完就拆掉，模型恢复原样
    return torch.stack(weights), max(gaps)


# 输入是题目加答案的前两位（8 个字符）：位置 5、6、7 上的输出分别写出答案的百位、十位、个位
idx = torch.cat([problems[:, :PROMPT_LEN], answers[:, :-1]], dim=1)
weights, gap = capture_attention(model, idx)
print("注意力权重的形状 (层, 题, 头, 写的位置, 看的位置):", tuple(weights.shape))
print(f"重算的输出与 F.scaled_dot_product_attention 的真实输出最大相差 {gap:.1e}")
print("每一行的权重加起来都是 1:", torch.allclose(weights.sum(dim=-1), torch.ones(())))
print("对角线上方（未来的位置）全是 0:", bool((weights.triu(diagonal=1) == 0).all()))
# --8<-- [end:capture]

# --8<-- [start:heatmaps]
import io
import warnings

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

plt.rcParams["svg.hashsalt"] = "hello-pytorch"
plt.rcParams["svg.fonttype"] = "none"  # 文字以文本写进 SVG，由浏览器用中文字体显示
# 图里有几百个刻度文字，每个都带着一份字体列表；只列 matplotlib 默认的第一种，SVG 小将近一半
plt.rcParams["font.sans-serif"] = ["DejaVu Sans"]

n_layer, n_problem, n_head, T, _ = weights.shape
# 每道题两行（层 0、层 1），每列一个头；同一行的横纵坐标相同，只在最左边一列标出纵坐标
fig, axes = plt.subplots(
    n_problem * n_layer, n_head, figsize=(7.5, 1.65 * n_problem * n_layer), sharex="row", sharey="row"
)
for p, (row, answer) in enumerate(zip(idx, answers, strict=True)):
    chars, written = decode(row), decode(answer)
    # 纵坐标：正在写下一个字符的位置；从“=”起，箭头后面是它写出的答案数字
    row_labels = [
        c if t < PROMPT_LEN - 1 else f"{c}→{written[t - PROMPT_LEN + 1]}" for t, c in enumerate(chars)
    ]
    for layer in range(n_layer):
        for head in range(n_head):
            ax = axes[p * n_layer + layer, head]
            image = ax.imshow(
                weights[layer, p, head].numpy(), cmap="Blues", vmin=0, vmax=1, interpolation="none"
            )
            ax.set_xticks(range(T), list(chars), fontsize=8)
            ax.set_yticks(range(T), row_labels, fontsize=8)
            ax.tick_params(length=0)
            if head == 0:
                ax.set_ylabel(f"{chars[:PROMPT_LEN]}  层 {layer}", fontsize=9)
            if p == layer == 0:
                ax.set_title(f"头 {head}", fontsize=10)
fig.subplots_adjust(left=0.1, right=0.84, bottom=0.06, top=0.96, hspace=0.3, wspace=0.1)
fig.colorbar(image, ax=axes, shrink=0.3, label="注意力权重")
fig.text(0.47, 0.015, "横轴：被看的位置（键）　纵轴：正在写下一个字符的位置（查询）", ha="center")

buffer = io.StringIO()
with warnings.catch_warnings():
    # 构建机的 matplotlib 没有中文字体，只用它排版；真正显示交给浏览器，缺字形的警告可以忽略
    warnings.filterwarnings("ignore", message="Glyph .* missing from font")
    # 不用 bbox_inches="tight"：它要把整张图多排版一遍，24 个小图时是这一页最慢的一步；边距在上面手工留好
    fig.savefig(buffer, format="svg", metadata={"Date": None})
plt.close(fig)
print(buffer.getvalue())
# --8<-- [end:heatmaps]

# --8<-- [start:reading]
from _tinygpt import ANSWER_LEN

DIGITS = ["百位", "十位", "个位"]  # 答案的第 d 位在位置 PROMPT_LEN - 1 + d 上写出
# 把 8 个输入位置按“它是什么”分组：两个加数的同一位放在一组
GROUPS = {
    "两个加数的十位": [0, 3],
    "两个加数的个位": [1, 4],
    "“+”": [2],
    "“=”": [5],
    "答案的百位": [6],
    "答案的十位": [7],
}

# 测试集的 1000 道题：题目加正确答案的前两位，一次前向传播
test_weights, test_gap = capture_attention(model, test_data[:, : PROMPT_LEN + ANSWER_LEN - 1])
writing = test_weights[:, :, :, PROMPT_LEN - 1 :, :].mean(dim=1)  # (层, 头, 写哪一位, 看的位置)，对题目平均
shares = torch.stack([writing[..., cols].sum(dim=-1) for cols in GROUPS.values()], dim=-1)  # 每组分到多少
names = list(GROUPS)
print("| | " + " | ".join(f"写{d}时看得最多的" for d in DIGITS) + " |")
print("| --- |" + " --- |" * ANSWER_LEN)
for layer in range(n_layer):
    for head in range(n_head):
        cells = [
            f"{names[shares[layer, head, d].argmax()]} {shares[layer, head, d].max():.0%}"
            for d in range(ANSWER_LEN)
        ]
        print(f"| 层 {layer} 头 {head} | " + " | ".join(cells) + " |")
# --8<-- [end:reading]

# --8<-- [start:reading_summary]
FOCUSED = 0.9  # 一个头把至少这么多的注意力放在同一组上，才说它“盯着”这一组
focused = [
    (layer, head, d, names[shares[layer, head, d].argmax()], shares[layer, head, d].max().item())
    for d in range(ANSWER_LEN)
    for layer in range(n_layer)
    for head in range(n_head)
    if shares[layer, head, d].max() >= FOCUSED
]
same_place = [f for f in focused if f[3] == f"两个加数的{DIGITS[f[2]]}"]
print(
    f"对测试集的 {len(test_data)} 道题平均，{n_layer * n_head} 个头 × {ANSWER_LEN} 位答案中，"
    f"有 {len(focused)} 处把至少 {FOCUSED:.0%} 的注意力放在同一组位置上。"
    + (
        f"其中 {len(same_place)} 处是写哪一位就看两个加数的同一位，竖式加法写这一位正要用到它们："
        + "；".join(
            f"层 {la} 头 {h} 写{DIGITS[d]}时把 {s:.0%} 的注意力放在{g}上" for la, h, d, g, s in same_place
        )
        + "。"
        if same_place
        else ""
    )
)
# 热图里的三道题，各自“看得最多的一组”与这 1000 道题的平均有几处相同
figure_shares = torch.stack(
    [weights[:, :, :, PROMPT_LEN - 1 :, cols].sum(dim=-1) for cols in GROUPS.values()], -1
)
print()  # 空一行：下面是 Markdown 的另一段
agree = (figure_shares.argmax(dim=-1) == shares.argmax(dim=-1)[:, None]).sum(dim=(0, 2, 3))
print(
    f"热图里的三道题，{n_layer * n_head * ANSWER_LEN} 处里分别有 "
    + "、".join(f"{int(a)} 处（{decode(problems[i, :PROMPT_LEN])}）" for i, a in enumerate(agree))
    + "看得最多的一组与这个平均相同。"
)
# --8<-- [end:reading_summary]

# --8<-- [start:ablation]
import contextlib


@contextlib.contextmanager
def zero_head(model: torch.nn.Module, layer: int, head: int):
    """临时把第 layer 层第 head 个头的输出置零：它在进入输出投影 proj 之前的那一段通道全部换成 0。"""
    attn = model.blocks[layer].attn
    size = attn.proj.in_features // attn.n_head

    def silence(module, args):
        y = args[0].clone()
        y[..., head * size : (head + 1) * size] = 0
        return (y,)

    handle = attn.proj.register_forward_pre_hook(silence)
    try:
        yield
    finally:
        handle.remove()


@torch.no_grad()
def digit_accuracy(model: torch.nn.Module, data: torch.Tensor) -> torch.Tensor:
    """前面各位都给正确答案时，模型把百位、十位、个位各写对的比例。"""
    with one_thread():
        logits = model(data[:, :-1])[:, PROMPT_LEN - 1 :]
    return (logits.argmax(dim=-1) == data[:, PROMPT_LEN:]).float().mean(dim=0)


baseline = digit_accuracy(model, test_data)
ablated = torch.zeros(n_layer, n_head, ANSWER_LEN)
for layer in range(n_layer):
    for head in range(n_head):
        with zero_head(model, layer, head):
            ablated[layer, head] = digit_accuracy(model, test_data)
print("| 去掉的头 | " + " | ".join(f"{d}写对" for d in DIGITS) + " |")
print("| --- |" + " --- |" * ANSWER_LEN)
print("| 不去掉（原模型） | " + " | ".join(f"{a:.1%}" for a in baseline) + " |")
for layer in range(n_layer):
    for head in range(n_head):
        print(f"| 层 {layer} 头 {head} | " + " | ".join(f"{a:.1%}" for a in ablated[layer, head]) + " |")
# --8<-- [end:ablation]

# --8<-- [start:ablation_summary]
for d, digit in enumerate(DIGITS):
    worst = divmod(int(ablated[:, :, d].argmin()), n_head)  # 去掉后这一位掉得最多的头
    others = [f"{DIGITS[o]} {ablated[worst][o]:.1%}" for o in range(ANSWER_LEN) if o != d]
    share = shares[worst][d]
    print(
        f"- 写{digit}：去掉层 {worst[0]} 头 {worst[1]}，{digit}的准确率从 {baseline[d]:.1%} 降到 "
        f"{ablated[worst][d]:.1%}（其余两位：{'，'.join(others)}）；"
        f"这个头写{digit}时把 {share.max():.0%} 的注意力放在{names[share.argmax()]}上。"
    )
hurt = ((baseline - ablated) > 0.01).sum(dim=(0, 1))  # 去掉后这一位掉了 1 个百分点以上的头有几个
print(
    "- 去掉后准确率掉了 1 个百分点以上的头："
    + "，".join(f"{d} {int(h)} 个" for d, h in zip(DIGITS, hurt, strict=True))
    + f"（共 {n_layer * n_head} 个头）。"
)
# 写十位时盯着两个加数个位的头：十位要不要加 1（进位）由个位决定
carry_heads = [
    (layer, head)
    for layer in range(n_layer)
    for head in range(n_head)
    if names[shares[layer, head, 1].argmax()] == "两个加数的个位" and shares[layer, head, 1].max() >= FOCUSED
]
for layer, head in carry_heads:
    print(
        f"- 进位：层 {layer} 头 {head} 写十位时把 {shares[layer, head, 1].max():.0%} 的注意力放在两个加数的个位上；"
        f"去掉它，十位的准确率从 {baseline[1]:.1%} 降到 {ablated[layer, head, 1]:.1%}，"
        f"个位是 {ablated[layer, head, 2]:.1%}（原来 {baseline[2]:.1%}）。"
    )
# --8<-- [end:ablation_summary]

# --8<-- [start:generate]
import torch.nn.functional as F


def next_token_probs(
    logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None
) -> torch.Tensor:
    """把最后一维的 logits 变成下一个字符的概率：先除以温度，再只留最大的 top_k 个，最后 softmax。
    temperature == 0 表示贪心：概率全部给 logits 最大的那个字符。"""
    if temperature == 0:
        return F.one_hot(logits.argmax(dim=-1), logits.size(-1)).to(logits.dtype)
    logits = logits / temperature
    if top_k is not None:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]  # 第 k 大的值
        logits = logits.masked_fill(logits < kth, float("-inf"))  # 比它小的概率变成 0
    return logits.softmax(dim=-1)


@torch.no_grad()
def generate(
    model: torch.nn.Module,
    prompt: torch.Tensor,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """一次写一个字符，写 max_new_tokens 个，返回新写的部分。temperature == 0 是贪心，不抽签。"""
    was_training = model.training
    model.eval()
    idx = prompt
    with one_thread():
        for _ in range(max_new_tokens):
            logits = model(idx[:, -model.config.block_size :])[:, -1, :]
            if temperature == 0:
                next_id = logits.argmax(dim=-1, keepdim=True)
            else:
                probs = next_token_probs(logits, temperature, top_k)
                next_id = torch.multinomial(probs, num_samples=1, generator=generator)
            idx = torch.cat([idx, next_id], dim=1)
    model.train(was_training)
    return idx[:, prompt.size(1) :]


prompts = test_data[:, :PROMPT_LEN]
greedy = generate(model, prompts, ANSWER_LEN, temperature=0)
same_as_page_2 = torch.equal(greedy, greedy_answers(model, prompts))
print(
    f"测试集的 {len(prompts)} 道题，temperature=0 与第 2 页的 greedy_answers 的答案逐字相同:", same_as_page_2
)
# --8<-- [end:generate]

# --8<-- [start:temperature]
TEMPERATURES = (0.5, 1.0, 2.0)
SHOWN = 4  # 表里列出概率最大的几个字符
# 看 37+48= 写个位的那一步：输入是题目加模型自己写出的前两位
prompt_text = decode(problems[0, :PROMPT_LEN]) + decode(answers[0, :-1])
with torch.no_grad(), one_thread():
    last_logits = model(torch.tensor([encode(prompt_text)]))[0, -1]
table = {t: next_token_probs(last_logits, t) for t in TEMPERATURES}
top_ids = last_logits.topk(SHOWN).indices.tolist()


def entropy(probs: torch.Tensor) -> torch.Tensor:
    """熵（以 e 为底）：概率越平均越大；只有一个字符概率为 1 时是 0。"""
    return -(probs * probs.clamp_min(1e-30).log()).sum(dim=-1)


print(f"输入 `{prompt_text}`，下一个字符（个位）的概率：\n")
print("| 字符 | logit | " + " | ".join(f"温度 {t:g}" for t in TEMPERATURES) + " |")
print("| --- | --- |" + " --- |" * len(TEMPERATURES))
for i in top_ids:
    print(
        f"| `{decode([i])}` | {last_logits[i]:.2f} | "
        + " | ".join(f"{table[t][i]:.2%}" for t in TEMPERATURES)
        + " |"
    )
print("| 其余字符合计 | | " + " | ".join(f"{1 - table[t][top_ids].sum():.2%}" for t in TEMPERATURES) + " |")
print("| 熵 | | " + " | ".join(f"{entropy(table[t]):.3f}" for t in TEMPERATURES) + " |")
# --8<-- [end:temperature]

# --8<-- [start:topk]
TOP_KS = (None, 3, 2, 1)
HOT = 2.0  # 在温度 2 下看 top-k：分布摊得最开，截断的效果最明显
truncated = {k: next_token_probs(last_logits, HOT, k) for k in TOP_KS}
print(f"同一步，温度 {HOT:g}，只留概率最大的 k 个字符再重新归一化：\n")
print("| 字符 | " + " | ".join("不截断" if k is None else f"top-k = {k}" for k in TOP_KS) + " |")
print("| --- |" + " --- |" * len(TOP_KS))
for i in top_ids:
    print(f"| `{decode([i])}` | " + " | ".join(f"{truncated[k][i]:.2%}" for k in TOP_KS) + " |")
print("| 其余字符合计 | " + " | ".join(f"{1 - truncated[k][top_ids].sum():.2%}" for k in TOP_KS) + " |")
# --8<-- [end:topk]

# --8<-- [start:samples]
SAMPLE_SEEDS = range(8)
prompt = problems[:1, :PROMPT_LEN]
for temperature in (1.0, 2.0):
    drawn = [
        decode(
            generate(model, prompt, ANSWER_LEN, temperature, generator=torch.Generator().manual_seed(s))[0]
        )
        for s in SAMPLE_SEEDS
    ]
    print(f"{decode(prompt[0])} 温度 {temperature:g}，种子 0–{len(SAMPLE_SEEDS) - 1}:", " ".join(drawn))
again = [
    generate(model, prompt, ANSWER_LEN, 2.0, generator=torch.Generator().manual_seed(0)) for _ in range(2)
]
print("同一个种子再抽一次，结果相同:", torch.equal(*again))
# --8<-- [end:samples]

# --8<-- [start:accuracy]
SETTINGS = [
    ("贪心", 0, None),
    ("温度 0.5", 0.5, None),
    ("温度 1", 1.0, None),
    ("温度 2", 2.0, None),
    ("温度 2 + top-k 2", 2.0, 2),
]
SEED = 0
targets = test_data[:, PROMPT_LEN:]
with torch.no_grad(), one_thread():
    # 前面各位都给正确答案时，写每一位的 logits：(题, 3, 字符表大小)
    answer_logits = model(test_data[:, :-1])[:, PROMPT_LEN - 1 :]
results = {}
for label, temperature, top_k in SETTINGS:
    probs = next_token_probs(answer_logits, temperature, top_k)
    right = probs.gather(-1, targets[..., None]).squeeze(-1)  # 每一步抽到正确数字的概率
    if temperature == 0:
        drawn = greedy  # 上面已经贪心生成过整个测试集
    else:
        drawn = generate(model, prompts, ANSWER_LEN, temperature, top_k, torch.Generator().manual_seed(SEED))
    results[label] = {
        "expected": right.prod(dim=1).mean().item(),  # 三步都抽对的概率，对题目平均
        "sampled": (drawn == targets).all(dim=1).float().mean().item(),
        "entropy": entropy(probs).mean().item(),
    }
print(f"| 生成方式 | 按概率算出的准确率 | 实际生成一次的准确率（种子 {SEED}） | 每一步的平均熵 |")
print("| --- | --- | --- | --- |")
for label, r in results.items():
    print(f"| {label} | {r['expected']:.1%} | {r['sampled']:.1%} | {r['entropy']:.3f} |")
# --8<-- [end:accuracy]

# --8<-- [start:conclusion]
import itertools

n = len(test_data)
greedy_accuracy = results["贪心"]["sampled"]
sampling = {label: r for label, r in results.items() if label != "贪心"}
best = max(sampling, key=lambda label: sampling[label]["expected"])
# 实际生成一次是 n 道题的抽样：与算出的值之差，以标准误 sqrt(p(1-p)/n) 为单位（各题的 p 不同时，它偏大一点）
z_scores = {
    label: (r["sampled"] - r["expected"]) / (r["expected"] * (1 - r["expected"]) / n) ** 0.5
    for label, r in sampling.items()
}
largest = max(z_scores, key=lambda label: abs(z_scores[label]))
by_temperature = [results[label] for label, _, top_k in SETTINGS if top_k is None]  # 贪心就是温度 0
hotter_worse = all(
    a["entropy"] < b["entropy"] and a["expected"] > b["expected"]
    for a, b in itertools.pairwise(by_temperature)
)
below = all(r["expected"] < greedy_accuracy and r["sampled"] < greedy_accuracy for r in sampling.values())
print(
    f"贪心生成在测试集的 {n} 道题上的完全匹配准确率是 **{greedy_accuracy:.1%}**。"
    + (
        f"每一种采样设置都比它低，算出的和实际生成的都是；最接近的是{best}，"
        f"算出 {sampling[best]['expected']:.1%}，低 {(greedy_accuracy - sampling[best]['expected']) * 100:.1f} 个百分点。"
        if below
        else f"有的采样设置不低于贪心，最接近的是{best}（算出 {sampling[best]['expected']:.1%}）。"
    )
    + (
        f"温度越高，每一步的熵越大，准确率越低：温度 2 时算出只有 {sampling['温度 2']['expected']:.1%}。"
        if hotter_worse
        else ""
    )
    + (
        f"实际生成一次的准确率与算出的值相差最多的是{largest}，"
        f"差 {abs(sampling[largest]['sampled'] - sampling[largest]['expected']) * 100:.1f} 个百分点，"
        f"是 {n} 道题抽样误差（标准误）的 {abs(z_scores[largest]):.1f} 倍"
        + (
            f"；{len(sampling)} 项比较都在 3 倍之内，实际生成与算出的概率相符。"
            if abs(z_scores[largest]) <= 3
            else "，超出了 3 倍：实际生成与算出的概率对不上，需要查一查。"
        )
    )
)
# --8<-- [end:conclusion]

# --8<-- [start:exercise_first_row]
first_row = weights[..., 0, :]  # 每层、每道题、每个头，位置 0 那一行
print("位置 0 那一行，看位置 0 的权重全都是 1:", bool((first_row[..., 0] == 1).all()))
print("位置 0 那一行，其余 7 个位置的权重全都是 0:", bool((first_row[..., 1:] == 0).all()))
# --8<-- [end:exercise_first_row]


# --8<-- [start:exercise_mean_ablation]
@torch.no_grad()
def head_inputs(model: torch.nn.Module, data: torch.Tensor) -> list[torch.Tensor]:
    """每层输出投影 proj 的输入 (题, 位置, 通道)：各个头的输出拼在一起，还没有混合。"""
    captured = []
    handles = [
        block.attn.proj.register_forward_pre_hook(lambda module, args: captured.append(args[0]))
        for block in model.blocks
    ]
    try:
        with one_thread():
            model(data[:, :-1])
    finally:
        for handle in handles:
            handle.remove()
    return captured


@contextlib.contextmanager
def mean_head(model: torch.nn.Module, layer: int, head: int, mean: torch.Tensor):
    """和 zero_head 一样挂在 proj 前面，只是把这个头的通道换成它在测试集上的平均值（每个位置一个），而不是 0。"""
    attn = model.blocks[layer].attn
    size = attn.proj.in_features // attn.n_head
    part = slice(head * size, (head + 1) * size)

    def replace_with_mean(module, args):
        y = args[0].clone()
        y[..., part] = mean[: y.size(1), part]
        return (y,)

    handle = attn.proj.register_forward_pre_hook(replace_with_mean)
    try:
        yield
    finally:
        handle.remove()


means = [inputs.mean(dim=0) for inputs in head_inputs(model, test_data)]  # 每层一个 (位置, 通道)
mean_ablated = torch.zeros(n_layer, n_head, ANSWER_LEN)
for layer in range(n_layer):
    for head in range(n_head):
        with mean_head(model, layer, head, means[layer]):
            mean_ablated[layer, head] = digit_accuracy(model, test_data)
print("| 去掉的头 | " + " | ".join(f"{d}：置零 → 换成平均值" for d in DIGITS) + " |")
print("| --- |" + " --- |" * ANSWER_LEN)
for layer in range(n_layer):
    for head in range(n_head):
        cells = [
            f"{ablated[layer, head, d]:.1%} → {mean_ablated[layer, head, d]:.1%}" for d in range(ANSWER_LEN)
        ]
        print(f"| 层 {layer} 头 {head} | " + " | ".join(cells) + " |")
less_harm = (mean_ablated >= ablated).sum().item()
print(
    f"\n{n_layer * n_head * ANSWER_LEN} 格里，换成平均值的准确率不低于置零的有 {less_harm} 格。"
    f"对 {n_layer * n_head} 个头、{ANSWER_LEN} 位答案平均，准确率置零时 {ablated.mean():.1%}，"
    f"换成平均值时 {mean_ablated.mean():.1%}（原模型三位平均 {baseline.mean():.1%}）。"
)
# 7.4 节里每一位伤得最重的头
worst = [divmod(int(ablated[:, :, d].argmin()), n_head) for d in range(ANSWER_LEN)]
print(
    "\n7.4 节里每一位伤得最重的头，置零 → 换成平均值："
    + "；".join(
        f"{DIGITS[d]}是层 {layer} 头 {head}，{ablated[layer, head, d]:.1%} → {mean_ablated[layer, head, d]:.1%}"
        f"（原模型 {baseline[d]:.1%}）"
        for d, (layer, head) in enumerate(worst)
    )
    + "。"
)
# --8<-- [end:exercise_mean_ablation]


# --8<-- [start:exercise_top_p]
def top_p_probs(logits: torch.Tensor, temperature: float, top_p: float) -> torch.Tensor:
    """top-p（核）采样的概率：按概率从大到小排，留下最少的几个字符，使它们的概率之和达到 top_p，再重新归一化。"""
    probs = (logits / temperature).softmax(dim=-1)
    ranked, order = probs.sort(dim=-1, descending=True)
    ahead = ranked.cumsum(dim=-1) - ranked  # 排在它前面的字符的概率之和
    keep = torch.zeros_like(probs, dtype=torch.bool).scatter(-1, order, ahead < top_p)
    probs = probs * keep
    return probs / probs.sum(dim=-1, keepdim=True)


TOP_PS = (0.5, 0.9, 0.99)
print(f"温度 {HOT:g}：\n")
print(f"| 设置 | `{prompt_text}` 这一步留下几个字符 | 测试集上每一步平均留下几个 | 按概率算出的准确率 |")
print("| --- | --- | --- | --- |")
top_p_results = {}
for top_p in TOP_PS:
    probs = top_p_probs(answer_logits, HOT, top_p)
    right = probs.gather(-1, targets[..., None]).squeeze(-1)
    top_p_results[top_p] = {
        "kept_here": int((top_p_probs(last_logits, HOT, top_p) > 0).sum()),
        "kept_mean": (probs > 0).sum(dim=-1).float().mean().item(),
        "expected": right.prod(dim=1).mean().item(),
    }
    r = top_p_results[top_p]
    print(f"| top-p = {top_p:g} | {r['kept_here']} | {r['kept_mean']:.2f} | {r['expected']:.1%} |")
top_k_probs = next_token_probs(answer_logits, HOT, 2)
print(
    f"| 对照：top-k = 2 | {int((truncated[2] > 0).sum())} | {(top_k_probs > 0).sum(dim=-1).float().mean():.2f} "
    f"| {results['温度 2 + top-k 2']['expected']:.1%} |"
)
# --8<-- [end:exercise_top_p]


# --8<-- [start:exercise_most_likely]
@torch.no_grad()
def sequence_probs(model: torch.nn.Module, prompts: torch.Tensor, answers: torch.Tensor) -> torch.Tensor:
    """模型写出整串答案的概率：每一位的概率连乘（前面各位就是这串答案自己的）。"""
    with one_thread():
        logits = model(torch.cat([prompts, answers[:, :-1]], dim=1))[:, PROMPT_LEN - 1 :]
    return logits.softmax(dim=-1).gather(-1, answers[..., None]).squeeze(-1).prod(dim=1)


greedy_prob = sequence_probs(model, prompts, greedy)
# 所有答案的概率加起来是 1：贪心那一串的概率超过 0.5 时，别的任何一串都不可能比它大
unsure = (greedy_prob <= 0.5).nonzero().flatten()
vocab = model.config.vocab_size
every_answer = torch.cartesian_prod(*[torch.arange(vocab)] * ANSWER_LEN)  # 字符表里任意三个字符：13³ 串
most_likely = greedy.clone()
for i in unsure.tolist():
    p = sequence_probs(model, prompts[i].expand(len(every_answer), -1), every_answer)
    most_likely[i] = every_answer[p.argmax()]
differs = (most_likely != greedy).any(dim=1)
print(
    f"- 贪心那一串的概率超过 0.5 的题：{len(prompts) - len(unsure)} 道；"
    f"其余 {len(unsure)} 道，每道逐一穷举 {len(every_answer):,} 串"
)
print(f"- 贪心的答案不是概率最大的那一串：{int(differs.sum())} 道")
for i in differs.nonzero().flatten().tolist():
    print(
        f"- `{decode(prompts[i])}` 贪心 `{decode(greedy[i])}`（概率 {greedy_prob[i]:.3f}），"
        f"概率最大的是 `{decode(most_likely[i])}`"
        f"（{sequence_probs(model, prompts[i : i + 1], most_likely[i : i + 1]).item():.3f}），"
        f"正确答案 `{decode(targets[i])}`"
    )
exact = lambda answers: (answers == targets).all(dim=1).float().mean().item()  # noqa: E731
print(f"- 测试集准确率：贪心 {exact(greedy):.1%}，概率最大的那一串 {exact(most_likely):.1%}\n")
wrong = int((greedy != targets).any(dim=1).sum())
if differs.any():
    print(f"对这个模型，有 {int(differs.sum())} 道题贪心的答案不是概率最大的那一串（上面逐一列出）。")
else:
    print(
        f"对这个模型，{len(prompts)} 道题里贪心的答案每一道都是概率最大的那一串"
        + (
            f"，连它答错的 {wrong} 道也是：那些错误是模型本身的错误，不是“每一步只看眼前”的贪心造成的，"
            "换一种更仔细的搜索也改不过来。"
            if wrong
            else "。"
        )
        + f"这是因为模型每一步都很有把握：7.6 节的表里，温度 1（模型原本的分布）时每一步的平均熵只有 "
        f"{results['温度 1']['entropy']:.3f}（{vocab} 个字符一样可能时是 ln {vocab} ≈ {math.log(vocab):.3f}）。"
    )
# --8<-- [end:exercise_most_likely]
