"""第二部分第 8 页：Hugging Face 的 GPT-2 换进本站的 GPT 后 logits 一致；每条对应规则弄错一条，核对就失败；
safetensors 的往返保住绑定的权重；构建和测试从不联网。"""

import copy
import itertools
import os
import socket
import time

import pytest
import torch

SNIPPET = "snippets/part2/ch08_gpt2.py"
TIGHT = 1e-10  # float64 下两个模型应一致到这个程度：只剩 float64 的舍入误差


def hf_gpt2(seed: int = 3, std: float = 0.5, **settings):
    """一个随机的小 GPT-2，权重是真实的规模：矩阵和偏置标准差 std，LayerNorm 的缩放在 1 附近。"""
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(
        **{
            "vocab_size": 64,
            "n_positions": 12,
            "n_embd": 24,
            "n_layer": 3,
            "n_head": 3,
            "bos_token_id": 0,
            "eos_token_id": 0,
            **settings,
        }
    )
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.normal_(mean=1.0 if ".ln_" in name and name.endswith("weight") else 0.0, std=std)
    return model


def tokens(model, batch: int = 3) -> torch.Tensor:
    config = model.config
    return torch.randint(
        config.vocab_size, (batch, config.n_positions), generator=torch.Generator().manual_seed(7)
    )


def max_diff(hf_model, model, idx: torch.Tensor, dtype=torch.float64) -> float:
    """两个模型的副本都换成 dtype 再比：float64 时，转换的对错与 float32 的舍入误差分得清清楚楚。"""
    hf_model, model = copy.deepcopy(hf_model).to(dtype), copy.deepcopy(model).to(dtype)
    with torch.no_grad():
        return (hf_model(idx).logits - model(idx)).abs().max().item()


def rebuilt(ns, state: dict, config) -> torch.nn.Module:
    """按一份（可能改坏的）state_dict 建本站的 GPT；没装进去的参数留着随机初始化的值。"""
    torch.manual_seed(0)
    model = ns["GPT"](config).eval()
    model.load_state_dict(state, strict=False)
    return model


@pytest.mark.parametrize(
    "settings",
    [
        {},  # 和真正的 GPT-2 一样：绑定的输出层、tanh 近似的 GELU
        {"tie_word_embeddings": False},  # 输出层单独一个矩阵
        {"activation_function": "gelu"},  # 精确的 GELU
        {"n_inner": 4 * 24, "n_head": 6},
    ],
    ids=["gpt2", "untied", "exact-gelu", "six-heads"],
)
def test_logits_agree_at_realistic_scale(run_snippet, settings):
    ns = run_snippet(SNIPPET).ns
    hf = hf_gpt2(**settings)
    model = ns["from_hf_gpt2"](hf.state_dict(), hf.config)
    idx = tokens(hf)
    assert max_diff(hf, model, idx) < TIGHT
    assert max_diff(hf, model, idx, torch.float32) < ns["TOLERANCE"]
    with torch.no_grad():
        assert hf(idx).logits.abs().max() > 5, "权重应有真实的规模，logits 不能都挤在 0 附近"
    config = model.config
    assert config.tie_weights == hf.config.tie_word_embeddings
    assert (model.head.weight is model.tok_emb.weight) == config.tie_weights
    assert ns["count_parameters"](model) == hf.num_parameters()


def _no_transpose(ns, good, config):
    # attn.c_proj 是方阵：不转置也装得进去
    return {k: v.t() if k.endswith("attn.proj.weight") else v for k, v in good.items()}, config


def _untied(ns, good, config):
    from dataclasses import replace

    return {k: v for k, v in good.items() if k != "head.weight"}, replace(config, tie_weights=False)


def _wrong_gelu(ns, good, config):
    from dataclasses import replace

    return good, replace(config, gelu="none")


def _swapped_qk(ns, good, config):
    state = dict(good)
    for i in range(config.n_layer):
        for kind in ("weight", "bias"):
            q, k, v = good[f"blocks.{i}.attn.qkv.{kind}"].split(config.n_embd)
            state[f"blocks.{i}.attn.qkv.{kind}"] = torch.cat([k, q, v])
    return state, config


