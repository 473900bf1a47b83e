"""第二部分第 5 页：给小 GPT 的一步训练（前向 + 反向）加上 torch.compile 和 bf16 自动混合精度，先验结果、再测速度。"""

# --8<-- [start:setup]
import torch
from _tinygpt import GPT, PRETRAIN, GPTConfig, addition_data, count_parameters, get_batch

torch.manual_seed(0)
config = GPTConfig()
# 测速度不需要训练好的模型：新初始化的模型每一步的计算量和训练好的完全一样
model = GPT(config)
train_data = addition_data().train
batch_size = PRETRAIN["batch_size"]
x, y = get_batch(train_data, batch_size, torch.Generator().manual_seed(0))
print("模型配置:", config)
print(f"参数量: {count_parameters(model):,}")
print("一个小批量: x", tuple(x.shape), " y", tuple(y.shape))
# --8<-- [end:setup]

# --8<-- [start:step]
import contextlib
import math

import torch.nn.functional as F


def train_step(net, x, y, bf16=False):
    """一步训练中最花时间的部分：前向传播、算损失、反向传播。返回损失和 logits。

    优化器更新（optimizer.step）不计在内：三种做法这部分完全相同，而且不更新参数，
    反复调用时模型保持不变，各种做法的结果才能逐一比较。
    """
    net.zero_grad(set_to_none=True)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    with autocast:
        logits = net(x)
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1), ignore_index=-100)
    loss.backward()
    return loss.detach(), logits.detach()


def gradients(net):
    return {name: p.grad.clone() for name, p in net.named_parameters()}


eager_loss, eager_logits = train_step(model, x, y)
eager_grads = gradients(model)
print(f"eager 模式：损失 {eager_loss.item():.4f}，logits 的形状 {tuple(eager_logits.shape)}")
print(f"有梯度的参数张量: {len(eager_grads)} 个")
print(
    f"参考：在 {config.vocab_size} 个字符里均匀瞎猜的损失 ln {config.vocab_size} = {math.log(config.vocab_size):.4f}"
)
# --8<-- [end:step]

# --8<-- [start:compile]
import time

from torch._dynamo.utils import counters


def cache_hit_count():
    """到目前为止，编译从磁盘缓存里取用了几次以前的结果（反向图的和 Inductor 生成代码的）。"""
    return counters["aot_autograd"]["autograd_cache_hit"] + counters["inductor"]["fxgraph_cache_hit"]


compiled = torch.compile(model)  # 默认后端 inductor；compiled 与 model 共用同一套参数

start = time.perf_counter()
# 第一次调用时才真正编译：捕获前向的计算图，追踪出反向的计算图，再生成 C++ 代码并编译
compiled_loss, compiled_logits = train_step(compiled, x, y)
compile_seconds = time.perf_counter() - start
# 编译结果会存进磁盘缓存，下次运行同样的代码时直接取用：记下这次命中了几次（5.5 节的计时用到）
cache_hits = cache_hit_count()
compiled_grads = gradients(model)

COMPILE_TOLERANCE = 1e-5
compile_loss_diff = abs(compiled_loss.item() - eager_loss.item())
compile_logits_diff = (compiled_logits - eager_logits).abs().max().item()
compile_grad_diff = max((compiled_grads[n] - eager_grads[n]).abs().max().item() for n in eager_grads)
compile_bitwise = torch.equal(compiled_logits, eager_logits) and all(
    torch.equal(compiled_grads[n], eager_grads[n]) for n in eager_grads
)
torch.testing.assert_close(compiled_logits, eager_logits)
for name in eager_grads:
    torch.testing.assert_close(compiled_grads[name], eager_grads[name])
compile_agrees = max(compile_loss_diff, compile_logits_diff, compile_grad_diff) < COMPILE_TOLERANCE
print(f"编译版：损失 {compiled_loss.item():.4f}（eager 模式 {eager_loss.item():.4f}）")
print(
    f"与 eager 模式的最大绝对差：损失 {compile_loss_diff:.1e}，logits {compile_logits_diff:.1e}，"
    f"梯度 {compile_grad_diff:.1e}；都小于 {COMPILE_TOLERANCE:g}: {compile_agrees}"
)
print("logits 和全部梯度与 eager 模式逐位相同（torch.equal）:", compile_bitwise)
print("torch.testing.assert_close 对 logits 和每个梯度都通过")
# --8<-- [end:compile]


