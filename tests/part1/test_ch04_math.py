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
