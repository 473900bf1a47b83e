"""第二部分第 3 页：把预训练好的加法模型微调到减法上，公平地比较四种做法：同样的调参机会、3 个种子、独立的测试集。"""

# --8<-- [start:setup]
import torch
from _tinygpt import (
    GPT,
    PRETRAIN,
    PROMPT_LEN,
    STOI,
    accuracy,
    decode,
    greedy_answers,
    load_or_train_pretrained,
    subtraction_data,
)

pretrained = load_or_train_pretrained()
add = pretrained.data  # 旧任务（加法）：用它的测试集衡量遗忘
sub = subtraction_data()
print(
    f"减法：训练集 {len(sub.train)} 道题，验证集 {len(sub.val)} 道，测试集 {len(sub.test)} 道；"
    f"例如 {decode(sub.train[0])}"
)

answers = greedy_answers(pretrained.model, sub.test[:, :PROMPT_LEN])
for row, answer in zip(sub.test[:5], answers[:5], strict=True):
    print(f"{decode(row[:PROMPT_LEN])}{decode(answer)}  （正确答案 {decode(row[PROMPT_LEN:])}）")

# 预训练模型从没见过 "-"，它把减号当成了什么？逐题算出 a+b，看它是不是在做加法
sums = torch.tensor([int(decode(r[:2])) + int(decode(r[3:5])) for r in sub.test])
answered = torch.tensor([int(decode(a)) for a in answers])
answers_sum_share = (answered == sums).float().mean().item()
start_sub_accuracy = accuracy(pretrained.model, sub.test)
start_add_accuracy = accuracy(pretrained.model, add.test)
print(f"预训练模型：减法测试集准确率 {start_sub_accuracy:.1%}，加法测试集准确率 {start_add_accuracy:.1%}")
print(f"它在减法题上给出的答案，有 {answers_sum_share:.1%} 恰好等于两数之和")

# 预训练时 "-" 从没出现过：它那一行词元嵌入的梯度一直是 0，AdamW（不做权重衰减）一步也没有动它
torch.manual_seed(PRETRAIN["seed"])
initial = GPT(pretrained.config)  # 预训练开始时的随机初始化
minus = STOI["-"]
minus_untouched = torch.equal(pretrained.model.tok_emb.weight[minus], initial.tok_emb.weight[minus])
print("预训练之后，“-”的词元嵌入与随机初始化时逐位相同:", minus_untouched)
# --8<-- [end:setup]

# --8<-- [start:setup_summary]
if answers_sum_share > 0.5:
    how_wrong = f"它的答案有 {answers_sum_share:.1%} 恰好是两数之和——多数时候它把减号当成了加号"
elif answers_sum_share > 0.1:
    how_wrong = f"它的答案有 {answers_sum_share:.1%} 恰好是两数之和——不少时候它把减号当成了加号"
else:
    how_wrong = f"它的答案只有 {answers_sum_share:.1%} 恰好是两数之和，说不上把减号当成了加号"
correct = (answers == sub.test[:, PROMPT_LEN:]).all(dim=1)
subtrahend_zero = torch.tensor([int(decode(r[3:5])) == 0 for r in sub.test])
if int(correct.sum()) and bool(subtrahend_zero[correct].all()):
    lucky = f"；它答对的 {int(correct.sum())} 道题，减数都是 0：这时差与和相等，按加法算也对"
else:
    lucky = ""
print(
    f"预训练模型在减法测试集上的准确率是 **{start_sub_accuracy:.1%}**。有意思的是它的错法：{how_wrong}{lucky}。"
)
# --8<-- [end:setup_summary]

# --8<-- [start:variants]
from _tinygpt import FINETUNE, LR_GRID, SEEDS, count_parameters, make_variant

LABELS = {
    "full": "(a) 全量微调",
    "last_block": "(b) 只训练最后一个块和输出层",
    "lora-r4": "(c) LoRA（r=4）",
    "scratch": "(d) 从零训练",
}
total_params = count_parameters(pretrained.model)
for variant, label in LABELS.items():
    trainable = count_parameters(make_variant(variant, pretrained.model, seed=0), trainable_only=True)
    print(f"{label}：可训练参数 {trainable:,}（占 {trainable / total_params:.1%}）")
