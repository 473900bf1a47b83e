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

# --8<-- [start:loss_choice]
demo_targets = torch.tensor([[1.0], [1.0]])

# 写法一：logits 直接进 BCEWithLogitsLoss
demo_logits = torch.tensor([[3.0], [-120.0]], requires_grad=True)
with_logits = nn.BCEWithLogitsLoss(reduction="none")(demo_logits, demo_targets)
with_logits.sum().backward()
grad_with_logits = demo_logits.grad.flatten()

# 写法二：先 sigmoid 变成概率，再进 BCELoss
demo_logits = torch.tensor([[3.0], [-120.0]], requires_grad=True)
sigmoid_then_bce = nn.BCELoss(reduction="none")(torch.sigmoid(demo_logits), demo_targets)
sigmoid_then_bce.sum().backward()
grad_sigmoid_bce = demo_logits.grad.flatten()

print("logits:                ", demo_logits.detach().flatten().tolist())
print("BCEWithLogitsLoss 损失:", [round(v, 4) for v in with_logits.detach().flatten().tolist()])
print("sigmoid + BCELoss 损失:", [round(v, 4) for v in sigmoid_then_bce.detach().flatten().tolist()])
print("BCEWithLogitsLoss 梯度:", [round(v, 4) for v in grad_with_logits.tolist()])
print("sigmoid + BCELoss 梯度:", [round(v, 4) for v in grad_sigmoid_bce.tolist()])
# 不四舍五入，直接看 logit 为 3 时两种写法差多少
loss_gap_at_3 = (with_logits[0] - sigmoid_then_bce[0]).abs().item()
grad_gap_at_3 = (grad_with_logits[0] - grad_sigmoid_bce[0]).abs().item()
print(f"logit 为 3 时两种写法之差：损失 {loss_gap_at_3:.1e}，梯度 {grad_gap_at_3:.1e}")
# --8<-- [end:loss_choice]

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
