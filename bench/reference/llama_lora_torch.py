#!/usr/bin/env python3
"""Independent PyTorch reference for `npm run bench -- quant` (case smollm135m_lora_step).

A LoRA training step of a Llama-architecture decoder read from a Hugging Face checkpoint directory
(config.json + model.safetensors, float32; safetensors parsed here from the format spec), in plain
PyTorch float32 (no transformers): RMSNorm, rotary embeddings (rotate_half form), grouped-query
causal attention, SiLU-gated MLP, tied or separate LM head; LoRA (r, alpha, no dropout) on
q_proj and v_proj:

    q = x Wq^T + (x A^T) B^T * (alpha / r)   (A kaiming-uniform as PEFT, B zero)

One step = forward, mean causal-LM cross-entropy (position t predicts token t+1), backward to the
LoRA matrices only (every checkpoint tensor has requires_grad=False), AdamW(lr 1e-4) on them.

MUST be run with OMP_WAIT_POLICY=PASSIVE (set below as a fallback before torch is imported).
Usage:
    OMP_WAIT_POLICY=PASSIVE /usr/bin/python3 bench/reference/llama_lora_torch.py --dir CKPT \
        [--batch 4] [--seq 256] [--warmup 1] [--iters 3] [--threads 2] [--r 8] [--alpha 16]
    -> one JSON line: torch_ms (median), torch_ms_min, torch_peak_rss_mb, first-step loss.
Input ids are (i * 7919 + 13) % vocab for token i of the batch, as the TypeScript side feeds.
"""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import json
import math
import statistics
import struct
import time

import numpy as np
import torch
import torch.nn.functional as F

from measure import peak_rss_mb


def read_safetensors(path):
    """One tensor at a time, so that peak memory holds the weights once (not the file as well)."""
    out = {}
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        for name, e in header.items():
            if name == "__metadata__":
                continue
            assert e["dtype"] == "F32", (name, e["dtype"])
            a, b = e["data_offsets"]
            f.seek(8 + n + a)
            out[name] = torch.from_numpy(np.frombuffer(f.read(b - a), dtype=np.float32).reshape(e["shape"]).copy())
    return out


def rotate(x, cos, sin):
    d = x.shape[-1] // 2
    return x * cos + torch.cat([-x[..., d:], x[..., :d]], -1) * sin


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--r", type=int, default=8)
    ap.add_argument("--alpha", type=float, default=16)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)

    with open(os.path.join(a.dir, "config.json")) as fh:
        cfg = json.load(fh)
    W = read_safetensors(os.path.join(a.dir, "model.safetensors"))
    H, L, nh, kvh, V = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["vocab_size"]
    D, eps, B, S = H // nh, cfg["rms_norm_eps"], a.batch, a.seq
    head = W["model.embed_tokens.weight"] if cfg.get("tie_word_embeddings", True) else W["lm_head.weight"]
    scaling = a.alpha / a.r

    lora = {}
    for i in range(L):
        for m, out in (("q_proj", nh * D), ("v_proj", kvh * D)):
            A = torch.empty(a.r, H)
            torch.nn.init.kaiming_uniform_(A, a=math.sqrt(5))
            lora[(i, m)] = (A.requires_grad_(), torch.zeros(out, a.r, requires_grad=True))
    params = [t for pair in lora.values() for t in pair]
    opt = torch.optim.AdamW(params, lr=1e-4)

    inv = 1.0 / cfg.get("rope_theta", 10000.0) ** (torch.arange(0, D, 2, dtype=torch.float32) / D)
    ang = torch.arange(S, dtype=torch.float32)[:, None] * inv
    emb = torch.cat([ang, ang], -1)
    cos, sin = emb.cos(), emb.sin()
    causal = torch.full((S, S), float("-inf")).triu(1)
    ids = (torch.arange(B * S, dtype=torch.int64) * 7919 + 13).remainder(V).view(B, S)

    def rms(x, w):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w

    def step():
        x = W["model.embed_tokens.weight"][ids]
        for i in range(L):
            p = f"model.layers.{i}."
            h = rms(x, W[p + "input_layernorm.weight"])
            Aq, Bq = lora[(i, "q_proj")]
            Av, Bv = lora[(i, "v_proj")]
            q = F.linear(h, W[p + "self_attn.q_proj.weight"]) + F.linear(F.linear(h, Aq), Bq) * scaling
            k = F.linear(h, W[p + "self_attn.k_proj.weight"])
            v = F.linear(h, W[p + "self_attn.v_proj.weight"]) + F.linear(F.linear(h, Av), Bv) * scaling
            q = rotate(q.view(B, S, nh, D).transpose(1, 2), cos, sin)
            k = rotate(k.view(B, S, kvh, D).transpose(1, 2), cos, sin).repeat_interleave(nh // kvh, 1)
            v = v.view(B, S, kvh, D).transpose(1, 2).repeat_interleave(nh // kvh, 1)
            att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(D) + causal, -1)
            x = x + F.linear((att @ v).transpose(1, 2).reshape(B, S, nh * D), W[p + "self_attn.o_proj.weight"])
            h = rms(x, W[p + "post_attention_layernorm.weight"])
            x = x + F.linear(F.silu(F.linear(h, W[p + "mlp.gate_proj.weight"])) * F.linear(h, W[p + "mlp.up_proj.weight"]), W[p + "mlp.down_proj.weight"])
        logits = F.linear(rms(x, W["model.norm.weight"]), head)
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, V), ids[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.item()

    times, first_loss = [], None
    for i in range(a.warmup + a.iters):
        t0 = time.perf_counter()
        loss = step()
        if first_loss is None:
            first_loss = loss
        if i >= a.warmup:
            times.append((time.perf_counter() - t0) * 1000)
    print(json.dumps({
        "layers": L, "batch": B, "seq": S, "torch_ms": round(statistics.median(times), 1), "torch_ms_min": round(min(times), 1),
        "torch_peak_rss_mb": peak_rss_mb(), "torch_first_loss": round(first_loss, 5),
        "torch_version": torch.__version__, "threads": a.threads,
    }))


if __name__ == "__main__":
    main()
