"""第二部分第 8 页：把 Hugging Face transformers 的 GPT-2 权重换进本站的 GPT，核对两边的 logits，存成 safetensors。"""

# --8<-- [start:tiny]
import os

# 有网络时才下载真正的 GPT-2（8.6 节）：运行前设置环境变量 HELLO_PYTORCH_DOWNLOAD=1。构建网站和测试从不设置它
DOWNLOAD = os.environ.get("HELLO_PYTORCH_DOWNLOAD") == "1"
# 不下载时打开 Hugging Face 的离线模式：万一哪行代码要联网下载，立刻报错，而不是卡在连接上等到超时。
# 必须在导入 transformers 之前设置：huggingface_hub 在导入的那一刻读这个变量
os.environ["HF_HUB_OFFLINE"] = "0" if DOWNLOAD else "1"

import warnings

import torch

with warnings.catch_warnings():
    # 在 Jupyter 里，tqdm（画下载进度条的库）找不到 ipywidgets 会警告一句，然后改用文字进度条：与本页无关
    warnings.filterwarnings("ignore", message="IProgress not found")
    import huggingface_hub
    import safetensors
    import transformers
    from transformers import GPT2Config, GPT2LMHeadModel

print(f"transformers {transformers.__version__}，safetensors {safetensors.__version__}")
print("离线模式（不会联网）:", huggingface_hub.constants.HF_HUB_OFFLINE)

# 一个很小的 GPT-2：结构和真正的 GPT-2 一样，只是每样都小得多；参数随机初始化，不下载任何东西
tiny_config = GPT2Config(
    vocab_size=100,
    n_positions=16,  # 上下文长度，真正的 GPT-2 是 1024
    n_embd=32,
    n_layer=2,
    n_head=4,
    bos_token_id=99,  # 句首、句尾词元的编号要在词表之内（默认的 50256 是真正 GPT-2 的）
    eos_token_id=99,
)
torch.manual_seed(0)
hf_model = GPT2LMHeadModel(tiny_config).eval()  # eval()：关掉 dropout，两边都是确定的计算
print("激活函数:", tiny_config.activation_function, "  LayerNorm 的 eps:", tiny_config.layer_norm_epsilon)
print("输出层与词元嵌入绑定:", tiny_config.tie_word_embeddings)
for name, tensor in hf_model.state_dict().items():
    if not name.startswith("transformer.h.1."):  # 两个块的名字一样，只列第 0 块
        print(f"{name:<40} {tuple(tensor.shape)}")
# --8<-- [end:tiny]

# --8<-- [start:convert]
from _tinygpt import GPT, GPTConfig

# GPT-2 配置里的激活函数名 -> nn.GELU 的 approximate 参数（"gelu_new" 就是 tanh 近似）
GELU_OF = {"gelu_new": "tanh", "gelu_pytorch_tanh": "tanh", "gelu": "none"}
# 每个块里的对应：(Hugging Face 的名字, 本站的名字, 是不是 Conv1D)
BLOCK_NAMES = [
    ("ln_1", "ln1", False),
    ("attn.c_attn", "attn.qkv", True),
    ("attn.c_proj", "attn.proj", True),
    ("ln_2", "ln2", False),
    ("mlp.c_fc", "mlp.fc", True),
    ("mlp.c_proj", "mlp.proj", True),
]


def site_config(hf_config: GPT2Config) -> GPTConfig:
    """GPT2Config -> GPTConfig。本站的 GPT 表示不了的设置直接报错，而不是悄悄算出不一样的结果。"""
    d = hf_config.n_embd
    checks = {
        "MLP 中间层宽 4d": hf_config.n_inner in (None, 4 * d),
        "LayerNorm 的 eps 是 1e-5（nn.LayerNorm 的默认值）": hf_config.layer_norm_epsilon == 1e-5,
        "注意力分数只除以 √(每头维度)（和 SDPA 一样）": hf_config.scale_attn_weights
        and not hf_config.scale_attn_by_inverse_layer_idx,
        "没有交叉注意力": not hf_config.add_cross_attention,
        "激活函数是 GELU": hf_config.activation_function in GELU_OF,
    }
    failed = [check for check, ok in checks.items() if not ok]
    if failed:
        raise ValueError(f"本站的 GPT 表示不了这个模型，不满足：{failed}")
    return GPTConfig(
        vocab_size=hf_config.vocab_size,
        block_size=hf_config.n_positions,
        n_layer=hf_config.n_layer,
        n_head=hf_config.n_head,
        n_embd=d,
        tie_weights=hf_config.tie_word_embeddings,
        gelu=GELU_OF[hf_config.activation_function],
    )


