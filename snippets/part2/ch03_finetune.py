"""第二部分第 3 页：把预训练好的加法模型微调到减法上，比较四种做法的参数量、用时、新任务准确率和遗忘。"""

# --8<-- [start:setup]
import torch
from _tinygpt import (
    FINETUNE,
    PROMPT_LEN,
    accuracy,
    decode,
    greedy_answers,
    load_or_train_pretrained,
    subtraction_data,
)

pretrained = load_or_train_pretrained()
add_val = pretrained.val_data  # 旧任务（加法）的验证集，用来衡量遗忘
sub_train, sub_val = subtraction_data()
print(f"减法训练集 {len(sub_train)} 道题，验证集 {len(sub_val)} 道题；例如 {decode(sub_train[0])}")

answers = greedy_answers(pretrained.model, sub_val[:, :PROMPT_LEN])
for row, answer in zip(sub_val[:5], answers[:5], strict=True):
    print(f"{decode(row[:PROMPT_LEN])}{decode(answer)}  （正确答案 {decode(row[PROMPT_LEN:])}）")

# 预训练模型从没见过 "-"，它把减号当成了什么？逐题算出 a+b，看它是不是在做加法
sums = torch.tensor([[int(decode(r[:2])) + int(decode(r[3:5]))] for r in sub_val])
answered = torch.tensor([[int(decode(a))] for a in answers])
answers_sum_share = (answered == sums).float().mean().item()
start_sub_accuracy = accuracy(pretrained.model, sub_val)
start_add_accuracy = accuracy(pretrained.model, add_val)
print(f"预训练模型：减法准确率 {start_sub_accuracy:.1%}，加法准确率 {start_add_accuracy:.1%}")
print(f"它在减法题上给出的答案，有 {answers_sum_share:.1%} 恰好等于两数之和")
# --8<-- [end:setup]

# --8<-- [start:variants]
import copy

from _tinygpt import GPT, LORA_ALPHA, LORA_RANK, LORA_TARGETS, apply_lora


def full_finetuning() -> torch.nn.Module:
    return copy.deepcopy(pretrained.model)  # 所有参数都训练


def last_block_only() -> torch.nn.Module:
    model = copy.deepcopy(pretrained.model)
    for p in model.parameters():
        p.requires_grad_(False)  # 先全部冻结
    for module in (model.blocks[-1], model.ln_f, model.head):
        for p in module.parameters():
            p.requires_grad_(True)  # 再解冻最后一个块、最后的 LayerNorm 和输出层
    return model


def lora() -> torch.nn.Module:
    model = copy.deepcopy(pretrained.model)
    torch.manual_seed(0)  # A 矩阵的随机初始化
    apply_lora(model, LORA_TARGETS, r=LORA_RANK, alpha=LORA_ALPHA)
    return model


def from_scratch() -> torch.nn.Module:
    torch.manual_seed(0)
    return GPT(pretrained.config)  # 同样的结构，随机初始化，没有预训练


variants = {
    "full": ("(a) 全量微调", full_finetuning),
    "last_block": ("(b) 只训练最后一个块和输出层", last_block_only),
    "lora": (f"(c) LoRA（r={LORA_RANK}）", lora),
    "scratch": ("(d) 从零训练", from_scratch),
}
print("每种做法都训练", FINETUNE["steps"], "步，小批量", FINETUNE["batch_size"], "道题，抽题顺序相同")
# --8<-- [end:variants]

# --8<-- [start:compare]
import time

from _tinygpt import FINETUNE_LR, count_parameters, finetune

total_params = count_parameters(pretrained.model)
results, models = {}, {}
for key, (label, make) in variants.items():
    model = make()
    trainable = count_parameters(model, trainable_only=True)
    start = time.perf_counter()
    finetune(model, sub_train, sub_val, lr=FINETUNE_LR[key])
    seconds = time.perf_counter() - start
    results[key] = {
        "label": label,
        "trainable": trainable,
        "share": trainable / total_params,
        "lr": FINETUNE_LR[key],
        "new": accuracy(model, sub_val),
        "old": accuracy(model, add_val),
        "seconds": seconds,
    }
    models[key] = model
    r = results[key]
    print(f"{label}：可训练参数 {trainable:,}，减法 {r['new']:.1%}，加法 {r['old']:.1%}")
# --8<-- [end:compare]

# --8<-- [start:compare_table]
print("| 做法 | 可训练参数 | 占全部参数 | 学习率 | 新任务：减法准确率 | 旧任务：加法准确率 |")
print("|---|---:|---:|---:|---:|---:|")
print(f"| 微调前的预训练模型 | — | — | — | {start_sub_accuracy:.1%} | {start_add_accuracy:.1%} |")
for r in results.values():
    print(
        f"| {r['label']} | {r['trainable']:,} | {r['share']:.1%} | {r['lr']:g} | **{r['new']:.1%}** | {r['old']:.1%} |"
    )
# --8<-- [end:compare_table]

# --8<-- [start:compare_timing]
print("计时（每次构建不同）：")
for r in results.values():
    print(f"  {r['label']}：训练 {FINETUNE['steps']} 步用了 {r['seconds']:.1f} 秒")
# --8<-- [end:compare_timing]

# --8<-- [start:unplug]
from _tinygpt import LoRALinear

lora_model = models["lora"]
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
unplugged_add_accuracy = accuracy(unplugged, add_val)
print(
    f"拔掉 LoRA 之后：加法准确率 {unplugged_add_accuracy:.1%}，减法准确率 {accuracy(unplugged, sub_val):.1%}"
)
# --8<-- [end:unplug]

# --8<-- [start:conclusions]
full, last, lo, scratch = (results[k] for k in ("full", "last_block", "lora", "scratch"))


def compare(x: float, y: float) -> str:
    """x 比 y 高还是低多少个百分点，写成一句话。"""
    gap = (x - y) * 100
    return f"高 {gap:.1f} 个百分点" if gap > 0 else (f"低 {-gap:.1f} 个百分点" if gap < 0 else "持平")


olds = [r["old"] for r in results.values()]
print(
    f"- **预训练有用**：同样 {FINETUNE['steps']} 步、同样的数据，从零训练只到 **{scratch['new']:.1%}**；"
    f"从预训练模型出发的三种做法分别到了 {full['new']:.1%}、{last['new']:.1%}、{lo['new']:.1%}。\n"
    f"- **LoRA 只训练 {lo['share']:.1%} 的参数**（{lo['trainable']:,} 个），减法准确率 **{lo['new']:.1%}**，"
    f"比训练全部 {full['trainable']:,} 个参数的全量微调{compare(lo['new'], full['new'])}。"
    f"只训练最后一个块时，可训练参数是 LoRA 的 {last['trainable'] / lo['trainable']:.1f} 倍，"
    f"准确率 {last['new']:.1%}，比 LoRA {compare(last['new'], lo['new'])}。\n"
    f"- **只用新数据训练，旧本事几乎全丢了**：微调前加法准确率 {start_add_accuracy:.1%}，"
    f"微调后四种做法的加法准确率在 {min(olds):.1%} 到 {max(olds):.1%} 之间，LoRA 也不例外。\n"
    f"- **但 LoRA 没有改动原来的权重**：拔掉 A、B 之后，加法准确率回到 **{unplugged_add_accuracy:.1%}**。"
)
# --8<-- [end:conclusions]
