"""第二部分第 2 页：在自己生成的两位数加法题上预训练小 GPT，画损失曲线，保存并重新读取检查点。"""

# --8<-- [start:data]
import torch
from _tinygpt import PRETRAIN, addition_data, decode, format_problem, get_batch

print("三道题的写法:", [format_problem(a, b, "+") for a, b in [(37, 48), (5, 7), (99, 99)]])
train_data, val_data, test_data = addition_data()
print(
    f"训练集 {len(train_data)} 道题，验证集 {len(val_data)} 道题，测试集 {len(test_data)} 道题，三者没有重复"
)
print("编码后的一道训练题:", train_data[0].tolist(), "=", repr(decode(train_data[0])))

x, y = get_batch(train_data, batch_size=2, generator=torch.Generator().manual_seed(PRETRAIN["seed"]))
print("小批量的输入 x:\n", x)
print("小批量的目标 y（-100 的位置不计损失）:\n", y)
# --8<-- [end:data]

# --8<-- [start:before]
from _tinygpt import GPT, PROMPT_LEN, GPTConfig, accuracy, greedy_answers


def show_answers(model: torch.nn.Module, data: torch.Tensor, n: int = 6) -> None:
    answers = greedy_answers(model, data[:n, :PROMPT_LEN])
    for row, answer in zip(data[:n], answers, strict=True):
        mark = "✓" if torch.equal(answer, row[PROMPT_LEN:]) else "✗"
        print(f"{decode(row[:PROMPT_LEN])}{decode(answer)}  {mark}  （正确答案 {decode(row[PROMPT_LEN:])}）")


# 和预训练开始时一样的随机种子：这就是预训练的起点
torch.manual_seed(PRETRAIN["seed"])
untrained = GPT(GPTConfig())
show_answers(untrained, val_data)
untrained_accuracy = accuracy(untrained, val_data)
print(f"未训练模型在验证集上的准确率: {untrained_accuracy:.1%}")
untrained_answers = greedy_answers(untrained, val_data[:, :PROMPT_LEN])
distinct_answers = len({tuple(answer) for answer in untrained_answers.tolist()})
print(f"它对验证集的 {len(val_data)} 道题一共只给出了 {distinct_answers} 种不同的答案")
# --8<-- [end:before]

# --8<-- [start:pretrain]
from _tinygpt import load_or_train_pretrained

print("预训练设置:", PRETRAIN)
pretrained = load_or_train_pretrained()
history = pretrained.history
for record in history:
    print(
        f"第 {record['step']:>4} 步  训练损失 {record['train_loss']:.4f}  "
        f"验证损失 {record['val_loss']:.4f}  验证准确率 {record['val_accuracy']:.1%}"
    )
final_accuracy = history[-1]["val_accuracy"]
if final_accuracy >= PRETRAIN["target_accuracy"]:
    print(f"第 {history[-1]['step']} 步验证准确率达到目标 {PRETRAIN['target_accuracy']:.0%}，提前停止训练")
else:
    print(f"用完了 {PRETRAIN['steps']} 步，验证准确率没有达到目标 {PRETRAIN['target_accuracy']:.0%}")
# --8<-- [end:pretrain]

# --8<-- [start:curve]
import io
import warnings

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

plt.rcParams["svg.hashsalt"] = "hello-pytorch"
plt.rcParams["svg.fonttype"] = "none"  # 文字以文本写进 SVG，由浏览器用中文字体显示

steps = [r["step"] for r in history]
fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(9, 3.5))
ax_loss.plot(steps, [r["train_loss"] for r in history], marker="o", label="训练损失")
ax_loss.plot(steps, [r["val_loss"] for r in history], marker="s", linestyle="--", label="验证损失")
ax_loss.set_yscale("log")  # 损失跨了好几个数量级，用对数坐标才看得清后半段
ax_loss.set_xlabel("训练步数")
ax_loss.set_ylabel("交叉熵损失（对数坐标）")
ax_loss.legend()
ax_acc.plot(steps, [r["val_accuracy"] * 100 for r in history], marker="o", color="tab:green")
ax_acc.axhline(PRETRAIN["target_accuracy"] * 100, color="gray", linestyle=":", label="目标")
ax_acc.set_xlabel("训练步数")
ax_acc.set_ylabel("验证集完全匹配准确率（%）")
ax_acc.legend()
for ax in (ax_loss, ax_acc):
    ax.grid(alpha=0.3)
