"""第二部分第 4 页：从零实现 LoRA，检查它的三条性质（初始时不改变模型、只训练 A 和 B、能合并回原权重），再试几个秩 r。"""

# --8<-- [start:wrap]
import copy

import torch
from _tinygpt import LORA_ALPHA, LORA_RANK, LORA_TARGETS, LoRALinear, apply_lora, load_or_train_pretrained

pretrained = load_or_train_pretrained()
base = pretrained.model
model = copy.deepcopy(base)
torch.manual_seed(0)
wrapped_names = apply_lora(model, LORA_TARGETS, r=LORA_RANK, alpha=LORA_ALPHA)
print("换成 LoRALinear 的层:", wrapped_names)
print(model.blocks[0].attn)
trainable_names = [name for name, p in model.named_parameters() if p.requires_grad]
print("需要梯度的参数（前 4 个）:", trainable_names[:4])
# --8<-- [end:wrap]

# --8<-- [start:init_equal]
from _tinygpt import subtraction_data

sub = subtraction_data()
add_val = pretrained.data.val
with torch.no_grad():
    same_at_init = torch.equal(model(add_val[:, :-1]), base(add_val[:, :-1]))
print("刚包上 LoRA 时，输出与原模型逐位相同:", same_at_init)
print("B 全是 0:", all(bool((m.B == 0).all()) for m in model.modules() if isinstance(m, LoRALinear)))
# --8<-- [end:init_equal]

# --8<-- [start:count]
from _tinygpt import count_parameters

formula_total = 0
for name in wrapped_names:
    layer = model.get_submodule(name)
    d_in, d_out = layer.base.in_features, layer.base.out_features
    n = LORA_RANK * (d_in + d_out)
    formula_total += n
    print(
        f"{name:<18} d_in={d_in:>3}  d_out={d_out:>3}  r·(d_in+d_out) = {n:>5,}   "
        f"原权重 d_out·d_in = {d_in * d_out:>6,}   LoRA 是它的 {n / (d_in * d_out):.1%}"
    )
trainable = count_parameters(model, trainable_only=True)
print(f"按公式合计 {formula_total:,}，实际可训练参数 {trainable:,}，相等: {formula_total == trainable}")
base_total = count_parameters(base)
print(f"只相当于原模型 {base_total:,} 个参数的 {trainable / base_total:.1%}")
# --8<-- [end:count]

# --8<-- [start:train]
from _tinygpt import SEEDS, accuracy, finetune_run, run_experiment

lr = run_experiment(["lora-r4"])["lora-r4"]["lr"]  # 第 3 页在验证集上为 LoRA 选出的学习率
run = finetune_run("lora-r4", lr, seed=SEEDS[0])  # 第 3 页已经训练过这一次，这里直接读取它的结果
model.load_state_dict(run["state_dict"])  # 上面包好的模型，起点（A 的随机初始化）与那次训练相同
model.eval()
lora_accuracy = accuracy(model, sub.test)
print(
    f"学习率 {lr:g}、种子 {SEEDS[0]}：LoRA 训练 {run['history'][-1]['step']} 步后，减法测试集准确率 {lora_accuracy:.1%}"
)
# 训练后 BA 不再是 0，但它的秩最多是 r
update_ranks = {
    name: int(torch.linalg.matrix_rank(model.get_submodule(name).B @ model.get_submodule(name).A))
    for name in wrapped_names
}
print("每层更新量 BA 的秩:", sorted(set(update_ranks.values())), "（不超过 r =", LORA_RANK, "）")
# --8<-- [end:train]

# --8<-- [start:merge]
from _tinygpt import GPT, PROMPT_LEN, greedy_answers, merge_lora

merged = merge_lora(copy.deepcopy(model))
with torch.no_grad():
    unmerged_logits, merged_logits = model(sub.test[:, :-1]), merged(sub.test[:, :-1])
