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


def test_inductor_fuses_small_ops_and_leaves_matmul_and_attention_to_the_library(run_snippet):
    """页面说：残差的加法和 LayerNorm 融合进一个内核；4 个线性层交给 addmm；注意力是同一个融合注意力函数。"""
    ns = run_snippet(SNIPPET).ns
    kernels, calls = ns["cpp_kernels"], ns["library_calls"]
    assert kernels, "Inductor 在 CPU 上应生成 C++ 内核"
    assert all(name.startswith("cpp_fused_") for name in kernels), kernels
    assert any("add" in name and "layer_norm" in name for name in kernels), kernels
    linears = sum(isinstance(m, torch.nn.Linear) for m in ns["block"].modules())
    assert calls["extern_kernels.addmm"] == linears == 4, calls
    assert any("flash_attention" in name for name in calls), calls
    with torch.no_grad():
        torch.testing.assert_close(ns["block_out"], ns["block"](ns["h"]))


def test_explain_finds_the_graph_break(run_snippet):
    explanation = run_snippet(SNIPPET).ns["explanation"]
    assert explanation.graph_count == 2 and explanation.graph_break_count == 1
    assert "TensorVariable" in explanation.break_reasons[0].reason


def test_crossover_measures_each_size_once_and_reuses_the_page_model(run_snippet):
    ns = run_snippet(SNIPPET).ns
    rows = ns["crossover"]
    assert [row["width"] for row in rows] == list(ns["CROSSOVER_WIDTHS"])
    assert ns["config"].n_embd in ns["CROSSOVER_WIDTHS"]
    params = [row["params"] for row in rows]
    assert params == sorted(params) and len(set(params)) == len(params), params
    page_row = next(row for row in rows if row["width"] == ns["config"].n_embd)
    assert page_row["first_call"] == ns["compile_seconds"], "本页模型那一行应直接用 5.2 节的编译时间"
    assert page_row["params"] == ns["count_parameters"](ns["model"])
    for row in rows:
        low, high = row["ratio_quartiles"]
        assert low <= row["ratio"] <= high and row["first_call"] > 0 and row["eager_ms"] > 0


def _row(width, ratio, low, high, eager_ms=10.0, first_call=20.0):
    return {
        "width": width,
        "params": width * 100,
        "eager_ms": eager_ms,
        "compiled_ms": eager_ms * ratio,
        "ratio": ratio,
        "ratio_quartiles": (low, high),
        "first_call": first_call,
        "cache_hits": 0,
    }


def test_crossover_conclusion_says_only_what_the_numbers_support(run_snippet):
    ns = run_snippet(SNIPPET).ns
    conclude = ns["crossover_conclusion"]
    small_wins = [_row(16, 0.8, 0.7, 0.9), _row(64, 0.97, 0.9, 1.05), _row(256, 1.1, 1.05, 1.2)]
    text = conclude(small_wins)
    assert "d = 16（1,600 个参数）时编译版每步快了约 20%" in text
    assert "d = 64（6,400 个参数）时编译版每步和 eager 模式分不出快慢" in text
    assert "d = 256（25,600 个参数）时编译版每步慢了，用时是 eager 模式的 1.10 倍" in text
    assert "交叉点在 d = 16 和 d = 64 之间：只有更小的模型编译版确定地更快" in text
    assert "模型越大，用时比越大" in text
    # 20 秒 ÷ 每步省下的 2 毫秒 = 10,000 步；没变快的大小不算
    assert "d = 16 约 10,000 步。" in text and "d = 64 约" not in text
    large_wins = [_row(16, 1.2, 1.1, 1.3), _row(64, 0.9, 0.85, 0.95), _row(256, 0.8, 0.7, 0.9)]
    text = conclude(large_wins)
    assert "只有更大的模型编译版确定地更快" in text and "模型越大，用时比越小" in text
    none = [_row(16, 1.0, 0.9, 1.1), _row(64, 0.9, 0.8, 1.01), _row(256, 1.05, 0.99, 1.1)]
    text = conclude(none)
    assert "没有哪种大小编译版确定地更快" in text and "没有随模型大小单调变化" in text
    assert "第一次调用所花的时间都挣不回来" in text
    assert "没有交叉点" in conclude([_row(16, 0.8, 0.7, 0.9), _row(64, 0.9, 0.8, 0.95)])
    mixed = [_row(16, 0.8, 0.7, 0.9), _row(64, 1.0, 0.9, 1.1), _row(256, 0.8, 0.7, 0.9)]
    assert "快慢交错" in conclude(mixed)


def test_the_printed_crossover_conclusion_is_the_one_computed_from_this_run(run_snippet):
    run = run_snippet(SNIPPET)
    assert run.ns["crossover_conclusion"](run.ns["crossover"]) in run.stdout
    assert run.stdout.count("<svg") >= 1 and "编译版用时 ÷ eager 用时" in run.stdout