print(
    f"每次训练 {FINETUNE['steps']} 步，小批量 {FINETUNE['batch_size']} 道题；"
    f"学习率候选 {list(LR_GRID)}；种子 {list(SEEDS)}；"
    f"一共 {len(LABELS) * (len(LR_GRID) + len(SEEDS) - 1)} 次训练"
)
# --8<-- [end:variants]

# --8<-- [start:experiment]
from _tinygpt import run_experiment

results = run_experiment(list(LABELS))
for variant, result in results.items():
    tried = "，".join(f"{lr:g} → {acc:.1%}" for lr, acc in result["sweep"].items())
    tests = "、".join(f"{run['new_test']:.1%}" for run in result["runs"])
    print(f"{LABELS[variant]}")
    print(f"  种子 {SEEDS[0]} 的验证集准确率：{tried}；选学习率 {result['lr']:g}")
    print(f"  学习率 {result['lr']:g}、种子 {list(SEEDS)} 的减法测试集准确率：{tests}")
# --8<-- [end:experiment]

# --8<-- [start:sweep_table]
print("| 做法 | " + " | ".join(f"学习率 {lr:g}" for lr in LR_GRID) + " |")
print("|---|" + "---:|" * len(LR_GRID))
for variant, result in results.items():
    cells = [f"**{acc:.1%}**" if lr == result["lr"] else f"{acc:.1%}" for lr, acc in result["sweep"].items()]
    print(f"| {LABELS[variant]} | " + " | ".join(cells) + " |")

chosen = {variant: result["lr"] for variant, result in results.items()}
if len(set(chosen.values())) == 1:
    notes = [f"这一次，{len(chosen)} 种做法在验证集上选中的都是学习率 {next(iter(chosen.values())):g}"]
else:
    notes = ["选中的学习率不全相同：" + "，".join(f"{LABELS[v]} {lr:g}" for v, lr in chosen.items())]
at_edge = False
for variant, result in results.items():
    top = result["sweep"][result["lr"]]
    tied = [lr for lr, acc in result["sweep"].items() if acc == top]
    if len(tied) > 1:
        notes.append(
            f"{LABELS[variant]}在学习率 {'、'.join(f'{lr:g}' for lr in tied)} 上的验证集准确率并列最高，"
            f"按规则取了较小的 {result['lr']:g}"
        )
    if result["lr"] in (min(LR_GRID), max(LR_GRID)):
        at_edge = True
        larger = result["lr"] == max(LR_GRID)
        notes.append(
            f"{LABELS[variant]}选中的是候选里{'最大' if larger else '最小'}的学习率，"
            f"{'更大' if larger else '更小'}的学习率没有试过，也许更好"
        )
if not at_edge:
    notes.append("每种做法选中的学习率都不在候选的两端：比它大和比它小的学习率都试过")
print()
print("；".join(notes) + "。")
# --8<-- [end:sweep_table]

# --8<-- [start:compare_table]
from _tinygpt import spread

print("| 做法 | 可训练参数 | 占全部参数 | 选中的学习率 | 新任务：减法测试集 | 旧任务：加法测试集 |")
print("|---|---:|---:|---:|---:|---:|")
print(f"| 微调前的预训练模型 | — | — | — | {start_sub_accuracy:.1%} | {start_add_accuracy:.1%} |")
for variant, result in results.items():
    runs = result["runs"]
    trainable = runs[0]["trainable"]
    new = spread([run["new_test"] for run in runs])
    old = spread([run["old_test"] for run in runs])
    print(
        f"| {LABELS[variant]} | {trainable:,} | {trainable / total_params:.1%} | {result['lr']:g} "
        f"| **{new}** | {old} |"
    )
# --8<-- [end:compare_table]

# --8<-- [start:curves]
import io
import warnings

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

plt.rcParams["svg.hashsalt"] = "hello-pytorch"
plt.rcParams["svg.fonttype"] = "none"  # 文字以文本写进 SVG，由浏览器用中文字体显示