# --8<-- [start:kernels]
import collections
import re

from torch._inductor.utils import run_and_get_code

block = model.blocks[0]  # 模型的第一个 Transformer 块
h = torch.randn(batch_size, config.block_size, config.n_embd, generator=torch.Generator().manual_seed(0))
# run_and_get_code 是 PyTorch 内部的调试工具：编译并运行一次，同时交出 Inductor 生成的 Python 包装代码
with torch.no_grad():
    block_out, generated = run_and_get_code(torch.compile(block), h)
    torch.testing.assert_close(block_out, block(h))
wrapper_code = generated[0]
cpp_kernels = re.findall(r"^(\w+) = async_compile\.cpp", wrapper_code, re.M)
library_calls = collections.Counter(
    re.findall(r"\b(extern_kernels\.\w+|aten\.\w+)(?:\.default)?\(", wrapper_code)
)
print("Inductor 生成的 C++ 内核:")
for name in cpp_kernels:
    print("   ", name)
print("调用现成实现的地方（次数）:")
for name, count in library_calls.items():
    print(f"    {name} × {count}")
# --8<-- [end:kernels]


# --8<-- [start:fullgraph]
def double_if_positive(t):
    # 用张量的值决定走哪个分支：编译器没法把这种 Python 的 if 放进一张计算图，在这里图中断（graph break）
    if t.sum() > 0:
        return t * 2
    return t


t = torch.arange(3.0)
strict = torch.compile(double_if_positive, fullgraph=True)  # 要求整个函数是一张图，做不到就报错
try:
    strict(t)
    fullgraph_error = None
except Exception as error:  # 只为了把异常的类型打印出来；测试检查它确实抛出
    fullgraph_error = type(error)
print("fullgraph=True:", f"报错 {fullgraph_error.__name__}" if fullgraph_error else "没有报错")
# 编译结果按函数的代码缓存：要是先用默认方式编译，再用 fullgraph=True 编译同一个函数，它直接用上那份缓存，不再报错
lenient = torch.compile(double_if_positive)  # 默认 fullgraph=False：在图中断处切成几段，段与段之间回到 Python
print("默认（fullgraph=False）:", lenient(t).tolist(), " eager:", double_if_positive(t).tolist())
# --8<-- [end:fullgraph]

# --8<-- [start:explain]
import torch._dynamo

explanation = torch._dynamo.explain(double_if_positive)(t)
print("计算图个数:", explanation.graph_count)
print("图中断次数:", explanation.graph_break_count)
print("中断的原因:", explanation.break_reasons[0].reason)
# --8<-- [end:explain]

# --8<-- [start:bf16_dtypes]
watched = [
    "tok_emb",
    "blocks.0.ln1",
    "blocks.0.attn.qkv",
    "blocks.0.attn",
    "blocks.0.mlp.act",
    "blocks.0",
    "head",
]
output_dtypes = {}
hooks = [
    model.get_submodule(name).register_forward_hook(
        lambda module, inputs, output, name=name: output_dtypes.__setitem__(name, output.dtype)
    )
    for name in watched
]
bf16_loss, bf16_logits = train_step(model, x, y, bf16=True)
for hook in hooks:
    hook.remove()
bf16_grads = gradients(model)
for name in watched:
    print(f"{name:<18} 输出 {output_dtypes[name]}")
print("损失:", bf16_loss.dtype, " 参数:", model.head.weight.dtype, " 梯度:", bf16_grads["head.weight"].dtype)
# --8<-- [end:bf16_dtypes]


# --8<-- [start:bf16_error]
def relative_error(approx, exact):
    return ((approx.float() - exact).norm() / exact.norm()).item()


