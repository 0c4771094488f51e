#!/usr/bin/env python3
"""Independent PyTorch reference for `npm run bench -- engine`.

The same computation as bench/engine-stack.ts, written in plain PyTorch (no transformers): a
BERT-base-shaped post-LN encoder stack (hidden 768, 12 heads of 64, FFN 3072, erf GELU, LayerNorm
eps 1e-12, additive padding mask, no dropout) with LoRA r=8, alpha=16 on query and value:

    q = x Wq^T + bq + (x A_q^T B_q^T) * (alpha / r);  k = x Wk^T + bk
    v = x Wv^T + bv + (x A_v^T B_v^T) * (alpha / r)
    ctx = softmax(q k^T / sqrt(d) + mask) v           (per head, d = H / heads)
    h1 = LayerNorm(ctx Wo^T + bo + x);  out = LayerNorm(gelu(h1 Wi^T + bi) Wo2^T + bo2 + h1)

One training step = forward, loss sum(out * G) for a fixed seeded G, backward to the LoRA matrices
and the stack input x only (W, b and LayerNorm parameters are frozen: requires_grad=False).

MUST be run with OMP_WAIT_POLICY=PASSIVE in the environment (Debian's torch/libgomp spin-waits
and oversubscribes the cores otherwise); as a fallback it is also set below before torch is
imported. Usage:

    OMP_WAIT_POLICY=PASSIVE /usr/bin/python3 bench/reference/engine_torch.py \
        [--layers 4] [--batch 8] [--seq 128] [--warmup 2] [--iters 10] [--threads 2]
        -> prints one JSON line (timings, peak RSS, analytic matmul FLOPs per step)

    OMP_WAIT_POLICY=PASSIVE /usr/bin/python3 bench/reference/engine_torch.py --check --out FILE
        -> writes a small deterministic float64 case (L=1, B=2, S=8, H=64, 4 heads, FFN 128, r=4):
           every weight, x, mask, G, the loss and the gradients, as nested lists of float64.
"""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import json
import math
import statistics
import time

import torch

from measure import peak_rss_mb

LINEARS = [("Wq", "bq"), ("Wk", "bk"), ("Wv", "bv"), ("Wo", "bo"), ("Wi", "bi"), ("Wo2", "bo2")]


def param_shapes(H, F, r):
    """Shapes of one layer's parameters, in creation (and random-draw) order."""
    return [
        ("Wq", (H, H)), ("bq", (H,)), ("Wk", (H, H)), ("bk", (H,)), ("Wv", (H, H)), ("bv", (H,)),
        ("Wo", (H, H)), ("bo", (H,)), ("ln1_w", (H,)), ("ln1_b", (H,)), ("Wi", (F, H)), ("bi", (F,)),
        ("Wo2", (H, F)), ("bo2", (H,)), ("ln2_w", (H,)), ("ln2_b", (H,)),
        ("lora_A_q", (r, H)), ("lora_B_q", (H, r)), ("lora_A_v", (r, H)), ("lora_B_v", (H, r)),
    ]


def build(L, H, F, r, dtype, gen):
    """Seeded weights: everything normal(0, 0.02) except LayerNorm (weight 1, bias 0).
    B_q / B_v are normal too (not zero) so every gradient is non-trivial. Only lora_* train."""
    layers = []
    for _ in range(L):
        p = {}
        for name, shape in param_shapes(H, F, r):
            if name.startswith("ln"):
                t = (torch.ones if name.endswith("_w") else torch.zeros)(*shape, dtype=dtype)
            else:
                t = (torch.randn(*shape, generator=gen, dtype=torch.float64) * 0.02).to(dtype)
            p[name] = t.requires_grad_(name.startswith("lora_"))
        layers.append(p)
    return layers


def forward(x, mask, layers, heads, r, alpha, eps):
    B, S, H = x.shape
    d = H // heads
    s = alpha / r
    split = lambda t: t.view(B, S, heads, d).transpose(1, 2)  # [B, heads, S, d]
    for p in layers:
        q = x @ p["Wq"].T + p["bq"] + ((x @ p["lora_A_q"].T) @ p["lora_B_q"].T) * s
        k = x @ p["Wk"].T + p["bk"]
        v = x @ p["Wv"].T + p["bv"] + ((x @ p["lora_A_v"].T) @ p["lora_B_v"].T) * s
        att = torch.softmax(split(q) @ split(k).transpose(-1, -2) / math.sqrt(d) + mask, -1)
        ctx = (att @ split(v)).transpose(1, 2).reshape(B, S, H)
        h1 = torch.nn.functional.layer_norm(ctx @ p["Wo"].T + p["bo"] + x, (H,), p["ln1_w"], p["ln1_b"], eps)
        f = torch.nn.functional.gelu(h1 @ p["Wi"].T + p["bi"]) @ p["Wo2"].T + p["bo2"]  # erf GELU
        x = torch.nn.functional.layer_norm(f + h1, (H,), p["ln2_w"], p["ln2_b"], eps)
    return x


