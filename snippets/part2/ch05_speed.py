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

compiled = torch.compile(model)  # 默认后端 inductor；compiled 与 model 共用同一套参数

start = time.perf_counter()
# 第一次调用时才真正编译：捕获前向的计算图，追踪出反向的计算图，再生成 C++ 代码并编译
compiled_loss, compiled_logits = train_step(compiled, x, y)
compile_seconds = time.perf_counter() - start
compiled_grads = gradients(model)

compile_logits_diff = (compiled_logits - eager_logits).abs().max().item()
compile_grad_diff = max((compiled_grads[n] - eager_grads[n]).abs().max().item() for n in eager_grads)
torch.testing.assert_close(compiled_logits, eager_logits)
for name in eager_grads:
    torch.testing.assert_close(compiled_grads[name], eager_grads[name])
compile_agrees = compile_logits_diff < 1e-5 and compile_grad_diff < 1e-5
print(f"编译版：损失 {compiled_loss.item():.4f}（eager 模式 {eager_loss.item():.4f}）")
print("logits 与 eager 模式的最大绝对差 < 1e-5:", compile_logits_diff < 1e-5)
print("全部梯度与 eager 模式的最大绝对差 < 1e-5:", compile_grad_diff < 1e-5)
print("torch.testing.assert_close 对 logits 和每个梯度都通过")
# --8<-- [end:compile]

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
BF16_TOLERANCE = 0.02  # bf16 只有 8 位有效二进制位，单次舍入的相对误差约 0.4%
print(
    f"损失：fp32 {eager_loss.item():.4f}，bf16 {bf16_loss.item():.4f}，相差 < 0.01: {bf16_loss_diff < 0.01}"
)
print(f"logits 的相对误差 ‖bf16 − fp32‖ / ‖fp32‖ = {bf16_logits_error:.2g}")
print(
    f"logits 和各个梯度的相对误差都小于 {BF16_TOLERANCE}:",
    max(bf16_logits_error, bf16_grad_error) < BF16_TOLERANCE,
)
# --8<-- [end:bf16_error]

# --8<-- [start:speed_timing]
import statistics


def median_step_ms(rounds=30, warmup=3):
    """轮流计时三种做法，每种各 rounds 步，返回每步用时的中位数（毫秒）。

    轮流而不是一种测完再测下一种：机器忙闲的变化会平均落到三种做法上；中位数不怕偶尔被打断的那一步。
    """
    variants = {
        "eager 模式（fp32）": lambda: train_step(model, x, y),
        "eager 模式 + bf16 自动混合精度": lambda: train_step(model, x, y, bf16=True),
        "torch.compile（fp32）": lambda: train_step(compiled, x, y),
    }
    times = {name: [] for name in variants}
    for _ in range(warmup):
        for step in variants.values():
            step()
    for _ in range(rounds):
        for name, step in variants.items():
            start = time.perf_counter()
            step()
            times[name].append((time.perf_counter() - start) * 1000)
    return {name: statistics.median(t) for name, t in times.items()}


step_ms = median_step_ms()
eager_ms = step_ms["eager 模式（fp32）"]
print(
    "计时（每次构建不同）：每步前向 + 反向传播的用时，各 30 步的中位数；"
    f"这台机器的 CPU 上 PyTorch 用的向量指令集是 {torch.backends.cpu.get_cpu_capability()}。\n"
)
print("| 做法 | 每步用时（毫秒） | 相对 eager 模式的速度 |")
print("|---|---:|---:|")
for name, ms in step_ms.items():
    print(f"| {name} | {ms:.2f} | ×{eager_ms / ms:.2f} |")
print(f"\n`torch.compile` 的第一次调用（含编译）用了 **{compile_seconds:.1f} 秒**。")
# --8<-- [end:speed_timing]

# --8<-- [start:verdict_timing]
compiled_ms = step_ms["torch.compile（fp32）"]
bf16_ms = step_ms["eager 模式 + bf16 自动混合精度"]


def compare(name, ms):
    # 差别不到 5% 时算“差不多”：这点差别常常小于两次构建之间的波动
    if ms < 0.95 * eager_ms:
        return f"{name}每步快了 {1 - ms / eager_ms:.0%}（{eager_ms:.1f} → {ms:.1f} 毫秒）"
    if ms > 1.05 * eager_ms:
        return f"{name}每步反而慢了 {ms / eager_ms - 1:.0%}（{eager_ms:.1f} → {ms:.1f} 毫秒）"
    return f"{name}和 eager 模式差不多（{eager_ms:.1f} 与 {ms:.1f} 毫秒）"


saved_ms = eager_ms - compiled_ms
if saved_ms > 0.05 * eager_ms:
    payback = f"按每步省下的 {saved_ms:.1f} 毫秒算，约 {compile_seconds * 1000 / saved_ms:,.0f} 步之后才能把编译的时间挣回来。"
else:
    payback = f"每步省不下时间，编译花掉的 {compile_seconds:.1f} 秒挣不回来。"
print(
    f"**本次构建的结论**（计时，每次构建不同）：在这台构建机器的 CPU 上，{compare('torch.compile ', compiled_ms)}，"
    f"{payback}{compare('bf16 自动混合精度', bf16_ms)}。"
)
# --8<-- [end:verdict_timing]
