"""第 5 章：Hello PyTorch——先复现原文代码的两个报错，再写一个真正能学、能在测试集上检验的二分类程序。"""

# --8<-- [start:requirement]
from importlib.metadata import metadata

import torch

requires_python = metadata("torch")["Requires-Python"]
print(
    f"本站构建时安装的是 PyTorch **{torch.__version__}**，"
    f"它的安装包元数据写着需要的 Python 版本：**`{requires_python}`**。"
)
# --8<-- [end:requirement]

# --8<-- [start:env]
import platform

import torch

print("PyTorch 版本:", torch.__version__)
print("Python 版本:", platform.python_version())
print("编译时的 CUDA 版本:", torch.version.cuda)  # CPU 版安装包这里是 None
print("CUDA 可用:", torch.cuda.is_available())

a = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
print("一个小小的矩阵乘法 a @ a:")
print(a @ a)
# --8<-- [end:env]

# --8<-- [start:env_note]
if torch.version.cuda is None:
    print(
        "构建本站的机器装的是 **CPU 版** PyTorch：`编译时的 CUDA 版本` 一行是 `None`，"
        "所以 `CUDA 可用` 只能是 `False`。"
    )
else:
    print(
        f"构建本站的机器装的是 **CUDA {torch.version.cuda} 版** PyTorch；"
        "`CUDA 可用` 是否为 `True`，取决于这台机器有没有可用的 NVIDIA 显卡和驱动。"
    )
# --8<-- [end:env_note]

# --8<-- [start:article_shape]
import torch
import torch.nn as nn
import torch.optim as optim

torch.manual_seed(0)


# 原文的模型：一个线性层，输入 10 个数，输出 1 个数
class SimpleModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(10, 1)

    def forward(self, x):
        return self.fc1(x)


article_model = SimpleModel()
article_criterion = nn.BCELoss()
article_optimizer = optim.SGD(article_model.parameters(), lr=0.01)

# 原文的数据：10 个样本，但每个样本只有 1 个数
x = torch.randn(10, 1)
y = torch.randn(10, 1)

shape_error = None
try:
    output = article_model(x)
except RuntimeError as error:
    shape_error = error
    print("x 的形状:", tuple(x.shape), "  线性层期望每个样本有", article_model.fc1.in_features, "个数")
    print("RuntimeError:", error)
# --8<-- [end:article_shape]

# --8<-- [start:article_target]
x = torch.randn(10, 10)  # 把形状改对：10 个样本，每个 10 个数
output = article_model(x)
print("线性层输出的范围:", f"{output.min().item():.3f} ~ {output.max().item():.3f}")
print("目标 y 的范围:   ", f"{y.min().item():.3f} ~ {y.max().item():.3f}")

# 第一处问题：BCELoss 要的是概率，线性层的原始输出却可正可负
input_error = None
try:
    loss = article_criterion(output, y)
except RuntimeError as error:
    input_error = error
    print("直接算损失    -> RuntimeError:", error)

# 第二处问题：就算用 sigmoid 把输出压进 (0, 1)，目标 y 也不是 0/1 标签
target_error = None
try:
    loss = article_criterion(torch.sigmoid(output), y)
except RuntimeError as error:
    target_error = error
    print("先加 sigmoid  -> RuntimeError:", error)
# --8<-- [end:article_target]

# --8<-- [start:data]
torch.manual_seed(0)  # 重新设定种子：修正后的程序从这里开始，不依赖前面的代码

num_samples, num_features = 1000, 10
true_weight = torch.randn(num_features)  # 隐藏的规则，模型看不到它
true_bias = 0.5

features = torch.randn(num_samples, num_features)
noise = torch.randn(num_samples)  # 噪声让一部分标签“违反”规则，任务不会简单到 100%
labels = (features @ true_weight + true_bias + noise > 0).float().unsqueeze(1)

# 打乱后按 8:2 切成训练集和测试集；测试集在训练中一眼都不看
perm = torch.randperm(num_samples)
train_idx, test_idx = perm[:800], perm[800:]
X_train, y_train = features[train_idx], labels[train_idx]
X_test, y_test = features[test_idx], labels[test_idx]

print("训练集:", tuple(X_train.shape), tuple(y_train.shape), "  正类比例:", f"{y_train.mean().item():.1%}")
print("测试集:", tuple(X_test.shape), tuple(y_test.shape), "  正类比例:", f"{y_test.mean().item():.1%}")
print("前 5 个标签:", y_train[:5].flatten().tolist())
# --8<-- [end:data]

# --8<-- [start:model]
model = SimpleModel()  # 原文的模型本身没有错，沿用它
criterion = nn.BCEWithLogitsLoss()  # 输入 logits，内部自带 sigmoid
optimizer = optim.SGD(model.parameters(), lr=0.1)