def weight_rules(config: GPTConfig) -> list[tuple[str, str, bool]]:
    """全部对应规则：(Hugging Face 的名字, 本站的名字, 要不要转置)。"""
    rules = [("wte.weight", "tok_emb.weight", False), ("wpe.weight", "pos_emb.weight", False)]
    for i in range(config.n_layer):
        for hf_name, name, conv1d in BLOCK_NAMES:
            # Conv1D 的权重存成 (输入, 输出)，nn.Linear 的是 (输出, 输入)：转置一下；偏置是一维的，不用转
            rules.append((f"h.{i}.{hf_name}.weight", f"blocks.{i}.{name}.weight", conv1d))
            rules.append((f"h.{i}.{hf_name}.bias", f"blocks.{i}.{name}.bias", False))
    rules += [("ln_f.weight", "ln_f.weight", False), ("ln_f.bias", "ln_f.bias", False)]
    if not config.tie_weights:
        rules.append(("lm_head.weight", "head.weight", False))
    return rules


def from_hf_gpt2(hf_state_dict: dict[str, torch.Tensor], hf_config: GPT2Config) -> GPT:
    """把 Hugging Face GPT-2 的 state_dict 装进本站的 GPT，返回 eval 模式的模型。"""
    config = site_config(hf_config)
    # GPT2LMHeadModel 的名字以 "transformer." 开头，GPT2Model（没有输出层的 GPT-2）的没有：统一去掉
    hf = {name.removeprefix("transformer."): tensor for name, tensor in hf_state_dict.items()}
    rules = weight_rules(config)
    state = {name: hf[hf_name].t() if transpose else hf[hf_name] for hf_name, name, transpose in rules}
    if config.tie_weights:
        # 绑定时输出层就是词元嵌入：GPT 里 head.weight 和 tok_emb.weight 是同一个参数
        state["head.weight"] = state["tok_emb.weight"]
    # 每个权重都要用上：多出来的名字说明这个模型有本站的 GPT 没有的部分。
    # 绑定时的 lm_head.weight 就是 wte.weight；旧版 transformers 还把因果掩码存成 attn.bias，它不是参数
    ignored = {"lm_head.weight"} | {name for name in hf if name.endswith((".attn.bias", ".attn.masked_bias"))}
    unused = set(hf) - {hf_name for hf_name, _, _ in rules} - ignored
    if unused:
        raise ValueError(f"这些权重没有用上：{sorted(unused)}")
    model = GPT(config)
    model.load_state_dict(state)  # 默认 strict=True：少一个、多一个名字或形状不对都会报错
    return model.eval()


print(site_config(tiny_config))
# --8<-- [end:convert]

# --8<-- [start:table]
hf_shapes = {name.removeprefix("transformer."): tuple(t.shape) for name, t in hf_model.state_dict().items()}
print("| Hugging Face 的名字 | 形状 | 本站的名字 | 形状 | 转置 |")
print("| --- | --- | --- | --- | --- |")
for hf_name, name, transpose in weight_rules(site_config(tiny_config)):
    if hf_name.startswith("h.0.") or not hf_name.startswith("h."):  # 第 1 块和第 0 块一样，不重复列出
        shape = hf_shapes[hf_name][::-1] if transpose else hf_shapes[hf_name]
        print(f"| `{hf_name}` | {hf_shapes[hf_name]} | `{name}` | {shape} | {'是' if transpose else ''} |")
# --8<-- [end:table]

# --8<-- [start:compare]
from dataclasses import replace

from _tinygpt import one_thread


def max_logit_difference(hf_model: GPT2LMHeadModel, model: GPT, idx: torch.Tensor) -> float:
    """同一批输入，两个模型的 logits 最大差多少（取绝对值）。"""
    with torch.no_grad(), one_thread():
        return (hf_model(idx).logits - model(idx)).abs().max().item()