@pytest.mark.parametrize(
    "breakage",
    [_no_transpose, _untied, _wrong_gelu, _swapped_qk],
    ids=["missing-transpose", "untied-embeddings", "wrong-gelu", "swapped-qk"],
)
def test_each_broken_rule_fails_the_check(run_snippet, breakage):
    ns = run_snippet(SNIPPET).ns
    hf = hf_gpt2()
    good = ns["from_hf_gpt2"](hf.state_dict(), hf.config)
    idx = tokens(hf)
    assert max_diff(hf, good, idx) < TIGHT, "没弄坏时应当一致"
    state, config = breakage(ns, good.state_dict(), good.config)
    wrong = rebuilt(ns, state, config)
    assert max_diff(hf, wrong, idx) > 1e6 * TIGHT, f"{breakage.__name__}：弄错的规则应让 float64 的核对失败"
    assert max_diff(hf, wrong, idx, torch.float32) > 10 * ns["TOLERANCE"], "float32 的容差也应发现它"


def test_small_default_weights_hide_the_gelu_mistake(run_snippet):
    """8.3 节说：默认初始化的权重太小，GELU 用错也显不出来；换成真实规模后才超出容差。"""
    ns = run_snippet(SNIPPET).ns
    assert ns["default_diff"] < ns["TOLERANCE"] and ns["default_gelu_diff"] < ns["TOLERANCE"]
    hf = hf_gpt2(std=0.02)
    model = ns["from_hf_gpt2"](hf.state_dict(), hf.config)
    state, config = _wrong_gelu(ns, model.state_dict(), model.config)
    assert max_diff(hf, rebuilt(ns, state, config), tokens(hf), torch.float32) < ns["TOLERANCE"]
    assert ns["breakages"]["GELU 用了精确公式"] > 10 * ns["TOLERANCE"]


def test_unsupported_models_are_refused(run_snippet):
    ns = run_snippet(SNIPPET).ns
    for settings in (
        {"n_inner": 3 * 24},
        {"layer_norm_epsilon": 1e-6},
        {"activation_function": "relu"},
        {"scale_attn_by_inverse_layer_idx": True},
    ):
        hf = hf_gpt2(**settings)
        with pytest.raises(ValueError, match="表示不了"):
            ns["from_hf_gpt2"](hf.state_dict(), hf.config)
    hf = hf_gpt2()
    extra = {**hf.state_dict(), "transformer.h.0.attn.q_attn.weight": torch.zeros(24, 24)}
    with pytest.raises(ValueError, match="没有用上"):
        ns["from_hf_gpt2"](extra, hf.config)


def test_page_prints_what_the_test_computes(run_snippet):
    run = run_snippet(SNIPPET)
    ns, out = run.ns, run.stdout
    hf, idx = ns["hf_model"], ns["idx"]
    fresh = ns["from_hf_gpt2"](hf.state_dict(), hf.config)
    with torch.no_grad():
        diff = (hf(idx).logits - fresh(idx)).abs().max().item()
    assert diff == ns["max_diff"] and diff < ns["TOLERANCE"]
    assert f"logits 最大差别: {diff:.1e}（容差 {ns['TOLERANCE']:.0e}）" in out
    assert max_diff(hf, fresh, idx) < TIGHT
    for rule, broken in ns["breakages"].items():
        assert broken > 10 * ns["TOLERANCE"], rule
        assert f"| {rule} | {broken:.1e} |" in out
    assert "size mismatch for blocks.0.attn.qkv.weight" in out, "c_attn 不转置时 load_state_dict 应报形状错误"


def test_safetensors_round_trip_keeps_the_tied_weights(run_snippet, tmp_path):
    from safetensors import safe_open
    from safetensors.torch import load_model, save_file, save_model

    ns = run_snippet(SNIPPET).ns
    assert ns["reloaded_equal"] and ns["reloaded"].head.weight is ns["reloaded"].tok_emb.weight
    hf = hf_gpt2()
    model = ns["from_hf_gpt2"](hf.state_dict(), hf.config)
    path = tmp_path / "model.safetensors"
    with pytest.raises(RuntimeError, match="share memory"):
        save_file(model.state_dict(), path)
    save_model(model, path)
    with safe_open(path, framework="pt") as f:
        assert len(list(f.keys())) == len(model.state_dict()) - 1, "绑定的矩阵只存一份"
    reloaded = ns["GPT"](model.config).eval()
    assert load_model(reloaded, path) == (set(), [])
    assert reloaded.head.weight is reloaded.tok_emb.weight
    assert max_diff(hf, reloaded, tokens(hf)) < TIGHT


