"""第 10 章：常见问题——检查安装、调试 NaN、加速、形状错误、随机种子。"""

# --8<-- [start:install]
import platform
import time
import warnings

import torch
from torch import nn

print("PyTorch 版本:", torch.__version__)
print("Python 版本:", platform.python_version())
print("CUDA 可用:", torch.cuda.is_available())
# 做一次真正的张量运算，确认计算库能用
a = torch.arange(6, dtype=torch.float32).reshape(2, 3)
install_check = a @ a.T
print("a @ a.T =", install_check.tolist())
# --8<-- [end:install]

# --8<-- [start:nan_where]
x = torch.tensor([-1.0, 4.0], requires_grad=True)
# 想对负数返回 0、对正数开平方：前向结果完全正常
y = torch.where(x > 0, torch.sqrt(x), torch.zeros_like(x))
y.sum().backward()
print("前向结果:", y.tolist())
print("梯度:", x.grad.tolist())
# --8<-- [end:nan_where]

# --8<-- [start:anomaly]
anomaly_error = None
x = torch.tensor([-1.0, 4.0], requires_grad=True)
with torch.autograd.set_detect_anomaly(True), warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    y = torch.where(x > 0, torch.sqrt(x), torch.zeros_like(x))
    try:
        y.sum().backward()
    except RuntimeError as err:
        anomaly_error = err
print("捕获到的异常:", type(anomaly_error).__name__)
print("异常信息第一行:", str(anomaly_error).splitlines()[0])
# 异常模式同时发出一条警告，后面附有产生这个操作的前向代码位置
anomaly_warning = next(str(w.message) for w in caught if "Error detected" in str(w.message))
print("警告第一行:", anomaly_warning.splitlines()[0])
# --8<-- [end:anomaly]

# --8<-- [start:nan_fix]
x = torch.tensor([-1.0, 4.0], requires_grad=True)
# 先把不合法的输入换成安全值，再开平方：两条分支的梯度都有限
safe_x = torch.where(x > 0, x, torch.ones_like(x))
y = torch.where(x > 0, torch.sqrt(safe_x), torch.zeros_like(x))
y.sum().backward()
fixed_grad = x.grad.clone()
print("修正后的梯度:", fixed_grad.tolist())
# --8<-- [end:nan_fix]

# --8<-- [start:no_grad]
torch.manual_seed(0)
model = nn.Sequential(nn.Linear(100, 256), nn.ReLU(), nn.Linear(256, 10))
inputs = torch.randn(2000, 100)

out_tracked = model(inputs)
with torch.no_grad():
    out_inference = model(inputs)
print("默认：输出记录了计算图吗?", out_tracked.grad_fn is not None)
print("no_grad：输出记录了计算图吗?", out_inference.grad_fn is not None)
# --8<-- [end:no_grad]

# --8<-- [start:batching_timing]
with torch.no_grad():
    start = time.perf_counter()
    looped = torch.stack([model(row) for row in inputs])  # 一次送一个样本
    looped_seconds = time.perf_counter() - start

    start = time.perf_counter()
    batched = model(inputs)  # 一次送整批
    batched_seconds = time.perf_counter() - start

print("两种算法结果在 1e-5 的容差内一致:", torch.allclose(looped, batched, atol=1e-5))
print("逐位相同:", torch.equal(looped, batched), f"  最大差值: {(looped - batched).abs().max().item():.1e}")
print(f"本次测量：逐个样本 {looped_seconds * 1000:.1f} ms，整批 {batched_seconds * 1000:.1f} ms")
# --8<-- [end:batching_timing]

# --8<-- [start:shape]
layer = nn.Linear(10, 1)
wrong = torch.randn(10, 1)  # 10 个样本、每个 1 个特征？还是 1 个样本、10 个特征？
shape_error = None
try:
    layer(wrong)
except RuntimeError as err:
    shape_error = err
print("错误:", shape_error)
print("输入形状:", tuple(wrong.shape), " 层要求最后一维是:", layer.in_features)
right = torch.randn(4, 10)  # (样本数, 特征数)
print("改正后输出形状:", tuple(layer(right).shape))
# --8<-- [end:shape]

