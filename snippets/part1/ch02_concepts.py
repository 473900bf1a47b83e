"""第 2 章：一个 3 输入的神经元、它的反向传播，以及 PyTorch 的自动微分怎样算出同样的梯度。"""

# --8<-- [start:neuron]
import torch
from torch import nn

x = torch.tensor([1.0, 2.0, -1.0])  # 3 个输入
w = torch.tensor([0.5, -0.3, 0.8])  # 每个输入一个权重
b = torch.tensor(0.1)  # 偏置

z = torch.dot(w, x) + b  # 加权求和：w·x + b
y = torch.sigmoid(z)  # 激活函数把 z 压到 (0, 1)
print(f"加权和 z = w·x + b = {z.item():.4f}")
print(f"输出   y = sigmoid(z) = {y.item():.4f}")

# 同一个神经元换成 PyTorch 的线性层来写：权重形状是 (输出数, 输入数)
layer = nn.Linear(3, 1)
with torch.no_grad():
    layer.weight.copy_(w.unsqueeze(0))
    layer.bias.fill_(b.item())
y_layer = torch.sigmoid(layer(x))
print("nn.Linear 的权重形状:", tuple(layer.weight.shape))
print(f"nn.Linear + sigmoid 的输出 = {y_layer.item():.4f}")
# --8<-- [end:neuron]

# --8<-- [start:neuron_md]
terms = " + ".join(f"({wi:g})\\times({xi:g})" for wi, xi in zip(w.tolist(), x.tolist(), strict=True))
print(
    f"输出显示：加权和 $z = {terms} + {b.item():g} = {z.item():g}$，"
    f"经过 sigmoid 后 $y = \\sigma({z.item():g}) \\approx {y.item():.4f}$。"
)
# --8<-- [end:neuron_md]

# --8<-- [start:by_hand]
t = torch.tensor(1.0)  # 目标值：希望这个神经元输出 1
loss = (y - t) ** 2
print(f"前向传播：z = {z.item():.4f}, y = {y.item():.4f}, L = (y − t)² = {loss.item():.4f}")

# 反向传播：从 L 出发往回走，每一步乘上一个局部导数
dL_dy = 2 * (y - t)
dy_dz = y * (1 - y)  # sigmoid 的导数 σ(z)(1 − σ(z))，用前向传播时算好的 y
dL_dz = dL_dy * dy_dz
analytic_grad_w = dL_dz * x  # ∂z/∂w = x
analytic_grad_b = dL_dz * 1.0  # ∂z/∂b = 1
print(f"∂L/∂y = 2(y − t)     = {dL_dy.item():.6f}")
print(f"∂y/∂z = y(1 − y)     = {dy_dz.item():.6f}")
print(f"∂L/∂z = ∂L/∂y·∂y/∂z  = {dL_dz.item():.6f}")
print("∂L/∂w = ∂L/∂z·x      =", analytic_grad_w)
print(f"∂L/∂b = ∂L/∂z·1      = {analytic_grad_b.item():.6f}")
# --8<-- [end:by_hand]


# --8<-- [start:graph_md]
def fmt(v):
    return "[" + ", ".join(f"{e:.3f}" for e in v.tolist()) + "]"


print(
    f"""```mermaid
graph LR
  nx["x = {fmt(x)}"]
  nw["w = {fmt(w)}<br/>∂L/∂w = {fmt(analytic_grad_w)}"]
  nb["b = {b.item():.3f}<br/>∂L/∂b = {analytic_grad_b.item():.3f}"]
  nz["z = w·x + b = {z.item():.3f}<br/>∂L/∂z = {dL_dz.item():.3f}"]
  ny["y = σ(z) = {y.item():.3f}<br/>∂L/∂y = {dL_dy.item():.3f}"]
  nt["t = {t.item():.0f}"]
  nL["L = (y − t)² = {loss.item():.3f}<br/>∂L/∂L = 1"]
  nx --> nz
  nw --> nz
  nb --> nz
  nz --> ny
  ny --> nL
  nt --> nL
  nL -.->|"× 2(y − t)"| ny
  ny -.->|"× y(1 − y)"| nz
  nz -.->|"× x"| nw
  nz -.->|"× 1"| nb
```"""
)
# --8<-- [end:graph_md]

# --8<-- [start:autograd]
# 需要求梯度的张量，要在创建时声明 requires_grad=True
w = torch.tensor([0.5, -0.3, 0.8], requires_grad=True)
b = torch.tensor(0.1, requires_grad=True)


def neuron_loss(w, b):
    z = torch.dot(w, x) + b
    y = torch.sigmoid(z)
    return z, y, (y - t) ** 2


z, y, loss = neuron_loss(w, b)
print("w.requires_grad:", w.requires_grad, "| x.requires_grad:", x.requires_grad)
print("loss.requires_grad:", loss.requires_grad)
print("反向传播之前 w.grad:", w.grad)