bf16_logits_error = relative_error(bf16_logits, eager_logits)
bf16_grad_error = max(relative_error(bf16_grads[n], eager_grads[n]) for n in eager_grads)
bf16_loss_diff = abs(bf16_loss.item() - eager_loss.item())
BF16_TOLERANCE = 0.02  # bf16 只有 8 位有效二进制位，单次舍入的相对误差最多 2^-8 ≈ 0.4%
UNIT_ROUNDOFF = 2.0**-8
print(
    f"损失：fp32 {eager_loss.item():.4f}，bf16 {bf16_loss.item():.4f}，相差 {bf16_loss_diff:.1e}（< 0.01: {bf16_loss_diff < 0.01}）"
)
print(
    f"logits 的相对误差 ‖bf16 − fp32‖ / ‖fp32‖ = {bf16_logits_error:.2g}，"
    f"是单次舍入误差 2^-8 的 {bf16_logits_error / UNIT_ROUNDOFF:.2g} 倍"
)
print(f"各个梯度的相对误差最大 {bf16_grad_error:.2g}")
print(
    f"logits 和各个梯度的相对误差都小于 {BF16_TOLERANCE}:",
    max(bf16_logits_error, bf16_grad_error) < BF16_TOLERANCE,
)

# 对照：同一个模型换一个随机小批量，fp32 的梯度本身变了多少
x_other, y_other = get_batch(train_data, batch_size, torch.Generator().manual_seed(1))
train_step(model, x_other, y_other)
other_batch_grads = gradients(model)
batch_change = min(relative_error(other_batch_grads[n], eager_grads[n]) for n in eager_grads)
print(f"换一个小批量，各个梯度的相对变化最小 {batch_change:.2g}（fp32，没有 bf16）")
# --8<-- [end:bf16_error]

# --8<-- [start:bf16_verdict]
print(
    f"这一次，bf16 让梯度最多偏离 {bf16_grad_error:.1%}；而只是换一个小批量，梯度最少也变了 {batch_change:.0%}，"
    + (
        f"是前者的 {batch_change / bf16_grad_error:.0f} 倍。"
        if batch_change > 10 * bf16_grad_error
        else "两者相差不到十倍，不能说 bf16 的误差可以忽略。"
    )
)
# --8<-- [end:bf16_verdict]

# --8<-- [start:fp16_formats]
# fp16 的指数只有 5 位：能表示的范围比 bf16、fp32 小得多，大数会上溢成 inf，很小的数会下溢成 0
for dtype in (torch.float16, torch.bfloat16, torch.float32):
    info = torch.finfo(dtype)
    print(f"{dtype!s:<15} 最大 {info.max:<10.3g} 最小的正规数 {info.tiny:.3g}")
print(
    f"70000 存成 fp16: {torch.tensor(70000.0).half().item()}，存成 bf16: {torch.tensor(70000.0).bfloat16().item():.0f}"
)
print(
    f"1e-8  存成 fp16: {torch.tensor(1e-8).half().item()}，存成 bf16: {torch.tensor(1e-8).bfloat16().item():.3g}"
)
# --8<-- [end:fp16_formats]

# --8<-- [start:fp16_scaler]
import copy
import warnings

with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    default_scaler = torch.amp.GradScaler()  # 不写设备：默认是 "cuda"
print("GradScaler() 启用了吗:", default_scaler.is_enabled())
print("  它只发出一条警告:", caught[0].message if caught else "（没有警告）")
# 初始缩放系数故意设得很大，好让前几步真的溢出；growth_interval 很大：这几步里不会把系数翻倍
scaler = torch.amp.GradScaler("cpu", init_scale=2.0**20, growth_interval=1000)
print("GradScaler('cpu') 启用了吗:", scaler.is_enabled())

fp16_model = copy.deepcopy(model)
optimizer = torch.optim.SGD(fp16_model.parameters(), lr=0.1)
scaler_steps = []  # (缩放系数, 损失, 是否更新了参数, 下一步的缩放系数)
for step in range(1, 9):
    before = [p.detach().clone() for p in fp16_model.parameters()]
    scale = scaler.get_scale()
    optimizer.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=torch.float16):
        logits = fp16_model(x)
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1), ignore_index=-100)
    scaler.scale(loss).backward()  # 反向传播的是 损失 × 缩放系数
    scaler.step(optimizer)  # 先把梯度除回缩放系数；梯度里有 inf 或 nan 就不更新参数
    scaler.update()  # 这一步跳过了：缩放系数减半
    updated = any(not torch.equal(b, p) for b, p in zip(before, fp16_model.parameters(), strict=True))
    scaler_steps.append((scale, loss.item(), updated, scaler.get_scale()))
    print(
        f"第 {step} 步：缩放系数 2^{math.log2(scale):.0f}，损失 {loss.item():.4f}，"
        + ("更新了参数" if updated else "梯度溢出，跳过这一步")
        + f"；下一步的缩放系数 2^{math.log2(scaler.get_scale()):.0f}"
    )
