"""第 10 章：安装检查、NaN 的异常检测、no_grad、批量与循环一致、形状错误、随机种子。"""

import pytest
import torch


def test_install_check(run_snippet):
    run = run_snippet("snippets/part1/ch10_faq.py")
    a = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    torch.testing.assert_close(run.ns["install_check"], a @ a.T)
    assert f"PyTorch 版本: {torch.__version__}" in run.stdout
    assert f"CUDA 可用: {torch.cuda.is_available()}" in run.stdout


def test_where_sqrt_gives_nan_gradient_and_fix_is_finite(run_snippet):
    ns = run_snippet("snippets/part1/ch10_faq.py").ns
    # 正数处的导数 1/(2*sqrt(4)) = 0.25，负数处修正后为 0
    torch.testing.assert_close(ns["fixed_grad"], torch.tensor([0.0, 0.25]))
    assert "梯度: [nan, 0.25]" in run_snippet("snippets/part1/ch10_faq.py").stdout


def test_anomaly_detection_names_the_backward_function(run_snippet):
    ns = run_snippet("snippets/part1/ch10_faq.py").ns
    err = ns["anomaly_error"]
    assert isinstance(err, RuntimeError), f"应捕获 RuntimeError，实际 {type(err)}"
    assert "SqrtBackward0" in str(err) and "nan" in str(err)
    assert "SqrtBackward0" in ns["anomaly_warning"]


def test_no_grad_builds_no_graph(run_snippet):
    ns = run_snippet("snippets/part1/ch10_faq.py").ns
    assert ns["out_tracked"].grad_fn is not None
    assert ns["out_inference"].grad_fn is None
    torch.testing.assert_close(ns["out_inference"], ns["out_tracked"].detach())


def test_batched_equals_looped(run_snippet):
    ns = run_snippet("snippets/part1/ch10_faq.py").ns
    assert ns["batched"].shape == (2000, 10), f"批量输出形状不对：{tuple(ns['batched'].shape)}"
    torch.testing.assert_close(ns["looped"], ns["batched"], atol=1e-5, rtol=1e-5)
    # 打印的“是否逐位相同”和最大差值来自这两个张量本身
    exact, gap = torch.equal(ns["looped"], ns["batched"]), (ns["looped"] - ns["batched"]).abs().max().item()
    assert f"逐位相同: {exact}   最大差值: {gap:.1e}" in run_snippet("snippets/part1/ch10_faq.py").stdout
    # 计时不断言具体数值，只断言页面的结论“整批明显更快”（这次约快 15 倍，留足余量）
    assert ns["looped_seconds"] > 2 * ns["batched_seconds"] > 0


def test_shape_error_is_the_articles_error(run_snippet):
    ns = run_snippet("snippets/part1/ch10_faq.py").ns
    assert isinstance(ns["shape_error"], RuntimeError)
    assert "mat1 and mat2 shapes cannot be multiplied (10x1 and 10x1)" in str(ns["shape_error"])
    with pytest.raises(RuntimeError, match="cannot be multiplied"):
        ns["layer"](torch.randn(10, 1))


def test_seeded_draws_are_identical(run_snippet):
    ns = run_snippet("snippets/part1/ch10_faq.py").ns
    assert torch.equal(ns["first_draw"], ns["second_draw"])
    assert not torch.equal(ns["second_draw"], ns["third_draw"])
    torch.manual_seed(42)
    assert torch.equal(torch.randn(3), ns["first_draw"])


def test_output_has_key_lines(run_snippet):
    out = run_snippet("snippets/part1/ch10_faq.py").stdout
    assert "异常信息第一行: Function 'SqrtBackward0' returned nan values in its 0th output." in out
    assert "两种算法结果在 1e-5 的容差内一致: True" in out
    assert "同一个种子，两次结果相同: True" in out


def test_float_addition_order_changes_the_result(run_snippet):
    ns = run_snippet("snippets/part1/ch10_faq.py").ns
    a, b, c = ns["a"], ns["b"], ns["c"]
    assert a.dtype == torch.float32
    assert ((a + b) + c).item() == 1.0
    assert (a + (b + c)).item() == 0.0, "float32 里 -1e8 + 1 应舍入回 -1e8"
    out = run_snippet("snippets/part1/ch10_faq.py").stdout
    assert "(a + b) + c = 1.0\na + (b + c) = 0.0" in out


def test_exercise_clamp_passes_an_infinite_gradient_at_zero(run_snippet):
    ns = run_snippet("snippets/part1/ch10_faq.py").ns
    grads = ns["clamp_grads"]
    assert grads["本页的修正"] == [0.0, 0.0, 0.25]
    assert grads["sqrt(relu(x))"] == [0.0, 0.0, 0.25]
    assert grads["sqrt(clamp(x, min=0))"] == [0.0, float("inf"), 0.25], (
        "只在边界 0 处不同：clamp 把 inf 传回来"
    )
    # 答案的解释：clamp 在 x >= 0 处原样传回梯度，relu 在 x <= 0 处给 0
    x = torch.tensor([0.0], requires_grad=True)
    torch.clamp(x, min=0).backward(torch.tensor([7.0]))
    assert x.grad.item() == 7.0
    x.grad = None
    torch.relu(x).backward(torch.tensor([7.0]))
    assert x.grad.item() == 0.0
    # 页面的 page_fix 就是本页的修正：与 nan_fix 一节的结果一致
    x = torch.tensor([-1.0, 4.0], requires_grad=True)
    ns["page_fix"](x).sum().backward()
    torch.testing.assert_close(x.grad, ns["fixed_grad"])


def test_exercise_eval_and_no_grad_do_different_things(run_snippet):
    ns = run_snippet("snippets/part1/ch10_faq.py").ns
    results = ns["dropout_results"]  # (训练模式?, 用 no_grad?) -> (两次输出相同?, 记录了计算图?)
    assert results[True, False] == (False, True)
    assert results[True, True] == (False, False), "no_grad 不改变 dropout 的行为"
    assert results[False, False] == (True, True), "eval 不关掉计算图的记录"
    assert results[False, True] == (True, False)
    # 评估模式下 dropout 什么也不做：输出等于前面那个线性层的输出
    net = ns["dropout_net"]
    net.eval()
    with torch.no_grad():
        torch.testing.assert_close(net(ns["probe"]), net[0](ns["probe"]), rtol=0, atol=0)


def test_exercise_linear_only_looks_at_the_last_dimension(run_snippet):
    ns = run_snippet("snippets/part1/ch10_faq.py").ns
    results = ns["shape_results"]
    assert results[(10,)] == (1,)
    assert results[(1, 10)] == (1, 1)
    assert results[(4, 3, 10)] == (4, 3, 1)
    assert "mat1 and mat2 shapes cannot be multiplied (10x1 and 10x1)" in results[(10, 1)]


def test_exercise_float64_only_moves_the_problem_further(run_snippet):
    ns = run_snippet("snippets/part1/ch10_faq.py").ns
    results = ns["float_results"]  # (dtype, 大小) -> (相邻两数之差, (a + b) + c, a + (b + c))
    assert results[torch.float32, 1e8] == (8.0, 1.0, 0.0), "和页面上 float32 的结果一致"
    gap, left, right = results[torch.float64, 1e8]
    assert left == right == 1.0 and gap == pytest.approx(2**-26)
    assert results[torch.float64, 1e17] == (16.0, 1.0, 0.0)
    # 答案说：x 附近相邻两个数相差在 eps·|x| 的一半到一倍之间
    for (dtype, big), (gap, _, _) in results.items():
        eps = torch.finfo(dtype).eps
        assert eps * big / 2 <= gap <= eps * big
