"""第二部分第 4 页：LoRA 初始时不改变模型、只训练 A 和 B、参数量等于公式、合并前后输出相等。"""

import torch

SNIPPET = "snippets/part2/ch04_lora.py"


def test_wrapped_model_equals_base_at_init(run_snippet):
    assert run_snippet(SNIPPET).ns["same_at_init"], "B 初始化为 0，刚包上 LoRA 的模型应与原模型输出相同"


def test_only_a_and_b_require_grad(run_snippet):
    ns = run_snippet(SNIPPET).ns
    names = [n for n, p in ns["model"].named_parameters() if p.requires_grad]
    assert names and all(n.endswith((".A", ".B")) for n in names), f"只有 A、B 应该需要梯度：{names}"
    assert len(names) == 2 * len(ns["wrapped_names"])


def test_trainable_count_equals_formula(run_snippet):
    ns = run_snippet(SNIPPET).ns
    r, model = ns["LORA_RANK"], ns["model"]
    expected = 0
    for name in ns["wrapped_names"]:
        layer = model.get_submodule(name).base
        expected += r * (layer.in_features + layer.out_features)
    assert ns["trainable"] == ns["formula_total"] == expected


def test_merged_equals_unmerged_after_training(run_snippet):
    ns = run_snippet(SNIPPET).ns
    x = ns["sub_val"][:, :-1]
    with torch.no_grad():
        torch.testing.assert_close(ns["merged"](x), ns["model"](x), rtol=1e-4, atol=1e-4)
    assert ns["same_predictions"]
    assert ns["merged_accuracy"] == ns["lora_accuracy"]
    assert ns["lora_accuracy"] > 0.8, f"LoRA 应学会减法：{ns['lora_accuracy']:.1%}"
    assert max(ns["update_ranks"].values()) <= ns["LORA_RANK"], "BA 的秩不能超过 r"


def test_rank_sweep_counts(run_snippet):
    sweep = run_snippet(SNIPPET).ns["sweep"]
    assert [sweep[r]["trainable"] for r in sorted(sweep)] == [r * 2048 for r in sorted(sweep)]
    assert sweep[max(sweep)]["new"] > sweep[1]["new"] + 0.1, "秩太小时能力受限：最大的秩应明显好于 r=1"


def test_printed_lines(run_snippet):
    out = run_snippet(SNIPPET).stdout
    assert "刚包上 LoRA 时，输出与原模型逐位相同: True" in out
    assert "相等: True" in out
    assert "合并后还剩下 LoRALinear 吗: False" in out


def test_same_result_as_the_lora_row_on_page_3(run_snippet):
    """同样的设置与随机种子：这一页训练的 LoRA 与第 3 页表格里的 LoRA 一行准确率相同（训练是确定的）。"""
    page3 = run_snippet("snippets/part2/ch03_finetune.py").ns["results"]["lora"]
    assert run_snippet(SNIPPET).ns["lora_accuracy"] == page3["new"]