# --8<-- [end:fp16_scaler]

# --8<-- [start:speed_timing]
import statistics

EAGER = "eager 模式（fp32）"


def step_times_ms(variants, rounds=30, warmup=3):
    """轮流计时几种做法（名字 -> 做一步的函数），每种各 rounds 步，返回每种做法每一轮的用时（毫秒）。

    轮流而不是一种测完再测下一种：机器忙闲的变化会大致平均落到各种做法上，
    同一轮里的几个数也可以两两相比。
    """
    times = {name: [] for name in variants}
    for _ in range(warmup):
        for step in variants.values():
            step()
    for _ in range(rounds):
        for name, step in variants.items():
            start = time.perf_counter()
            step()
            times[name].append((time.perf_counter() - start) * 1000)
    return times


def quartiles(values):
    """第 25 和第 75 百分位：中间一半的数落在这个范围里。"""
    q1, _, q3 = statistics.quantiles(values, n=4)
    return q1, q3


times_ms = step_times_ms(
    {
        EAGER: lambda: train_step(model, x, y),
        "eager 模式 + bf16 自动混合精度": lambda: train_step(model, x, y, bf16=True),
        "torch.compile（fp32）": lambda: train_step(compiled, x, y),
    }
)
step_ms = {name: statistics.median(t) for name, t in times_ms.items()}
# 同一轮里，每种做法的用时 ÷ eager 模式的用时：比值小于 1 就是这一轮更快
ratios = {name: [t / e for t, e in zip(ts, times_ms[EAGER], strict=True)] for name, ts in times_ms.items()}
eager_ms = step_ms[EAGER]
rounds = len(times_ms[EAGER])
print(
    f"计时（每次构建不同）：每步前向 + 反向传播的用时，{rounds} 轮的中位数和中间一半轮次的范围；"
    f"这台机器的 CPU 上 PyTorch 用的向量指令集是 {torch.backends.cpu.get_cpu_capability()}。\n"
)
print(
    "| 做法 | 每步用时（毫秒，中位数） | 中间一半的轮次（毫秒） | 与 eager 模式的用时比（中位数，中间一半） |"
)
print("|---|---:|---:|---:|")
for name, ms in step_ms.items():
    low, high = quartiles(times_ms[name])
    r_low, r_high = quartiles(ratios[name])
    ratio = (
        "基准" if name == EAGER else f"{statistics.median(ratios[name]):.2f}（{r_low:.2f} – {r_high:.2f}）"
    )
    print(f"| {name} | {ms:.2f} | {low:.2f} – {high:.2f} | {ratio} |")
cache_note = (
    f"这次运行在磁盘缓存里找到了 {cache_hits} 份以前的编译结果，省掉了大部分编译；"
    "在没有缓存的新机器上，第一次调用要从头生成并编译 C++ 代码，会慢得多。"
    if cache_hits
    else "这次没有命中磁盘缓存，是从头生成并编译 C++ 代码的时间；再次运行同样的代码时会从缓存里取，快得多。"
)
print(f"\n`torch.compile` 的第一次调用（含编译）用了 **{compile_seconds:.1f} 秒**。{cache_note}")
# --8<-- [end:speed_timing]


# --8<-- [start:verdict_timing]
def direction(low, high):
    """只有中间一半轮次的用时比（low – high）都在 1 的同一侧，才说快或慢；否则这次测不出差别。"""
    return "faster" if high < 1 else "slower" if low > 1 else "unclear"


def compare(name, label):
    median = statistics.median(ratios[name])
    low, high = quartiles(ratios[name])
    ms = step_ms[name]
    if direction(low, high) == "faster":
        return f"{label}每步快了约 {1 - median:.0%}（中位数 {eager_ms:.1f} → {ms:.1f} 毫秒，中间一半轮次的用时比 {low:.2f} – {high:.2f}）"
    if direction(low, high) == "slower":
        return f"{label}每步反而慢了，用时是 eager 模式的约 {median:.1f} 倍（中位数 {eager_ms:.1f} → {ms:.1f} 毫秒，中间一半轮次 {low:.2f} – {high:.2f} 倍）"
    return f"{label}和 eager 模式分不出快慢（中间一半轮次的用时比 {low:.2f} – {high:.2f}，跨过了 1）"