fig, ax = plt.subplots(figsize=(7, 3.8))
for variant, result in results.items():
    steps = [record["step"] for record in result["runs"][0]["history"]]
    curves = torch.tensor([[r["val_accuracy"] * 100 for r in run["history"]] for run in result["runs"]])
    (line,) = ax.plot(
        steps, curves.mean(dim=0), marker="o", label=f"{LABELS[variant]}，学习率 {result['lr']:g}"
    )
    ax.fill_between(
        steps, curves.min(dim=0).values, curves.max(dim=0).values, color=line.get_color(), alpha=0.2
    )
ax.set_xlabel("训练步数")
ax.set_ylabel("减法验证集准确率（%）")
ax.set_title(f"学习曲线：{len(SEEDS)} 个种子的平均值（线）和范围（阴影）")
ax.grid(alpha=0.3)
ax.legend(fontsize=8)

buffer = io.StringIO()
with warnings.catch_warnings():
    # 构建机的 matplotlib 没有中文字体，只用它排版；真正显示交给浏览器，缺字形的警告可以忽略
    warnings.filterwarnings("ignore", message="Glyph .* missing from font")
    fig.savefig(buffer, format="svg", metadata={"Date": None}, bbox_inches="tight")
plt.close(fig)
print(buffer.getvalue())
# --8<-- [end:curves]

# --8<-- [start:compare_timing]
import time

from _tinygpt import answer_loss, get_batch, one_thread

TIMED_STEPS = 30