fig.suptitle("小 GPT 在两位数加法上的预训练")

buffer = io.StringIO()
with warnings.catch_warnings():
    # 构建机的 matplotlib 没有中文字体，只用它排版；真正显示交给浏览器，缺字形的警告可以忽略
    warnings.filterwarnings("ignore", message="Glyph .* missing from font")
    fig.savefig(buffer, format="svg", metadata={"Date": None}, bbox_inches="tight")
plt.close(fig)
print(buffer.getvalue())
# --8<-- [end:curve]

# --8<-- [start:curve_summary]
target = PRETRAIN["target_accuracy"]
milestones = []
for threshold in (0.1, 0.5, 0.9):
    reached = next((r["step"] for r in history if r["val_accuracy"] >= threshold), None)
    if reached is not None:
        milestones.append(f"第 {reached} 步超过 {threshold:.0%}")
lowest = min(history, key=lambda r: r["val_loss"])
if lowest is history[-1]:
    trend = (
        "停止时的验证损失是整个过程中最低的：没有出现过拟合（overfitting）那种"
        "“训练损失还在降、验证损失却回升”的分叉"
    )
else:
    trend = (
        f"验证损失的最低点在第 {lowest['step']} 步（{lowest['val_loss']:.4f}），"
        f"停止时回升到 {history[-1]['val_loss']:.4f}：这正是过拟合（overfitting）的迹象"
    )
print(
    f"验证准确率{'，'.join(milestones)}，第 {history[-1]['step']} 步"
    + (f"达到目标 {target:.0%}，训练停止。" if history[-1]["val_accuracy"] >= target else "用完了全部步数。")
    + f"{trend}。"
)
# --8<-- [end:curve_summary]

# --8<-- [start:after]
model = pretrained.model
show_answers(model, val_data)
val_accuracy = accuracy(model, val_data)
test_accuracy = accuracy(model, test_data)
print(f"预训练后：验证集准确率 {val_accuracy:.1%}，测试集准确率 {test_accuracy:.1%}")
wrong = (greedy_answers(model, test_data[:, :PROMPT_LEN]) != test_data[:, PROMPT_LEN:]).any(dim=1)
print(f"测试集 {len(test_data)} 道题错了 {int(wrong.sum())} 道")
for row in test_data[wrong][:3]:
    print(
        "答错的题:",
        decode(row[:PROMPT_LEN]),
        "模型答",
        decode(greedy_answers(model, row[None, :PROMPT_LEN])[0]),
    )
# --8<-- [end:after]

# --8<-- [start:summary]
print(
    f"未训练时，模型在 {len(val_data)} 道验证题上的准确率是 **{untrained_accuracy:.1%}**；"
    f"预训练 **{history[-1]['step']}** 步后，验证损失从 {history[0]['val_loss']:.4f} 降到 "
    f"**{history[-1]['val_loss']:.4f}**，验证准确率 {val_accuracy:.1%}"
    f"（事先定下的目标是 {PRETRAIN['target_accuracy']:.0%}，达到就停）。"
    f"训练在哪一步停由验证集决定，所以最终成绩看测试集：**{test_accuracy:.1%}**。"
)
# 验证集和测试集的差别，与两份题目的抽样误差比一比：两个独立比例之差的标准误
gap = test_accuracy - val_accuracy
standard_error = (
    val_accuracy * (1 - val_accuracy) / len(val_data) + test_accuracy * (1 - test_accuracy) / len(test_data)
) ** 0.5
if gap == 0:
    print("测试集和验证集上的准确率正好相同：没有迹象表明停止的时机“挑中”了一个碰巧好看的验证集成绩。")