idx = torch.randint(
    tiny_config.vocab_size, (4, tiny_config.n_positions), generator=torch.Generator().manual_seed(1)
)
model = from_hf_gpt2(hf_model.state_dict(), hf_model.config)
with torch.no_grad(), one_thread():
    default_logits = hf_model(idx).logits.abs().max().item()
default_diff = max_logit_difference(hf_model, model, idx)
exact_gelu = GPT(replace(model.config, gelu="none")).eval()
exact_gelu.load_state_dict(model.state_dict())
default_gelu_diff = max_logit_difference(hf_model, exact_gelu, idx)
print(
    f"默认初始化（initializer_range={tiny_config.initializer_range}）：logits 的绝对值最大 {default_logits:.2f}"
)
print(f"  转换后的模型与 GPT2LMHeadModel 的 logits 最大差别: {default_diff:.1e}")
print(f"  把 GELU 换成精确公式（错的），最大差别也只有: {default_gelu_diff:.1e}")
# --8<-- [end:compare]

# --8<-- [start:scale]
# 换成真实规模的权重：矩阵和偏置的标准差 0.5，LayerNorm 的缩放在 1 附近，让每一条对应规则都起作用
torch.manual_seed(0)
with torch.no_grad():
    for name, p in hf_model.named_parameters():
        p.normal_(mean=1.0 if ".ln_" in name and name.endswith("weight") else 0.0, std=0.5)

TOLERANCE = 1e-4  # 远大于 float32 的舍入误差，远小于任何一条规则弄错时的差别（8.4 节）
model = from_hf_gpt2(hf_model.state_dict(), hf_model.config)
with torch.no_grad(), one_thread():
    scaled_logits = hf_model(idx).logits.abs().max().item()
max_diff = max_logit_difference(hf_model, model, idx)
print(f"真实规模的权重：logits 的绝对值最大 {scaled_logits:.2f}")
print(f"转换后的模型与 GPT2LMHeadModel 的 logits 最大差别: {max_diff:.1e}（容差 {TOLERANCE:.0e}）")
assert max_diff < TOLERANCE, "两个模型的 logits 应该一致"
# --8<-- [end:scale]


# --8<-- [start:broken]
def broken_difference(state: dict[str, torch.Tensor], config: GPTConfig = model.config) -> float:
    """按改坏的 state_dict 建一个模型，看它和 GPT2LMHeadModel 的 logits 差多少。"""
    torch.manual_seed(0)  # 没装进权重的参数（例如没绑定的输出层）留着随机初始化的值
    wrong = GPT(config).eval()
    wrong.load_state_dict(state, strict=False)
    return max_logit_difference(hf_model, wrong, idx)


good = model.state_dict()
C = model.config.n_embd
no_transpose = {k: v.t() if k.endswith("attn.proj.weight") else v for k, v in good.items()}
untied = {k: v for k, v in good.items() if k != "head.weight"}
swapped = dict(good)
for i in range(model.config.n_layer):
    for kind in ("weight", "bias"):
        q, k, v = good[f"blocks.{i}.attn.qkv.{kind}"].split(C)
        swapped[f"blocks.{i}.attn.qkv.{kind}"] = torch.cat([k, q, v])  # q 和 k 的位置弄反了
breakages = {
    "attn.c_proj 忘了转置（方阵，形状对得上）": broken_difference(no_transpose),
    "没有绑定输出层（head 留着随机值）": broken_difference(untied, replace(model.config, tie_weights=False)),
    "GELU 用了精确公式": broken_difference(good, replace(model.config, gelu="none")),
    "c_attn 切成 q、k、v 时弄反了 q 和 k": broken_difference(swapped),
}
print("| 故意弄错的规则 | logits 最大差别 | 是容差的几倍 |")
print("| --- | --- | --- |")
for rule, diff in breakages.items():
    print(f"| {rule} | {diff:.1e} | {diff / TOLERANCE:,.0f} |")
# --8<-- [end:broken]

# --8<-- [start:shape_error]
# c_attn 的权重是 (d, 3d)，不转置就装不进 (3d, d) 的 qkv.weight：这种错误 load_state_dict 会直接指出来
try:
    GPT(model.config).load_state_dict(
        {**good, "blocks.0.attn.qkv.weight": good["blocks.0.attn.qkv.weight"].t()}
    )
except RuntimeError as error:
    print("c_attn 忘了转置:", str(error).splitlines()[1].strip())
# --8<-- [end:shape_error]