merge_bitwise = torch.equal(merged_logits, unmerged_logits)
merge_max_diff = (merged_logits - unmerged_logits).abs().max().item()
print(
    f"合并前后 logits 逐位相同: {merge_bitwise}；最大差别 {merge_max_diff:.1e}"
    f"（logits 的绝对值最大是 {unmerged_logits.abs().max().item():.1f}）"
)
# 先乘后加和先加后乘，float32 的舍入不同：允许万分之一的相对误差加万分之一的绝对误差
torch.testing.assert_close(merged_logits, unmerged_logits, rtol=1e-4, atol=1e-4)
print("assert_close(rtol=1e-4, atol=1e-4) 通过")
same_predictions = torch.equal(
    greedy_answers(merged, sub.test[:, :PROMPT_LEN]), greedy_answers(model, sub.test[:, :PROMPT_LEN])
)
print("合并前后生成的答案逐字相同:", same_predictions)
print("合并后还剩下 LoRALinear 吗:", any(isinstance(m, LoRALinear) for m in merged.modules()))
print(f"合并后的参数量 {count_parameters(merged):,}，与原模型 {count_parameters(base):,} 相同")

plain = GPT(pretrained.config)  # 一个普通的 GPT，能直接装下合并后的权重
plain.load_state_dict(merged.state_dict())
merged_accuracy = accuracy(plain, sub.test)
print(f"装进普通 GPT 后的减法准确率 {merged_accuracy:.1%}（合并前 {lora_accuracy:.1%}）")
# --8<-- [end:merge]

# --8<-- [start:rank_sweep]
from _tinygpt import LR_GRID, spread

ranks = [1, LORA_RANK, 8]
print(f"每个秩都用 α/r = LORA_ALPHA / LORA_RANK = {LORA_ALPHA / LORA_RANK:g}")
sweep = run_experiment([f"lora-r{r}" for r in ranks])  # r = 4 的结果第 3 页已经算过，直接读取
accuracies = {}
for r in ranks:
    result = sweep[f"lora-r{r}"]
    accuracies[r] = [run["new_test"] for run in result["runs"]]
    tried = "，".join(f"{lr:g} → {acc:.1%}" for lr, acc in result["sweep"].items())
    print(
        f"r = {r}：可训练参数 {result['runs'][0]['trainable']:>6,}；种子 {SEEDS[0]} 的验证集准确率 {tried}，"
        f"选学习率 {result['lr']:g}；减法测试集准确率 {spread(accuracies[r])}"
    )
# --8<-- [end:rank_sweep]

# --8<-- [start:summary]
from _tinygpt import compare, mean

best = max(ranks, key=lambda r: mean(accuracies[r]))
print(
    f"每个秩都在同样的 {len(LR_GRID)} 个学习率里按验证集挑选，再跑 {len(SEEDS)} 个种子。"
    f"平均准确率最高的是 r = {best}，为 {spread(accuracies[best])}："
    + "；".join(f"比 r = {r} {compare(accuracies[best], accuracies[r])}" for r in ranks if r != best)
    + "。"
)
edges = [r for r in ranks if sweep[f"lora-r{r}"]["lr"] in (min(LR_GRID), max(LR_GRID))]
if edges:
    print(
        f"注意：r = {'、'.join(str(r) for r in edges)} 选中的学习率在候选的一端，"
        "候选之外的学习率也许更好，这些秩可能被低估了。"
    )
else:
    print("每个秩选中的学习率都不在候选的两端：比它大和比它小的学习率都试过。")
# --8<-- [end:summary]

# --8<-- [start:exercise_rank_one]
frozen_accuracy = accuracy(base, sub.test)  # 不微调：直接拿预训练模型做减法
scratch_tests = [
    run["new_test"] for run in run_experiment(["scratch"])["scratch"]["runs"]
]  # 第 3 页的从零训练
print(f"不微调的预训练模型：减法测试集准确率 {frozen_accuracy:.1%}")
print(f"r = 1 的 LoRA（{sweep['lora-r1']['runs'][0]['trainable']:,} 个可训练参数）：{spread(accuracies[1])}")
print(f"第 3 页的从零训练（{count_parameters(base):,} 个可训练参数）：{spread(scratch_tests)}")
print(
    f"r = 1 的每个种子都比不微调高: {min(accuracies[1]) > frozen_accuracy}；"
    f"和从零训练比：{compare(accuracies[1], scratch_tests)}"
)
# --8<-- [end:exercise_rank_one]

# --8<-- [start:exercise_zero_init]
import torch.nn.functional as F


