"""第二部分第 3 页：四种做法在同样的步数和数据下比较；LoRA 训练少量参数就明显学会减法。"""

SNIPPET = "snippets/part2/ch03_finetune.py"


def test_pretrained_model_starts_near_zero_on_the_new_task(run_snippet):
    ns = run_snippet(SNIPPET).ns
    assert ns["start_sub_accuracy"] < 0.05, f"预训练模型在减法上应接近 0：{ns['start_sub_accuracy']:.1%}"
    assert ns["start_add_accuracy"] >= 0.99


def test_lora_trains_a_small_share_and_learns_the_new_task(run_snippet):
    results = run_snippet(SNIPPET).ns["results"]
    lora, scratch = results["lora"], results["scratch"]
    assert lora["share"] < 0.1, f"LoRA 应只训练一小部分参数：{lora['share']:.1%}"
    assert lora["new"] > 0.8, f"LoRA 应学会减法：{lora['new']:.1%}"
    assert lora["new"] > scratch["new"] + 0.5, "同样的步数，LoRA 应远好于从零训练"


def test_pretraining_helps_every_finetuning_variant(run_snippet):
    results = run_snippet(SNIPPET).ns["results"]
    for key in ("full", "last_block", "lora"):
        assert results[key]["new"] > results["scratch"]["new"] + 0.3, f"{key} 应明显好于从零训练"
    assert results["full"]["trainable"] == results["scratch"]["trainable"]
    assert results["lora"]["trainable"] < results["last_block"]["trainable"] < results["full"]["trainable"]


def test_training_on_new_data_only_forgets_and_lora_leaves_the_base_intact(run_snippet):
    ns = run_snippet(SNIPPET).ns
    for key, r in ns["results"].items():
        assert r["old"] < 0.1, f"{key}：只用减法数据训练后，加法准确率 {r['old']:.1%}，这页的结论说它几乎忘光"
    assert ns["base_unchanged"], "LoRA 不应改动被包住的原始权重"
    assert ns["unplugged_add_accuracy"] == ns["start_add_accuracy"], "拔掉 LoRA 后应回到预训练模型"


def test_printed_table(run_snippet):
    out = run_snippet(SNIPPET).stdout
    assert "| 做法 | 可训练参数 | 占全部参数 |" in out
    assert "(c) LoRA（r=4）" in out
    assert "计时（每次构建不同）" in out
