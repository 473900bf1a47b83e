"""第 4 章：公式与 PyTorch 的实现一致；激活函数的导数；BCEWithLogits 的数值稳定性；梯度下降。"""

import itertools
import math

import torch

SNIPPET = "snippets/part1/ch04_math.py"


def test_linear_layer_is_wx_plus_b(run_snippet):
    ns = run_snippet(SNIPPET).ns
    layer, X = ns["layer"], ns["X"]
    assert tuple(ns["by_layer"].shape) == (4, 2), f"输出形状应为 (4, 2)，实际 {tuple(ns['by_layer'].shape)}"
    torch.testing.assert_close(ns["by_layer"], X @ layer.weight.T + layer.bias)
    # 页面说 nn.Linear 与手写公式“完全一样”：逐位相等
    assert torch.equal(ns["by_layer"], ns["by_formula"])
    torch.testing.assert_close(ns["stacked"], ns["merged"])


def test_autograd_derivatives_match_formulas(run_snippet):
    ns = run_snippet(SNIPPET).ns
    xs, d = ns["xs"], ns["derivatives"]
    s, th = torch.sigmoid(xs), torch.tanh(xs)
    torch.testing.assert_close(d["sigmoid"], s * (1 - s))
    torch.testing.assert_close(d["tanh"], 1 - th**2)
    away = xs != 0  # ReLU 在 0 处不可导，只比较 0 以外的点
    torch.testing.assert_close(d["ReLU"][away], (xs[away] > 0).float())
    assert d["ReLU"][xs == 0].item() == 0.0, "PyTorch 在 0 处取 ReLU 的导数为 0"


def test_losses_match_formulas(run_snippet):
    ns = run_snippet(SNIPPET).ns
    assert math.isclose(ns["mse_torch"].item(), 0.375, rel_tol=1e-6)
    torch.testing.assert_close(ns["bce_torch"], ns["bce_formula"])
    torch.testing.assert_close(ns["bce_logits_torch"], ns["bce_formula"])
    torch.testing.assert_close(ns["bce_logits_torch"], ns["logits_formula"])
    # 页面说：四种写法打印到小数点后 6 位都相同
    printed = {
        f"{ns[k].item():.6f}" for k in ("bce_formula", "bce_torch", "logits_formula", "bce_logits_torch")
    }
    assert len(printed) == 1, printed


def test_bce_with_logits_is_stable(run_snippet):
    ns = run_snippet(SNIPPET).ns
    z, t = ns["big_z"].detach(), ns["big_t"]
    exact = torch.log1p(torch.exp(-z.double().abs())) + z.double().clamp(min=0) - t.double() * z.double()
    with_logits = ns["with_logits"].detach()
    assert torch.isfinite(with_logits).all() and torch.isfinite(ns["grad_logits"]).all()
    torch.testing.assert_close(with_logits.double(), exact)
    assert torch.equal(ns["grad_logits"], torch.sigmoid(z) - t), "页面说梯度都等于 σ(z) − t"
    assert ns["stuck_at"] == [100.0], f"算错的损失应都停在 100，实际 {ns['stuck_at']}"
    # sigmoid + BCELoss 在 |z| 大时饱和：损失被钳在 100，梯度消失
    via_sigmoid = ns["via_sigmoid"].detach()
    assert via_sigmoid[0].item() == 100.0 and exact[0].item() == 200.0
    assert via_sigmoid[-1].item() == 100.0 and ns["grad_sigmoid"][-1].item() == 0.0
    assert math.isinf(ns["naive"][-1].item()), "直接照公式写 log(1+e^z) 在 z=200 时应溢出"


def test_gradient_descent_reduces_loss(run_snippet):
    losses = run_snippet(SNIPPET).ns["descent_losses"]
    assert losses[-1] < 0.05 * losses[0], f"梯度下降没有让损失明显下降：{losses[0]:.4f} -> {losses[-1]:.4f}"
    assert all(a > b for a, b in itertools.pairwise(losses)), "这个例子里每一步损失都应下降"
    # 页面说：开头降得快，越接近目标降得越慢
    drops = [a - b for a, b in itertools.pairwise(losses)]
    assert all(a > b for a, b in itertools.pairwise(drops)), f"每一步的降幅应越来越小：{drops}"


def test_output(run_snippet):
    out = run_snippet(SNIPPET).stdout
    assert "nn.Linear 与公式的最大差: 0.0e+00" in out
    assert "<svg" in out and "</svg>" in out
    assert "有 **3** 个损失算错" in out