loss.backward()  # 沿计算图从 L 往回走，把梯度存进叶子张量的 .grad
autograd_grad_w = w.grad.clone()
autograd_grad_b = b.grad.clone()
print("反向传播之后 w.grad:", autograd_grad_w)
print("反向传播之后 b.grad:", autograd_grad_b)
print("x 不需要梯度，x.grad:", x.grad)
# --8<-- [end:autograd]

# --8<-- [start:compare]
print(f"{'参数':<4}{'自动微分':>8}{'手推公式':>8}")  # 一个中文字符占两格
for i in range(3):
    print(f"w[{i}]  {autograd_grad_w[i].item():>12.6f}{analytic_grad_w[i].item():>12.6f}")
print(f"b     {autograd_grad_b.item():>12.6f}{analytic_grad_b.item():>12.6f}")
max_diff = max(
    (autograd_grad_w - analytic_grad_w).abs().max().item(),
    (autograd_grad_b - analytic_grad_b).abs().item(),
)
print(f"两者的最大差: {max_diff:.1e}")
# --8<-- [end:compare]

# --8<-- [start:grad_fn]
names = {id(w): "w", id(b): "b"}


def show_graph(fn, depth=0):
    label = type(fn).__name__
    if hasattr(fn, "variable"):  # 叶子张量在图里是 AccumulateGrad 节点
        label += f"（叶子 {names[id(fn.variable)]}）"
    print("  " * depth + label)
    for next_fn, _ in fn.next_functions:
        if next_fn is not None:
            show_graph(next_fn, depth + 1)


print("y.grad_fn:", type(y.grad_fn).__name__)
print("PyTorch 记录下的计算图（从 L 往回）：")
show_graph(loss.grad_fn)
# --8<-- [end:grad_fn]

# --8<-- [start:accumulate]
w.grad = None  # 清空上一节留下的梯度，从零开始
b.grad = None
grads_seen = []
for step in range(3):
    _, _, loss = neuron_loss(w, b)
    loss.backward()  # 不清零：新梯度会加到旧梯度上
    grads_seen.append(b.grad.item())
    print(f"第 {step + 1} 次 backward 后 b.grad = {b.grad.item():.6f}")

b.grad.zero_()  # 手动清零
w.grad.zero_()
_, _, loss = neuron_loss(w, b)
loss.backward()
grad_after_zero = b.grad.item()
print(f"清零后再 backward，b.grad = {grad_after_zero:.6f}")

# 用优化器训练时，由 optimizer.zero_grad() 负责清零（默认把 .grad 设为 None）
optimizer = torch.optim.SGD([w, b], lr=0.1)
optimizer.zero_grad()
print("optimizer.zero_grad() 之后 w.grad:", w.grad)
# --8<-- [end:accumulate]

# --8<-- [start:accumulate_batches]
# 累加并非“坑”，而是有意的设计：把一个批次分两半分别 backward，梯度之和等于整批一次算出的梯度
torch.manual_seed(0)
inputs = torch.randn(8, 3)
targets = torch.rand(8)


def batch_loss(rows):
    preds = torch.sigmoid(inputs[rows] @ w + b)
    return ((preds - targets[rows]) ** 2).sum() / len(inputs)  # 都除以整批的样本数


batch_loss(slice(0, 8)).backward()
full_batch_grad = w.grad.clone()
w.grad = None
b.grad = None
batch_loss(slice(0, 4)).backward()
batch_loss(slice(4, 8)).backward()
accumulated_grad = w.grad.clone()
print("整批一次算出的 w.grad:", full_batch_grad)
print("两半累加得到的 w.grad:", accumulated_grad)
accumulation_diff = (accumulated_grad - full_batch_grad).abs().max().item()
print(f"两者的最大差: {accumulation_diff:.1e}")
w.grad = None
b.grad = None
# --8<-- [end:accumulate_batches]

# --8<-- [start:no_grad]
with torch.no_grad():
    _, y_eval, _ = neuron_loss(w, b)
print("no_grad 里算出的 y:", round(y_eval.item(), 4), "| requires_grad:", y_eval.requires_grad)
print("no_grad 里算出的 y.grad_fn:", y_eval.grad_fn)

_, _, loss = neuron_loss(w, b)
loss.backward()
try:
    w -= 0.1 * w.grad  # 在计算图之外原地修改叶子张量，PyTorch 会拒绝
except RuntimeError as error:
    inplace_error = error
    print("不加 no_grad 直接更新参数:", type(error).__name__, "-", str(error).split(".")[0])

# 手写一步梯度下降：参数更新不应被记录进计算图，所以放在 no_grad 里
loss_before = loss.item()
with torch.no_grad():
    w -= 1.0 * w.grad
    b -= 1.0 * b.grad