def lora_gradients(zero_a: bool, steps: int = 3) -> list[tuple[float, float]]:
    """一个 LoRA 层，随便拟合一个目标，按梯度下降走几步；记下每一步 A 和 B 的梯度有多大。"""
    torch.manual_seed(0)
    layer = LoRALinear(torch.nn.Linear(64, 64), r=LORA_RANK, alpha=LORA_ALPHA)
    if zero_a:
        with torch.no_grad():
            layer.A.zero_()  # A 也初始化为 0
    inputs, target = torch.randn(32, 64), torch.randn(32, 64)
    norms = []
    for _ in range(steps):
        F.mse_loss(layer(inputs), target).backward()
        norms.append((layer.A.grad.norm().item(), layer.B.grad.norm().item()))
        with torch.no_grad():
            for p in (layer.A, layer.B):
                p -= 0.1 * p.grad  # 梯度下降的一步，学习率 0.1
                p.grad = None
    return norms


init_gradients = {zero_a: lora_gradients(zero_a) for zero_a in (False, True)}
for zero_a, norms in init_gradients.items():
    print("A 也是 0：" if zero_a else "A 随机、B 为 0（库里的做法）：")
    for step, (grad_a, grad_b) in enumerate(norms, start=1):
        print(f"  第 {step} 步  A 的梯度长度 {grad_a:.4f}   B 的梯度长度 {grad_b:.4f}")
# --8<-- [end:exercise_zero_init]

# --8<-- [start:exercise_unmerge]
# 从合并后的权重里减去 (α/r)·BA，想拆回原来的 W
unmerged = copy.deepcopy(merged)
with torch.no_grad():
    for name in wrapped_names:
        lora_layer = model.get_submodule(name)
        unmerged.get_submodule(name).weight -= (lora_layer.B @ lora_layer.A) * lora_layer.scaling
weight_gaps = {
    name: (unmerged.get_submodule(name).weight - base.get_submodule(name).weight).abs().max().item()
    for name in wrapped_names
}
bitwise_back = all(
    torch.equal(unmerged.get_submodule(name).weight, base.get_submodule(name).weight)
    for name in wrapped_names
)
print(f"拆回去的权重与原来的 W 逐位相同: {bitwise_back}；最大差别 {max(weight_gaps.values()):.1e}")
add_test = pretrained.data.test
same_addition = torch.equal(
    greedy_answers(unmerged, add_test[:, :PROMPT_LEN]), greedy_answers(base, add_test[:, :PROMPT_LEN])
)
print("在加法测试集上，拆回去的模型与预训练模型生成的答案逐字相同:", same_addition)
# --8<-- [end:exercise_unmerge]

# --8<-- [start:exercise_singular_values]
# 读回第 3 页那套规矩下训练的 r = 8（选中的学习率、种子 0），看每层改动量 ΔW = (α/r)·BA 的奇异值
from _tinygpt import finetuned_model

lora8 = finetuned_model("lora-r8", sweep["lora-r8"]["lr"], SEEDS[0])
energy4 = {}
for name in wrapped_names:
    layer = lora8.get_submodule(name)
    values = torch.linalg.svdvals(layer.scaling * layer.B @ layer.A)[:8]  # 秩不超过 8：后面的都只是舍入误差
    energy4[name] = ((values[:4] ** 2).sum() / (values**2).sum()).item()
    print(
        f"{name:<18} σ/σ₁ = {' '.join(f'{v:.2f}' for v in (values / values[0]).tolist())}"
        f"   前 4 个占平方和的 {energy4[name]:.0%}"
    )


def truncated(lora_model: torch.nn.Module, k: int) -> torch.nn.Module:
    """把每层的 ΔW 只留最大的 k 个奇异值（其余置 0），加进原来的权重，得到一个普通的 GPT。"""
    plain = copy.deepcopy(base)
    with torch.no_grad():
        for name in wrapped_names:
            layer = lora_model.get_submodule(name)
            U, S, Vh = torch.linalg.svd(layer.scaling * layer.B @ layer.A, full_matrices=False)
            plain.get_submodule(name).weight += U[:, :k] @ torch.diag(S[:k]) @ Vh[:k]
    return plain


truncated_accuracy = {k: accuracy(truncated(lora8, k), sub.test) for k in (2, 4)}
truncated_accuracy[8] = sweep["lora-r8"]["runs"][0]["new_test"]  # 全部保留：就是第 3 页那套规矩记下的成绩
for k, acc in truncated_accuracy.items():
    print(f"每层只留前 {k} 个方向：减法测试集准确率 {acc:.1%}")
# --8<-- [end:exercise_singular_values]