compiled_name, bf16_name = "torch.compile（fp32）", "eager 模式 + bf16 自动混合精度"
compiled_ms = step_ms[compiled_name]
saved_ms = eager_ms - compiled_ms
if direction(*quartiles(ratios[compiled_name])) == "faster":
    payback = (
        f"按中位数每步省下的 {saved_ms:.1f} 毫秒算，大约 {compile_seconds * 1000 / saved_ms:,.0f} 步之后"
        f"才能把这次第一次调用花的 {compile_seconds:.1f} 秒挣回来（没有缓存时编译更久，要更多步）。"
    )
else:
    payback = f"每步省下的时间测不出来，第一次调用花的 {compile_seconds:.1f} 秒挣不回来。"
print(
    f"**本次构建的结论**（计时，每次构建不同）：在这台构建机器的 CPU 上，{compare(compiled_name, 'torch.compile ')}，"
    f"{payback}{compare(bf16_name, 'bf16 自动混合精度')}。"
)
# --8<-- [end:verdict_timing]


# --8<-- [start:crossover]
import functools
from dataclasses import replace

CROSSOVER_WIDTHS = (16, config.n_embd, 256)  # 向量维度 d；中间那个就是本页一直在用的模型
CROSSOVER_ROUNDS = 20


crossover = []
for width in CROSSOVER_WIDTHS:
    if width == config.n_embd:
        # 本页的模型：5.2 节已经编译过它，5.5 节也已经轮流计时过，直接用那些数
        net, first_call, hits = model, compile_seconds, cache_hits
        times = {"eager": times_ms[EAGER], "compiled": times_ms[compiled_name]}
    else:
        torch.manual_seed(0)
        net = GPT(replace(config, n_embd=width))
        fast = torch.compile(net)  # 每个大小只编译这一次
        hits_before = cache_hit_count()
        start = time.perf_counter()
        train_step(fast, x, y)
        first_call, hits = time.perf_counter() - start, cache_hit_count() - hits_before
        times = step_times_ms(
            {
                "eager": functools.partial(train_step, net, x, y),
                "compiled": functools.partial(train_step, fast, x, y),
            },
            rounds=CROSSOVER_ROUNDS,
        )
    ratio = [c / e for c, e in zip(times["compiled"], times["eager"], strict=True)]
    crossover.append(
        {
            "width": width,
            "params": count_parameters(net),
            "eager_ms": statistics.median(times["eager"]),
            "compiled_ms": statistics.median(times["compiled"]),
            "ratio": statistics.median(ratio),
            "ratio_quartiles": quartiles(ratio),
            "first_call": first_call,
            "cache_hits": hits,
        }
    )

print(
    f"计时（每次构建不同）：每步前向 + 反向传播，每种大小轮流计时，取中位数；批量都是 {batch_size} 个、"
    f"每个 {config.block_size} 个字符。\n"
)
print(
    "| 向量维度 d | 参数量 | eager（毫秒） | 编译版（毫秒） | 用时比（中位数，中间一半） | 第一次调用（秒） |"
)
print("|---:|---:|---:|---:|---:|---:|")
for row in crossover:
    low, high = row["ratio_quartiles"]
    note = f"，命中缓存 {row['cache_hits']} 次" if row["cache_hits"] else ""
    print(
        f"| {row['width']} | {row['params']:,} | {row['eager_ms']:.2f} | {row['compiled_ms']:.2f} | "
        f"{row['ratio']:.2f}（{low:.2f} – {high:.2f}） | {row['first_call']:.1f}{note} |"
    )
# --8<-- [end:crossover]

# --8<-- [start:crossover_plot]
import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

plt.rcParams["svg.hashsalt"] = "hello-pytorch"
plt.rcParams["svg.fonttype"] = "none"  # 文字以文本写进 SVG，由浏览器用中文字体显示

