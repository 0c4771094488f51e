#!/usr/bin/env python3
"""Prefix-tuning adapters in Hugging Face PEFT's format, with the outputs transformers computes
for them, from an independent PyTorch implementation of the tiny architectures.

PEFT feeds a prefix adapter to the model as past key/values, so everything the model derives
from the cache length shifts by `num_virtual_tokens` (n). The rules written here, by source file:

- PEFT (huggingface/peft v0.14.0, src/peft/peft_model.py):
  * PeftModel.get_prompt: prompt_embeddings [n, num_layers * 2 * token_dim] is viewed as
    [batch, n, num_layers * 2, num_attention_heads, token_dim // num_attention_heads], permuted
    to [num_layers * 2, batch, heads, n, head_dim] and split in pairs: layer l's keys are row 2l,
    its values row 2l + 1.
  * PeftModelForCausalLM.forward / PeftModelForFeatureExtraction.forward: the attention mask
    gets n ones in front; position_ids (and token_type_ids) passed by the caller are dropped, so
    the model computes its own positions from the cache length.
  * PrefixEncoder (src/peft/tuners/prefix_tuning/model.py): with prefix_projection the prefixes
    are transform(embedding) with transform = Linear(token_dim, encoder_hidden_size), Tanh,
    Linear(encoder_hidden_size, num_layers * 2 * token_dim); the saved prompt_embeddings are
    that output (get_prompt_embedding_to_save), loaded in inference mode as a plain embedding.
  * _prepare_prompt_learning_config (src/peft/utils/other.py): for models whose config has
    num_key_value_heads (Llama, Qwen2, Mistral), token_dim = head_dim * num_key_value_heads and
    num_attention_heads = num_key_value_heads (0.14: head_dim = token_dim // num_attention_heads;
    later versions take config.head_dim when set); encoder_hidden_size defaults to token_dim.
- transformers (v4.47):
  * BERT, BertEmbeddings.forward: position_ids = self.position_ids[:, past_key_values_length :
    seq_length + past_key_values_length] (BertModel.forward: past_key_values_length =
    past_key_values[0][0].shape[2]).
  * RoBERTa, create_position_ids_from_input_ids(input_ids, padding_idx, past_key_values_length):
    mask = input_ids.ne(padding_idx); (cumsum(mask) + past_key_values_length) * mask + padding_idx.
  * GPT-2, GPT2Model.forward: position_ids = arange(past_length, past_length + seq).
  * Llama / Qwen2, LlamaModel.forward: cache_position = arange(past_seen_tokens,
    past_seen_tokens + seq), position_ids = cache_position; causal mask: query i sees keys
    0 .. past + i; keys/values repeated per group (repeat_kv) after the cache is joined.
  * DistilBERT: DistilBertModel.forward takes no past_key_values, so PEFT refuses prefix tuning
    ("Model does not support past key values which are required for prefix tuning.").

Writes test/fixtures/peft/prefix/<arch>-<variant>/: adapter_config.json and
adapter_model.safetensors as PEFT 0.14's save_pretrained writes them, expected.json (inputs, the
positions transformers uses, last_hidden_state, logits on a subset of vocabulary columns, greedy
tokens for causal LMs), and for prefix_projection variants projection.safetensors (the
PrefixEncoder's training-mode weights, to check peftjs's in-graph projection and what it saves).

Run: /usr/bin/python3 bench/reference/prefix_fixtures.py
"""
import json
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(__file__))
import tiny_checkpoints as tc  # noqa: E402
from models_torch import read_safetensors  # noqa: E402

ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "test", "fixtures")
DT = torch.float64
N_VIRTUAL = 3
NEG = -1e9


def load(name):
    d = os.path.join(ROOT, "models", name)
    cfg = json.load(open(os.path.join(d, "config.json")))
    W = {k: v.to(DT) for k, v in read_safetensors(os.path.join(d, "model.safetensors")).items()}
    ref = json.load(open(os.path.join(d, "reference.json")))
    return cfg, W, ref


def rnd(*shape, std, seed):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(*shape, generator=g, dtype=DT) * std).to(torch.float32).to(DT)


