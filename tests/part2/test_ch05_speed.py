"""第二部分第 5 页：编译版与 eager 模式结果一致；bf16 自动混合精度的误差在声明的容差内；计时只检查合理性。"""

import math

import torch

SNIPPET = "snippets/part2/ch05_speed.py"


def test_compiled_step_matches_eager(run_snippet):
    ns = run_snippet(SNIPPET).ns
    torch.testing.assert_close(ns["compiled_logits"], ns["eager_logits"])
    assert ns["eager_grads"].keys() == ns["compiled_grads"].keys()
    for name, grad in ns["eager_grads"].items():
        torch.testing.assert_close(
            ns["compiled_grads"][name], grad, msg=f"编译版的梯度 {name} 与 eager 模式不同"
        )
    assert ns["compile_logits_diff"] < 1e-5 and ns["compile_grad_diff"] < 1e-5
    assert ns["compile_agrees"] is True
    # “逐位相同”只在 torch.equal 成立时才说
    bitwise = torch.equal(ns["compiled_logits"], ns["eager_logits"]) and all(
        torch.equal(ns["compiled_grads"][n], g) for n, g in ns["eager_grads"].items()
    )
    assert ns["compile_bitwise"] is bitwise


def test_eager_loss_is_near_uniform_guess(run_snippet):
    ns = run_snippet(SNIPPET).ns
    uniform = math.log(ns["config"].vocab_size)
    assert abs(ns["eager_loss"].item() - uniform) < 0.5, (
        f"新初始化模型的损失 {ns['eager_loss']:.3f} 离 ln V 太远"
    )


def test_every_parameter_gets_a_gradient(run_snippet):
    ns = run_snippet(SNIPPET).ns
    model = ns["model"]
    assert set(ns["eager_grads"]) == {name for name, _ in model.named_parameters()}
    assert all(g.abs().sum() > 0 for g in ns["eager_grads"].values()), "有参数的梯度全是 0"


def test_autocast_mixes_precisions(run_snippet):
    ns = run_snippet(SNIPPET).ns
    dtypes = ns["output_dtypes"]
    assert dtypes["blocks.0.attn.qkv"] == torch.bfloat16, "autocast 下线性层应输出 bf16"
    assert dtypes["head"] == torch.bfloat16
    assert dtypes["blocks.0.ln1"] == torch.float32, "LayerNorm 的输出应保持 fp32"
    assert dtypes["blocks.0"] == torch.float32, "残差流应保持 fp32"
    assert ns["bf16_logits"].dtype == torch.bfloat16
    assert ns["bf16_loss"].dtype == torch.float32
    # autocast 不改变参数本身的类型，梯度也是 fp32
    assert all(p.dtype == torch.float32 for p in ns["model"].parameters())
    assert all(g.dtype == torch.float32 for g in ns["bf16_grads"].values())


def test_bf16_error_is_small_but_not_zero(run_snippet):
    ns = run_snippet(SNIPPET).ns
    unit_roundoff = 2.0**-8
    error = ns["bf16_logits_error"]
    # 真的换了精度（误差不为 0），但误差只有单次舍入误差的几倍以内
    assert 0.1 * unit_roundoff < error < ns["BF16_TOLERANCE"], f"bf16 logits 的相对误差 {error}"
    assert ns["bf16_grad_error"] < ns["BF16_TOLERANCE"], f"bf16 梯度的相对误差 {ns['bf16_grad_error']}"
    assert ns["bf16_loss_diff"] < 0.01


def test_bf16_error_is_much_smaller_than_minibatch_noise(run_snippet):
    """页面说“小批量的随机抽样让梯度变来变去，比 bf16 的误差大得多”：量出来的确如此。"""
    ns = run_snippet(SNIPPET).ns
    assert ns["batch_change"] > 10 * ns["bf16_grad_error"], (ns["batch_change"], ns["bf16_grad_error"])
    assert not torch.equal(ns["x_other"], ns["x"]), "对照的小批量应与原来的不同"
    out = run_snippet(SNIPPET).stdout
    assert f"是前者的 {ns['batch_change'] / ns['bf16_grad_error']:.0f} 倍。" in out


