"""第 2 章：神经元、手推的反向传播、自动微分、梯度累加和 no_grad 的行为。"""

import itertools

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


def test_exercise_numerical_derivative_error_has_a_sweet_spot_in_float32(run_snippet):
    ns = run_snippet(SNIPPET).ns
    # 参照值与测试里独立算出的公式一致（权重是 float32 存下的 0.5、-0.3、0.8，按 float64 计算）
    z = torch.tensor([0.5, -0.3, 0.8]).double() @ torch.tensor([1.0, 2.0, -1.0]).double() + 0.1
    y = torch.sigmoid(z)
    assert abs(ns["exact_grad_b"] - (2 * (y - 1) * y * (1 - y)).item()) < 1e-15
    f32, f64 = ns["numeric_errors"][torch.float32], ns["numeric_errors"][torch.float64]
    steps = list(ns["step_sizes"])
    assert steps == sorted(steps, reverse=True) and steps[-1] == 1e-6
    # float64：误差随 h 一起缩小（表里还看不到舍入误差）
    assert all(b < a for a, b in itertools.pairwise(f64)), f"float64 的误差应随 h 缩小：{f64}"
    # float32：误差在 h = 1e-3 时最小，h 再小反而变大；最小的 h 上比最好的大 100 倍以上
    best = f32.index(min(f32))
    assert steps[best] == 1e-3, f"float32 的误差应在 h = 1e-3 时最小：{f32}"
    assert all(b > a for a, b in itertools.pairwise(f32[best:])), f"h 比 1e-3 小以后误差应越来越大：{f32}"
    assert f32[-1] > 100 * f32[best]
    # 自动微分比数值微分最好的结果还小几个数量级
    assert ns["autograd_error"] < min(f32) / 1000


def test_exercise_gradient_with_respect_to_the_input_is_dl_dz_times_w(run_snippet):
    ns = run_snippet(SNIPPET).ns
    grad = ns["x_input"].grad
    torch.testing.assert_close(grad, ns["dL_dz"] * torch.tensor([0.5, -0.3, 0.8]))
    assert (grad[0] < 0) and (grad[1] > 0) and (grad[2] < 0), f"答案说的符号是 (−, +, −)：{grad}"
    assert not ns["x"].requires_grad and ns["x"].grad is None, "页面上的 x 不受影响，仍不需要梯度"


def test_exercise_dividing_each_chunk_by_its_own_size_scales_the_gradient(run_snippet):
    ns = run_snippet(SNIPPET).ns
    whole = ns["whole_grad"]
    torch.testing.assert_close(ns["by_own_size"], 4 * whole)
    torch.testing.assert_close(ns["by_batch_size"], whole)
    # 整批的梯度与页面 2.3 在同样的参数上算出的相同（同一批数据、同样的平均方式）
    assert whole.abs().min() > 0, "每个分量都不为 0，比值才有意义"
    assert "除以 2 的结果 ÷ 整批的结果:  tensor([4.0000, 4.0000, 4.0000])" in run_snippet(SNIPPET).stdout


def test_exercise_autograd_records_only_the_branch_that_ran(run_snippet):
    run = run_snippet(SNIPPET)
    roots = run.ns["branch_roots"]
    assert roots == {(1.0, 2.0, -1.0): "SigmoidBackward0", (2.0, -1.0, 1.0): "ReluBackward0"}, roots
    assert "z = -0.8，记录下的计算图：\nSigmoidBackward0" in run.stdout
    assert "z = 2.2，记录下的计算图：\nReluBackward0" in run.stdout
