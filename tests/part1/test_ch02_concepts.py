"""第 2 章：神经元、手推的反向传播、自动微分、梯度累加和 no_grad 的行为。"""

import torch

SNIPPET = "snippets/part1/ch02_concepts.py"


def test_linear_layer_is_the_same_neuron(run_snippet):
    ns = run_snippet(SNIPPET).ns
    assert tuple(ns["layer"].weight.shape) == (1, 3), (
        "nn.Linear(3, 1) 的权重形状应是 (输出数, 输入数) = (1, 3)"
    )
    torch.testing.assert_close(ns["y_layer"].squeeze(), torch.sigmoid(torch.tensor(-0.8)))
    # 页面说“结果完全相同”：与 torch.dot 写的神经元逐位相等
    by_dot = torch.sigmoid(torch.dot(torch.tensor([0.5, -0.3, 0.8]), ns["x"]) + torch.tensor(0.1))
    assert torch.equal(ns["y_layer"].squeeze(), by_dot)


def test_autograd_equals_the_derived_formula(run_snippet):
    ns = run_snippet(SNIPPET).ns
    # 测试里再按公式独立算一遍：∂L/∂w = 2(y−t)·y(1−y)·x，∂L/∂b = 2(y−t)·y(1−y)
    x = torch.tensor([1.0, 2.0, -1.0])
    w = torch.tensor([0.5, -0.3, 0.8])
    y = torch.sigmoid(w @ x + 0.1)
    expected_b = 2 * (y - 1.0) * y * (1 - y)
    torch.testing.assert_close(ns["autograd_grad_w"], expected_b * x)
    torch.testing.assert_close(ns["autograd_grad_b"], expected_b)
    # 页面说两列“逐项相同”：逐位相等，不只是在容差内
    assert torch.equal(ns["autograd_grad_w"], ns["analytic_grad_w"])
    assert torch.equal(ns["autograd_grad_b"], ns["analytic_grad_b"])


def test_gradients_accumulate_until_zeroed(run_snippet):
    ns = run_snippet(SNIPPET).ns
    first, second, third = ns["grads_seen"]
    assert abs(second - 2 * first) < 1e-6 and abs(third - 3 * first) < 1e-6, (
        f"梯度没有累加：{ns['grads_seen']}"
    )
    assert abs(ns["grad_after_zero"] - first) < 1e-6, "清零后 backward 应得到单次的梯度"
    torch.testing.assert_close(ns["accumulated_grad"], ns["full_batch_grad"])
    diff = (ns["accumulated_grad"] - ns["full_batch_grad"]).abs().max().item()
    assert diff == ns["accumulation_diff"] < 1e-6


def test_no_grad_and_inplace_update(run_snippet):
    ns = run_snippet(SNIPPET).ns
    assert not ns["y_eval"].requires_grad and ns["y_eval"].grad_fn is None
    assert isinstance(ns["inplace_error"], RuntimeError)
    assert ns["loss_after"] < ns["loss_before"], "一步梯度下降之后损失应下降"


def test_graph_and_output(run_snippet):
    out = run_snippet(SNIPPET).stdout
    assert "两者的最大差: 0.0e+00" in out
    assert "```mermaid" in out and "∂L/∂z = -0.295" in out
    for node in ("PowBackward0", "SigmoidBackward0", "DotBackward0", "AccumulateGrad（叶子 w）"):
        assert node in out, f"计算图里缺少 {node}"
    assert "optimizer.zero_grad() 之后 w.grad: None" in out