def milliseconds_per_step(variant: str, steps: int = TIMED_STEPS) -> float:
    """只计训练步本身（前向、反向、更新），不含验证；取中位数，少受偶然的停顿影响。"""
    model = make_variant(variant, pretrained.model, seed=0)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-3)
    generator = torch.Generator().manual_seed(0)
    model.train()
    times = []
    with one_thread():
        for _ in range(steps):
            x, y = get_batch(sub.train, FINETUNE["batch_size"], generator)
            start = time.perf_counter()
            loss = answer_loss(model, x, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            times.append(time.perf_counter() - start)
    return 1000 * sorted(times)[len(times) // 2]


print("计时（每次构建不同；测量时后台的笔记本让路）：")
for variant, label in LABELS.items():
    print(f"  {label}：每个训练步 {milliseconds_per_step(variant):.1f} 毫秒（{TIMED_STEPS} 步的中位数）")
# --8<-- [end:compare_timing]

# --8<-- [start:unplug]
import copy

from _tinygpt import LoRALinear, finetuned_model

lora_model = finetuned_model("lora-r4", results["lora-r4"]["lr"], SEEDS[0])
base_unchanged = all(
    torch.equal(module.base.weight, pretrained.model.get_submodule(name).weight)
    for name, module in lora_model.named_modules()
    if isinstance(module, LoRALinear)
)
print("LoRA 训练后，被包住的原始权重一个都没变:", base_unchanged)

unplugged = copy.deepcopy(lora_model)
for name, module in list(unplugged.named_modules()):
    if isinstance(module, LoRALinear):
        parent, _, child = name.rpartition(".")
        setattr(unplugged.get_submodule(parent), child, module.base)  # 拔掉 A、B，只留原来的线性层
original = pretrained.model.state_dict()
unplugged_state = unplugged.state_dict()
unplugged_equal = unplugged_state.keys() == original.keys() and all(
    torch.equal(tensor, original[name]) for name, tensor in unplugged_state.items()
)
print("拔掉 A、B 之后，每个参数都与预训练模型逐位相同:", unplugged_equal)
unplugged_add_accuracy = accuracy(unplugged, add.test)
print(
    f"拔掉 LoRA 之后：加法测试集准确率 {unplugged_add_accuracy:.1%}，"
    f"减法测试集准确率 {accuracy(unplugged, sub.test):.1%}"
)
# --8<-- [end:unplug]

# --8<-- [start:conclusions]
import math

from _tinygpt import compare, difference, mean


def tests(variant: str, key: str = "new_test") -> list[float]:
    return [run[key] for run in results[variant]["runs"]]


pretrained_variants = ["full", "last_block", "lora-r4"]
lines = []
beats_scratch = [v for v in pretrained_variants if difference(tests(v), tests("scratch")) > 0]
headline = (
    "预训练有用" if len(beats_scratch) == len(pretrained_variants) else "预训练的好处在这组实验里并不一致"
)
lines.append(
    f"**{headline}**：同样的预算，从零训练在减法测试集上是 {spread(tests('scratch'))}；"
    + "；".join(f"{LABELS[v]}比它{compare(tests(v), tests('scratch'))}" for v in pretrained_variants)
    + "。"
)
best = max(pretrained_variants, key=lambda v: mean(tests(v)))
lines.append(
    f"**平均最高的是{LABELS[best]}**，为 {spread(tests(best))}："
    + "；".join(f"比{LABELS[v]}{compare(tests(best), tests(v))}" for v in pretrained_variants if v != best)
    + "。"
)
lora_share = results["lora-r4"]["runs"][0]["trainable"] / total_params
lines.append(
    f"**LoRA 只训练 {lora_share:.1%} 的参数**，减法测试集准确率 {spread(tests('lora-r4'))}，"
    f"比训练全部参数的全量微调{compare(tests('lora-r4'), tests('full'))}。"
)
# 遗忘只对学会过旧任务的做法有意义：从零训练的模型从来不会加法，不算在内
olds = [acc for v in pretrained_variants for acc in tests(v, "old_test")]
if max(olds) < 0.1 * start_add_accuracy:
    forgot = "只用新数据训练，旧本事几乎全丢了"
elif max(olds) < start_add_accuracy:
    forgot = "只用新数据训练，旧任务的准确率下降了"
else:
    forgot = "这个预算下看不出遗忘"
lines.append(
    f"**{forgot}**：微调前加法测试集准确率 {start_add_accuracy:.1%}；三种从预训练出发的做法，"
    f"微调后每个种子的加法准确率在 {min(olds):.1%} 到 {max(olds):.1%} 之间（从零训练的模型从没学过加法，不算在内）。"
)
if unplugged_equal and unplugged_add_accuracy == start_add_accuracy:
    lines.append(
        f"**但 LoRA 没有改动原来的权重**：拔掉 A、B 之后，加法测试集准确率回到 **{unplugged_add_accuracy:.1%}**。"
    )
n = len(SEEDS)
lines.append(
    f"**这些“高/低”不是统计检验**：两种做法如果其实一样好，各跑 {n} 个种子，"
    f"范围也有 {2 / math.comb(2 * n, n):.0%} 的机会恰好完全分开"
    f"（{2 * n} 个结果从高到低排开，两组恰好各占一头的排法只占 2/C({2 * n},{n})），"
    "一次比较好几对时，至少有一对被误判的机会还要更大；"
    f"而且范围只反映种子之间的差别，不包括测试集只有 {len(sub.test)} 道题带来的抽样误差。"
)
print("\n".join(f"- {line}" for line in lines))
# --8<-- [end:conclusions]

# --8<-- [start:exercise_chance]
from itertools import combinations

# 两种做法一样好时，2n 个结果从高到低排开，做法 A 占哪 n 个名次，每一种分法都同样可能
chance_table = {}
for n_seeds in (2, 3, 4, 5):
    top, bottom = set(range(n_seeds)), set(range(n_seeds, 2 * n_seeds))
    splits = [set(places) for places in combinations(range(2 * n_seeds), n_seeds)]
    separated = sum(places in (top, bottom) for places in splits)  # A 全在前面或全在后面：范围完全分开
    chance_table[n_seeds] = separated / len(splits)
    print(
        f"{n_seeds} 个种子：{len(splits)} 种分法，其中 {separated} 种范围完全分开，"
        f"机会 {separated / len(splits):.1%}；公式 2/C({2 * n_seeds},{n_seeds}) = {2 / math.comb(2 * n_seeds, n_seeds):.1%}"
    )
# --8<-- [end:exercise_chance]

# --8<-- [start:exercise_embeddings]
from _tinygpt import STOI, VOCAB

full_model = finetuned_model("full", results["full"]["lr"], SEEDS[0])  # 3.4 节训练过的那一次，直接读取
before, after = pretrained.model.tok_emb.weight, full_model.tok_emb.weight
row_change = ((after - before).norm(dim=1) / before.norm(dim=1)).tolist()
print(f"全量微调（种子 {SEEDS[0]}）之后，每个字符的词元嵌入变了多少（变化量的长度 ÷ 原来的长度）：")
print("  " + "   ".join(f"{ch} {change:.3f}" for ch, change in zip(VOCAB, row_change, strict=True)))
plus_untouched = torch.equal(after[STOI["+"]], before[STOI["+"]])
print("“+”的词元嵌入与微调前逐位相同:", plus_untouched)
full_old_test = results["full"]["runs"][0]["old_test"]
print(f"这个模型在加法测试集上的准确率：{full_old_test:.1%}（微调前 {start_add_accuracy:.1%}）")
# --8<-- [end:exercise_embeddings]

# --8<-- [start:exercise_forgetting]
# 全量微调后的模型做加法题：它是不是在做减法？只看第一个数不小于第二个数的题（这时差不是负数）
old_answers = greedy_answers(full_model, add.test[:, :PROMPT_LEN])
first_number = torch.tensor([int(decode(row[:2])) for row in add.test])
second_number = torch.tensor([int(decode(row[3:5])) for row in add.test])
non_negative = first_number >= second_number
answered_difference = torch.tensor(
    [
        decode(answer) == f"{a - b:03d}"
        for answer, a, b in zip(old_answers, first_number, second_number, strict=True)
    ]
)
difference_share = answered_difference[non_negative].float().mean().item()
shown = 0
for row, answer, keep in zip(add.test, old_answers, non_negative, strict=True):
    if keep and shown < 4:
        print(f"{decode(row[:PROMPT_LEN])}{decode(answer)}  （正确答案 {decode(row[PROMPT_LEN:])}）")
        shown += 1
print(
    f"第一个数不小于第二个数的 {int(non_negative.sum())} 道加法题里，"
    f"全量微调后的模型有 {difference_share:.1%} 的答案恰好是两数之差"
)
if difference_share > 0.5:
    print("多数时候它把加号当成了减号：和 3.1 节预训练模型把减号当成加号正好反过来。")
elif difference_share > 0.1:
    print("不少时候它把加号当成了减号：和 3.1 节预训练模型把减号当成加号正好反过来。")
else:
    print("说不上把加号当成了减号。")
# --8<-- [end:exercise_forgetting]

# --8<-- [start:exercise_interpolate]
# θ(λ) = (1 − λ)·预训练的参数 + λ·全量微调后的参数；λ = 0 和 1 两端的成绩上面已经算过
pre_state, full_state = pretrained.model.state_dict(), full_model.state_dict()
mixed = copy.deepcopy(pretrained.model)
interpolation = {
    0.0: (start_add_accuracy, start_sub_accuracy),
    1.0: (full_old_test, results["full"]["runs"][0]["new_test"]),
}
for lam in (0.25, 0.5, 0.75):
    mixed.load_state_dict({name: (1 - lam) * pre_state[name] + lam * full_state[name] for name in pre_state})
    interpolation[lam] = (accuracy(mixed, add.test), accuracy(mixed, sub.test))
for lam in sorted(interpolation):
    old_acc, new_acc = interpolation[lam]
    print(f"λ = {lam:<4}  加法测试集 {old_acc:6.1%}   减法测试集 {new_acc:6.1%}")
collapse = next(lam for lam in sorted(interpolation) if interpolation[lam][0] < start_add_accuracy / 2)
print(
    f"λ {'只到' if collapse <= 0.5 else '到'} {collapse:g}，加法就掉到 {interpolation[collapse][0]:.1%}"
    f"（不到微调前的一半），这时减法是 {interpolation[collapse][1]:.1%}。"
)
both_half = [lam for lam, (old_acc, new_acc) in interpolation.items() if min(old_acc, new_acc) >= 0.5]
if both_half:
    print(
        f"λ = {'、'.join(f'{lam:g}' for lam in sorted(both_half))} 时两个任务都答对一半以上：混合参数得到了折中。"
    )
else:
    print("没有一个 λ 让两个任务都答对一半以上：在这个模型上，沿直线混合两组参数得不到两全的折中。")
# --8<-- [end:exercise_interpolate]
