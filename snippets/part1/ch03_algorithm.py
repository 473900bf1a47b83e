"""第 3 章：一个完整的训练流程（数据 → 模型 → 损失 → 优化器 → 训练 → 评估），以及 PyTorch 2 的 torch.compile 与 SDPA。"""

# --8<-- [start:data]
import torch

torch.manual_seed(0)

n_samples = 1000
# 正方形 [-1, 1]² 里均匀撒点；落在半径 0.8 的圆内记为 1，否则记为 0
X = torch.rand(n_samples, 2) * 2 - 1
radius = 0.8
y = (X.pow(2).sum(dim=1) < radius**2).float().unsqueeze(1)

# 打乱后切成训练集和测试集：测试集的点训练时一个也不看
perm = torch.randperm(n_samples)
n_train = 800
X_train, y_train = X[perm[:n_train]], y[perm[:n_train]]
X_test, y_test = X[perm[n_train:]], y[perm[n_train:]]

print("X_train 的形状:", tuple(X_train.shape), " y_train 的形状:", tuple(y_train.shape))
print("X_test 的形状:", tuple(X_test.shape), " y_test 的形状:", tuple(y_test.shape))
print(f"圆面积占正方形面积的比例: π × {radius}² / 4 = {torch.pi * radius**2 / 4:.3f}")
print(f"训练集中标签为 1（圆内）的比例: {y_train.mean().item():.3f}")
print(f"测试集中标签为 1（圆内）的比例: {y_test.mean().item():.3f}")
# --8<-- [end:data]

# --8<-- [start:plot_data]
import io
import warnings

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

plt.rcParams["svg.hashsalt"] = "hello-pytorch"
plt.rcParams["svg.fonttype"] = "none"
# SVG 里的中文是真正的文字，由浏览器用中文字体显示；matplotlib 自带字体缺中文字形的警告可以忽略
warnings.filterwarnings("ignore", message="Glyph .* missing from font")

fig, ax = plt.subplots(figsize=(4.2, 4.2))
inside = y_train.squeeze(1) == 1
ax.scatter(X_train[inside, 0], X_train[inside, 1], s=8, c="tab:orange", label="圆内（标签 1）")
ax.scatter(X_train[~inside, 0], X_train[~inside, 1], s=8, c="tab:blue", label="圆外（标签 0）")
ax.add_patch(plt.Circle((0, 0), radius, fill=False, color="black", linestyle="--"))
ax.set_aspect("equal")
ax.set_title("训练集：800 个点")
ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=2, fontsize=8)
buffer = io.StringIO()
fig.savefig(buffer, format="svg", metadata={"Date": None}, bbox_inches="tight")
plt.close(fig)
print(buffer.getvalue())
# --8<-- [end:plot_data]

# --8<-- [start:model]
from torch import nn


class CircleClassifier(nn.Module):
    """2 → 16 → 1 的多层感知机：输出一个 logit，正数表示“更像圆内”。"""

    def __init__(self, hidden: int = 16):
        super().__init__()
        self.hidden = nn.Linear(2, hidden)
        self.act = nn.ReLU()
        self.out = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.act(self.hidden(x)))


model = CircleClassifier()
print(model)
n_params = sum(p.numel() for p in model.parameters())
for name, p in model.named_parameters():
    print(f"{name:15s} 形状 {tuple(p.shape)}")
print("参数总数:", n_params)
# --8<-- [end:model]

# --8<-- [start:loss]
# BCEWithLogitsLoss 把 sigmoid 和二元交叉熵合在一起算，数值更稳定，所以模型直接输出 logits
loss_fn = nn.BCEWithLogitsLoss()

with torch.no_grad():
    initial_logits = model(X_train)
    initial_loss = loss_fn(initial_logits, y_train).item()
print(f"训练前 logits 的范围: [{initial_logits.min().item():.3f}, {initial_logits.max().item():.3f}]")
print(f"训练前，训练集上的损失: {initial_loss:.4f}")
print(f"作为对照，永远输出概率 0.5 时的损失 ln 2 = {torch.log(torch.tensor(2.0)).item():.4f}")
# --8<-- [end:loss]