fig, ax = plt.subplots(figsize=(6.5, 3.6))
params = [row["params"] for row in crossover]
medians = [row["ratio"] for row in crossover]
spread_below = [row["ratio"] - row["ratio_quartiles"][0] for row in crossover]
spread_above = [row["ratio_quartiles"][1] - row["ratio"] for row in crossover]
ax.errorbar(params, medians, yerr=[spread_below, spread_above], marker="o", capsize=4)
for row in crossover:
    ax.annotate(
        f"d = {row['width']}", (row["params"], row["ratio"]), textcoords="offset points", xytext=(6, 6)
    )
ax.axhline(1, color="gray", linestyle="--", linewidth=1)
ax.set_xscale("log")
ax.set_xlabel("参数量（对数刻度）")
ax.set_ylabel("编译版用时 ÷ eager 用时")
ax.set_title("低于虚线：编译版更快（点是中位数，竖线是中间一半的轮次）")
ax.grid(alpha=0.3)

buffer = io.StringIO()
with warnings.catch_warnings():
    # 构建机的 matplotlib 没有中文字体，只用它排版；真正显示交给浏览器，缺字形的警告可以忽略
    warnings.filterwarnings("ignore", message="Glyph .* missing from font")
    fig.savefig(buffer, format="svg", metadata={"Date": None}, bbox_inches="tight")
plt.close(fig)
print(buffer.getvalue())
# --8<-- [end:crossover_plot]


# --8<-- [start:crossover_verdict]
import itertools


def verdict(row):
    """与 5.5 节同一条规则（direction）。"""
    return direction(*row["ratio_quartiles"])


def describe(row):
    words = {
        "faster": f"快了约 {1 - row['ratio']:.0%}",
        "slower": f"慢了，用时是 eager 模式的 {row['ratio']:.2f} 倍",
        "unclear": "和 eager 模式分不出快慢",
    }
    return f"d = {row['width']}（{row['params']:,} 个参数）时编译版每步{words[verdict(row)]}"


def payback_steps(row):
    """第一次调用多花的时间，要多少步省下的时间才挣得回来；每步没有确定地变快就挣不回来（None）。"""
    if verdict(row) != "faster":
        return None
    saved_ms = row["eager_ms"] - row["compiled_ms"]
    return math.ceil(row["first_call"] * 1000 / saved_ms)


def where_it_crosses(rows):
    """编译版确定更快的大小与其余大小的分界：在哪两个大小之间，哪一边更快。"""
    faster = [verdict(row) == "faster" for row in rows]
    if all(faster):
        return "每种大小编译版都更快，这个范围里没有交叉点"
    if not any(faster):
        return "没有哪种大小编译版确定地更快"
    flips = [i for i in range(1, len(rows)) if faster[i] != faster[i - 1]]
    if len(flips) > 1:
        return "快慢交错，看不出一个交叉点"
    small, large = rows[flips[0] - 1], rows[flips[0]]
    side = "更小" if faster[0] else "更大"
    return f"交叉点在 d = {small['width']} 和 d = {large['width']} 之间：只有{side}的模型编译版确定地更快"


def crossover_conclusion(rows):
    medians = [row["ratio"] for row in rows]
    if all(a < b for a, b in itertools.pairwise(medians)):
        trend = "模型越大，用时比越大：编译省下的比例越来越小"
    elif all(a > b for a, b in itertools.pairwise(medians)):
        trend = "模型越大，用时比越小：编译省下的比例越来越大"
    else:
        trend = "用时比没有随模型大小单调变化"
    paybacks = [
        f"d = {row['width']} 约 {steps:,} 步" for row in rows if (steps := payback_steps(row)) is not None
    ]
    payback = (
        "按中位数算，挣回第一次调用所花的时间需要训练：" + "，".join(paybacks) + "。"
        if paybacks
        else "没有哪种大小每步确定地变快，第一次调用所花的时间都挣不回来。"
    )
    return (
        "**本次构建的结论**（计时，每次构建不同）：在这台构建机器的 CPU 上，"
        + "；".join(describe(row) for row in rows)
        + f"。{where_it_crosses(rows)}。按中位数看，{trend}。{payback}"
    )


print(crossover_conclusion(crossover))
# --8<-- [end:crossover_verdict]

# --8<-- [start:exercise_bf16_rounding]
eps = torch.finfo(torch.bfloat16).eps
print(
    f"torch.finfo(torch.bfloat16).eps = {eps}（2^{math.log2(eps):.0f}）：比 1 大的下一个 bf16 数是 {1 + eps}"
)
for delta in (0.001, 0.0039, 0.004):
    print(f"1 + {delta:<6} 存成 bf16: {torch.tensor(1 + delta).bfloat16().item()}")
