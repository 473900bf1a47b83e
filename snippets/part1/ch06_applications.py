"""第 6 章：一个线性层能做什么、不能做什么；同一个训练循环换上不同的损失函数，做多分类和回归。"""

# --8<-- [start:fit]
import torch
import torch.nn as nn

torch.manual_seed(0)


def fit(model, loss_fn, X, y, num_epochs, lr):
    """第 5 章的训练循环，原样装进一个函数：换任务时只换模型、损失函数和数据。"""
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    losses = []
    for _ in range(num_epochs):
        optimizer.zero_grad()
        loss = loss_fn(model(X), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


print("fit(model, loss_fn, X, y, num_epochs, lr) 已定义")
# --8<-- [end:fit]

# --8<-- [start:xor_data]
# 异或（XOR）：两个坐标“一个大一个小”时标签为 1，“都大或都小”时为 0
corners = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
corner_labels = torch.tensor([0.0, 1.0, 1.0, 0.0])
corner_idx = torch.randint(0, 4, (400,))
X_xor = corners[corner_idx] + 0.15 * torch.randn(400, 2)  # 每个角周围撒一团点
y_xor = corner_labels[corner_idx].unsqueeze(1)

print("X_xor:", tuple(X_xor.shape), " y_xor:", tuple(y_xor.shape), " 正类比例:", f"{y_xor.mean().item():.1%}")
corner_counts = torch.bincount(corner_idx, minlength=4)
# 一条直线最多让三团点落在正确的一侧，只能放弃最小的那一团
linear_bound = 1 - corner_counts.min().item() / len(corner_idx)
print("四个角 (0,0) (0,1) (1,0) (1,1) 各有几个点:", corner_counts.tolist())
print(f"一条直线最多分对约 {linear_bound:.1%}（放弃最小的一团）")
# --8<-- [end:xor_data]

# --8<-- [start:xor_linear]
xor_epochs = 200
linear_model = nn.Linear(2, 1)
linear_losses = fit(linear_model, nn.BCEWithLogitsLoss(), X_xor, y_xor, num_epochs=xor_epochs, lr=0.5)

with torch.no_grad():
    linear_acc = ((linear_model(X_xor) > 0).float() == y_xor).float().mean().item()
print(f"线性模型：损失 {linear_losses[0]:.4f} -> {linear_losses[-1]:.4f}，准确率 {linear_acc:.1%}")
# --8<-- [end:xor_linear]

# --8<-- [start:xor_mlp]
mlp_model = nn.Sequential(
    nn.Linear(2, 8),
    nn.ReLU(),  # 没有这个非线性的激活函数，两层线性层叠起来仍然是一个线性层
    nn.Linear(8, 1),
)
mlp_losses = fit(mlp_model, nn.BCEWithLogitsLoss(), X_xor, y_xor, num_epochs=xor_epochs, lr=0.5)

with torch.no_grad():
    mlp_acc = ((mlp_model(X_xor) > 0).float() == y_xor).float().mean().item()
print(f"两层 MLP：  损失 {mlp_losses[0]:.4f} -> {mlp_losses[-1]:.4f}，准确率 {mlp_acc:.1%}")
# --8<-- [end:xor_mlp]

# --8<-- [start:xor_plot]
import io
import warnings

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

plt.rcParams["svg.hashsalt"] = "hello-pytorch"
plt.rcParams["svg.fonttype"] = "none"  # 文字以文本写进 SVG，由浏览器用中文字体显示

# 在一张网格上逐点问模型“这里是哪一类”，画出它的决策区域
grid_x, grid_y = torch.meshgrid(torch.linspace(-0.6, 1.6, 120), torch.linspace(-0.6, 1.6, 120), indexing="xy")
grid = torch.stack([grid_x.flatten(), grid_y.flatten()], dim=1)

fig, axes = plt.subplots(1, 2, figsize=(8, 3.8), sharey=True)
for ax, net, name, acc in [
    (axes[0], linear_model, "一个线性层", linear_acc),
    (axes[1], mlp_model, "两层 MLP", mlp_acc),
]:
    with torch.no_grad():
        region = (net(grid) > 0).float().reshape(grid_x.shape)
    ax.contourf(grid_x, grid_y, region, levels=[-0.5, 0.5, 1.5], colors=["#cfe3f3", "#f9d5c2"])
    ax.scatter(X_xor[:, 0], X_xor[:, 1], c=y_xor.flatten(), cmap="coolwarm", s=8, edgecolors="none")
    ax.set_title(f"{name}：准确率 {acc:.1%}")
    ax.set_xlabel("$x_1$")
axes[0].set_ylabel("$x_2$")

buffer = io.StringIO()
with warnings.catch_warnings():
    # 构建机的 matplotlib 没有中文字体，只用它排版；真正显示交给浏览器，缺字形的警告可以忽略
    warnings.filterwarnings("ignore", message="Glyph .* missing from font")
    fig.savefig(buffer, format="svg", metadata={"Date": None}, bbox_inches="tight")
plt.close(fig)
print(buffer.getvalue())
# --8<-- [end:xor_plot]

# --8<-- [start:xor_summary]
print(
    f"同样的数据、同样的训练循环、同样的 {xor_epochs} 轮：一个线性层的准确率停在 **{linear_acc:.1%}**，"
    f"加了一个隐藏层和 ReLU 的两层 MLP 达到 **{mlp_acc:.1%}**。"
)
# --8<-- [end:xor_summary]

# --8<-- [start:multiclass]
# 三团二维高斯点，每团一个类别
centers = torch.tensor([[0.0, 3.0], [-3.0, -2.0], [3.0, -2.0]])
y_blobs = torch.randint(0, 3, (600,))  # 整数类别标签 0、1、2（int64）
X_blobs = centers[y_blobs] + 1.2 * torch.randn(600, 2)
X_blobs_train, y_blobs_train = X_blobs[:450], y_blobs[:450]  # 标签本来就是随机抽的，直接切开即可
X_blobs_test, y_blobs_test = X_blobs[450:], y_blobs[450:]

classifier = nn.Linear(2, 3)  # 每个类别一个输出：3 个 logits
blob_losses = fit(classifier, nn.CrossEntropyLoss(), X_blobs_train, y_blobs_train, num_epochs=100, lr=0.1)

with torch.no_grad():
    blob_logits = classifier(X_blobs_test)
    blob_acc = (blob_logits.argmax(dim=1) == y_blobs_test).float().mean().item()

print(
    "logits 的形状:", tuple(blob_logits.shape), "  标签的形状:", tuple(y_blobs_test.shape), y_blobs_test.dtype
)
print(f"训练损失: {blob_losses[0]:.4f} -> {blob_losses[-1]:.4f}")
print(f"测试集准确率: {blob_acc:.1%}（随便猜是 1/3 ≈ 33.3%）")
# --8<-- [end:multiclass]

# --8<-- [start:regression]
true_w = torch.tensor([2.0, -3.4])
true_b = 4.2
X_reg = torch.randn(500, 2)
y_reg = (X_reg @ true_w + true_b + 0.01 * torch.randn(500)).unsqueeze(1)  # 连续的目标值

regressor = nn.Linear(2, 1)
reg_losses = fit(regressor, nn.MSELoss(), X_reg, y_reg, num_epochs=200, lr=0.1)

learned_w = regressor.weight.detach().flatten()
learned_b = regressor.bias.detach().item()
print(f"均方误差: {reg_losses[0]:.4f} -> {reg_losses[-1]:.6f}")
print("真实权重:", [round(v, 4) for v in true_w.tolist()], "  真实偏置:", true_b)
print("学到权重:", [round(v, 4) for v in learned_w.tolist()], "  学到偏置:", round(learned_b, 4))
# --8<-- [end:regression]

# --8<-- [start:exercise_ln2]
import math

positive_rate = y_xor.mean().item()
# 不看输入、对每个点都回答同一个概率 p：p 取正类比例时 BCE 最小
constant_loss = -(positive_rate * math.log(positive_rate) + (1 - positive_rate) * math.log(1 - positive_rate))
print(f"每个点都回答 50%：损失 ln 2 = {math.log(2):.4f}")
print(f"每个点都回答正类比例 {positive_rate:.1%}：损失 {constant_loss:.4f}")
print(f"训练 {xor_epochs} 轮的线性模型：损失 {linear_losses[-1]:.4f}")
with torch.no_grad():
    linear_probs = torch.sigmoid(linear_model(X_xor))  # 线性模型认为每个点是正类的概率
print(
    f"线性模型给 {len(X_xor)} 个点的概率都在 {linear_probs.min().item():.1%} 到 {linear_probs.max().item():.1%} 之间"
)
# --8<-- [end:exercise_ln2]

# --8<-- [start:exercise_no_relu]
torch.manual_seed(0)
stacked_model = nn.Sequential(nn.Linear(2, 8), nn.Linear(8, 1))  # 两个线性层，中间没有 ReLU
stacked_losses = fit(stacked_model, nn.BCEWithLogitsLoss(), X_xor, y_xor, num_epochs=xor_epochs, lr=0.5)
with torch.no_grad():
    stacked_acc = ((stacked_model(X_xor) > 0).float() == y_xor).float().mean().item()
print(f"去掉 ReLU：损失 {stacked_losses[0]:.4f} -> {stacked_losses[-1]:.4f}，准确率 {stacked_acc:.1%}")

# 把两层合成一层：W2(W1 x + b1) + b2 = (W2 W1) x + (W2 b1 + b2)
first, second = stacked_model[0], stacked_model[1]
merged = nn.Linear(2, 1)
with torch.no_grad():
    merged.weight.copy_(second.weight @ first.weight)
    merged.bias.copy_(second.weight @ first.bias + second.bias)
    merged_gap = (merged(X_xor) - stacked_model(X_xor)).abs().max().item()
print(f"合成的一个 nn.Linear(2, 1) 与两层模型的输出最多相差 {merged_gap:.1e}")
# --8<-- [end:exercise_no_relu]

# --8<-- [start:exercise_softmax]
ce = nn.CrossEntropyLoss()
with torch.no_grad():
    builtin_loss = ce(blob_logits, y_blobs_test).item()
    # 手算：先 log_softmax，再取每个样本正确类别那一项，取负号求平均
    log_probs = torch.log_softmax(blob_logits, dim=1)
    manual_loss = -log_probs[torch.arange(len(y_blobs_test)), y_blobs_test].mean().item()
    # 常见的错误：先自己做一次 softmax，再交给 CrossEntropyLoss
    double_loss = ce(torch.softmax(blob_logits, dim=1), y_blobs_test).item()
    # 错误做法下，即使模型百分之百确定且答对，“logits”也只是 (1, 0, 0)，损失降不到 0
    double_floor = ce(torch.tensor([[1.0, 0.0, 0.0]]), torch.tensor([0])).item()
print(f"CrossEntropyLoss：{builtin_loss:.4f}   手算 -log_softmax：{manual_loss:.4f}")
print(f"先做 softmax 再交给它：{double_loss:.4f}（这种错误做法的损失最低也只能到 {double_floor:.4f}）")

torch.manual_seed(0)
double_classifier = nn.Linear(2, 3)
double_losses = fit(
    double_classifier,
    lambda logits, y: ce(torch.softmax(logits, dim=1), y),
    X_blobs_train,
    y_blobs_train,
    num_epochs=100,
    lr=0.1,
)
with torch.no_grad():
    double_acc = (double_classifier(X_blobs_test).argmax(dim=1) == y_blobs_test).float().mean().item()
print(
    f"用错误做法训练 100 轮：损失 {double_losses[0]:.4f} -> {double_losses[-1]:.4f}，测试集准确率 {double_acc:.1%}"
)
print(
    f"正确做法训练 100 轮：  损失 {blob_losses[0]:.4f} -> {blob_losses[-1]:.4f}，测试集准确率 {blob_acc:.1%}"
)
# --8<-- [end:exercise_softmax]


# --8<-- [start:exercise_noise]
def regression_error(noise, n, seed=0):
    """按回归一节的做法造 n 个带噪声的样本、训练一个线性层，返回学到的参数离真实值最远的那一个差多少。"""
    torch.manual_seed(seed)
    X = torch.randn(n, 2)
    y = (X @ true_w + true_b + noise * torch.randn(n)).unsqueeze(1)
    model = nn.Linear(2, 1)
    fit(model, nn.MSELoss(), X, y, num_epochs=200, lr=0.1)
    learned = torch.cat([model.weight.detach().flatten(), model.bias.detach()])
    return (learned - torch.cat([true_w, torch.tensor([true_b])])).abs().max().item()


noise_errors = {(noise, n): regression_error(noise, n) for noise in (0.01, 0.1, 1.0) for n in (500, 5000)}
for (noise, n), error in noise_errors.items():
    print(f"噪声标准差 {noise:<4}  样本 {n:4d} 个：学到的参数离真实值最多差 {error:.2e}")
# --8<-- [end:exercise_noise]