# --8<-- [start:optimizer]
learning_rate = 0.01
optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
print("优化器:", type(optimizer).__name__, " 学习率:", optimizer.param_groups[0]["lr"])
print("它要更新的参数张量个数:", len(optimizer.param_groups[0]["params"]))
# --8<-- [end:optimizer]

# --8<-- [start:loader]
from torch.utils.data import DataLoader, TensorDataset

batch_size = 32
# DataLoader 每轮打乱一次顺序；给它一个固定种子的生成器，每次运行的小批量都一样
loader_generator = torch.Generator().manual_seed(0)
train_loader = DataLoader(
    TensorDataset(X_train, y_train), batch_size=batch_size, shuffle=True, generator=loader_generator
)
first_xb, first_yb = next(iter(train_loader))
print("每轮的小批量个数:", len(train_loader))
print("一个小批量的形状:", tuple(first_xb.shape), tuple(first_yb.shape))
# --8<-- [end:loader]

# --8<-- [start:train]
n_epochs = 30
train_losses = []  # 每轮的平均训练损失

for epoch in range(1, n_epochs + 1):
    model.train()
    total, count = 0.0, 0
    for xb, yb in train_loader:
        logits = model(xb)  # 1. 前向传播
        loss = loss_fn(logits, yb)  # 2. 计算损失
        loss.backward()  # 3. 反向传播：梯度累加到每个参数的 .grad
        optimizer.step()  # 4. 优化器按梯度更新参数
        optimizer.zero_grad()  # 5. 清空梯度，否则下一步会与这一步的梯度相加
        total += loss.item() * len(xb)
        count += len(xb)
    train_losses.append(total / count)
    if epoch == 1 or epoch % 5 == 0:
        print(f"第 {epoch:2d} 轮  平均训练损失 {train_losses[-1]:.4f}")
# --8<-- [end:train]

# --8<-- [start:evaluate]
model.eval()
with torch.no_grad():
    train_acc = ((model(X_train) > 0).float() == y_train).float().mean().item()
    test_logits = model(X_test)
    test_acc = ((test_logits > 0).float() == y_test).float().mean().item()

# 对照：不看输入、永远猜测试集里更多的那一类
majority_acc = max(y_test.mean().item(), 1 - y_test.mean().item())
print(f"训练集准确率: {train_acc:.3f}")
print(f"测试集准确率: {test_acc:.3f}")
print(f"永远猜多数类的测试集准确率: {majority_acc:.3f}")
# --8<-- [end:evaluate]

# --8<-- [start:plot_boundary]
grid = torch.linspace(-1, 1, 201)
gx, gy = torch.meshgrid(grid, grid, indexing="xy")
with torch.no_grad():
    prob = torch.sigmoid(model(torch.stack([gx.flatten(), gy.flatten()], dim=1))).reshape(gx.shape)

fig, ax = plt.subplots(figsize=(4.2, 4.2))
ax.contourf(gx, gy, prob, levels=[0, 0.5, 1], colors=["#c6dbef", "#fdd0a2"])
ax.contour(gx, gy, prob, levels=[0.5], colors="black", linewidths=1)
wrong = ((test_logits > 0).float() != y_test).squeeze(1)
test_inside = y_test.squeeze(1) == 1
ax.scatter(X_test[test_inside, 0], X_test[test_inside, 1], s=10, c="tab:orange", label="测试点：圆内")
ax.scatter(X_test[~test_inside, 0], X_test[~test_inside, 1], s=10, c="tab:blue", label="测试点：圆外")
ax.scatter(X_test[wrong, 0], X_test[wrong, 1], s=60, facecolors="none", edgecolors="red", label="分错的点")
ax.add_patch(plt.Circle((0, 0), radius, fill=False, color="gray", linestyle="--"))
ax.set_aspect("equal")
ax.set_title("模型的决策边界（黑线）与测试集")
ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=3, fontsize=8)
buffer = io.StringIO()
fig.savefig(buffer, format="svg", metadata={"Date": None}, bbox_inches="tight")
plt.close(fig)
print(buffer.getvalue())
# --8<-- [end:plot_boundary]

# --8<-- [start:summary]
n_wrong = int(wrong.sum().item())
print(
    f"训练 {n_epochs} 轮后，平均训练损失从第 1 轮的 **{train_losses[0]:.3f}** 降到第 {n_epochs} 轮的 "
    f"**{train_losses[-1]:.3f}**；模型在训练时没见过的 {len(X_test)} 个测试点上答对 "
    f"**{test_acc:.1%}**（分错 {n_wrong} 个），而永远猜多数类只能答对 **{majority_acc:.1%}**。"
)
# --8<-- [end:summary]

