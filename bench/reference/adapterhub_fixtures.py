#!/usr/bin/env python3
"""Bottleneck adapters in AdapterHub's file layout, with the outputs AdapterHub (`adapters` v1.1,
transformers 4.47) computes for them, from an independent PyTorch implementation of its placement
rules on the tiny architectures.

The rules written here, by AdapterHub source file and function (tag v1.1.0):

- src/adapters/methods/bottleneck.py BottleneckLayer.bottleneck_layer_forward(hidden_states,
  residual_input, layer_norm): pre_forward -> forward -> post_forward of the adapter below.
- src/adapters/methods/modeling.py Adapter:
  * pre_forward: residual = hidden_states if residual_before_ln is True; with original_ln_before,
    hidden_states = hidden_states + input_tensor, residual = that sum if residual_before_ln ==
    "post_add", then hidden_states = layer_norm(...) when the block has one; residual =
    hidden_states if residual_before_ln is False.
  * forward: adapter_down = [LayerNorm (ln_before)], Linear, activation; up = adapter_up(down) *
    scaling; output = up (+ residual if adapter_residual_before_ln); adapter_norm_after (ln_after);
    + residual if not adapter_residual_before_ln.
  * post_forward: with original_ln_after, layer_norm(hidden_states + input_tensor) (or the plain
    sum without a layer norm); else hidden_states as they are.
  * ParallelAdapter: pre_forward returns the sublayer input as the adapter's input; forward has no
    residual (ln_after on the scaled up-projection); post_forward adds the sublayer output, then
    original_ln_after as above.
  * __init__: ln_before's LayerNorm is registered as adapter_norm_before and as adapter_down.0
    (both in the state dict), the down Linear is then adapter_down.1; nn.LayerNorm eps 1e-5.
- Where the layer sits and what it gets (src/adapters/models/*):
  * BERT (bert/modeling_bert.py BertSelfOutputWithAdapters / BertOutputWithAdapters):
    bottleneck_layer_forward(dense output, input_tensor, self.LayerNorm); module paths
    `<layer>.attention.output` / `<layer>.output`.
  * GPT-2 (gpt2/modeling_gpt2.py GPT2BlockWithAdapters.forward): attention_adapters(attn_output,
    residual, None), output_adapters(mlp output, residual, None): no layer norm (pre-LN).
  * Llama (llama/modeling_llama.py LlamaDecoderLayerWithAdapters.forward): the same, None.
- Files (src/adapters/loading.py AdapterLoader.save, configuration/model_adapters_config.py
  build_full_config, utils.py CONFIG_NAME / WEIGHTS_NAME / SAFE_WEIGHTS_NAME):
  adapter_config.json {"config": BnConfig.to_dict(), "hidden_size", "model_class", "model_name",
  "model_type", "name", "version"}; weights filtered by ".adapters.<name>." from the model's
  state dict, in adapter.safetensors or pytorch_adapter.bin (torch.save).

Writes test/fixtures/adapterhub/<arch>-<variant>/ (the adapter folder plus expected.json:
inputs, last_hidden_state and for decoders logits on every 16th vocabulary column) and
test/fixtures/pickle/ (a torch.save'd state dict with its values as JSON, and a malicious pickle).

Run: /usr/bin/python3 bench/reference/adapterhub_fixtures.py
"""
import collections
import io
import json
import math
import os
import pickle
import sys
import zipfile

import torch

sys.path.insert(0, os.path.dirname(__file__))
import tiny_checkpoints as tc  # noqa: E402
from models_torch import read_safetensors  # noqa: E402

ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "test", "fixtures")
DT = torch.float64
NAME = "mine"  # the adapter's name inside the file (keys carry it)