# --8<-- [start:seed]
torch.manual_seed(42)
first_draw = torch.randn(3)
torch.manual_seed(42)
second_draw = torch.randn(3)
third_draw = torch.randn(3)  # 没有重新设种子
print("同一个种子，两次结果相同:", torch.equal(first_draw, second_draw))
print("不重设种子，下一次结果相同:", torch.equal(second_draw, third_draw))
# --8<-- [end:seed]

# --8<-- [start:float_order]
a, b, c = torch.tensor([1e8, -1e8, 1.0])  # float32：1e8 附近相邻两个数相差 8
print("(a + b) + c =", ((a + b) + c).item())
print("a + (b + c) =", (a + (b + c)).item())  # b + c = -99999999 舍入回了 -1e8
# --8<-- [end:float_order]


# --8<-- [start:exercise_clamp]
def page_fix(x):
    safe_x = torch.where(x > 0, x, torch.ones_like(x))
    return torch.where(x > 0, torch.sqrt(safe_x), torch.zeros_like(x))


clamp_grads = {}
for name, f in [
    ("本页的修正", page_fix),
    ("sqrt(clamp(x, min=0))", lambda x: torch.sqrt(torch.clamp(x, min=0))),
    ("sqrt(relu(x))", lambda x: torch.sqrt(torch.relu(x))),
]:
    x = torch.tensor([-1.0, 0.0, 4.0], requires_grad=True)
    y = f(x)
    y.sum().backward()
    clamp_grads[name] = x.grad.tolist()
    print(f"{name}：前向 {y.tolist()}，x = -1、0、4 处的梯度 {x.grad.tolist()}")
# --8<-- [end:exercise_clamp]

# --8<-- [start:exercise_eval]
torch.manual_seed(0)
dropout_net = nn.Sequential(nn.Linear(8, 8), nn.Dropout(p=0.5))
probe = torch.ones(1, 8)
dropout_results = {}
for training in (True, False):
    dropout_net.train(training)  # train(False) 就是 eval()
    for use_no_grad in (False, True):
        with torch.set_grad_enabled(not use_no_grad):  # 参数为 False 时和 torch.no_grad() 一样
            first, second = dropout_net(probe), dropout_net(probe)
        same, graph = torch.equal(first, second), first.grad_fn is not None
        dropout_results[training, use_no_grad] = (same, graph)
        mode = "train()" if training else "eval()"
        print(
            f"{mode}，{'在' if use_no_grad else '不在'} no_grad 里：两次输出相同 {same}，记录了计算图 {graph}"
        )
# --8<-- [end:exercise_eval]

# --8<-- [start:exercise_shapes]
shape_results = {}
for shape in [(10,), (1, 10), (4, 3, 10), (10, 1)]:
    try:
        shape_results[shape] = tuple(layer(torch.randn(shape)).shape)
    except RuntimeError as err:
        shape_results[shape] = str(err)
    print(f"输入形状 {shape} -> {shape_results[shape]}")
# --8<-- [end:exercise_shapes]


# --8<-- [start:exercise_float]
def sum_both_ways(big, dtype):
    """和上面一样的三个数，只是换了大小和精度；返回相邻两个数的间隔和两种顺序的和。"""
    p, q, r = torch.tensor([big, -big, 1.0], dtype=dtype)
    gap = (torch.nextafter(p, 2 * p) - p).item()  # p 和比它大的下一个数相差多少
    return gap, ((p + q) + r).item(), (p + (q + r)).item()


float_results = {}
for dtype, big in [(torch.float32, 1e8), (torch.float64, 1e8), (torch.float64, 1e17)]:
    float_results[dtype, big] = gap, left, right = sum_both_ways(big, dtype)
    print(f"{dtype}，a = {big:.0e}：相邻两个数相差 {gap:.3g}，(a + b) + c = {left}，a + (b + c) = {right}")
print(
    f"torch.finfo 的 eps：float32 {torch.finfo(torch.float32).eps:.3g}，float64 {torch.finfo(torch.float64).eps:.3g}"
)
# --8<-- [end:exercise_float]