def test_exercise_gradient_vanishes_through_ten_sigmoids_but_not_through_relu(run_snippet):
    ns = run_snippet(SNIPPET).ns
    grads = {name: g.item() for name, g in ns["chain_grads"].items()}
    assert grads["ReLU"] == 1.0, "ReLU 在正半轴上导数恒为 1，连用 10 次仍是 1"
    assert grads["sigmoid"] < 0.25**10, "sigmoid 每层的导数不超过 0.25，乘积不超过 0.25^10"
    assert grads["sigmoid"] < grads["tanh"] < 0.1, f"tanh 衰减得比 sigmoid 慢得多，但仍小于 1：{grads}"
    # 独立再算一遍：导数就是各层局部导数的乘积；tanh 每层的导数都比 sigmoid 每层的大得多
    local = {}
    for name, fn, deriv in (
        ("sigmoid", torch.sigmoid, lambda h: torch.sigmoid(h) * (1 - torch.sigmoid(h))),
        ("tanh", torch.tanh, lambda h: 1 - torch.tanh(h) ** 2),
    ):
        h, factors = torch.tensor(1.0), []
        for _ in range(10):
            factors.append(deriv(h).item())
            h = fn(h)
        local[name] = factors
        assert math.isclose(math.prod(factors), grads[name], rel_tol=1e-4)
    assert min(local["tanh"]) > 1.5 * max(local["sigmoid"])
    assert max(local["tanh"]) < 1


def test_exercise_learning_rate_slow_exact_oscillating_divergent(run_snippet):
    paths = run_snippet(SNIPPET).ns["parabola_paths"]
    for lr, path in paths.items():
        expected = [(1 - 2 * lr) ** k for k in range(1, 21)]
        assert all(
            math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-7) for a, b in zip(path, expected, strict=True)
        )
    slow, exact, bouncing, divergent = paths[0.1], paths[0.5], paths[0.9], paths[1.1]
    assert all(a > b > 0 for a, b in itertools.pairwise(slow)), "η = 0.1：始终在同一侧，稳稳变小"
    assert slow[-1] > 0.01, "η = 0.1：20 步后还没到谷底"
    assert all(v == 0.0 for v in exact), "η = 0.5：一步落进谷底"
    assert all(a * b < 0 and abs(b) < abs(a) for a, b in itertools.pairwise(bouncing)), (
        "η = 0.9：来回跳，幅度变小"
    )
    assert math.isclose(abs(bouncing[-1]), slow[-1], rel_tol=1e-4), "20 步后和 η = 0.1 离谷底一样近"
    assert all(a * b < 0 and abs(b) > abs(a) for a, b in itertools.pairwise(divergent)), "η = 1.1：越跳越远"
    assert divergent[-1] > 30


def test_exercise_float64_fixes_only_the_rounding_not_the_clamps(run_snippet):
    ns = run_snippet(SNIPPET).ns
    z, loss64, grad64 = ns["big_z"].detach(), ns["via_sigmoid64"].detach(), ns["grad_sigmoid64"]
    exact = ns["exact"]
    # 只有 z = 30 的损失变对了；z = ±200 仍被截断在 100
    assert ns["loss_wrong64"].tolist() == [True, False, False, False, False, True]
    assert ns["via_sigmoid"][4].item() == 100.0 and abs(loss64[4].item() - exact[4].item()) < 0.01
    assert loss64[0].item() == loss64[-1].item() == 100.0
    assert torch.sigmoid(torch.tensor(200.0, dtype=torch.float64)).item() == 1.0
    assert torch.sigmoid(torch.tensor(-200.0, dtype=torch.float64)).item() > 0
    # 4 个梯度仍错：z = ±30 被 1e-12 的分母截断，z = ±200 饱和
    assert ns["grad_wrong64"].tolist() == [True, True, False, False, True, True]
    p30 = torch.sigmoid(torch.tensor(30.0, dtype=torch.float64))
    assert (p30 * (1 - p30)).item() < 1e-12
    assert abs(grad64[1].item()) < 0.1 and abs(grad64[4].item()) < 0.1 and grad64[-1].item() == 0.0
    torch.testing.assert_close(ns["correct_grad"], torch.sigmoid(z.double()) - ns["big_t"].double())
    assert (
        "float64 下损失算错 2 个（float32 是 3 个），梯度算错 4 个（float32 是 4 个）"
        in run_snippet(SNIPPET).stdout
    )


def test_exercise_squared_error_gradient_vanishes_when_badly_wrong_but_bce_does_not(run_snippet):
    ns = run_snippet(SNIPPET).ns
    z, g_mse, g_bce = ns["probe_z"].detach(), ns["grad_mse"], ns["grad_bce"]
    s = torch.sigmoid(z)
    torch.testing.assert_close(g_mse, 2 * (s - 1) * s * (1 - s))
    torch.testing.assert_close(g_bce, s - 1)
    # 从 z = -0.5 往左（错得越来越离谱）：平方误差的梯度越来越小，BCE 的越来越接近 -1
    left = [i for i, v in enumerate(z.tolist()) if v <= -0.5][::-1]  # z = -0.5, -2, -5, -10
    assert all(abs(g_mse[b]) < abs(g_mse[a]) for a, b in itertools.pairwise(left))
    assert all(abs(g_bce[b]) > abs(g_bce[a]) for a, b in itertools.pairwise(left))
    assert abs(g_mse[0].item()) < 1e-4 and g_bce[0].item() < -0.9999
    assert "-9.08e-05" in run_snippet(SNIPPET).stdout