print(model)
print("权重形状:", tuple(model.fc1.weight.shape), "  偏置形状:", tuple(model.fc1.bias.shape))
print("参数总数:", sum(p.numel() for p in model.parameters()))
# --8<-- [end:model]

# --8<-- [start:train]
num_epochs = 100
train_losses, test_losses = [], []

for epoch in range(num_epochs):
    model.train()
    optimizer.zero_grad()  # 清空上一轮留下的梯度
    logits = model(X_train)  # 前向传播
    loss = criterion(logits, y_train)
    loss.backward()  # 反向传播：算出每个参数的梯度
    optimizer.step()  # 沿梯度的反方向更新参数

    model.eval()
    with torch.no_grad():  # 只是看一眼测试集，不需要计算图
        test_loss = criterion(model(X_test), y_test)

    train_losses.append(loss.item())
    test_losses.append(test_loss.item())
    if epoch == 0 or (epoch + 1) % 10 == 0:
        print(
            f"第 {epoch + 1:3d}/{num_epochs} 轮  训练损失 {loss.item():.4f}  测试损失 {test_loss.item():.4f}"
        )
# --8<-- [end:train]

# --8<-- [start:evaluate]
model.eval()
with torch.no_grad():
    test_logits = model(X_test)
    final_test_loss = criterion(test_logits, y_test).item()
    test_pred = (test_logits > 0).float()  # logit > 0 等价于 sigmoid(logit) > 0.5
    test_accuracy = (test_pred == y_test).float().mean().item()
    train_accuracy = ((model(X_train) > 0).float() == y_train).float().mean().item()

majority_rate = max(y_test.mean().item(), 1 - y_test.mean().item())  # 永远猜多数类能得到的准确率
print(f"测试损失:   {final_test_loss:.4f}")
print(f"训练集准确率: {train_accuracy:.1%}")
print(f"测试集准确率: {test_accuracy:.1%}")
print(f"永远猜多数类: {majority_rate:.1%}")

learned = model.fc1.weight.detach().flatten()
similarity = torch.cosine_similarity(learned, true_weight, dim=0).item()
print(f"学到的权重与隐藏规则的余弦相似度: {similarity:.3f}")
# --8<-- [end:evaluate]

# --8<-- [start:plot]
import io
import warnings

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

plt.rcParams["svg.hashsalt"] = "hello-pytorch"
plt.rcParams["svg.fonttype"] = "none"  # 文字以文本写进 SVG，由浏览器用中文字体显示

epochs_axis = range(1, num_epochs + 1)
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(epochs_axis, train_losses, label="训练损失")
ax.plot(epochs_axis, test_losses, label="测试损失", linestyle="--")
ax.set_xlabel("轮（epoch）")
ax.set_ylabel("二元交叉熵损失")
ax.set_title("Hello PyTorch 的损失曲线")
ax.grid(alpha=0.3)
ax.legend()

buffer = io.StringIO()
with warnings.catch_warnings():
    # 构建机的 matplotlib 没有中文字体，只用它排版；真正显示交给浏览器，缺字形的警告可以忽略
    warnings.filterwarnings("ignore", message="Glyph .* missing from font")
    fig.savefig(buffer, format="svg", metadata={"Date": None}, bbox_inches="tight")
plt.close(fig)
print(buffer.getvalue())
# --8<-- [end:plot]

# --8<-- [start:summary]
print(
    f"训练损失从第 1 轮的 **{train_losses[0]:.4f}** 降到第 {num_epochs} 轮的 **{train_losses[-1]:.4f}**；"
    f"训练结束后，模型在从没见过的 {len(y_test)} 个测试样本上的损失是 **{final_test_loss:.4f}**，"
    f"准确率是 **{test_accuracy:.1%}**，"
    f"比“永远猜多数类”的 {majority_rate:.1%} 高出 {(test_accuracy - majority_rate) * 100:.1f} 个百分点。"
)
# --8<-- [end:summary]