# BnConfig's fields as to_dict() writes them (adapter_config.py BnConfig defaults).
BN_DEFAULTS = {
    "adapter_residual_before_ln": False, "architecture": "bottleneck", "cross_adapter": False, "dropout": 0.0,
    "factorized_phm_W": True, "factorized_phm_rule": False, "hypercomplex_nonlinearity": "glorot-uniform",
    "init_weights": "bert", "inv_adapter": None, "inv_adapter_reduction_factor": None, "is_parallel": False,
    "learn_phm": True, "leave_out": [], "ln_after": False, "ln_before": False, "mh_adapter": False,
    "non_linearity": "relu", "original_ln_after": True, "original_ln_before": False, "output_adapter": True,
    "phm_bias": True, "phm_c_init": "normal", "phm_dim": 4, "phm_init_range": 0.0001, "phm_layer": False,
    "phm_rank": 1, "reduction_factor": 16, "residual_before_ln": True, "scaling": 1.0, "shared_W_phm": False,
    "shared_phm_rule": True, "stochastic_depth": 0.0, "use_gating": False,
}
# SeqBnConfig, DoubleSeqBnConfig, ParBnConfig.
SEQ_BN = {"original_ln_before": True, "mh_adapter": False, "output_adapter": True, "non_linearity": "relu", "reduction_factor": 16}
DOUBLE_SEQ_BN = {"original_ln_before": False, "mh_adapter": True, "output_adapter": True, "non_linearity": "swish", "reduction_factor": 16}
PAR_BN = {"mh_adapter": False, "output_adapter": True, "non_linearity": "relu", "reduction_factor": 2, "init_weights": "mam_adapter", "is_parallel": True, "scaling": 4.0}

# Every placement option; reduction factors small enough for a 32-wide model.
VARIANTS = {
    "seq_bn": {**SEQ_BN, "reduction_factor": 4},
    "seq_bn-residual_after_ln": {**SEQ_BN, "reduction_factor": 4, "residual_before_ln": False},
    "seq_bn-post_add": {**SEQ_BN, "reduction_factor": 4, "residual_before_ln": "post_add"},
    "seq_bn-ln_before_after": {**SEQ_BN, "reduction_factor": 4, "ln_before": True, "ln_after": True, "non_linearity": "tanh"},
    "seq_bn-adapter_residual_before_ln": {**SEQ_BN, "reduction_factor": 8, "ln_after": True, "adapter_residual_before_ln": True, "non_linearity": "leakyrelu"},
    "seq_bn-no_original_ln_after": {**SEQ_BN, "reduction_factor": 4, "original_ln_after": False, "residual_before_ln": False},
    "double_seq_bn": {**DOUBLE_SEQ_BN, "reduction_factor": 4},
    "double_seq_bn-ln_before": {**DOUBLE_SEQ_BN, "reduction_factor": {"0": 2, "default": 8}, "original_ln_before": True, "ln_before": True, "leave_out": [1], "scaling": 0.5},
    "par_bn": {**PAR_BN},
    "par_bn-ln_after": {**PAR_BN, "reduction_factor": 4, "ln_before": True, "ln_after": True, "mh_adapter": True, "non_linearity": "gelu"},
    "par_bn-no_original_ln_after": {**PAR_BN, "reduction_factor": 4, "original_ln_after": False},
}
# AdapterHub computes these only where the block has a layer norm / none (see bench notes in the test).
POST_LN_ONLY = {"seq_bn-post_add"}  # pre-LN: pre_forward leaves `residual` unset (UnboundLocalError)
PRE_LN_ONLY = set()
BIN = {"seq_bn", "double_seq_bn-ln_before"}  # written as pytorch_adapter.bin, the rest adapter.safetensors
# DistilBERT (post-LN like BERT, AdapterHub's attention_adapters / output_adapters names): a subset.
DISTILBERT = {"seq_bn", "seq_bn-post_add", "double_seq_bn-ln_before", "par_bn-ln_after", "par_bn-no_original_ln_after"}


def rnd(*shape, std, seed, mean=0.0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(*shape, generator=g, dtype=DT) * std + mean).to(torch.float32).to(DT)


def act(name, x):
    name = name.lower()
    if name == "leakyrelu":
        return torch.nn.functional.leaky_relu(x)
    return {
        "relu": torch.relu, "tanh": torch.tanh, "gelu": tc.gelu, "gelu_new": tc.gelu_new,
        "swish": lambda v: v * torch.sigmoid(v), "silu": lambda v: v * torch.sigmoid(v),
    }[name](x)