# --8<-- [start:compile]
import time

compiled_model = torch.compile(model)  # 默认后端就是 inductor


def seconds_per_call(fn, x, repeats=21):
    """调用 repeats 次，返回单次用时的中位数（秒）；中位数不怕偶尔一次被别的程序打断。"""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


with torch.no_grad():
    # 第一次调用：捕获计算图、生成并编译代码，所以特别慢
    first_call_seconds = seconds_per_call(compiled_model, X_test, repeats=1)
    compiled_logits = compiled_model(X_test)  # 之后的调用直接运行编译好的代码
    eager_logits = model(X_test)
    compiled_call_seconds = seconds_per_call(compiled_model, X_test)
    eager_call_seconds = seconds_per_call(model, X_test)

max_abs_diff = (compiled_logits - eager_logits).abs().max().item()
torch.testing.assert_close(compiled_logits, eager_logits)
print("编译后的模型类型:", type(compiled_model).__name__)
print("输出形状:", tuple(compiled_logits.shape))
print(f"编译版与 eager 版输出的最大绝对差: {max_abs_diff:.1e}")
print("torch.testing.assert_close 通过：两者在容差范围内一致")
# --8<-- [end:compile]

# --8<-- [start:compile_timing]
print(
    f"在构建本站的这台机器上（计时，每次构建都会不同）：第一次调用编译后的模型用了 "
    f"**{first_call_seconds:.1f} 秒**（捕获计算图、生成并编译 C++ 代码；本机缓存里已有编译结果时会快很多）。"
    f"之后的调用不再编译，单次用时的中位数：编译版 **{compiled_call_seconds * 1e6:.0f} 微秒**，"
    f"eager 版 **{eager_call_seconds * 1e6:.0f} 微秒**，"
    f"这一次编译版{'更慢' if compiled_call_seconds > eager_call_seconds else '更快'}。"
)
# --8<-- [end:compile_timing]

# --8<-- [start:sdpa]
import math

import torch.nn.functional as F

attn_generator = torch.Generator().manual_seed(0)
# 融合内核要求 4 维输入：(批大小, 注意力头数, 序列长度, 每个头的向量维度)
batch, heads, seq_len, d_k = 2, 2, 5, 8
Q = torch.randn(batch, heads, seq_len, d_k, generator=attn_generator)
K = torch.randn(batch, heads, seq_len, d_k, generator=attn_generator)
V = torch.randn(batch, heads, seq_len, d_k, generator=attn_generator)

# 手写：softmax(Q Kᵀ / √d) V
scores = Q @ K.transpose(-2, -1) / math.sqrt(d_k)
manual_attention = torch.softmax(scores, dim=-1) @ V
fused_attention = F.scaled_dot_product_attention(Q, K, V)
torch.testing.assert_close(fused_attention, manual_attention)
sdpa_max_abs_diff = (fused_attention - manual_attention).abs().max().item()

# 因果掩码（causal mask）：第 i 个位置只能看见第 0..i 个位置，语言模型生成文字时就这样用
future = torch.ones(seq_len, seq_len, dtype=torch.bool).triu(diagonal=1)
manual_causal = torch.softmax(scores.masked_fill(future, float("-inf")), dim=-1) @ V
fused_causal = F.scaled_dot_product_attention(Q, K, V, is_causal=True)
torch.testing.assert_close(fused_causal, manual_causal)
causal_max_abs_diff = (fused_causal - manual_causal).abs().max().item()

# 只允许 FlashAttention 式的融合内核再算一遍：和默认调用逐位相同，说明默认调用选的就是它
from torch.nn.attention import SDPBackend, sdpa_kernel

with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
    flash_only = F.scaled_dot_product_attention(Q, K, V)
default_is_flash = torch.equal(flash_only, fused_attention)

print("注意力输出的形状:", tuple(fused_attention.shape))
print(f"SDPA 与手写公式的最大绝对差: {sdpa_max_abs_diff:.1e}")
print(f"加因果掩码时的最大绝对差:     {causal_max_abs_diff:.1e}")
print("torch.testing.assert_close 两次都通过")
print("默认调用与只允许 FlashAttention 内核时的结果逐位相同:", default_is_flash)
# --8<-- [end:sdpa]