def test_snippet_never_touches_the_network(run_snippet, monkeypatch):
    """离线模式在导入 transformers 之前就打开了：一次误下载立刻报错，而且一个网络连接也不发起。"""
    import huggingface_hub

    run = run_snippet(SNIPPET)
    assert run.ns["DOWNLOAD"] is False and os.environ["HF_HUB_OFFLINE"] == "1"
    assert huggingface_hub.constants.HF_HUB_OFFLINE is True
    assert "124M GPT-2：" not in run.stdout, "构建时不应下载、运行真正的 GPT-2"
    connections = []

    def refuse(*args):
        connections.append(args[-1] if len(args) == 2 else args[0])  # 要连的地址，或要查的主机名
        raise OSError("测试里不许联网")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)  # 查域名是联网的第一步
    start = time.perf_counter()
    with pytest.raises(OSError):
        run.ns["load_gpt2"]("hello-pytorch/no-such-model")
    assert connections == [], "离线模式下不应发起任何网络连接"
    assert time.perf_counter() - start < 10, "误下载应立刻报错，而不是等网络超时"


def test_load_gpt2_and_generate_work_on_a_local_copy(run_snippet, tmp_path):
    """8.6 节没有运行的两个函数：load_gpt2 从本机目录读（不联网），generate 与 transformers 的贪心生成相同。"""
    ns = run_snippet(SNIPPET).ns
    hf = hf_gpt2()
    hf.save_pretrained(tmp_path)
    model, loaded = ns["load_gpt2"](str(tmp_path))
    idx = tokens(hf)
    assert max_diff(loaded, model, idx) < TIGHT and max_diff(hf, model, idx) < TIGHT

    class Tokenizer:  # 最简单的“分词器”：空格分开的编号
        def __call__(self, text, return_tensors):
            assert return_tensors == "pt"
            return type("Encoded", (), {"input_ids": torch.tensor([[int(t) for t in text.split()]])})

        def decode(self, ids):
            return " ".join(str(int(i)) for i in ids)

    prompt = "5 17 42 8"
    model, hf = model.double(), hf.double()
    ours = ns["generate"](model, Tokenizer(), prompt, new_tokens=6)
    theirs = hf.generate(torch.tensor([[5, 17, 42, 8]]), max_new_tokens=6, do_sample=False, pad_token_id=0)
    assert ours == Tokenizer().decode(theirs[0])
    assert len(ours.split()) == 10


class CharTokenizer:
    """测试用的“分词器”：每个字符一个编号（对 vocab_size 取余），解码时写回编号。"""

    def __init__(self, vocab_size: int):
        self.vocab_size = vocab_size

    def __call__(self, text: str, return_tensors: str):
        assert return_tensors == "pt"
        ids = torch.tensor([[ord(ch) % self.vocab_size for ch in text]])
        return type("Encoded", (), {"input_ids": ids})

    def decode(self, ids) -> str:
        return " ".join(str(int(i)) for i in ids)


def test_the_download_branch_runs_against_a_local_copy(run_snippet, tmp_path, monkeypatch, capsys):
    """8.6 节 `if DOWNLOAD:` 里的代码原样运行一遍：Hub 换成本机目录里的小 GPT-2，分词器换成按字符编号的。"""
    from transformers import AutoTokenizer, GPT2LMHeadModel

    from hello_build.dialect import section_code
    from tests.snippets import ROOT

    ns = run_snippet(SNIPPET).ns
    hf = hf_gpt2(n_positions=32)
    hf.save_pretrained(tmp_path)
    asked = []
    local = GPT2LMHeadModel.from_pretrained.__func__

    def from_local(cls, name, *args, **kwargs):
        asked.append(name)
        return local(cls, tmp_path, *args, **kwargs)

    monkeypatch.setattr(GPT2LMHeadModel, "from_pretrained", classmethod(from_local))
    monkeypatch.setattr(
        AutoTokenizer, "from_pretrained", lambda name: asked.append(name) or CharTokenizer(64)
    )
    code = section_code(ROOT, f"{SNIPPET}:real")
    assert "if DOWNLOAD:" in code
    exec(code, {**ns, "DOWNLOAD": True})
    out = capsys.readouterr().out
    assert asked == ["openai-community/gpt2", "openai-community/gpt2"], (
        "应从 Hub 上的 GPT-2 仓库读模型和分词器"
    )
    printed = float(out.split("logits 最大差别 ")[1].split()[0])
    assert printed < ns["TOLERANCE"]
    prompt = CharTokenizer(64)("Hello, I'm a language model,", "pt").input_ids
    continuation = out.rstrip().splitlines()[-1]
    assert continuation.startswith(CharTokenizer(64).decode(prompt[0]) + " "), "续写应从提示开始"
    assert len(continuation.split()) == prompt.shape[1] + 20, "应在提示之后续写 20 个词元"