def test_relative_error_helper(run_snippet):
    relative_error = run_snippet(SNIPPET).ns["relative_error"]
    # 能手算的例子：‖(0, 0.5)‖ / ‖(3, 4)‖ = 0.5 / 5 = 0.1
    exact = torch.tensor([3.0, 4.0])
    approx = torch.tensor([3.0, 4.5], dtype=torch.bfloat16)
    assert math.isclose(relative_error(approx, exact), 0.1, rel_tol=1e-6)


def test_timings_are_sane(run_snippet):
    ns = run_snippet(SNIPPET).ns
    # 只检查测量是否合理，不断言快慢：快慢取决于机器
    assert ns["compile_seconds"] > 0
    assert set(ns["step_ms"]) == {
        "eager 模式（fp32）",
        "eager 模式 + bf16 自动混合精度",
        "torch.compile（fp32）",
    }
    assert all(0 < ms < 10_000 for ms in ns["step_ms"].values())
    assert all(len(t) == 30 for t in ns["times_ms"].values())
    assert ns["quartiles"]([1, 2, 3, 4, 5, 6, 7]) == (2, 6)


def test_verdict_follows_the_spread(run_snippet):
    """结论只在中间一半轮次的用时比都在 1 的同一侧时才说快或慢。"""
    ns = run_snippet(SNIPPET).ns
    out = run_snippet(SNIPPET).stdout
    verdict = next(line for line in out.splitlines() if line.startswith("**本次构建的结论**"))
    for key, label in ((ns["compiled_name"], "torch.compile "), (ns["bf16_name"], "bf16 自动混合精度")):
        low, high = ns["quartiles"](ns["ratios"][key])
        if high < 1:
            expected = f"{label}每步快了"
        elif low > 1:
            expected = f"{label}每步反而慢了"
        else:
            expected = f"{label}和 eager 模式分不出快慢"
        assert expected in verdict, (expected, verdict)


def test_printed_output(run_snippet):
    out = run_snippet(SNIPPET).stdout
    assert "都小于 1e-05: True" in out
    assert "logits 和各个梯度的相对误差都小于 0.02: True" in out
    assert "blocks.0.attn.qkv  输出 torch.bfloat16" in out
    assert "计时（每次构建不同）" in out
    assert "**本次构建的结论**" in out


def test_fp16_ranges_printed_are_the_real_ones(run_snippet):
    out = run_snippet(SNIPPET).stdout
    assert "70000 存成 fp16: inf" in out and "1e-8  存成 fp16: 0.0" in out
    assert f"最大 {torch.finfo(torch.float16).max:<10.3g}" in out


def test_default_grad_scaler_disables_itself_without_cuda_and_the_cpu_one_is_on(run_snippet):
    ns = run_snippet(SNIPPET).ns
    if not torch.cuda.is_available():
        assert not ns["default_scaler"].is_enabled(), "没有 CUDA 时 GradScaler() 应关掉自己"
    assert ns["scaler"].is_enabled(), "GradScaler('cpu') 必须是启用的"


def test_overflowing_steps_are_skipped_and_halve_the_scale_then_training_proceeds(run_snippet):
    steps = run_snippet(SNIPPET).ns["scaler_steps"]
    skipped = [s for s in steps if not s[2]]
    assert 1 <= len(skipped) < len(steps), "应先有几步溢出被跳过，之后真的更新参数"
    first_update = next(i for i, s in enumerate(steps) if s[2])
    assert all(not s[2] for s in steps[:first_update]), "溢出只在开头、系数还太大的时候"
    for scale, _, updated, next_scale in steps:
        assert next_scale == (scale if updated else scale / 2), (
            "跳过：系数减半；更新了：系数不变（growth_interval 很大）"
        )
    losses = [loss for _, loss, _, _ in steps]
    assert len(set(losses[: first_update + 1])) == 1, "跳过的步没有改变参数，下一步的损失不变"
    assert losses[-1] < losses[first_update] - 0.1, "参数开始更新以后损失下降"


def test_fullgraph_refuses_a_graph_break_that_the_default_compiles_around(run_snippet):
    ns = run_snippet(SNIPPET).ns
    t = torch.arange(3.0)
    torch.testing.assert_close(ns["lenient"](t), ns["double_if_positive"](t))
    assert ns["fullgraph_error"] is not None, "fullgraph=True 遇到断图应当报错"
    assert issubclass(ns["fullgraph_error"], torch._dynamo.exc.Unsupported)