def padding_mask(B, S, padded, dtype):
    """Additive mask [B, 1, 1, S]: 0 where attended, -1e9 on the last `padded` positions of odd rows."""
    m = torch.zeros(B, 1, 1, S, dtype=dtype)
    if padded > 0:
        m[1::2, :, :, S - padded:] = -1e9
    return m


def step_flops(L, B, S, H, F, r):
    """Analytic matmul FLOPs of one step (2*m*n*k per GEMM), forward + backward.
    Frozen-weight GEMMs need only the input gradient in backward (1x forward); the attention
    GEMMs (QK^T, PV: both operands depend on x) and the LoRA GEMMs need both operand gradients (2x)."""
    t = B * S
    frozen = 4 * (2 * t * H * H) + 2 * (2 * t * H * F)  # q, k, v, o projections; FFN in and out
    attention = 2 * (2 * B * S * S * H)  # QK^T and PV over all heads (heads * d = H)
    lora = 2 * 2 * (2 * t * H * r)  # q and v adapters, x A^T and (xA^T) B^T each
    return L * (2 * frozen + 3 * attention + 3 * lora)


def tolist64(t):
    return t.detach().to(torch.float64).tolist()


def check(out_path, threads):
    """Small deterministic float64 case for the TypeScript side to compare against."""
    cfg = {"L": 1, "B": 2, "S": 8, "H": 64, "heads": 4, "ffn": 128, "r": 4, "alpha": 16, "eps": 1e-12, "mask_padded": 3, "seed": 1234}
    dt = torch.float64
    gen = torch.Generator().manual_seed(cfg["seed"])
    layers = build(cfg["L"], cfg["H"], cfg["ffn"], cfg["r"], dt, gen)
    x = torch.randn(cfg["B"], cfg["S"], cfg["H"], generator=gen, dtype=dt).requires_grad_()
    G = torch.randn(cfg["B"], cfg["S"], cfg["H"], generator=gen, dtype=dt)
    mask = padding_mask(cfg["B"], cfg["S"], cfg["mask_padded"], dt)
    out = forward(x, mask, layers, cfg["heads"], cfg["r"], cfg["alpha"], cfg["eps"])
    loss = (out * G).sum()
    loss.backward()
    doc = {"config": cfg}
    grads = {}
    for i, p in enumerate(layers):
        for name, t in p.items():
            doc[f"layer.{i}.{name}"] = tolist64(t)
            if t.requires_grad:
                grads[f"layer.{i}.{name}"] = tolist64(t.grad)
    grads["x"] = tolist64(x.grad)
    doc.update({"x": tolist64(x), "mask": tolist64(mask), "G": tolist64(G), "out": tolist64(out), "loss": loss.item(), "grads": grads,
                "torch_version": torch.__version__})
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    with open(out_path, "w") as fh:
        json.dump(doc, fh, separators=(",", ":"))
        fh.write("\n")
    print(json.dumps({"out": out_path, "loss": loss.item(), "bytes": os.path.getsize(out_path)}))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--check", action="store_true", help="write the small float64 check case to --out instead of timing")
    ap.add_argument("--out", help="output JSON file for --check")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if a.check:
        if not a.out:
            ap.error("--check needs --out FILE")
        check(a.out, a.threads)
        return

    H, heads, F, r, alpha, eps = 768, 12, 3072, 8, 16, 1e-12
    gen = torch.Generator().manual_seed(0)
    layers = build(a.layers, H, F, r, torch.float32, gen)
    x = torch.randn(a.batch, a.seq, H, generator=gen).requires_grad_()
    G = torch.randn(a.batch, a.seq, H, generator=gen)
    mask = padding_mask(a.batch, a.seq, min(16, a.seq), torch.float32)
    trainable = [t for p in layers for t in p.values() if t.requires_grad] + [x]
    times = []
    for i in range(a.warmup + a.iters):
        t0 = time.perf_counter()
        for t in trainable:
            t.grad = None
        (forward(x, mask, layers, heads, r, alpha, eps) * G).sum().backward()
        if i >= a.warmup:
            times.append((time.perf_counter() - t0) * 1000)
    med = statistics.median(times)
    flops = step_flops(a.layers, a.batch, a.seq, H, F, r)
    print(json.dumps({
        "case": f"torch_lora_stack_L{a.layers}", "layers": a.layers, "batch": a.batch, "seq": a.seq,
        "torch_ms": round(med, 1), "torch_ms_min": round(min(times), 1),
        "torch_peak_rss_mb": peak_rss_mb(),
        "torch_version": torch.__version__, "threads": a.threads, "flops_per_step": flops,
        "gflops": round(flops / (med / 1000) / 1e9, 1),
    }))


if __name__ == "__main__":
    main()
