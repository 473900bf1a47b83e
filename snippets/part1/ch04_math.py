"""第 4 章：用代码核对本章的公式——线性层、激活函数及其导数、损失函数、梯度下降。"""

# --8<-- [start:layer]
import torch
from torch import nn

torch.manual_seed(0)
layer = nn.Linear(3, 2)  # 2 个神经元，每个有 3 个输入
X = torch.randn(4, 3)  # 小批量：4 个样本，每行一个

by_layer = layer(X)
by_formula = X @ layer.weight.T + layer.bias  # 每行做一次 W x + b
print("W 的形状（输出数, 输入数）:", tuple(layer.weight.shape))
print("b 的形状:", tuple(layer.bias.shape))
print("输出的形状（样本数, 输出数）:", tuple(by_layer.shape))
print(f"nn.Linear 与公式的最大差: {(by_layer - by_formula).abs().max().item():.1e}")
# --8<-- [end:layer]

# --8<-- [start:collapse]
# 两个线性层直接叠在一起（中间没有激活函数），仍然只是一个线性层
first = nn.Linear(3, 5)
second = nn.Linear(5, 2)
stacked = second(first(X))
W_merged = second.weight @ first.weight
b_merged = second.weight @ first.bias + second.bias
merged = X @ W_merged.T + b_merged
collapse_diff = (stacked - merged).abs().max().item()
print("合并后的 W 形状:", tuple(W_merged.shape))
print(f"两层叠加 与 一层合并 的最大差: {collapse_diff:.1e}")
# --8<-- [end:collapse]

# --8<-- [start:activations]
grid = (torch.arange(-80, 81) * 0.05).requires_grad_()  # -4 到 4，步长 0.05，正好包含 0
activations = {"ReLU": torch.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh}
values, derivatives = {}, {}
for name, fn in activations.items():
    out = fn(grid)
    # 每个输出只依赖同位置的输入，所以 sum() 的梯度就是逐点的导数
    (grad,) = torch.autograd.grad(out.sum(), grid)
    values[name] = out.detach()
    derivatives[name] = grad

xs = grid.detach()
s, th = values["sigmoid"], values["tanh"]
formula_derivatives = {
    "ReLU": (xs > 0).float(),
    "sigmoid": s * (1 - s),
    "tanh": 1 - th**2,
}
for name in activations:
    diff = (derivatives[name] - formula_derivatives[name]).abs().max().item()
    print(f"{name:<8} 自动微分与公式导数的最大差: {diff:.1e}")
for name in ("sigmoid", "tanh"):
    peak = int(derivatives[name].argmax())
    print(f"{name} 导数的最大值 {derivatives[name][peak].item():.4f}，出现在 x = {xs[peak].item():g}")
zero_index = int((xs == 0).nonzero())
print("PyTorch 在 x = 0 处给 ReLU 的导数:", derivatives["ReLU"][zero_index].item())
# --8<-- [end:activations]

# --8<-- [start:plot]
# 画图要用的导入放在这一段里，读者在页面上能看到（noqa：告诉 ruff 这是有意为之）
import io
import warnings

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

plt.rcParams["svg.hashsalt"] = "hello-pytorch"
plt.rcParams["svg.fonttype"] = "none"
# SVG 里的中文是真正的文字，由读者的浏览器用中文字体显示；构建机上缺中文字体的警告可以忽略
warnings.filterwarnings("ignore", message="Glyph .* missing from font")
fig, (ax_f, ax_d) = plt.subplots(1, 2, figsize=(9, 3.4))
for name in activations:
    ax_f.plot(xs, values[name], label=name)
    ax_d.plot(xs, derivatives[name], label=name)
ax_f.set_title("激活函数 φ(x)")
ax_d.set_title("导数 φ'(x)（由自动微分算出）")
for ax in (ax_f, ax_d):
    ax.axhline(0, color="gray", linewidth=0.5)
    ax.axvline(0, color="gray", linewidth=0.5)
    ax.set_xlabel("x")
    ax.grid(alpha=0.3)
    ax.legend()
ax_f.set_ylim(-1.2, 2.2)
buffer = io.StringIO()
fig.savefig(buffer, format="svg", metadata={"Date": None}, bbox_inches="tight")
plt.close(fig)
print(buffer.getvalue())
# --8<-- [end:plot]

# --8<-- [start:mse]
pred = torch.tensor([2.5, 0.0, 2.0, 8.0])
target = torch.tensor([3.0, -0.5, 2.0, 7.0])
mse_formula = ((pred - target) ** 2).mean()
mse_torch = nn.MSELoss()(pred, target)
print(f"MSE 按公式: {mse_formula.item():.4f} | nn.MSELoss: {mse_torch.item():.4f}")
# --8<-- [end:mse]