def reduction(cfg, layer):
    rf = cfg["reduction_factor"]
    if isinstance(rf, dict):
        rf = rf.get(str(layer), rf.get("default"))
    return rf


class Bottleneck:
    """One AdapterHub adapter layer (modeling.py Adapter / ParallelAdapter) with random non-zero weights."""

    def __init__(self, cfg, H, layer, seed):
        self.cfg = cfg
        b = max(1, int(H // reduction(cfg, layer)))
        self.w = {}
        down = "adapter_down.0"
        if cfg["ln_before"]:
            self.w["adapter_norm_before.weight"] = rnd(H, std=0.2, mean=1.0, seed=seed)
            self.w["adapter_norm_before.bias"] = rnd(H, std=0.2, seed=seed + 1)
            down = "adapter_down.1"
        self.down = down
        self.w[down + ".weight"] = rnd(b, H, std=1 / math.sqrt(H), seed=seed + 2)
        self.w[down + ".bias"] = rnd(b, std=0.2, seed=seed + 3)
        self.w["adapter_up.weight"] = rnd(H, b, std=0.5 / math.sqrt(b), seed=seed + 4)
        self.w["adapter_up.bias"] = rnd(H, std=0.2, seed=seed + 5)
        if cfg["ln_after"]:
            self.w["adapter_norm_after.weight"] = rnd(H, std=0.2, mean=1.0, seed=seed + 6)
            self.w["adapter_norm_after.bias"] = rnd(H, std=0.2, seed=seed + 7)

    def state(self):
        sd = dict(self.w)
        if self.cfg["ln_before"]:  # the same LayerNorm under its second name
            sd["adapter_down.0.weight"] = self.w["adapter_norm_before.weight"]
            sd["adapter_down.0.bias"] = self.w["adapter_norm_before.bias"]
        return sd

    def up(self, x):
        w, c = self.w, self.cfg
        if c["ln_before"]:
            x = tc.layer_norm(x, w["adapter_norm_before.weight"], w["adapter_norm_before.bias"], 1e-5)
        d = act(c["non_linearity"], x @ w[self.down + ".weight"].T + w[self.down + ".bias"])
        return (d @ w["adapter_up.weight"].T + w["adapter_up.bias"]) * c["scaling"]

    def norm_after(self, x):
        return tc.layer_norm(x, self.w["adapter_norm_after.weight"], self.w["adapter_norm_after.bias"], 1e-5)

    def __call__(self, hidden_states, input_tensor, layer_norm):
        """BottleneckLayer.bottleneck_layer_forward with this one adapter active."""
        c = self.cfg
        if c["is_parallel"]:
            out = self.up(input_tensor)
            if c["ln_after"]:
                out = self.norm_after(out)
            h = out + hidden_states
        else:
            x, residual = hidden_states, None
            if c["residual_before_ln"] is True:
                residual = hidden_states
            if c["original_ln_before"]:
                x = hidden_states + input_tensor
                if layer_norm is not None:
                    if c["residual_before_ln"] == "post_add":
                        residual = x
                    x = layer_norm(x)
            if c["residual_before_ln"] is False:
                residual = x
            assert residual is not None, "AdapterHub leaves the residual unset here"
            out = self.up(x)
            if c["adapter_residual_before_ln"]:
                out = out + residual
            if c["ln_after"]:
                out = self.norm_after(out)
            if not c["adapter_residual_before_ln"]:
                out = out + residual
            h = out
        if c["original_ln_after"]:
            h = h + input_tensor
            if layer_norm is not None:
                h = layer_norm(h)
        return h


def make_adapters(cfg, H, L, seed):
    out = {}
    for i in range(L):
        if i in cfg["leave_out"]:
            continue
        for kind in ("attention", "output"):
            if (kind == "attention" and cfg["mh_adapter"]) or (kind == "output" and cfg["output_adapter"]):
                out[(i, kind)] = Bottleneck(cfg, H, i, seed + 100 * i + (50 if kind == "output" else 0))
    return out


def plain(hidden_states, input_tensor, layer_norm):
    h = hidden_states + input_tensor
    return layer_norm(h) if layer_norm is not None else h


def bert(cfg, W, ids, mask, ad):
    pre = "bert."
    nh, eps = cfg["num_attention_heads"], cfg["layer_norm_eps"]
    E = lambda k: W[pre + "embeddings." + k]
    S = ids.shape[1]
    x = E("word_embeddings.weight")[ids] + E("position_embeddings.weight")[torch.arange(S)] + E("token_type_embeddings.weight")[0]
    x = tc.layer_norm(x, E("LayerNorm.weight"), E("LayerNorm.bias"), eps)
    am = tc.pad_mask(mask)
    for i in range(cfg["num_hidden_layers"]):
        p = f"{pre}encoder.layer.{i}."
        ln = lambda name: (lambda t: tc.layer_norm(t, W[p + name + ".weight"], W[p + name + ".bias"], eps))
        q, k, v = (tc.heads(tc.lin(W, x, p + "attention.self." + n), nh) for n in ("query", "key", "value"))
        a = tc.lin(W, tc.merge(tc.attention(q, k, v, am)), p + "attention.output.dense")
        x = ad.get((i, "attention"), plain)(a, x, ln("attention.output.LayerNorm"))
        f = tc.lin(W, tc.gelu(tc.lin(W, x, p + "intermediate.dense")), p + "output.dense")
        x = ad.get((i, "output"), plain)(f, x, ln("output.LayerNorm"))
    return {"last_hidden_state": x}


def distilbert(cfg, W, ids, mask, ad):
    pre = "distilbert."
    nh = cfg["n_heads"]
    E = lambda k: W[pre + "embeddings." + k]
    S = ids.shape[1]
    x = tc.layer_norm(E("word_embeddings.weight")[ids] + E("position_embeddings.weight")[torch.arange(S)], E("LayerNorm.weight"), E("LayerNorm.bias"), 1e-12)
    am = tc.pad_mask(mask)
    for i in range(cfg["n_layers"]):
        p = f"{pre}transformer.layer.{i}."
        ln = lambda name: (lambda t: tc.layer_norm(t, W[p + name + ".weight"], W[p + name + ".bias"], 1e-12))
        q, k, v = (tc.heads(tc.lin(W, x, p + "attention." + n), nh) for n in ("q_lin", "k_lin", "v_lin"))
        a = tc.lin(W, tc.merge(tc.attention(q, k, v, am)), p + "attention.out_lin")
        x = ad.get((i, "attention"), plain)(a, x, ln("sa_layer_norm"))  # TransformerBlock: attention_adapters(sa_output, x, sa_layer_norm)
        f = tc.lin(W, tc.gelu(tc.lin(W, x, p + "ffn.lin1")), p + "ffn.lin2")
        x = ad.get((i, "output"), plain)(f, x, ln("output_layer_norm"))
    return {"last_hidden_state": x}


def gpt2(cfg, W, ids, mask, ad):
    H, nh, eps = cfg["n_embd"], cfg["n_head"], cfg["layer_norm_epsilon"]
    pre = "transformer."
    S = ids.shape[1]
    conv = lambda x, name: x @ W[name + ".weight"] + W[name + ".bias"]
    x = W[pre + "wte.weight"][ids] + W[pre + "wpe.weight"][torch.arange(S)]
    am = tc.pad_mask(mask) + tc.causal(S)
    for i in range(cfg["n_layer"]):
        p = f"{pre}h.{i}."
        q, k, v = conv(tc.layer_norm(x, W[p + "ln_1.weight"], W[p + "ln_1.bias"], eps), p + "attn.c_attn").split(H, -1)
        a = conv(tc.merge(tc.attention(tc.heads(q, nh), tc.heads(k, nh), tc.heads(v, nh), am)), p + "attn.c_proj")
        x = ad.get((i, "attention"), plain)(a, x, None)
        f = conv(tc.gelu_new(conv(tc.layer_norm(x, W[p + "ln_2.weight"], W[p + "ln_2.bias"], eps), p + "mlp.c_fc")), p + "mlp.c_proj")
        x = ad.get((i, "output"), plain)(f, x, None)
    x = tc.layer_norm(x, W[pre + "ln_f.weight"], W[pre + "ln_f.bias"], eps)
    return {"last_hidden_state": x, "logits": x @ W[pre + "wte.weight"].T}


def llama(cfg, W, ids, mask, ad):
    H, nh, kvh = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    D = H // nh
    pre = "model."
    S = ids.shape[1]
    pos = torch.arange(S)[None]
    eps = cfg["rms_norm_eps"]
    inv = tc.llama3_inv_freq(D, cfg["rope_theta"], cfg.get("rope_scaling"))
    rms = lambda x, w: x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps) * w

    def rope(x):
        return tc.rotate(x, pos, inv)

    x = W[pre + "embed_tokens.weight"][ids]
    am = tc.pad_mask(mask) + tc.causal(S)
    for i in range(cfg["num_hidden_layers"]):
        p = f"{pre}layers.{i}."
        xn = rms(x, W[p + "input_layernorm.weight"])
        q = rope(tc.heads(tc.lin(W, xn, p + "self_attn.q_proj"), nh))
        k = rope(tc.heads(tc.lin(W, xn, p + "self_attn.k_proj"), kvh)).repeat_interleave(nh // kvh, 1)
        v = tc.heads(tc.lin(W, xn, p + "self_attn.v_proj"), kvh).repeat_interleave(nh // kvh, 1)
        a = tc.lin(W, tc.merge(tc.attention(q, k, v, am)), p + "self_attn.o_proj")
        x = ad.get((i, "attention"), plain)(a, x, None)
        hn = rms(x, W[p + "post_attention_layernorm.weight"])
        g = tc.lin(W, hn, p + "mlp.gate_proj")
        f = tc.lin(W, g * torch.sigmoid(g) * tc.lin(W, hn, p + "mlp.up_proj"), p + "mlp.down_proj")
        x = ad.get((i, "output"), plain)(f, x, None)
    x = rms(x, W[pre + "norm.weight"])
    head = W[pre + "embed_tokens.weight"] if cfg["tie_word_embeddings"] else W["lm_head.weight"]
    return {"last_hidden_state": x, "logits": x @ head.T}


# name, forward, AdapterHub model class it would be saved from, module path of a layer's adapters
ARCHS = [
    ("bert-tiny", bert, "BertAdapterModel", lambda i, kind: f"bert.encoder.layer.{i}.{'attention.output' if kind == 'attention' else 'output'}"),
    ("distilbert-tiny", distilbert, "DistilBertAdapterModel", lambda i, kind: f"distilbert.transformer.layer.{i}.{kind}_adapters"),
    ("gpt2-tiny", gpt2, "GPT2AdapterModel", lambda i, kind: f"transformer.h.{i}.{kind}_adapters"),
    ("llama-tiny", llama, "LlamaAdapterModel", lambda i, kind: f"model.layers.{i}.{kind}_adapters"),
]


def r6(t):
    """Seven significant digits keep the fixtures small; the tests compare within 1e-5."""
    if isinstance(t, torch.Tensor):
        t = t.tolist()
    if isinstance(t, list):
        return [r6(x) for x in t]
    return float(f"{t:.7g}") if isinstance(t, float) else t


def save_bin(path, sd):
    """torch.save of an OrderedDict of float32 tensors, as AdapterLoader.save writes pytorch_adapter.bin."""
    torch.save(collections.OrderedDict((k, v.to(torch.float32).contiguous()) for k, v in sd.items()), path)


def pickle_fixtures():
    d = os.path.join(ROOT, "pickle")
    os.makedirs(d, exist_ok=True)
    # A small state dict with the storage kinds a real file has: views into one storage (offset,
    # non-contiguous stride), float16, int64, a 0-d tensor, an empty one.
    base = torch.arange(12, dtype=torch.float32).reshape(3, 4) / 8 - 0.5
    sd = collections.OrderedDict()
    sd["layer.adapters.x.adapter_down.0.weight"] = base
    sd["layer.adapters.x.adapter_down.0.bias"] = base[1]  # shares base's storage at an offset
    sd["layer.adapters.x.adapter_up.weight"] = base.t()  # non-contiguous view
    sd["half"] = torch.tensor([1.5, -2.25, 65504.0], dtype=torch.float16)
    sd["steps"] = torch.tensor([3, -1, 2 ** 40], dtype=torch.int64)
    sd["scalar"] = torch.tensor(0.125)
    sd["empty"] = torch.zeros(0, 4)
    torch.save(sd, os.path.join(d, "state_dict.bin"))
    expected = {k: {"dtype": str(v.dtype).replace("torch.", ""), "shape": list(v.shape), "values": v.flatten().tolist()} for k, v in sd.items()}
    tc.write_json(os.path.join(d, "state_dict.json"), expected)

    # A pickle that would run a shell command if unpickled by torch.load(weights_only=False), in
    # torch.save's zip layout: the global is posix.system.
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned > /tmp/peftjs-pwned",))

    data = pickle.dumps({"weight": Evil()}, protocol=2)
    assert b"posix" in data and b"system" in data
    # Fixed entry times (writestr with a bare name stamps the current time): the file is the same on every run.
    with zipfile.ZipFile(os.path.join(d, "malicious.bin"), "w", zipfile.ZIP_STORED) as z:
        for name, content in (("archive/data.pkl", data), ("archive/version", b"3\n")):
            z.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), content)
    print(f"{d}: state_dict.bin ({len(sd)} tensors), malicious.bin")


def main():
    torch.set_num_threads(1)
    seed = 1000
    for arch, forward, model_class, module in ARCHS:
        d = os.path.join(ROOT, "models", arch)
        cfg = json.load(open(os.path.join(d, "config.json")))
        W = {k: v.to(DT) for k, v in read_safetensors(os.path.join(d, "model.safetensors")).items()}
        ref = json.load(open(os.path.join(d, "reference.json")))
        ids = torch.tensor(ref["inputs"]["input_ids"])
        mask = torch.tensor(ref["inputs"]["attention_mask"])
        H = cfg.get("hidden_size", cfg.get("n_embd", cfg.get("dim")))
        L = cfg.get("num_hidden_layers", cfg.get("n_layer", cfg.get("n_layers")))
        post_ln = arch.startswith("bert") or arch.startswith("distilbert")
        for variant, over in VARIANTS.items():
            if (variant in POST_LN_ONLY and not post_ln) or (variant in PRE_LN_ONLY and post_ln):
                continue
            if arch == "distilbert-tiny" and variant not in DISTILBERT:
                continue
            seed += 1000
            config = {**BN_DEFAULTS, **over}
            ad = make_adapters(config, H, L, seed)
            out = forward(cfg, W, ids, mask, ad)
            sd = collections.OrderedDict()
            for (i, kind), a in ad.items():
                for k, v in a.state().items():
                    sd[f"{module(i, kind)}.adapters.{NAME}.{k}"] = v
            folder = os.path.join(ROOT, "adapterhub", f"{arch}-{variant}")
            os.makedirs(folder, exist_ok=True)
            for f in os.listdir(folder):
                os.remove(os.path.join(folder, f))
            # build_full_config + AdapterLoader.save: json.dump(indent=2, sort_keys=True).
            full = {"config": config, "hidden_size": H, "model_class": model_class, "model_name": f"tiny/{arch}", "model_type": cfg["model_type"], "name": NAME, "version": "adapters.1.1.0"}
            with open(os.path.join(folder, "adapter_config.json"), "w") as f:
                json.dump(full, f, indent=2, sort_keys=True)
            if variant in BIN:
                save_bin(os.path.join(folder, "pytorch_adapter.bin"), sd)
            else:
                tc.write_safetensors(os.path.join(folder, "adapter.safetensors"), sd)
            expected = {"inputs": {"input_ids": ids.tolist(), "attention_mask": mask.tolist()}, "last_hidden_state": r6(out["last_hidden_state"])}
            if "logits" in out:
                cols = list(range(0, out["logits"].shape[-1], 16))
                expected["logits_columns"] = cols
                expected["logits"] = r6(out["logits"][..., cols])
            # The same inputs without the adapter: each variant must move the outputs by far more than the tolerance.
            base = forward(cfg, W, ids, mask, {})["last_hidden_state"]
            expected["moved_from_base"] = float((out["last_hidden_state"] - base).abs().max())
            with open(os.path.join(folder, "expected.json"), "w") as f:
                json.dump(expected, f, separators=(",", ":"))
            print(f"{folder}: {len(sd)} tensors, moved {expected['moved_from_base']:.3g}")
        if arch == "bert-tiny":
            head_fixture(cfg, W, ids, mask, H, L)
    pickle_fixtures()


def head_fixture(cfg, W, ids, mask, H, L):
    """A seq_bn adapter with a classification head, as a BertAdapterModel saves both: the flex head
    (heads/base.py ClassificationHead, layers=1 on the pooler: STATIC_TO_FLEX_HEAD_MAP's
    BertForSequenceClassification row) in head_config.json + pytorch_model_head.bin under
    `heads.<name>.1.*`; logits = Linear(tanh(pooler(h[:, 0])))."""
    config = {**BN_DEFAULTS, **SEQ_BN, "reduction_factor": 4}
    ad = make_adapters(config, H, L, 777)
    out = bert(cfg, W, ids, mask, ad)
    C = cfg["num_labels"]
    head = {"heads.mine.1.weight": rnd(C, H, std=0.5, seed=778), "heads.mine.1.bias": rnd(C, std=0.2, seed=779)}
    pooled = torch.tanh(tc.lin(W, out["last_hidden_state"][:, 0], "bert.pooler.dense"))
    logits = pooled @ head["heads.mine.1.weight"].T + head["heads.mine.1.bias"]
    folder = os.path.join(ROOT, "adapterhub", "bert-tiny-seq_bn-head")
    os.makedirs(folder, exist_ok=True)
    sd = collections.OrderedDict()
    for (i, kind), a in ad.items():
        for k, v in a.state().items():
            sd[f"bert.encoder.layer.{i}.{'attention.output' if kind == 'attention' else 'output'}.adapters.{NAME}.{k}"] = v
    meta = {"hidden_size": H, "model_class": "BertAdapterModel", "model_name": "tiny/bert-tiny", "model_type": "bert", "name": NAME, "version": "adapters.1.1.0"}
    with open(os.path.join(folder, "adapter_config.json"), "w") as f:
        json.dump({**meta, "config": config}, f, indent=2, sort_keys=True)
    save_bin(os.path.join(folder, "pytorch_adapter.bin"), sd)
    label2id = cfg["label2id"]
    head_config = {"head_type": "classification", "num_labels": C, "layers": 1, "activation_function": None, "label2id": label2id, "use_pooler": True, "bias": True, "dropout_prob": None}
    with open(os.path.join(folder, "head_config.json"), "w") as f:
        json.dump({**meta, "config": head_config, "label2id": label2id}, f, indent=2, sort_keys=True)
    save_bin(os.path.join(folder, "pytorch_model_head.bin"), head)
    expected = {"inputs": {"input_ids": ids.tolist(), "attention_mask": mask.tolist()}, "last_hidden_state": r6(out["last_hidden_state"]), "sequence_logits": r6(logits), "moved_from_base": float((out["last_hidden_state"] - bert(cfg, W, ids, mask, {})["last_hidden_state"]).abs().max())}
    with open(os.path.join(folder, "expected.json"), "w") as f:
        json.dump(expected, f, separators=(",", ":"))
    print(f"{folder}: adapter + classification head")


if __name__ == "__main__":
    main()