# --8<-- [start:save]
import tempfile
from pathlib import Path

from safetensors import safe_open
from safetensors.torch import load_model, save_file, save_model

with tempfile.TemporaryDirectory() as folder:
    path = Path(folder) / "gpt2-tiny.safetensors"
    try:
        save_file(model.state_dict(), path)  # state_dict 里 head.weight 和 tok_emb.weight 是同一块内存
    except RuntimeError as error:
        print("save_file 拒绝保存:", str(error).strip().split(":")[0])
    save_model(model, path)  # save_model 认得共用的张量：只存一份，另一个名字记在元数据里
    with safe_open(path, framework="pt") as f:
        stored, metadata = list(f.keys()), f.metadata()
    print(f"文件 {path.stat().st_size:,} 字节，存了 {len(stored)} 个张量（state_dict 有 {len(good)} 个名字）")
    print("元数据记下的共用关系:", metadata)

    reloaded = GPT(model.config).eval()  # 先按配置建一个随机初始化的模型，再装入权重
    missing, unexpected = load_model(reloaded, path)
print("load_model 报告缺少的、多余的名字:", sorted(missing), sorted(unexpected))
print("读回后输出层与词元嵌入仍是同一个参数:", reloaded.head.weight is reloaded.tok_emb.weight)
with torch.no_grad(), one_thread():
    reloaded_equal = torch.equal(reloaded(idx), model(idx))
print("读回的模型与原模型的 logits 逐位相同:", reloaded_equal)
# --8<-- [end:save]

# --8<-- [start:real]
from _tinygpt import count_parameters


def load_gpt2(name: str = "openai-community/gpt2") -> tuple[GPT, GPT2LMHeadModel]:
    """从 Hugging Face Hub 下载 GPT-2（第一次要联网，之后读本机的缓存），换成本站的 GPT。
    name 也可以是本机的一个目录（save_pretrained 存下的）。构建网站时从不调用它。"""
    hf = GPT2LMHeadModel.from_pretrained(name).eval()
    return from_hf_gpt2(hf.state_dict(), hf.config), hf


@torch.no_grad()
def generate(model: GPT, tokenizer, prompt: str, new_tokens: int = 20) -> str:
    """贪心生成（第 2 页做加法题时的办法）：每一步取 logits 最大的词元，接到末尾。"""
    ids = tokenizer(prompt, return_tensors="pt").input_ids
    for _ in range(new_tokens):
        logits = model(ids[:, -model.config.block_size :])  # 太长时只看最后 block_size 个词元
        ids = torch.cat([ids, logits[:, -1].argmax(dim=-1, keepdim=True)], dim=1)
    return tokenizer.decode(ids[0])


# GPT2Config() 的默认值就是最小的那个 GPT-2。只换算配置、在 meta 设备上搭骨架数参数，不下载任何东西
gpt2_config = site_config(GPT2Config())
with torch.device("meta"):
    skeleton = GPT(gpt2_config)
print(gpt2_config)
print(f"本站的 GPT 按这个配置有 {count_parameters(skeleton):,} 个参数")

if DOWNLOAD:  # 只在读者自己设置了 HELLO_PYTORCH_DOWNLOAD=1 时运行
    from transformers import AutoTokenizer

    gpt2, hf_gpt2 = load_gpt2()
    tokenizer = AutoTokenizer.from_pretrained("openai-community/gpt2")
    ids = tokenizer("Hello, I'm a language model,", return_tensors="pt").input_ids
    print(f"124M GPT-2：两个模型的 logits 最大差别 {max_logit_difference(hf_gpt2, gpt2, ids):.1e}")
    print(generate(gpt2, tokenizer, "Hello, I'm a language model,"))
# --8<-- [end:real]

# --8<-- [start:exercise_untied]
untied_config = GPT2Config(**{**tiny_config.to_dict(), "tie_word_embeddings": False})
torch.manual_seed(0)
untied_hf = GPT2LMHeadModel(untied_config).eval()
with torch.no_grad():
    for name, p in untied_hf.named_parameters():  # 和 8.3 节一样换成真实规模的权重
        p.normal_(mean=1.0 if ".ln_" in name and name.endswith("weight") else 0.0, std=0.5)