elif abs(gap) <= 2 * standard_error:
    print(
        f"测试集比验证集{'高' if gap > 0 else '低'} {abs(gap) * 100:.1f} 个百分点，"
        f"在两份各 {len(test_data)} 道题的抽样误差之内（两倍标准误约 {2 * standard_error * 100:.1f} 个百分点）："
        "没有迹象表明停止的时机“挑中”了一个碰巧好看的验证集成绩。"
    )
else:
    print(
        f"测试集比验证集{'高' if gap > 0 else '低'} {abs(gap) * 100:.1f} 个百分点，"
        f"超出了抽样误差（两倍标准误约 {2 * standard_error * 100:.1f} 个百分点）"
        + ("：验证集上的成绩偏乐观，应以测试集为准。" if gap < 0 else "。")
    )
# 答错的题错在哪一位：百位、十位、个位各数一数
wrong_digits = (greedy_answers(model, test_data[:, :PROMPT_LEN]) != test_data[:, PROMPT_LEN:])[wrong].sum(
    dim=0
)
if int(wrong.sum()):
    print(
        f"测试集上答错的 {int(wrong.sum())} 道题里，百位、十位、个位写错的分别有 "
        f"{wrong_digits[0]}、{wrong_digits[1]}、{wrong_digits[2]} 道。"
    )
# --8<-- [end:summary]

# --8<-- [start:checkpoint]
print("检查点文件:", pretrained.path.name)
checkpoint = torch.load(pretrained.path, weights_only=True)
print("检查点里存了:", sorted(checkpoint))
print("模型配置:", checkpoint["config"])
print("state_dict 的前 4 个键:", list(checkpoint["state_dict"])[:4])

fresh = GPT(GPTConfig(**checkpoint["config"]))  # 一个全新的、随机初始化的模型
fresh.load_state_dict(checkpoint["state_dict"])
fresh.eval()
with torch.no_grad():
    reloaded_equal = torch.equal(fresh(val_data[:, :-1]), model(val_data[:, :-1]))
assert reloaded_equal, "重新读取的模型输出应与原模型完全相同"
print("重新读取的模型与原模型在整个验证集上的 logits 完全相同:", reloaded_equal)
print(f"重新读取的模型准确率: {accuracy(fresh, val_data):.1%}")
# --8<-- [end:checkpoint]

# --8<-- [start:exercise_positions]
import math

import torch.nn.functional as F

# 8 个位置全都算交叉熵（不设 -100），看预训练好的模型在每个位置上的平均损失
targets_of_position = [
    "第一个数的个位",
    "“+”",
    "第二个数的十位",
    "第二个数的个位",
    "“=”",
    "答案百位",
    "答案十位",
    "答案个位",
]
with torch.no_grad():
    every_position = F.cross_entropy(
        model(val_data[:, :-1]).transpose(1, 2), val_data[:, 1:], reduction="none"
    ).mean(dim=0)
for position, (target, loss) in enumerate(zip(targets_of_position, every_position.tolist(), strict=True)):
    print(f"位置 {position}，预测{target}：验证集上的平均损失 {loss:.3f}")
loss_floor = 3 * math.log(10) / 8  # 3 个随机数字的位置，每个至少 ln 10；8 个位置平均
print(
    f"平均地猜一个随机数字的损失 ln 10 = {math.log(10):.3f}；8 个位置都算时，损失的下限 3·ln 10 / 8 = {loss_floor:.3f}"
)
# --8<-- [end:exercise_positions]

# --8<-- [start:exercise_carry]
from collections import Counter

test_answers = greedy_answers(model, test_data[:, :PROMPT_LEN])
test_wrong = (test_answers != test_data[:, PROMPT_LEN:]).any(dim=1)
# 数字 0-9 的编号就是数字本身：第 1、4 个字符是两个加数的个位，相加满 10 就要进位
carry = test_data[:, 1] + test_data[:, 4] >= 10
for name, group in (("个位相加要进位", carry), ("个位相加不进位", ~carry)):
    print(
        f"{name}：{int(group.sum())} 道题，答错 {int(test_wrong[group].sum())} 道，"
        f"准确率 {(~test_wrong[group]).float().mean().item():.1%}"
    )