def test_gpt2_124m_skeleton_has_the_parameter_count_of_transformers(run_snippet):
    from transformers import GPT2Config, GPT2LMHeadModel

    run = run_snippet(SNIPPET)
    with torch.device("meta"):
        hf = GPT2LMHeadModel(GPT2Config())
    count = run.ns["count_parameters"](run.ns["skeleton"])
    assert count == hf.num_parameters()
    assert f"本站的 GPT 按这个配置有 {count:,} 个参数" in run.stdout
    assert run.ns["gpt2_config"].block_size == 1024 and run.ns["gpt2_config"].gelu == "tanh"


# ---------- 8.8 练习 ----------


def test_exercise_untied_gpt2_uses_the_lm_head_rule(run_snippet, monkeypatch):
    ns = run_snippet(SNIPPET).ns
    state, model = ns["untied_state"], ns["untied_model"]
    assert state["lm_head.weight"].data_ptr() != state["transformer.wte.weight"].data_ptr()
    assert model.head.weight is not model.tok_emb.weight
    torch.testing.assert_close(model.head.weight, state["lm_head.weight"], rtol=0, atol=0)
    assert ns["untied_diff"] < ns["TOLERANCE"]
    assert max_diff(ns["untied_hf"], model, ns["idx"]) < TIGHT
    # 答案说：漏了 lm_head 这条规则，strict=True 的 load_state_dict 报缺少 head.weight
    from_hf_gpt2, rules = ns["from_hf_gpt2"], ns["weight_rules"]
    monkeypatch.setitem(
        from_hf_gpt2.__globals__, "weight_rules", lambda c: [r for r in rules(c) if r[0] != "lm_head.weight"]
    )
    with pytest.raises(RuntimeError, match=r"head\.weight"):
        from_hf_gpt2(state, ns["untied_config"])


def test_exercise_to_hf_gpt2_round_trips_bit_for_bit(run_snippet):
    ns = run_snippet(SNIPPET).ns
    assert ns["round_trip_equal"] is True
    assert max_diff(ns["back"], ns["model"], ns["idx"]) < TIGHT
    # 不绑定的模型也能原样转回去（用上 lm_head 那条规则）
    back = ns["to_hf_gpt2"](ns["untied_model"], ns["untied_config"])
    original = ns["untied_hf"].state_dict()
    assert back.state_dict().keys() == original.keys()
    assert all(torch.equal(back.state_dict()[k], v) for k, v in original.items())
    with pytest.raises(ValueError, match="对不上"):
        ns["to_hf_gpt2"](ns["model"], ns["untied_config"])


def test_exercise_wrong_eps_is_refused_by_the_config_and_barely_seen_in_the_logits(run_snippet):
    ns = run_snippet(SNIPPET).ns
    diffs, tolerance = ns["eps_diffs"], ns["TOLERANCE"]
    assert tolerance < diffs[1e-6] < 10 * tolerance, "1e-6：超出容差，但余量很小"
    assert diffs[1e-3] > 100 * tolerance, "1e-3：一眼就能看出"
    out = run_snippet(SNIPPET).stdout
    assert out.count("site_config 拒绝转换") == 2


def test_exercise_safetensors_file_is_length_json_and_raw_bytes(run_snippet):
    ns = run_snippet(SNIPPET).ns
    header, raw = ns["header"], ns["raw"]
    assert 8 + ns["header_size"] + ns["data_bytes"] == len(raw)
    state = ns["model"].state_dict()
    assert len(header) == len(state) - 1, "绑定的权重只存一份"
    offsets = sorted(entry["data_offsets"] for entry in header.values())
    assert offsets[0][0] == 0 and all(a[1] == b[0] for a, b in itertools.pairwise(offsets))
    body = raw[8 + ns["header_size"] :]
    for name, entry in header.items():
        assert entry["dtype"] == "F32" and entry["shape"] == list(state[name].shape)
        begin, end = entry["data_offsets"]
        stored = torch.frombuffer(bytearray(body[begin:end]), dtype=torch.float32).view(state[name].shape)
        assert torch.equal(stored, state[name]), f"{name} 的原始字节就是这个张量"
    assert "存了 28 个张量（state_dict 有 29 个名字）" in run_snippet(SNIPPET).stdout
