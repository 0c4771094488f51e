#!/usr/bin/env python3
"""Independent PyTorch reference for `npm run bench -- engine`.

The same computation as bench/engine-stack.ts, written in plain PyTorch: a BERT-base-shaped
post-LN encoder stack (hidden 768, 12 heads, FFN 3072, erf GELU, LayerNorm eps 1e-12, additive
padding mask) with LoRA r=8, alpha=16 on query and value. One training step = forward, loss
sum(out * G), backward to the LoRA matrices and the stack input (frozen weights get no grad).

Run with OMP_WAIT_POLICY=PASSIVE (Debian's torch oversubscribes otherwise); it is also set here
before torch is imported. Prints one JSON line.
"""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import json
import math
import resource
import statistics
import time

import torch


def build(L, H, heads, F, r, dtype, gen):
    def normal(*shape, std=0.02):
        return (torch.randn(*shape, generator=gen, dtype=torch.float64) * std).to(dtype)

    layers = []
    for _ in range(L):
        p = {n: normal(*s) for n, s in [("Wq", (H, H)), ("Wk", (H, H)), ("Wv", (H, H)), ("Wo", (H, H)), ("Wi", (F, H)), ("Wo2", (H, F))]}
        p.update({n: normal(s) for n, s in [("bq", H), ("bk", H), ("bv", H), ("bo", H), ("bi", F), ("bo2", H)]})
        p.update({"ln1_w": torch.ones(H, dtype=dtype), "ln1_b": torch.zeros(H, dtype=dtype), "ln2_w": torch.ones(H, dtype=dtype), "ln2_b": torch.zeros(H, dtype=dtype)})
        for w in ("q", "v"):
            p[f"lora_A_{w}"] = normal(r, H).requires_grad_()
            p[f"lora_B_{w}"] = normal(H, r).requires_grad_()
        layers.append(p)
    return layers


def forward(x, mask, layers, heads, r, alpha, eps):
    B, S, H = x.shape
    d = H // heads
    s = alpha / r
    split = lambda t: t.view(B, S, heads, d).transpose(1, 2)
    for p in layers:
        q = x @ p["Wq"].T + p["bq"] + (x @ p["lora_A_q"].T) @ p["lora_B_q"].T * s
        k = x @ p["Wk"].T + p["bk"]
        v = x @ p["Wv"].T + p["bv"] + (x @ p["lora_A_v"].T) @ p["lora_B_v"].T * s
        att = torch.softmax(split(q) @ split(k).transpose(-1, -2) / math.sqrt(d) + mask, -1)
        ctx = (att @ split(v)).transpose(1, 2).reshape(B, S, H)
        h1 = torch.nn.functional.layer_norm(ctx @ p["Wo"].T + p["bo"] + x, (H,), p["ln1_w"], p["ln1_b"], eps)
        f = torch.nn.functional.gelu(h1 @ p["Wi"].T + p["bi"]) @ p["Wo2"].T + p["bo2"]
        x = torch.nn.functional.layer_norm(f + h1, (H,), p["ln2_w"], p["ln2_b"], eps)
    return x


def padding_mask(B, S, padded, dtype):
    m = torch.zeros(B, 1, 1, S, dtype=dtype)
    m[1::2, :, :, S - padded:] = -1e9
    return m


def step_flops(L, B, S, H, F, r):
    t = B * S
    frozen = 2 * t * H * H * 4 + 2 * t * H * F * 2
    attention = 2 * 2 * B * S * S * H
    lora = 2 * (2 * t * H * r * 2)
    return L * (2 * frozen + 3 * attention + 3 * lora)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    H, heads, F, r, alpha, eps = 768, 12, 3072, 8, 16, 1e-12
    gen = torch.Generator().manual_seed(0)
    layers = build(a.layers, H, heads, F, r, torch.float32, gen)
    x = torch.randn(a.batch, a.seq, H, generator=gen).requires_grad_()
    G = torch.randn(a.batch, a.seq, H, generator=gen)
    mask = padding_mask(a.batch, a.seq, 16, torch.float32)
    params = [p[k] for p in layers for k in p if k.startswith("lora_")]
    times = []
    for i in range(a.warmup + a.iters):
        t0 = time.perf_counter()
        for t in params + [x]:
            t.grad = None
        (forward(x, mask, layers, heads, r, alpha, eps) * G).sum().backward()
        if i >= a.warmup:
            times.append((time.perf_counter() - t0) * 1000)
    med = statistics.median(times)
    flops = step_flops(a.layers, a.batch, a.seq, H, F, r)
    print(json.dumps({
        "case": f"torch_lora_stack_L{a.layers}", "layers": a.layers, "batch": a.batch, "seq": a.seq,
        "torch_ms": round(med, 1), "torch_ms_min": round(min(times), 1),
        "torch_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "torch_version": torch.__version__, "threads": a.threads, "flops_per_step": flops, "gflops": round(flops / (med / 1000) / 1e9, 1),
    }))


if __name__ == "__main__":
    main()