# --8<-- [start:bce]
logits = torch.tensor([-3.0, -0.5, 0.0, 1.0, 4.0])
labels = torch.tensor([0.0, 1.0, 1.0, 0.0, 1.0])
probs = torch.sigmoid(logits)
bce_formula = -(labels * torch.log(probs) + (1 - labels) * torch.log(1 - probs)).mean()
bce_torch = nn.BCELoss()(probs, labels)
logits_formula = (torch.log1p(torch.exp(logits)) - labels * logits).mean()
bce_logits_torch = nn.BCEWithLogitsLoss()(logits, labels)
print(f"BCE 按公式:                    {bce_formula.item():.6f}")
print(f"nn.BCELoss(sigmoid(z), t):     {bce_torch.item():.6f}")
print(f"log(1+e^z) − t·z 按公式:       {logits_formula.item():.6f}")
print(f"nn.BCEWithLogitsLoss(z, t):    {bce_logits_torch.item():.6f}")
# --8<-- [end:bce]

# --8<-- [start:relu_case]
x = torch.tensor([1.0, 2.0, -1.0])  # 与第 2 章相同的神经元，激活函数换成 ReLU
w = torch.tensor([0.5, -0.3, 0.8], requires_grad=True)
b = torch.tensor(0.1, requires_grad=True)
x_other = torch.tensor([2.0, -1.0, 1.0])  # 另一个输入
relu_grads = {}
for name, inp in (("x", x), ("x_other", x_other)):
    z = torch.dot(w, inp) + b
    out = torch.relu(z)
    out.backward()
    relu_grads[name] = w.grad + 0.0  # 加 0.0 把 -0.0 写成 0.0
    print(f"输入 {name}: z = {z.item():.2f}, ReLU(z) = {out.item():.2f}, ∂输出/∂w =", relu_grads[name])
    w.grad = None
    b.grad = None
# --8<-- [end:relu_case]

# --8<-- [start:saturate]
big_z = torch.tensor([-200.0, -30.0, -5.0, 5.0, 30.0, 200.0], requires_grad=True)
big_t = torch.tensor([1.0, 1.0, 1.0, 0.0, 0.0, 0.0])  # 全是“自信地判错”的样本


def stable_bce(z, t):
    # log(1+e^z) − t·z 的稳定写法：max(z,0) − t·z + log(1+e^{−|z|})，指数永远不会溢出
    return z.clamp(min=0) - t * z + torch.log1p(torch.exp(-z.abs()))


with_logits = nn.BCEWithLogitsLoss(reduction="none")(big_z, big_t)
(grad_logits,) = torch.autograd.grad(with_logits.sum(), big_z)
via_sigmoid = nn.BCELoss(reduction="none")(torch.sigmoid(big_z), big_t)
(grad_sigmoid,) = torch.autograd.grad(via_sigmoid.sum(), big_z)
exact = stable_bce(big_z.detach().double(), big_t.double())  # 用 float64 算的参照值
naive = torch.log1p(torch.exp(big_z.detach())) - big_t * big_z.detach()  # 直接照公式写

# 中文字符占两个等宽字符的宽度，表头的宽度按此对齐
print(f"{'z':>6}{'t':>4}{'参照值':>9}{'WithLogits':>12}{'sigmoid+BCE':>13}{'直接照公式':>9}")
for i in range(len(big_z)):
    print(
        f"{big_z[i].item():>6.0f}{big_t[i].item():>4.0f}{exact[i].item():>12.4f}"
        f"{with_logits[i].item():>12.4f}{via_sigmoid[i].item():>13.4f}{naive[i].item():>14.4f}"
    )
# round 之后加 0.0，把 -0.0 写成 0.0
print("WithLogits 的梯度   ∂L/∂z:", [round(v, 4) + 0.0 for v in grad_logits.tolist()])
print("sigmoid+BCE 的梯度  ∂L/∂z:", [round(v, 4) + 0.0 for v in grad_sigmoid.tolist()])
# --8<-- [end:saturate]

# --8<-- [start:saturate_md]
loss_is_wrong = (via_sigmoid.double() - exact).abs() > 0.01
loss_wrong = int(loss_is_wrong.sum())
stuck_at = sorted(set(via_sigmoid[loss_is_wrong].tolist()))  # 算错的损失停在了哪些值上
grad_wrong = int(((grad_sigmoid - grad_logits).abs() > 0.05).sum())
logits_error = (with_logits.double() - exact).abs().max().item()
print(
    f"{len(big_z)} 个样本里，`sigmoid` + `nn.BCELoss` 有 **{loss_wrong}** 个损失算错（"
    f"{'都' if len(stuck_at) == 1 else ''}停在了 {'、'.join(f'{v:g}' for v in stuck_at)}），"
    f"有 **{grad_wrong}** 个梯度与正确值 $\\sigma(z)-t$ 相差超过 0.05；"
    f"`nn.BCEWithLogitsLoss` 与 float64 参照值的最大差只有 **{logits_error:.1e}**，"
    f"梯度全是有限值，而且都等于 $\\sigma(z)-t$。"
)
# --8<-- [end:saturate_md]

# --8<-- [start:descent]
w = torch.tensor([0.5, -0.3, 0.8], requires_grad=True)  # 回到第 2 章的 sigmoid 神经元，从头训练
b = torch.tensor(0.1, requires_grad=True)
t = torch.tensor(1.0)
lr = 0.5  # 学习率 η