# --8<-- [start:exercise_lr]
def train_circle(hidden=16, lr=learning_rate, zero_grad=True, epochs=n_epochs, seed=0):
    """按 3.2 的六步重新训练一个圆内/圆外分类器，只换一个设置；返回每轮的平均训练损失和测试集准确率。"""
    torch.manual_seed(seed)
    net = CircleClassifier(hidden)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    loader = DataLoader(
        TensorDataset(X_train, y_train),
        batch_size=batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(seed),
    )
    losses = []
    for _ in range(epochs):
        net.train()
        total = 0.0
        for xb, yb in loader:
            loss = loss_fn(net(xb), yb)
            loss.backward()
            opt.step()
            if zero_grad:
                opt.zero_grad()
            total += loss.item() * len(xb)
        losses.append(total / len(X_train))
    net.eval()
    with torch.no_grad():
        accuracy = ((net(X_test) > 0).float() == y_test).float().mean().item()
    return losses, accuracy


baseline = train_circle()  # 3.2 的设置（学习率 0.01、16 个神经元）；下面每次只改一个设置，和它比
lr_results = {lr: train_circle(lr=lr) for lr in (0.001, 10.0)} | {learning_rate: baseline}
for lr in sorted(lr_results):
    losses, accuracy = lr_results[lr]
    print(
        f"学习率 {lr:<6g} 第 1 轮损失 {losses[0]:.3f}  第 {n_epochs} 轮损失 {losses[-1]:.3f}  测试集准确率 {accuracy:.3f}"
    )
# --8<-- [end:exercise_lr]

# --8<-- [start:exercise_zero_grad]
kept_losses, kept_acc = baseline
dropped_losses, dropped_acc = train_circle(zero_grad=False)
for epoch in (1, 10, 20, 30):
    print(
        f"第 {epoch:2d} 轮平均训练损失：清空梯度 {kept_losses[epoch - 1]:.3f}，"
        f"不清空 {dropped_losses[epoch - 1]:.3f}"
    )
print(f"测试集准确率：清空梯度 {kept_acc:.3f}，不清空 {dropped_acc:.3f}")
# --8<-- [end:exercise_zero_grad]

# --8<-- [start:exercise_hidden]
hidden_results = {hidden: train_circle(hidden=hidden) for hidden in (2, 64)} | {16: baseline}
for hidden in sorted(hidden_results):
    losses, accuracy = hidden_results[hidden]
    n = sum(p.numel() for p in CircleClassifier(hidden).parameters())
    print(
        f"隐藏层 {hidden:2d} 个神经元（{n:3d} 个参数）：最后一轮损失 {losses[-1]:.3f}，测试集准确率 {accuracy:.3f}"
    )
print(f"对照：永远猜多数类的测试集准确率 {majority_acc:.3f}")
# --8<-- [end:exercise_hidden]

# --8<-- [start:exercise_scores]
score_numels = {}
for long_len in (64, 128, 256, 512):
    # 批大小 1、1 个头、每个位置 8 维，只把序列变长
    q_long, k_long, v_long = (torch.randn(1, 1, long_len, 8, generator=attn_generator) for _ in range(3))
    long_scores = q_long @ k_long.transpose(-2, -1) / math.sqrt(q_long.shape[-1])
    score_numels[long_len] = long_scores.numel()
    long_manual = torch.softmax(long_scores, dim=-1) @ v_long
    long_fused = F.scaled_dot_product_attention(q_long, k_long, v_long)
    print(
        f"序列长度 {long_len:3d}：scores 的形状 {tuple(long_scores.shape)}，{long_scores.numel():>7,} 个数，"
        f"占 {long_scores.numel() * long_scores.element_size() / 1e6:.3f} MB；"
        f"与融合版一致: {torch.allclose(long_manual, long_fused, atol=1e-5)}"
    )
very_long = 32768
print(f"序列长度 {very_long}：scores 有 {very_long**2:,} 个数，float32 要 {very_long**2 * 4 / 1e9:.1f} GB")
# --8<-- [end:exercise_scores]
