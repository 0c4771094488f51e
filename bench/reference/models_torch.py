#!/usr/bin/env python3
"""Independent PyTorch reference for `npm run bench -- models`.

Reads the same random checkpoints the TypeScript benchmark writes (safetensors parsed here
from the format spec) and times, in plain PyTorch float32 under inference_mode:
  --bert DIR   BERT encoder forward (post-LN, erf GELU, padding mask), batch x seq
  --gpt2 DIR   GPT-2 greedy generation with a key/value cache, batch 1
Run with OMP_WAIT_POLICY=PASSIVE (also set here before torch is imported). Prints one JSON line.
"""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import json
import math
import struct
import time

import numpy as np
import torch


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        assert e["dtype"] == "F32", e["dtype"]
        a, b = e["data_offsets"]
        out[name] = torch.from_numpy(np.frombuffer(data, dtype=np.float32, count=(b - a) // 4, offset=8 + n + a).reshape(e["shape"]).copy())
    return out


def bert_forward(W, cfg, ids, mask):
    H, nh, eps = cfg["hidden_size"], cfg["num_attention_heads"], cfg["layer_norm_eps"]
    B, S = ids.shape
    d = H // nh
    ln = lambda x, p: torch.nn.functional.layer_norm(x, (H,), W[p + ".weight"], W[p + ".bias"], eps)
    lin = lambda x, p: torch.nn.functional.linear(x, W[p + ".weight"], W[p + ".bias"])
    x = W["embeddings.word_embeddings.weight"][ids] + W["embeddings.position_embeddings.weight"][:S] + W["embeddings.token_type_embeddings.weight"][0]
    x = ln(x, "embeddings.LayerNorm")
    am = (1.0 - mask.float())[:, None, None, :] * -1e9
    split = lambda t: t.view(B, S, nh, d).transpose(1, 2)
    for i in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        att = torch.softmax(split(lin(x, p + "attention.self.query")) @ split(lin(x, p + "attention.self.key")).transpose(-1, -2) / math.sqrt(d) + am, -1)
        ctx = (att @ split(lin(x, p + "attention.self.value"))).transpose(1, 2).reshape(B, S, H)
        h1 = ln(lin(ctx, p + "attention.output.dense") + x, p + "attention.output.LayerNorm")
        x = ln(lin(torch.nn.functional.gelu(lin(h1, p + "intermediate.dense")), p + "output.dense") + h1, p + "output.LayerNorm")
    return x


def gpt2_generate(W, cfg, prompt, new_tokens):
    H, nh, L, eps = cfg["n_embd"], cfg["n_head"], cfg["n_layer"], cfg["layer_norm_epsilon"]
    d = H // nh
    ln = lambda x, p: torch.nn.functional.layer_norm(x, (H,), W[p + ".weight"], W[p + ".bias"], eps)
    conv = lambda x, p: torch.addmm(W[p + ".bias"], x.reshape(-1, x.shape[-1]), W[p + ".weight"]).view(*x.shape[:-1], -1)
    gelu = lambda x: 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))
    wte, wpe = W["wte.weight"], W["wpe.weight"]
    cache = [None] * L
    ids = torch.tensor([prompt])
    out = []
    past = 0
    for _ in range(new_tokens):
        B, S = ids.shape
        x = wte[ids] + wpe[past:past + S]
        for i in range(L):
            p = f"h.{i}."
            q, k, v = conv(ln(x, p + "ln_1"), p + "attn.c_attn").split(H, -1)
            q, k, v = (t.view(B, S, nh, d).transpose(1, 2) for t in (q, k, v))
            if cache[i] is not None:
                k, v = torch.cat([cache[i][0], k], 2), torch.cat([cache[i][1], v], 2)
            cache[i] = (k, v)
            s = q @ k.transpose(-1, -2) / math.sqrt(d)
            if S > 1:
                s = s + torch.triu(torch.full((S, S), -1e9), 1)
            a = (torch.softmax(s, -1) @ v).transpose(1, 2).reshape(B, S, H)
            x = x + conv(a, p + "attn.c_proj")
            x = x + conv(gelu(conv(ln(x, p + "ln_2"), p + "mlp.c_fc")), p + "mlp.c_proj")
        logits = ln(x[:, -1], "ln_f") @ wte.T
        nxt = int(logits[0].argmax())
        out.append(nxt)
        past += S
        ids = torch.tensor([[nxt]])
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bert")
    ap.add_argument("--gpt2")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    res = {"torch_version": torch.__version__, "threads": a.threads}
    with torch.inference_mode():
        if a.bert:
            cfg = json.load(open(os.path.join(a.bert, "config.json")))
            W = read_safetensors(os.path.join(a.bert, "model.safetensors"))
            g = torch.Generator().manual_seed(0)
            ids = torch.randint(0, cfg["vocab_size"], (a.batch, a.seq), generator=g)
            mask = torch.ones(a.batch, a.seq, dtype=torch.long)
            mask[1::2, a.seq - 16:] = 0
            times = []
            for i in range(a.iters + 1):
                t0 = time.perf_counter()
                bert_forward(W, cfg, ids, mask)
                if i:
                    times.append((time.perf_counter() - t0) * 1000)
            res["torch_ms"] = round(sorted(times)[len(times) // 2], 1)
        if a.gpt2:
            cfg = json.load(open(os.path.join(a.gpt2, "config.json")))
            W = read_safetensors(os.path.join(a.gpt2, "model.safetensors"))
            prompt = [(i * 37) % cfg["vocab_size"] for i in range(8)]
            gpt2_generate(W, cfg, prompt, 4)  # warm-up
            t0 = time.perf_counter()
            toks = gpt2_generate(W, cfg, prompt, a.new_tokens)
            res["torch_tokens_per_s"] = round(a.new_tokens / (time.perf_counter() - t0), 2)
            res["torch_tokens"] = toks[:16]
    print(json.dumps(res))


if __name__ == "__main__":
    main()