offsets = Counter(
    int(decode(answer)) - int(decode(row[PROMPT_LEN:]))
    for row, answer in zip(test_data[test_wrong], test_answers[test_wrong], strict=True)
)
print("每道错题的“模型的答案 − 正确答案”（差值: 道数）:", dict(offsets))
carry_wrong, plain_wrong = int(test_wrong[carry].sum()), int(test_wrong[~carry].sum())
if carry_wrong and not plain_wrong:
    carry_verdict = "错题全在个位要进位的一组"
elif plain_wrong and not carry_wrong:
    carry_verdict = "错题全在个位不进位的一组"
elif carry_wrong and plain_wrong:
    carry_verdict = "两组都有错题"
else:
    carry_verdict = "两组都没有错题"
if len(offsets) == 1 and carry_wrong + plain_wrong > 1:
    ((offset, _),) = offsets.items()
    carry_verdict += (
        f"；而且每道错题错法相同，模型的答案都比正确答案{'大' if offset > 0 else '小'} {abs(offset)}"
    )
print(carry_verdict + "。")
# --8<-- [end:exercise_carry]

# --8<-- [start:exercise_weights_only]
import pickle
import tempfile
from pathlib import Path


class Surprise:
    """pickle 怎样还原一个对象，由它的 __reduce__ 决定：这里让“还原”变成调用 print。
    换成 os.system 之类的函数，读文件的人就会执行任意命令。"""

    def __reduce__(self):
        return (print, ("（读取这个文件时，文件里藏的代码被执行了！）",))


with tempfile.TemporaryDirectory() as folder:
    suspicious = Path(folder) / "suspicious.pt"
    torch.save({"state_dict": model.state_dict(), "note": Surprise()}, suspicious)
    try:
        torch.load(suspicious, weights_only=True)
    except pickle.UnpicklingError as error:
        refusal = next(line.strip() for line in str(error).splitlines() if "Unsupported global" in line)
        print("weights_only=True 拒绝读取：", refusal.split(" Please use")[0])
    print("weights_only=False 照单全收：")
    unsafe = torch.load(suspicious, weights_only=False)  # 只因为这是我们自己刚写的文件，才敢这样读
print("读出的 note:", unsafe["note"])
# --8<-- [end:exercise_weights_only]

# --8<-- [start:exercise_generalize]
train_sample = train_data[: len(test_data)]  # 训练集的前 1000 道题，和测试集一样多
train_sample_accuracy = accuracy(model, train_sample)
print(f"训练集的前 {len(train_sample)} 道题：准确率 {train_sample_accuracy:.1%}；测试集：{test_accuracy:.1%}")

# a+b= 改成 b+a=：第 3、4 个字符和第 0、1 个字符对调，答案不变
swapped = torch.cat([test_data[:, 3:5], test_data[:, 2:3], test_data[:, 0:2], test_data[:, 5:]], dim=1)
swapped_answers = greedy_answers(model, swapped[:, :PROMPT_LEN])
swapped_accuracy = (swapped_answers == swapped[:, PROMPT_LEN:]).all(dim=1).float().mean().item()
same_answer = (swapped_answers == test_answers).all(dim=1).float().mean().item()
train_rows = {tuple(row) for row in train_data.tolist()}
swapped_in_train = sum(tuple(row) in train_rows for row in swapped.tolist()) / len(swapped)
print(
    f"两个加数对调（例如 {decode(test_data[0])} → {decode(swapped[0])}）：准确率 {swapped_accuracy:.1%}，"
    f"对调前后答案相同的占 {same_answer:.1%}；对调后的题有 {swapped_in_train:.1%} 在训练集里"
)
# --8<-- [end:exercise_generalize]