w.grad = None
b.grad = None
_, _, loss = neuron_loss(w, b)
loss_after = loss.item()
print(f"一步梯度下降（学习率 1.0）：L 从 {loss_before:.4f} 降到 {loss_after:.4f}")
# --8<-- [end:no_grad]

# --8<-- [start:exercise_numeric]
w_start = torch.tensor([0.5, -0.3, 0.8])  # 2.1 的权重（上一节的梯度下降已经改动了 w，这里重新写一份）


def loss_at_bias(bias, dtype):
    """2.2 的损失 L = (σ(w·x + b) − t)²，偏置取 bias，用 dtype 指定的浮点数计算。"""
    z_ = torch.dot(w_start.to(dtype), x.to(dtype)) + bias
    return ((torch.sigmoid(z_) - 1.0) ** 2).item()


# 参照值：用 64 位浮点数按 2.2 的公式算 ∂L/∂b = 2(y − t)·y(1 − y)
y64 = torch.sigmoid(torch.dot(w_start.double(), x.double()) + 0.1)
exact_grad_b = (2 * (y64 - 1) * y64 * (1 - y64)).item()

step_sizes = (1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6)
numeric_errors = {torch.float32: [], torch.float64: []}
print(f"{'h':>7}{'float32 的误差':>16}{'float64 的误差':>16}")  # 一个中文字符占两格
for h in step_sizes:
    row = []
    for dtype, errors in numeric_errors.items():
        estimate = (loss_at_bias(0.1 + h, dtype) - loss_at_bias(0.1, dtype)) / h  # (L(b + h) − L(b)) / h
        errors.append(abs(estimate - exact_grad_b))
        row.append(errors[-1])
    print(f"{h:>7.0e}{row[0]:>18.1e}{row[1]:>18.1e}")
autograd_error = abs(autograd_grad_b.item() - exact_grad_b)
print(f"自动微分（float32）的误差: {autograd_error:.1e}")
# --8<-- [end:exercise_numeric]

# --8<-- [start:exercise_input_grad]
x_input = x.clone().requires_grad_()  # 这一次让输入也需要梯度
input_loss = (torch.sigmoid(torch.dot(w_start, x_input) + 0.1) - t) ** 2
input_loss.backward()
print("自动微分 ∂L/∂x:", x_input.grad)
print("手推 ∂L/∂z · w:", dL_dz * w_start)  # ∂z/∂x_i = w_i
# --8<-- [end:exercise_input_grad]

# --8<-- [start:exercise_accumulate]
w_acc = torch.tensor([0.5, -0.3, 0.8], requires_grad=True)
b_acc = torch.tensor(0.1, requires_grad=True)


def chunk_loss(rows, divide_by):
    preds = torch.sigmoid(inputs[rows] @ w_acc + b_acc)
    return ((preds - targets[rows]) ** 2).sum() / divide_by


def accumulated_w_grad(divide_by):
    """把 8 个样本分成 4 份、每份 2 个，逐份 backward；返回累加出的 w 的梯度。"""
    w_acc.grad, b_acc.grad = None, None
    for start in range(0, 8, 2):
        chunk_loss(slice(start, start + 2), divide_by).backward()
    return w_acc.grad.clone()


w_acc.grad, b_acc.grad = None, None
chunk_loss(slice(0, 8), 8).backward()  # 整批一次算
whole_grad = w_acc.grad.clone()
by_own_size = accumulated_w_grad(divide_by=2)  # 每份除以自己的 2 个样本
by_batch_size = accumulated_w_grad(divide_by=8)  # 每份都除以整批的 8 个样本
print("整批一次算出的 w.grad:      ", whole_grad)
print("每份除以 2，累加后的 w.grad:", by_own_size)
print("每份除以 8，累加后的 w.grad:", by_batch_size)
print("除以 2 的结果 ÷ 整批的结果: ", by_own_size / whole_grad)
# --8<-- [end:exercise_accumulate]

# --8<-- [start:exercise_dynamic_graph]
w_dyn = torch.tensor([0.5, -0.3, 0.8], requires_grad=True)
b_dyn = torch.tensor(0.1, requires_grad=True)
names.update({id(w_dyn): "w", id(b_dyn): "b"})  # 让 show_graph 认得这两个新的叶子张量


def branchy_neuron(inp):
    z_ = torch.dot(w_dyn, inp) + b_dyn
    if z_ > 0:  # 普通的 Python if：按 z 的值决定走哪条路
        return torch.relu(z_)
    return torch.sigmoid(z_)


branch_roots = {}
for inp in (x, torch.tensor([2.0, -1.0, 1.0])):
    out = branchy_neuron(inp)
    branch_roots[tuple(inp.tolist())] = type(out.grad_fn).__name__
    print(f"输入 {inp.tolist()}：z = {(torch.dot(w_dyn, inp) + b_dyn).item():.1f}，记录下的计算图：")
    show_graph(out.grad_fn)
# --8<-- [end:exercise_dynamic_graph]