def layer_kv(table, batch, layers, heads, head_dim):
    """PeftModel.get_prompt: [n, L*2*token_dim] -> per layer (key, value), each [batch, heads, n, head_dim]."""
    n = table.shape[0]
    pkv = table.unsqueeze(0).expand(batch, -1, -1).reshape(batch, n, layers * 2, heads, head_dim).permute(2, 0, 3, 1, 4)
    return [(pkv[2 * l], pkv[2 * l + 1]) for l in range(layers)]


def extended_mask(mask, n):
    """PEFT: torch.cat((ones(batch, n), attention_mask), dim=1) -> additive [batch, 1, 1, n + seq]."""
    return tc.pad_mask(torch.cat([torch.ones(mask.shape[0], n, dtype=mask.dtype), mask], 1))


def causal_after(seq, past):
    """Query i (at cache position past + i) sees keys 0 .. past + i."""
    return torch.triu(torch.full((seq, past + seq), NEG, dtype=DT), past + 1)


def encoder_positions(cfg, ids, past):
    S = ids.shape[1]
    if cfg["model_type"] == "roberta":
        pad = cfg["pad_token_id"]
        m = ids.ne(pad).long()
        return (torch.cumsum(m, 1) + past) * m + pad
    return torch.arange(past, past + S).unsqueeze(0).expand(ids.shape[0], -1)


def bert_family(cfg, W, ids, mask, kv):
    """BertModel / RobertaModel with past key/values (types all 0: PEFT's feature extraction drops them)."""
    pre = cfg["model_type"] + "."
    H, nh, eps, L = cfg["hidden_size"], cfg["num_attention_heads"], cfg["layer_norm_eps"], cfg["num_hidden_layers"]
    n = kv[0][0].shape[2]
    pos = encoder_positions(cfg, ids, n)
    E = lambda k: W[pre + "embeddings." + k]
    x = E("word_embeddings.weight")[ids] + E("position_embeddings.weight")[pos] + E("token_type_embeddings.weight")[0]
    x = tc.layer_norm(x, E("LayerNorm.weight"), E("LayerNorm.bias"), eps)
    am = extended_mask(mask, n)
    for i in range(L):
        p = f"{pre}encoder.layer.{i}."
        q = tc.heads(tc.lin(W, x, p + "attention.self.query"), nh)
        k = torch.cat([kv[i][0], tc.heads(tc.lin(W, x, p + "attention.self.key"), nh)], 2)
        v = torch.cat([kv[i][1], tc.heads(tc.lin(W, x, p + "attention.self.value"), nh)], 2)
        ctx = tc.merge(tc.attention(q, k, v, am))
        h1 = tc.layer_norm(tc.lin(W, ctx, p + "attention.output.dense") + x, W[p + "attention.output.LayerNorm.weight"], W[p + "attention.output.LayerNorm.bias"], eps)
        f = tc.lin(W, tc.gelu(tc.lin(W, h1, p + "intermediate.dense")), p + "output.dense")
        x = tc.layer_norm(f + h1, W[p + "output.LayerNorm.weight"], W[p + "output.LayerNorm.bias"], eps)
    return {"positions": pos, "last_hidden_state": x}


def gpt2(cfg, W, ids, mask, kv):
    H, nh, eps, L = cfg["n_embd"], cfg["n_head"], cfg["layer_norm_epsilon"], cfg["n_layer"]
    pre = "transformer."
    B, S = ids.shape
    n = kv[0][0].shape[2]
    pos = torch.arange(n, n + S).unsqueeze(0).expand(B, -1)
    conv = lambda x, name: x @ W[name + ".weight"] + W[name + ".bias"]
    x = W[pre + "wte.weight"][ids] + W[pre + "wpe.weight"][pos]
    am = extended_mask(mask, n) + causal_after(S, n)
    for i in range(L):
        p = f"{pre}h.{i}."
        q, k, v = conv(tc.layer_norm(x, W[p + "ln_1.weight"], W[p + "ln_1.bias"], eps), p + "attn.c_attn").split(H, -1)
        k = torch.cat([kv[i][0], tc.heads(k, nh)], 2)
        v = torch.cat([kv[i][1], tc.heads(v, nh)], 2)
        x = x + conv(tc.merge(tc.attention(tc.heads(q, nh), k, v, am)), p + "attn.c_proj")
        x = x + conv(tc.gelu_new(conv(tc.layer_norm(x, W[p + "ln_2.weight"], W[p + "ln_2.bias"], eps), p + "mlp.c_fc")), p + "mlp.c_proj")
    x = tc.layer_norm(x, W[pre + "ln_f.weight"], W[pre + "ln_f.bias"], eps)
    return {"positions": pos, "last_hidden_state": x, "logits": x @ W[pre + "wte.weight"].T}