untied_state = untied_hf.state_dict()
print(
    "lm_head.weight 和 wte.weight 是同一块内存:",
    untied_state["lm_head.weight"].data_ptr() == untied_state["transformer.wte.weight"].data_ptr(),
)
untied_model = from_hf_gpt2(untied_state, untied_config)
print("多出来的规则:", [rule for rule in weight_rules(untied_model.config) if rule[0] == "lm_head.weight"])
print(
    "转换后 head.weight 与 tok_emb.weight 是同一个参数:",
    untied_model.head.weight is untied_model.tok_emb.weight,
)
untied_diff = max_logit_difference(untied_hf, untied_model, idx)
print(f"logits 最大差别: {untied_diff:.1e}（容差 {TOLERANCE:.0e}）")
# --8<-- [end:exercise_untied]


# --8<-- [start:exercise_to_hf]
def to_hf_gpt2(model: GPT, hf_config: GPT2Config) -> GPT2LMHeadModel:
    """反过来：本站的 GPT -> GPT2LMHeadModel。用同一张 weight_rules，只是方向反过来。"""
    if site_config(hf_config) != model.config:
        raise ValueError("两边的配置对不上")
    ours = model.state_dict()
    state = {}
    for hf_name, name, transpose in weight_rules(model.config):
        # GPT2LMHeadModel 的名字多一个前缀 "transformer."；只有不绑定时才有的 lm_head 在它外面
        key = hf_name if hf_name == "lm_head.weight" else f"transformer.{hf_name}"
        state[key] = ours[name].t() if transpose else ours[name]
    if model.config.tie_weights:
        state["lm_head.weight"] = state["transformer.wte.weight"]  # GPT2LMHeadModel 的 state_dict 里也有它
    hf = GPT2LMHeadModel(hf_config).eval()
    hf.load_state_dict(state)  # strict=True：GPT2LMHeadModel 的名字少一个、多一个都会报错
    return hf


back = to_hf_gpt2(model, hf_model.config)
round_trip_equal = all(torch.equal(back.state_dict()[k], v) for k, v in hf_model.state_dict().items())
print("转回去的 state_dict 与原来的逐位相同:", round_trip_equal)
print(f"转回去的 GPT2LMHeadModel 与本站 GPT 的 logits 最大差别: {max_logit_difference(back, model, idx):.1e}")
# --8<-- [end:exercise_to_hf]

# --8<-- [start:exercise_eps]
eps_diffs = {}
for eps in (1e-6, 1e-3):
    other_eps = GPT2LMHeadModel(GPT2Config(**{**tiny_config.to_dict(), "layer_norm_epsilon": eps})).eval()
    other_eps.load_state_dict(hf_model.state_dict())  # 权重完全相同，只有 LayerNorm 的 eps 不同
    try:
        site_config(other_eps.config)
    except ValueError as error:
        print(f"eps = {eps:g}：site_config 拒绝转换：{error}")
    # 假如没有这项检查，硬把权重装进 eps = 1e-5 的本站 GPT：
    eps_diffs[eps] = max_logit_difference(other_eps, model, idx)
    print(f"  硬转换的话，logits 最大差别 {eps_diffs[eps]:.1e}，是容差的 {eps_diffs[eps] / TOLERANCE:.1f} 倍")
# --8<-- [end:exercise_eps]

# --8<-- [start:exercise_safetensors_header]
import json
import struct

with tempfile.TemporaryDirectory() as folder:
    path = Path(folder) / "gpt2-tiny.safetensors"
    save_model(model, path)
    raw = path.read_bytes()
header_size = struct.unpack("<Q", raw[:8])[0]  # 前 8 个字节：小端的无符号 64 位整数，文件头有多少字节
header = json.loads(raw[8 : 8 + header_size])  # 文件头是一段 JSON
print(f"文件共 {len(raw):,} 字节；前 8 个字节说文件头有 {header_size:,} 字节")
print("文件头里的 __metadata__:", header.pop("__metadata__"))
for name in list(header)[:3]:
    print(f"  {name}: {header[name]}")
print(f"  ……共 {len(header)} 个张量")
data_bytes = sum(end - begin for begin, end in (entry["data_offsets"] for entry in header.values()))
print(f"8 + 文件头 {header_size:,} + 张量数据 {data_bytes:,} = {8 + header_size + data_bytes:,} 字节")
# --8<-- [end:exercise_safetensors_header]
