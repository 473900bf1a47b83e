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