# --8<-- [start:exercise_lr]
def train_hello(X, y, lr=0.1, epochs=num_epochs, make_model=SimpleModel, make_optimizer=optim.SGD, seed=0):
    """按第 3 步的循环（每轮用全部样本更新一次）重新训练一个模型；返回模型和每轮的训练损失。"""
    torch.manual_seed(seed)  # 固定初始参数：下面每次只改一处设置，其余都相同
    net = make_model()
    opt = make_optimizer(net.parameters(), lr=lr)
    losses = []
    for _ in range(epochs):
        opt.zero_grad()
        loss = criterion(net(X), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return net, losses


def accuracy_of(net, X, y):
    with torch.no_grad():
        return ((net(X) > 0).float() == y).float().mean().item()


lr_runs = {lr: train_hello(X_train, y_train, lr=lr) for lr in (0.1, 0.01)}
for lr, (net, losses) in lr_runs.items():
    print(
        f"lr={lr:<4}：100 轮后训练损失 {losses[-1]:.4f}，测试集准确率 {accuracy_of(net, X_test, y_test):.1%}"
    )
_, slow_losses = train_hello(X_train, y_train, lr=0.01, epochs=1000)
target_loss = lr_runs[0.1][1][-1]
catch_up_epoch = next(epoch for epoch, loss in enumerate(slow_losses, start=1) if loss <= target_loss)
print(f"lr=0.01 要训练到第 {catch_up_epoch} 轮，训练损失才降到 lr=0.1 第 100 轮的 {target_loss:.4f}")
# --8<-- [end:exercise_lr]

# --8<-- [start:exercise_noise]
# 另取 2 万个新样本（用单独的随机数生成器，不影响上面的任何数据），把准确率测得更准
fresh = torch.Generator().manual_seed(1)
fresh_features = torch.randn(20_000, num_features, generator=fresh)
fresh_noise = torch.randn(20_000, generator=fresh)


def rule_says(X):
    """隐藏规则本身（不加噪声）：w*·x + b* > 0 就猜 1。"""
    return (X @ true_weight + true_bias > 0).float().unsqueeze(1)


noise_results, fresh_labels_by_scale = {}, {}
for scale in (0.0, 1.0, 3.0):
    # 同样的特征、同样的隐藏规则、同样的训练集/测试集划分，只把噪声放大或缩小
    noisy_labels = (features @ true_weight + true_bias + scale * noise > 0).float().unsqueeze(1)
    y_tr, y_te = noisy_labels[train_idx], noisy_labels[test_idx]
    fresh_labels = (fresh_features @ true_weight + true_bias + scale * fresh_noise > 0).float().unsqueeze(1)
    fresh_labels_by_scale[scale] = fresh_labels
    net, _ = train_hello(X_train, y_tr)
    noise_results[scale] = {
        "模型": accuracy_of(net, X_test, y_te),
        "规则": (rule_says(X_test) == y_te).float().mean().item(),
        "多数类": max(y_te.mean().item(), 1 - y_te.mean().item()),
        "模型（新样本）": accuracy_of(net, fresh_features, fresh_labels),
        "规则（新样本）": (rule_says(fresh_features) == fresh_labels).float().mean().item(),
    }
    r = noise_results[scale]
    print(
        f"噪声 × {scale:g}：测试集上 模型 {r['模型']:.1%}、隐藏规则 {r['规则']:.1%}、永远猜多数类 {r['多数类']:.1%}；"
        f"2 万个新样本上 模型 {r['模型（新样本）']:.1%}、隐藏规则 {r['规则（新样本）']:.1%}"
    )
# --8<-- [end:exercise_noise]

# --8<-- [start:exercise_small_data]
size_results = {}
for n in (20, 100, 800):
    net, _ = train_hello(X_train[:n], y_train[:n])  # 只用训练集的前 n 个样本
    direction = torch.cosine_similarity(net.fc1.weight.detach().flatten(), true_weight, dim=0).item()
    size_results[n] = (
        accuracy_of(net, X_train[:n], y_train[:n]),
        accuracy_of(net, X_test, y_test),
        direction,
    )
    print(
        f"训练样本 {n:3d} 个：训练集准确率 {size_results[n][0]:6.1%}，测试集准确率 {size_results[n][1]:.1%}，"
        f"与隐藏规则的余弦相似度 {direction:.3f}"
    )
# --8<-- [end:exercise_small_data]


# --8<-- [start:exercise_bigger_model]
def make_mlp():
    # 第 3 章那样的多层感知机：10 → 16 → 1，中间一个 ReLU
    return nn.Sequential(nn.Linear(num_features, 16), nn.ReLU(), nn.Linear(16, 1))


mlp, _ = train_hello(X_train, y_train, lr=0.01, epochs=200, make_model=make_mlp, make_optimizer=optim.Adam)
linear_net = lr_runs[0.1][0]
fresh_labels = fresh_labels_by_scale[1.0]  # 练习 3 的 2 万个新样本，噪声与本章相同
for label, net in (("线性模型 SimpleModel", linear_net), ("10 → 16 → 1 的 MLP（Adam）", mlp)):
    n_params = sum(p.numel() for p in net.parameters())
    print(
        f"{label}：{n_params} 个参数，训练集准确率 {accuracy_of(net, X_train, y_train):.1%}，"
        f"测试集准确率 {accuracy_of(net, X_test, y_test):.1%}，"
        f"2 万个新样本上 {accuracy_of(net, fresh_features, fresh_labels):.1%}"
    )
rule = noise_results[1.0]
print(f"隐藏规则本身：测试集准确率 {rule['规则']:.1%}，2 万个新样本上 {rule['规则（新样本）']:.1%}")
# --8<-- [end:exercise_bigger_model]