# 从 10^-3 到 10^3 均匀地（按数量级）抽 100 万个数，都舍入到 bf16，看相对误差最大是多少
many = 10 ** torch.empty(1_000_000).uniform_(-3, 3, generator=torch.Generator().manual_seed(0))
rounding_error = ((many.bfloat16().float() - many).abs() / many).max().item()
print(f"100 万个数舍入到 bf16，相对误差最大 {rounding_error:.6f}；2^-8 = {2**-8:.6f}")
# --8<-- [end:exercise_bf16_rounding]

# --8<-- [start:exercise_autocast_rules]
a, b = torch.randn(4, 4), torch.randn(4, 4)  # 都是 fp32
labels = torch.tensor([0, 1, 2, 3])
with torch.autocast("cpu", dtype=torch.bfloat16):
    product = a @ b
    rule_dtypes = {
        "a @ b": product.dtype,
        "torch.relu(a)": torch.relu(a).dtype,
        "torch.relu(a @ b)": torch.relu(product).dtype,
        "(a @ b) + a": (product + a).dtype,
        "(a @ b).softmax(-1)": product.softmax(-1).dtype,
        "F.cross_entropy(a @ b, labels)": F.cross_entropy(product, labels).dtype,
    }
for expression, dtype in rule_dtypes.items():
    print(f"{expression:<31} {dtype}")
# --8<-- [end:exercise_autocast_rules]

# --8<-- [start:exercise_growth_interval]
# 一个梯度大小固定的小例子：损失 = 输出之和，损失对输出的梯度恒为 1，放大后恰好等于缩放系数 s，
# 而它要先存成 fp16（输出是 fp16）：s 超过 fp16 的最大值 65504 就上溢成 inf
toy = torch.nn.Linear(4, 1, bias=False)
toy_optimizer = torch.optim.SGD(toy.parameters(), lr=0.01)
toy_input = torch.ones(1, 4)
toy_scaler = torch.amp.GradScaler("cpu", init_scale=2.0**18, growth_interval=3)
growth_steps = []  # (缩放系数, 是否更新了参数, 下一步的缩放系数)
for step in range(1, 13):
    scale = toy_scaler.get_scale()
    toy_optimizer.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=torch.float16):
        out = toy(toy_input)  # fp16
    before = toy.weight.detach().clone()
    toy_scaler.scale(out.float().sum()).backward()
    toy_scaler.step(toy_optimizer)
    toy_scaler.update()
    updated = not torch.equal(before, toy.weight)
    growth_steps.append((scale, updated, toy_scaler.get_scale()))
    print(
        f"第 {step:2d} 步：缩放系数 2^{math.log2(scale):.0f}，"
        + (
            f"更新了参数（除回系数后的梯度 {toy.weight.grad[0, 0].item():g}）"
            if updated
            else "梯度上溢，跳过"
        )
        + f"；下一步 2^{math.log2(toy_scaler.get_scale()):.0f}"
    )
# --8<-- [end:exercise_growth_interval]

# --8<-- [start:exercise_shared_parameters]
_, logits_before = train_step(
    compiled, x, y
)  # 先照常调用一次：之前别的改动引起的重新编译（如果有）在这里发生
graphs_before = counters["stats"]["unique_graphs"]  # Dynamo 至今捕获过几张不同的计算图
with torch.no_grad():
    model.ln_f.weight.mul_(2)  # 改的是 model 的参数，compiled 一个字也没动
_, logits_doubled = train_step(compiled, x, y)
with torch.no_grad():
    model.ln_f.weight.div_(2)  # 改回来（乘、除 2 都没有舍入误差）
_, logits_restored = train_step(compiled, x, y)
recompiled_graphs = counters["stats"]["unique_graphs"] - graphs_before
print("compiled 算出的 logits 变成了原来的 2 倍:", torch.equal(logits_doubled, 2 * logits_before))
print("为此新编译的计算图:", recompiled_graphs, "张")
print("改回来以后，logits 与改之前逐位相同:", torch.equal(logits_restored, logits_before))
# --8<-- [end:exercise_shared_parameters]