def llama(cfg, W, ids, mask, kv):
    H, L, nh, kvh = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    D = H // nh
    pre = "model."
    B, S = ids.shape
    n = kv[0][0].shape[2]
    pos = torch.arange(n, n + S).unsqueeze(0).expand(B, -1)  # cache_position
    eps = cfg["rms_norm_eps"]
    inv = tc.llama3_inv_freq(D, cfg["rope_theta"], cfg.get("rope_scaling"))
    rms = lambda x, w: x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps) * w

    def rope(x):
        return tc.rotate(x, pos, inv)

    x = W[pre + "embed_tokens.weight"][ids]
    am = extended_mask(mask, n) + causal_after(S, n)
    for i in range(L):
        p = f"{pre}layers.{i}."
        xn = rms(x, W[p + "input_layernorm.weight"])
        q = rope(tc.heads(tc.lin(W, xn, p + "self_attn.q_proj"), nh))
        k = torch.cat([kv[i][0], rope(tc.heads(tc.lin(W, xn, p + "self_attn.k_proj"), kvh))], 2).repeat_interleave(nh // kvh, 1)
        v = torch.cat([kv[i][1], tc.heads(tc.lin(W, xn, p + "self_attn.v_proj"), kvh)], 2).repeat_interleave(nh // kvh, 1)
        x = x + tc.lin(W, tc.merge(tc.attention(q, k, v, am)), p + "self_attn.o_proj")
        hn = rms(x, W[p + "post_attention_layernorm.weight"])
        g = tc.lin(W, hn, p + "mlp.gate_proj")
        x = x + tc.lin(W, g * torch.sigmoid(g) * tc.lin(W, hn, p + "mlp.up_proj"), p + "mlp.down_proj")
    x = rms(x, W[pre + "norm.weight"])
    head = W[pre + "embed_tokens.weight"] if cfg["tie_word_embeddings"] else W["lm_head.weight"]
    return {"positions": pos, "last_hidden_state": x, "logits": x @ head.T}


def prompt_learning_dims(cfg):
    """_prepare_prompt_learning_config: (num_layers, token_dim, num_attention_heads) PEFT derives."""
    layers = cfg.get("num_hidden_layers", cfg.get("n_layer"))
    token_dim = cfg.get("hidden_size", cfg.get("n_embd"))
    heads = cfg.get("num_attention_heads", cfg.get("n_head"))
    if "num_key_value_heads" in cfg:  # grouped-query attention (peft #1901)
        head_dim = cfg.get("head_dim") or token_dim // heads
        token_dim, heads = head_dim * cfg["num_key_value_heads"], cfg["num_key_value_heads"]
    return layers, token_dim, heads


def r6(t):
    """Six significant digits keep the fixtures small; the tests compare within 1e-4."""
    if isinstance(t, torch.Tensor):
        t = t.tolist()
    if isinstance(t, list):
        return [r6(x) for x in t]
    return float(f"{t:.6g}") if isinstance(t, float) else t


def greedy(forward, cfg, W, table, dims, prompt, steps):
    """No-cache greedy decoding of one row with the prefix as past key/values (PEFT's generate)."""
    layers, _, heads = dims
    seq = list(prompt)
    for _ in range(steps):
        ids = torch.tensor([seq])
        kv = layer_kv(table, 1, layers, heads, dims[1] // heads)
        seq.append(int(forward(cfg, W, ids, torch.ones_like(ids), kv)["logits"][0, -1].argmax()))
    return seq[len(prompt):]


ARCHS = [
    # name, forward, PEFT task type (peftjs task)
    ("bert-tiny", bert_family, "FEATURE_EXTRACTION"),
    ("roberta-tiny", bert_family, "FEATURE_EXTRACTION"),
    ("gpt2-tiny", gpt2, "CAUSAL_LM"),
    ("llama-tiny", llama, "CAUSAL_LM"),
    ("qwen2-tiny", llama, "CAUSAL_LM"),
]


def main():
    torch.set_num_threads(1)
    seed = 100
    for name, forward, task_type in ARCHS:
        cfg, W, ref = load(name)
        ids = torch.tensor(ref["inputs"]["input_ids"])
        mask = torch.tensor(ref["inputs"]["attention_mask"])
        layers, token_dim, heads = dims = prompt_learning_dims(cfg)
        width = layers * 2 * token_dim
        for projection in (False, True):
            seed += 10
            E = 12
            mlp = {}
            if projection:
                mlp = {
                    "embedding.weight": rnd(N_VIRTUAL, token_dim, std=1.0, seed=seed),
                    "transform.0.weight": rnd(E, token_dim, std=1 / math.sqrt(token_dim), seed=seed + 1),
                    "transform.0.bias": rnd(E, std=0.1, seed=seed + 2),
                    "transform.2.weight": rnd(width, E, std=0.8 / math.sqrt(E), seed=seed + 3),
                    "transform.2.bias": rnd(width, std=0.1, seed=seed + 4),
                }
                h = torch.tanh(mlp["embedding.weight"] @ mlp["transform.0.weight"].T + mlp["transform.0.bias"])
                table = h @ mlp["transform.2.weight"].T + mlp["transform.2.bias"]
            else:
                table = rnd(N_VIRTUAL, width, std=0.5, seed=seed)
            # What PEFT saves and reloads (float32); the expected outputs use exactly those values.
            table = table.to(torch.float32).to(DT)
            out = forward(cfg, W, ids, mask, layer_kv(table, ids.shape[0], layers, heads, token_dim // heads))
            expected = {
                "num_virtual_tokens": N_VIRTUAL,
                "inputs": {"input_ids": ids.tolist(), "attention_mask": mask.tolist()},
                "positions": out["positions"].tolist(),
                "last_hidden_state": r6(out["last_hidden_state"]),
            }
            if "logits" in out:
                cols = list(range(0, out["logits"].shape[-1], 16))
                expected["logits_columns"] = cols
                expected["logits"] = r6(out["logits"][..., cols])
                prompt = ref["inputs"]["input_ids"][0][:4]
                expected["greedy"] = {"prompt": prompt, "tokens": greedy(forward, cfg, W, table, dims, prompt, 6)}
            config = {
                "auto_mapping": None, "base_model_name_or_path": f"tiny/{name}", "encoder_hidden_size": E if projection else token_dim,
                "inference_mode": True, "num_attention_heads": heads, "num_layers": layers, "num_transformer_submodules": 1,
                "num_virtual_tokens": N_VIRTUAL, "peft_type": "PREFIX_TUNING", "prefix_projection": projection, "revision": None,
                "task_type": task_type, "token_dim": token_dim,
            }
            d = os.path.join(ROOT, "peft", "prefix", f"{name}-{'projection' if projection else 'plain'}")
            os.makedirs(d, exist_ok=True)
            tc.write_json(os.path.join(d, "adapter_config.json"), config)
            tc.write_safetensors(os.path.join(d, "adapter_model.safetensors"), {"prompt_embeddings": table})
            if projection:
                tc.write_safetensors(os.path.join(d, "projection.safetensors"), mlp)
            with open(os.path.join(d, "expected.json"), "w") as f:
                json.dump(expected, f, separators=(",", ":"))
            print(f"{d}: token_dim {token_dim}, heads {heads}, prompt_embeddings {list(table.shape)}")


if __name__ == "__main__":
    main()