descent_losses = []
for step in range(20):
    loss = (torch.sigmoid(torch.dot(w, x) + b) - t) ** 2
    loss.backward()
    with torch.no_grad():  # θ ← θ − η ∇L
        w -= lr * w.grad
        b -= lr * b.grad
    w.grad = None
    b.grad = None
    descent_losses.append(loss.item())
    if step % 4 == 0 or step == 19:
        print(f"第 {step + 1:>2} 步: L = {loss.item():.4f}")
print("训练后的 w:", [round(v, 3) for v in w.tolist()], "| b:", round(b.item(), 3))
# --8<-- [end:descent]

# --8<-- [start:exercise_vanishing]
depth = 10
chain_grads = {}
for name, fn in activations.items():  # 4.2 的三个激活函数
    start = torch.tensor(1.0, requires_grad=True)
    h = start
    for _ in range(depth):  # 把同一个激活函数连用 10 次：φ(φ(…φ(x)…))
        h = fn(h)
    (chain_grads[name],) = torch.autograd.grad(h, start)
    print(f"{name:<8} 连用 {depth} 次：输出 {h.item():.4f}，输出对输入的导数 {chain_grads[name].item():.1e}")
print(f"sigmoid 的导数最大 0.25，连乘 {depth} 次最多是 0.25^{depth} = {0.25**depth:.1e}")
# --8<-- [end:exercise_vanishing]


# --8<-- [start:exercise_lr]
def descend_parabola(lr, steps=20):
    """在 L(θ) = θ² 上从 θ = 1 出发做梯度下降，返回每一步之后的 θ。谷底在 θ = 0。"""
    theta = torch.tensor(1.0, requires_grad=True)
    path = []
    for _ in range(steps):
        (theta**2).backward()
        with torch.no_grad():
            theta -= lr * theta.grad
        theta.grad = None
        path.append(theta.item())
    return path


parabola_paths = {eta: descend_parabola(eta) for eta in (0.1, 0.5, 0.9, 1.1)}
for eta, path in parabola_paths.items():
    first = ", ".join(f"{v:.3f}" for v in path[:4])
    print(f"η = {eta}：前 4 步 θ = {first} …… 第 20 步 θ = {path[-1]:.4f}")
# --8<-- [end:exercise_lr]

# --8<-- [start:exercise_float64]
z64 = big_z.detach().double().requires_grad_()  # 同样 6 个样本，这次用 float64
via_sigmoid64 = nn.BCELoss(reduction="none")(torch.sigmoid(z64), big_t.double())
(grad_sigmoid64,) = torch.autograd.grad(via_sigmoid64.sum(), z64)
correct_grad = torch.sigmoid(z64.detach()) - big_t.double()  # 4.2 推出的 σ(z) − t

# 中文字符占两个等宽字符的宽度，表头的宽度按此对齐
print(f"{'z':>6}{'参照值':>9}{'float32 损失':>15}{'float64 损失':>15}{'正确梯度':>10}{'float64 梯度':>15}")
for i in range(len(big_z)):
    print(
        f"{big_z[i].item():>6.0f}{exact[i].item():>12.4f}{via_sigmoid[i].item():>17.4f}"
        f"{via_sigmoid64[i].item():>17.4f}{correct_grad[i].item():>14.4f}{round(grad_sigmoid64[i].item(), 4) + 0.0:>17.4f}"
    )
loss_wrong64 = (via_sigmoid64.detach() - exact).abs() > 0.01  # 与 4.3 用同样的标准
grad_wrong64 = (grad_sigmoid64 - correct_grad).abs() > 0.05
print(
    f"float64 下损失算错 {int(loss_wrong64.sum())} 个（float32 是 {loss_wrong} 个），"
    f"梯度算错 {int(grad_wrong64.sum())} 个（float32 是 {grad_wrong} 个）"
)
# --8<-- [end:exercise_float64]

# --8<-- [start:exercise_mse_vs_bce]
probe_z = torch.tensor([-10.0, -5.0, -2.0, -0.5, 0.0, 2.0], requires_grad=True)
probe_t = torch.ones_like(probe_z)  # 目标都是 1：z 越往负的方向，错得越离谱

mse_on_sigmoid = (torch.sigmoid(probe_z) - probe_t) ** 2  # 第 2 章和案例三的写法：sigmoid 之后用平方误差
(grad_mse,) = torch.autograd.grad(mse_on_sigmoid.sum(), probe_z)
bce_on_logits = nn.BCEWithLogitsLoss(reduction="none")(probe_z, probe_t)
(grad_bce,) = torch.autograd.grad(bce_on_logits.sum(), probe_z)

print(f"{'z':>6}{'σ(z)':>9}{'平方误差的梯度':>15}{'BCE 的梯度':>13}")
for i in range(len(probe_z)):
    print(
        f"{probe_z[i].item():>6g}{torch.sigmoid(probe_z[i]).item():>9.4f}"
        f"{grad_mse[i].item():>22.2e}{grad_bce[i].item():>16.4f}"
    )
# --8<-- [end:exercise_mse_vs_bce]