# ---------- 5.8 练习 ----------


def test_exercise_a_disabled_scaler_lets_everything_through_and_the_cpu_one_skips(run_snippet):
    """练习 1 的答案：关掉的 GradScaler 原样返回损失、系数总是 1、遇到 inf 梯度照样更新参数；GradScaler("cpu") 跳过。"""
    ns = run_snippet(SNIPPET).ns
    if torch.cuda.is_available():
        return  # 有 CUDA 时 GradScaler() 是开着的，这道题说的是没有 CUDA 的机器
    disabled = ns["default_scaler"]
    loss = torch.tensor(2.5)
    assert disabled.scale(loss) is loss and disabled.get_scale() == 1.0

    def step_with_inf_gradient(scaler):
        weight = torch.nn.Parameter(torch.zeros(2))
        optimizer = torch.optim.SGD([weight], lr=0.1)
        scaler.scale(loss)  # 开着的 scaler 在第一次 scale 时才建好缩放系数
        weight.grad = torch.tensor([float("inf"), 1.0])
        scaler.step(optimizer)
        return weight.detach()

    assert not step_with_inf_gradient(disabled).isfinite().all(), "关掉的 scaler 把 inf 直接写进了参数"
    assert torch.equal(step_with_inf_gradient(torch.amp.GradScaler("cpu")), torch.zeros(2)), (
        "开着的跳过这一步"
    )


def test_exercise_bf16_eps_is_the_spacing_and_rounding_loses_at_most_half_of_it(run_snippet):
    run = run_snippet(SNIPPET)
    ns, out = run.ns, run.stdout
    assert ns["eps"] == 2.0**-7
    assert "1 + 0.001  存成 bf16: 1.0\n" in out and "1 + 0.0039 存成 bf16: 1.0\n" in out
    assert "1 + 0.004  存成 bf16: 1.0078125\n" in out, "越过中点 1 + 2^-8，舍入到下一个 bf16 数"
    # 最大相对误差不超过 2^-8，而且几乎达到答案推出的上界 2^-8 / (1 + 2^-8)
    bound = 2.0**-8 / (1 + 2.0**-8)
    assert ns["rounding_error"] <= bound and math.isclose(ns["rounding_error"], bound, rel_tol=1e-3)
    assert f"{bound:.6f}" in out


def test_exercise_autocast_rules_on_small_tensors(run_snippet):
    dtypes = run_snippet(SNIPPET).ns["rule_dtypes"]
    bf16, fp32 = torch.bfloat16, torch.float32
    assert dtypes == {
        "a @ b": bf16,  # bf16 的清单
        "torch.relu(a)": fp32,  # 不在清单上：跟着输入
        "torch.relu(a @ b)": bf16,
        "(a @ b) + a": fp32,  # 类型提升：残差连接
        "(a @ b).softmax(-1)": bf16,  # CPU 上不在 fp32 的清单上
        "F.cross_entropy(a @ b, labels)": fp32,  # fp32 的清单
    }


def test_exercise_small_growth_interval_skips_one_step_in_four(run_snippet):
    run = run_snippet(SNIPPET)
    steps, out = run.ns["growth_steps"], run.stdout
    fp16_max = torch.finfo(torch.float16).max
    assert all(updated == (scale <= fp16_max) for scale, updated, _ in steps), (
        "梯度就是 s：s 超过 65504 才溢出"
    )
    streak = 0
    for scale, updated, next_scale in steps:
        streak = streak + 1 if updated else 0
        expected = scale * 2 if streak == 3 else scale if updated else scale / 2
        assert next_scale == expected, "跳过减半；连续 3 步正常就翻倍"
        streak %= 3
    skipped = [i + 1 for i, (_, updated, _) in enumerate(steps) if not updated]
    assert skipped == [1, 2, 3, 7, 11], "先降到 2^15，之后每 4 步跳过 1 步"
    assert out.count("更新了参数（除回系数后的梯度 1）") == len(steps) - len(skipped)


def test_exercise_compiled_model_reads_the_current_parameters_without_recompiling(run_snippet):
    ns = run_snippet(SNIPPET).ns
    assert ns["recompiled_graphs"] == 0
    assert torch.equal(ns["logits_doubled"], 2 * ns["logits_before"])
    assert torch.equal(ns["logits_restored"], ns["logits_before"])
    # 答案说“ln_f 的偏置是 0、输出层没有偏置”，所以乘 2 正好传到 logits
    assert not ns["model"].ln_f.bias.any() and ns["model"].head.bias is None
    torch.testing.assert_close(ns["logits_before"], ns["eager_logits"])
