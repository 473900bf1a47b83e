"""第 9 章：估算训练大模型的算力；再看一个小网络如何把随机标签“背”下来。"""

# --8<-- [start:compute]
import torch
from torch import nn

# 训练计算量的常用估算：每个参数、每个训练词元（token）约 6 次浮点运算
# （前向传播约 2 次，反向传播约 4 次）


def train_flops(n_params: float, n_tokens: float) -> float:
    return 6 * n_params * n_tokens


# 参数量和训练词元数来自 GPT-3 与 Llama 2 的论文
runs = {
    "GPT-3 175B": (175e9, 300e9),
    "LLaMA 2 70B": (70e9, 2e12),
}
# 假设：A100 的 bf16 峰值 312 TFLOP/s，实际只用上 40%
gpu_flops_per_s = 312e12 * 0.4
gpu_days = {}
for name, (n_params, n_tokens) in runs.items():
    flops = train_flops(n_params, n_tokens)
    gpu_days[name] = flops / gpu_flops_per_s / 86400
    print(
        f"{name}：{n_tokens / 1e9:,.0f}B 个词元，约 {flops:.2e} 次浮点运算，"
        f"约 {gpu_days[name]:,.0f} 个 GPU·天（1024 张卡约 {gpu_days[name] / 1024:.0f} 天）"
    )

# Chinchilla 的经验法则：算力最优时，训练词元数约为参数量的 20 倍
chinchilla_tokens_70b = 20 * 70e9
print(f"按“每个参数约 20 个词元”，70B 模型算力最优的训练量约 {chinchilla_tokens_70b / 1e12:.1f}T 个词元")
# --8<-- [end:compute]

# --8<-- [start:memorize]
torch.manual_seed(0)
# 输入和标签都是随机的：两者之间没有任何规律可学
X_train, y_train = torch.randn(200, 20), torch.randint(0, 2, (200,)).float()
X_test, y_test = torch.randn(1000, 20), torch.randint(0, 2, (1000,)).float()

net = nn.Sequential(nn.Linear(20, 256), nn.ReLU(), nn.Linear(256, 1))
optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
loss_fn = nn.BCEWithLogitsLoss()
for _ in range(300):
    optimizer.zero_grad()
    loss = loss_fn(net(X_train).squeeze(1), y_train)
    loss.backward()
    optimizer.step()


def accuracy(X, y):
    with torch.no_grad():
        return ((net(X).squeeze(1) > 0).float() == y).float().mean().item()


memorize_train_acc = accuracy(X_train, y_train)
memorize_test_acc = accuracy(X_test, y_test)
print(f"参数个数: {sum(p.numel() for p in net.parameters()):,}，训练样本: {len(X_train)}")
print(f"训练集准确率: {memorize_train_acc:.1%}")
print(f"测试集准确率: {memorize_test_acc:.1%}（随机猜约 50%）")
# --8<-- [end:memorize]

# --8<-- [start:memorize_summary]
print(
    f"这个网络在训练集上的准确率是 **{memorize_train_acc:.1%}**，"
    f"在 {len(X_test)} 个没见过的样本上是 **{memorize_test_acc:.1%}**，而随机猜是 50% 左右。"
)
# --8<-- [end:memorize_summary]

# --8<-- [start:exercise_chinchilla]
import math

gpt3_compute = train_flops(*runs["GPT-3 175B"])
# C = 6·N·D 且 D = 20·N，所以 C = 120·N²
optimal_params = math.sqrt(gpt3_compute / 120)
optimal_tokens = 20 * optimal_params
print(f"GPT-3 的算力：约 {gpt3_compute:.2e} 次浮点运算；它每个参数只训练了 {300e9 / 175e9:.1f} 个词元")
print(
    f"按 Chinchilla 的配比花同样的算力：约 {optimal_params / 1e9:.0f}B 个参数，{optimal_tokens / 1e12:.2f}T 个词元"
)
print(f"核对：6ND = {train_flops(optimal_params, optimal_tokens):.2e}")
# --8<-- [end:exercise_chinchilla]


# --8<-- [start:exercise_rule]
def train_and_evaluate(X, y, X_eval, y_eval, seed=0):
    """用和上面完全相同的网络和训练（Adam、学习率 0.01、300 步）训练，返回训练集和测试集上的准确率。"""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(20, 256), nn.ReLU(), nn.Linear(256, 1))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(300):
        opt.zero_grad()
        loss_fn(model(X).squeeze(1), y).backward()
        opt.step()
    with torch.no_grad():
        train_acc = ((model(X).squeeze(1) > 0).float() == y).float().mean().item()
        eval_acc = ((model(X_eval).squeeze(1) > 0).float() == y_eval).float().mean().item()
    return train_acc, eval_acc


# 同样的输入，只把标签换成有规律的：第一个特征大于 0 就是 1
rule_y_train, rule_y_test = (X_train[:, 0] > 0).float(), (X_test[:, 0] > 0).float()
rule_train_acc, rule_test_acc = train_and_evaluate(X_train, rule_y_train, X_test, rule_y_test)
print(f"有规律的标签：训练集准确率 {rule_train_acc:.1%}，测试集准确率 {rule_test_acc:.1%}")
print(f"随机的标签：  训练集准确率 {memorize_train_acc:.1%}，测试集准确率 {memorize_test_acc:.1%}")
# --8<-- [end:exercise_rule]

# --8<-- [start:exercise_more_data]
torch.manual_seed(1)
X_more = torch.randn(1000, 20)  # 训练样本从 200 个增加到 1000 个，测试集不变
more_train_acc, more_test_acc = train_and_evaluate(X_more, (X_more[:, 0] > 0).float(), X_test, rule_y_test)
print(
    f"有规律的标签，训练样本 {len(X_more)} 个：训练集准确率 {more_train_acc:.1%}，测试集准确率 {more_test_acc:.1%}"
)
# --8<-- [end:exercise_more_data]
