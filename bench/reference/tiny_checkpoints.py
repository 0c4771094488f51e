#!/usr/bin/env python3
"""Independent PyTorch reference for peftjs's model loading (issue: models).

Writes tiny checkpoints in the Hugging Face layout (config.json, model.safetensors,
tokenizer.json, tokenizer_config.json) for every supported architecture, and the outputs of
plain-PyTorch implementations of those architectures, written from their definitions (BERT,
RoBERTa, DistilBERT, GPT-2, Llama/Qwen2/Mistral), as JSON fixtures the TypeScript tests
compare against. No transformers / safetensors / tokenizers packages are used: safetensors
files and tokenizer.json files are written from their format specifications.

Run: /usr/bin/python3 bench/reference/tiny_checkpoints.py --out test/fixtures/models
"""
import argparse
import json
import math
import os
import struct

import torch

torch.manual_seed(0)
DT = torch.float64  # reference math in float64; weights are stored as float32

# ----------------------------------------------------------------------------- file formats


def write_safetensors(path, tensors):
    """safetensors: u64 header size, JSON header, contiguous little-endian data."""
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().to(torch.float32).contiguous()
        data = t.numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=1)


def added(id_, content):
    return {"id": id_, "content": content, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": True}


# ----------------------------------------------------------------------------- tokenizers

WORDS = "the a cat dog sat on mat bank river money is was by near and in of to it".split()
SUBWORDS = ["##s", "##ing", "##ed", "##er", "un", "##able", "play", "run", "happy", "##ness"]
BERT_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
PUNCT = list(".,!?'")


def wordpiece_tokenizer():
    vocab = BERT_SPECIALS + PUNCT + WORDS + SUBWORDS + list("abcdefghijklmnopqrstuvwxyz") + ["##" + c for c in "abcdefghijklmnopqrstuvwxyz"]
    ids = {t: i for i, t in enumerate(vocab)}
    st = lambda t: {"id": t, "ids": [ids[t]], "tokens": [t]}
    tok = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [added(ids[t], t) for t in BERT_SPECIALS],
        "normalizer": {"type": "BertNormalizer", "clean_text": True, "handle_chinese_chars": True, "strip_accents": None, "lowercase": True},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
            "pair": [
                {"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "[SEP]", "type_id": 0}},
                {"Sequence": {"id": "B", "type_id": 1}}, {"SpecialToken": {"id": "[SEP]", "type_id": 1}},
            ],
            "special_tokens": {"[CLS]": st("[CLS]"), "[SEP]": st("[SEP]")},
        },
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": True},
        "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##", "max_input_chars_per_word": 100, "vocab": ids},
    }
    config = {"tokenizer_class": "BertTokenizer", "do_lower_case": True, "model_max_length": 32, "pad_token": "[PAD]", "unk_token": "[UNK]", "cls_token": "[CLS]", "sep_token": "[SEP]", "mask_token": "[MASK]"}
    return tok, config, ids


def wordpiece_encode(text, ids, pair=None):
    """Reference WordPiece: lowercase, split on whitespace/punctuation, greedy longest match."""
    def words(t):
        out, cur = [], ""
        for ch in t.lower():
            if ch.isspace():
                if cur: out.append(cur); cur = ""
            elif ch in PUNCT:
                if cur: out.append(cur); cur = ""
                out.append(ch)
            else:
                cur += ch
        if cur: out.append(cur)
        return out

    def pieces(w):
        res, start = [], 0
        while start < len(w):
            end, found = len(w), None
            while start < end:
                sub = w[start:end] if start == 0 else "##" + w[start:end]
                if sub in ids:
                    found = sub
                    break
                end -= 1
            if found is None:
                return ["[UNK]"]
            res.append(found)
            start = end
        return res

    a = [ids[p] for w in words(text) for p in pieces(w)]
    out = [ids["[CLS]"]] + a + [ids["[SEP]"]]
    types = [0] * len(out)
    if pair is not None:
        b = [ids[p] for w in words(pair) for p in pieces(w)]
        out += b + [ids["[SEP]"]]
        types += [1] * (len(b) + 1)
    return out, types


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


B2U = bytes_to_unicode()
BPE_CORPUS = "the cat sat on the mat . the dog sat near the river bank . money in the bank is money . the cat and the dog played by the river"


def bpe_pretokenize(text):
    # Sufficient for the ASCII letters/spaces/periods the tests use: GPT-2's regex splits words
    # with their leading space, and punctuation separately.
    parts, cur = [], ""
    for ch in text:
        if ch == " ":
            if cur: parts.append(cur)
            cur = " "
        elif ch.isalpha():
            if cur and not (cur[-1].isalpha() or cur == " "):
                parts.append(cur); cur = ""
            cur += ch
        else:
            if cur: parts.append(cur)
            parts.append(("" if not cur.endswith(" ") else "") + ch) if cur != " " else None
            if cur == " ":
                parts.append(" " + ch)
            cur = ""
    if cur: parts.append(cur)
    return ["".join(B2U[b] for b in p.encode()) for p in parts]


def train_bpe(corpus, n_merges):
    words = {}
    for p in bpe_pretokenize(corpus):
        words[tuple(p)] = words.get(tuple(p), 0) + 1
    merges = []
    for _ in range(n_merges):
        pairs = {}
        for w, c in words.items():
            for a, b in zip(w, w[1:]):
                pairs[(a, b)] = pairs.get((a, b), 0) + c
        if not pairs:
            break
        best = max(sorted(pairs), key=lambda p: pairs[p])
        merges.append(best)
        nw = {}
        for w, c in words.items():
            out, i = [], 0
            while i < len(w):
                if i < len(w) - 1 and (w[i], w[i + 1]) == best:
                    out.append(w[i] + w[i + 1]); i += 2
                else:
                    out.append(w[i]); i += 1
            nw[tuple(out)] = c
        words = nw
    return merges


def bpe_encode_word(word, ranks):
    parts = list(word)
    while len(parts) > 1:
        best, bi = None, -1
        for i in range(len(parts) - 1):
            r = ranks.get((parts[i], parts[i + 1]))
            if r is not None and (best is None or r < best):
                best, bi = r, i
        if best is None:
            break
        parts = parts[:bi] + [parts[bi] + parts[bi + 1]] + parts[bi + 2:]
    return parts


def bytelevel_tokenizer(kind):
    """kind: gpt2 (no specials added), roberta (<s> ... </s>), llama (bos prefix)."""
    merges = train_bpe(BPE_CORPUS, 40)
    base = [B2U[b] for b in range(256)]
    if kind == "roberta":
        specials = ["<s>", "<pad>", "</s>", "<unk>"]
        vocab = specials + base + ["".join(m) for m in merges] + ["<mask>"]
        specials.append("<mask>")
    elif kind == "gpt2":
        specials = ["<|endoftext|>"]
        vocab = base + ["".join(m) for m in merges] + specials
    else:
        specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|pad|>"]
        vocab = base + ["".join(m) for m in merges] + specials
    ids = {}
    for t in vocab:
        ids.setdefault(t, len(ids))
    bl = {"add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    if kind == "roberta":
        post = {"type": "RobertaProcessing", "sep": ["</s>", ids["</s>"]], "cls": ["<s>", ids["<s>"]], "trim_offsets": True, "add_prefix_space": False}
        config = {"tokenizer_class": "RobertaTokenizer", "model_max_length": 32, "bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>", "mask_token": "<mask>", "cls_token": "<s>", "sep_token": "</s>"}
    elif kind == "gpt2":
        post = {"type": "ByteLevel", **bl, "trim_offsets": False}
        config = {"tokenizer_class": "GPT2Tokenizer", "model_max_length": 64, "bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>"}
    else:
        bos = "<|begin_of_text|>"
        post = {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": bos, "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {bos: {"id": bos, "ids": [ids[bos]], "tokens": [bos]}},
        }
        config = {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": 64, "bos_token": bos, "eos_token": "<|end_of_text|>", "pad_token": "<|pad|>", "padding_side": "left"}
    tok = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [added(ids[t], t) for t in specials],
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", **bl},
        "post_processor": post,
        "decoder": {"type": "ByteLevel", **bl},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "", "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False, "ignore_merges": False, "vocab": ids, "merges": [" ".join(m) for m in merges]},
    }
    ranks = {m: i for i, m in enumerate(merges)}

    def encode(text):
        out = [ids[p] for w in bpe_pretokenize(text) for p in bpe_encode_word(w, ranks)]
        if kind == "roberta":
            return [ids["<s>"]] + out + [ids["</s>"]]
        if kind == "llama":
            return [ids["<|begin_of_text|>"]] + out
        return out

    return tok, config, ids, encode


# ----------------------------------------------------------------------------- architectures

def rnd(*shape, std=0.2):
    return torch.randn(*shape, dtype=DT) * std


def layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * w + b


def gelu(x):
    return 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))


def gelu_new(x):
    return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


def attention(q, k, v, add_mask):
    s = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]) + add_mask
    return torch.softmax(s, -1) @ v


def heads(x, n):
    b, s, h = x.shape
    return x.view(b, s, n, h // n).transpose(1, 2)


def merge(x):
    b, n, s, d = x.shape
    return x.transpose(1, 2).reshape(b, s, n * d)


def pad_mask(mask):
    return (1.0 - mask.to(DT))[:, None, None, :] * -1e9


def causal(s):
    return torch.triu(torch.full((s, s), -1e9, dtype=DT), 1)


def lin(W, x, name, b=True):
    y = x @ W[name + ".weight"].T
    return y + W[name + ".bias"] if b and (name + ".bias") in W else y


def bert_family(cfg, kind):
    """BERT / RoBERTa encoder weights (task-model names) and forward."""
    H, I, V, P, L = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"], cfg["max_position_embeddings"], cfg["num_hidden_layers"]
    pre = kind + "."
    W = {
        pre + "embeddings.word_embeddings.weight": rnd(V, H), pre + "embeddings.position_embeddings.weight": rnd(P, H),
        pre + "embeddings.token_type_embeddings.weight": rnd(cfg["type_vocab_size"], H),
        pre + "embeddings.LayerNorm.weight": 1 + rnd(H, std=0.1), pre + "embeddings.LayerNorm.bias": rnd(H, std=0.1),
    }
    for i in range(L):
        p = f"{pre}encoder.layer.{i}."
        for n, shape in [("attention.self.query", (H, H)), ("attention.self.key", (H, H)), ("attention.self.value", (H, H)), ("attention.output.dense", (H, H)), ("intermediate.dense", (I, H)), ("output.dense", (H, I))]:
            W[p + n + ".weight"] = rnd(*shape)
            W[p + n + ".bias"] = rnd(shape[0], std=0.05)
        for n in ["attention.output.LayerNorm", "output.LayerNorm"]:
            W[p + n + ".weight"] = 1 + rnd(H, std=0.1)
            W[p + n + ".bias"] = rnd(H, std=0.1)
    C = cfg["num_labels"]
    if kind == "bert":
        W.update({pre + "pooler.dense.weight": rnd(H, H), pre + "pooler.dense.bias": rnd(H, std=0.05), "classifier.weight": rnd(C, H), "classifier.bias": rnd(C, std=0.05),
                  "cls.predictions.transform.dense.weight": rnd(H, H), "cls.predictions.transform.dense.bias": rnd(H, std=0.05),
                  "cls.predictions.transform.LayerNorm.weight": 1 + rnd(H, std=0.1), "cls.predictions.transform.LayerNorm.bias": rnd(H, std=0.1), "cls.predictions.bias": rnd(V, std=0.05)})
    else:
        W.update({"classifier.dense.weight": rnd(H, H), "classifier.dense.bias": rnd(H, std=0.05), "classifier.out_proj.weight": rnd(C, H), "classifier.out_proj.bias": rnd(C, std=0.05),
                  "lm_head.dense.weight": rnd(H, H), "lm_head.dense.bias": rnd(H, std=0.05), "lm_head.layer_norm.weight": 1 + rnd(H, std=0.1), "lm_head.layer_norm.bias": rnd(H, std=0.1), "lm_head.bias": rnd(V, std=0.05)})
    W["qa_outputs.weight"] = rnd(2, H)
    W["qa_outputs.bias"] = rnd(2, std=0.05)
    eps, nh = cfg["layer_norm_eps"], cfg["num_attention_heads"]

    def forward(ids, mask, types, pos):
        E = lambda n: W[pre + "embeddings." + n]
        x = E("word_embeddings.weight")[ids] + E("position_embeddings.weight")[pos] + E("token_type_embeddings.weight")[types]
        x = layer_norm(x, E("LayerNorm.weight"), E("LayerNorm.bias"), eps)
        am = pad_mask(mask)
        for i in range(L):
            p = f"{pre}encoder.layer.{i}."
            ctx = merge(attention(heads(lin(W, x, p + "attention.self.query"), nh), heads(lin(W, x, p + "attention.self.key"), nh), heads(lin(W, x, p + "attention.self.value"), nh), am))
            h1 = layer_norm(lin(W, ctx, p + "attention.output.dense") + x, W[p + "attention.output.LayerNorm.weight"], W[p + "attention.output.LayerNorm.bias"], eps)
            f = lin(W, gelu(lin(W, h1, p + "intermediate.dense")), p + "output.dense")
            x = layer_norm(f + h1, W[p + "output.LayerNorm.weight"], W[p + "output.LayerNorm.bias"], eps)
        out = {"last_hidden_state": x}
        if kind == "bert":
            pooled = torch.tanh(lin(W, x[:, 0], pre + "pooler.dense"))
            out["sequence-classification"] = lin(W, pooled, "classifier")
            out["token-classification"] = lin(W, x, "classifier")
            t = layer_norm(gelu(lin(W, x, "cls.predictions.transform.dense")), W["cls.predictions.transform.LayerNorm.weight"], W["cls.predictions.transform.LayerNorm.bias"], eps)
            out["masked-lm"] = t @ E("word_embeddings.weight").T + W["cls.predictions.bias"]
        else:
            out["sequence-classification"] = lin(W, torch.tanh(lin(W, x[:, 0], "classifier.dense")), "classifier.out_proj")
            t = layer_norm(gelu(lin(W, x, "lm_head.dense")), W["lm_head.layer_norm.weight"], W["lm_head.layer_norm.bias"], eps)
            out["masked-lm"] = t @ E("word_embeddings.weight").T + W["lm_head.bias"]
        qa = lin(W, x, "qa_outputs")
        out["start_logits"], out["end_logits"] = qa[..., 0], qa[..., 1]
        return out

    return W, forward


def distilbert(cfg):
    H, I, V, P, L = cfg["dim"], cfg["hidden_dim"], cfg["vocab_size"], cfg["max_position_embeddings"], cfg["n_layers"]
    pre = "distilbert."
    W = {pre + "embeddings.word_embeddings.weight": rnd(V, H), pre + "embeddings.position_embeddings.weight": rnd(P, H),
         pre + "embeddings.LayerNorm.weight": 1 + rnd(H, std=0.1), pre + "embeddings.LayerNorm.bias": rnd(H, std=0.1)}
    for i in range(L):
        p = f"{pre}transformer.layer.{i}."
        for n, shape in [("attention.q_lin", (H, H)), ("attention.k_lin", (H, H)), ("attention.v_lin", (H, H)), ("attention.out_lin", (H, H)), ("ffn.lin1", (I, H)), ("ffn.lin2", (H, I))]:
            W[p + n + ".weight"] = rnd(*shape)
            W[p + n + ".bias"] = rnd(shape[0], std=0.05)
        for n in ["sa_layer_norm", "output_layer_norm"]:
            W[p + n + ".weight"] = 1 + rnd(H, std=0.1)
            W[p + n + ".bias"] = rnd(H, std=0.1)
    C = cfg["num_labels"]
    W.update({"pre_classifier.weight": rnd(H, H), "pre_classifier.bias": rnd(H, std=0.05), "classifier.weight": rnd(C, H), "classifier.bias": rnd(C, std=0.05),
              "qa_outputs.weight": rnd(2, H), "qa_outputs.bias": rnd(2, std=0.05), "vocab_transform.weight": rnd(H, H), "vocab_transform.bias": rnd(H, std=0.05),
              "vocab_layer_norm.weight": 1 + rnd(H, std=0.1), "vocab_layer_norm.bias": rnd(H, std=0.1), "vocab_projector.bias": rnd(V, std=0.05)})
    nh = cfg["n_heads"]

    def forward(ids, mask, types, pos):
        E = lambda n: W[pre + "embeddings." + n]
        x = layer_norm(E("word_embeddings.weight")[ids] + E("position_embeddings.weight")[pos], E("LayerNorm.weight"), E("LayerNorm.bias"), 1e-12)
        am = pad_mask(mask)
        for i in range(L):
            p = f"{pre}transformer.layer.{i}."
            ctx = merge(attention(heads(lin(W, x, p + "attention.q_lin"), nh), heads(lin(W, x, p + "attention.k_lin"), nh), heads(lin(W, x, p + "attention.v_lin"), nh), am))
            h1 = layer_norm(lin(W, ctx, p + "attention.out_lin") + x, W[p + "sa_layer_norm.weight"], W[p + "sa_layer_norm.bias"], 1e-12)
            x = layer_norm(lin(W, gelu(lin(W, h1, p + "ffn.lin1")), p + "ffn.lin2") + h1, W[p + "output_layer_norm.weight"], W[p + "output_layer_norm.bias"], 1e-12)
        out = {"last_hidden_state": x}
        out["sequence-classification"] = lin(W, torch.relu(lin(W, x[:, 0], "pre_classifier")), "classifier")
        out["token-classification"] = lin(W, x, "classifier")
        qa = lin(W, x, "qa_outputs")
        out["start_logits"], out["end_logits"] = qa[..., 0], qa[..., 1]
        t = layer_norm(gelu(lin(W, x, "vocab_transform")), W["vocab_layer_norm.weight"], W["vocab_layer_norm.bias"], 1e-12)
        out["masked-lm"] = t @ E("word_embeddings.weight").T + W["vocab_projector.bias"]
        return out

    return W, forward


def gpt2(cfg):
    H, V, P, L, nh = cfg["n_embd"], cfg["vocab_size"], cfg["n_positions"], cfg["n_layer"], cfg["n_head"]
    I = 4 * H
    pre = "transformer."
    W = {pre + "wte.weight": rnd(V, H), pre + "wpe.weight": rnd(P, H), pre + "ln_f.weight": 1 + rnd(H, std=0.1), pre + "ln_f.bias": rnd(H, std=0.1), "score.weight": rnd(cfg["num_labels"], H)}
    for i in range(L):
        p = f"{pre}h.{i}."
        for n, shape in [("attn.c_attn", (H, 3 * H)), ("attn.c_proj", (H, H)), ("mlp.c_fc", (H, I)), ("mlp.c_proj", (I, H))]:
            W[p + n + ".weight"] = rnd(*shape)  # Conv1D: [in, out]
            W[p + n + ".bias"] = rnd(shape[1], std=0.05)
        for n in ["ln_1", "ln_2"]:
            W[p + n + ".weight"] = 1 + rnd(H, std=0.1)
            W[p + n + ".bias"] = rnd(H, std=0.1)
    eps = cfg["layer_norm_epsilon"]
    conv = lambda x, n: x @ W[n + ".weight"] + W[n + ".bias"]

    def forward(ids, mask, pos):
        x = W[pre + "wte.weight"][ids] + W[pre + "wpe.weight"][pos]
        am = pad_mask(mask) + causal(ids.shape[1])
        for i in range(L):
            p = f"{pre}h.{i}."
            q, k, v = conv(layer_norm(x, W[p + "ln_1.weight"], W[p + "ln_1.bias"], eps), p + "attn.c_attn").split(H, -1)
            x = x + conv(merge(attention(heads(q, nh), heads(k, nh), heads(v, nh), am)), p + "attn.c_proj")
            x = x + conv(gelu_new(conv(layer_norm(x, W[p + "ln_2.weight"], W[p + "ln_2.bias"], eps), p + "mlp.c_fc")), p + "mlp.c_proj")
        x = layer_norm(x, W[pre + "ln_f.weight"], W[pre + "ln_f.bias"], eps)
        return {"last_hidden_state": x, "causal-lm": x @ W[pre + "wte.weight"].T, "score": x @ W["score.weight"].T}

    return W, forward


def llama3_inv_freq(dim, theta, rs):
    inv = 1.0 / theta ** (torch.arange(0, dim, 2, dtype=DT) / dim)
    if not rs:
        return inv
    f, lo, hi, orig = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"], rs["original_max_position_embeddings"]
    out = []
    for x in inv.tolist():
        wl = 2 * math.pi / x
        if wl < orig / hi:
            out.append(x)
        elif wl > orig / lo:
            out.append(x / f)
        else:
            s = (orig / wl - lo) / (hi - lo)
            out.append((1 - s) * x / f + s * x)
    return torch.tensor(out, dtype=DT)


def rotate(x, pos, inv):
    """Rotary position embedding (transformers' rotate_half form) of x [B, heads, S, D] at positions pos [B or 1, S]."""
    D = x.shape[-1]
    ang = pos[..., None].to(DT) * inv  # [B, S, D/2]
    emb = torch.cat([ang, ang], -1)[:, None]
    x1, x2 = x[..., : D // 2], x[..., D // 2:]
    return x * torch.cos(emb) + torch.cat([-x2, x1], -1) * torch.sin(emb)


def llama(cfg):
    H, V, L, nh, kvh, I = cfg["hidden_size"], cfg["vocab_size"], cfg["num_hidden_layers"], cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["intermediate_size"]
    D = H // nh
    qwen = cfg["model_type"] == "qwen2"
    qkv_bias = qwen or cfg.get("attention_bias", False)
    pre = "model."
    W = {pre + "embed_tokens.weight": rnd(V, H), pre + "norm.weight": 1 + rnd(H, std=0.1), "score.weight": rnd(cfg["num_labels"], H)}
    if not cfg["tie_word_embeddings"]:
        W["lm_head.weight"] = rnd(V, H)
    for i in range(L):
        p = f"{pre}layers.{i}."
        for n, shape in [("self_attn.q_proj", (nh * D, H)), ("self_attn.k_proj", (kvh * D, H)), ("self_attn.v_proj", (kvh * D, H)), ("self_attn.o_proj", (H, nh * D)), ("mlp.gate_proj", (I, H)), ("mlp.up_proj", (I, H)), ("mlp.down_proj", (H, I))]:
            W[p + n + ".weight"] = rnd(*shape)
            if qkv_bias and n in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"):
                W[p + n + ".bias"] = rnd(shape[0], std=0.05)
        for n in ["input_layernorm", "post_attention_layernorm"]:
            W[p + n + ".weight"] = 1 + rnd(H, std=0.1)
    eps = cfg["rms_norm_eps"]
    inv = llama3_inv_freq(D, cfg["rope_theta"], cfg.get("rope_scaling"))
    rms = lambda x, w: x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps) * w

    def rope(x, pos):
        return rotate(x, pos, inv)

    def forward(ids, mask, pos):
        x = W[pre + "embed_tokens.weight"][ids]
        am = pad_mask(mask) + causal(ids.shape[1])
        for i in range(L):
            p = f"{pre}layers.{i}."
            xn = rms(x, W[p + "input_layernorm.weight"])
            q = rope(heads(lin(W, xn, p + "self_attn.q_proj"), nh), pos)
            k = rope(heads(lin(W, xn, p + "self_attn.k_proj"), kvh), pos).repeat_interleave(nh // kvh, 1)
            v = heads(lin(W, xn, p + "self_attn.v_proj"), kvh).repeat_interleave(nh // kvh, 1)
            x = x + lin(W, merge(attention(q, k, v, am)), p + "self_attn.o_proj")
            hn = rms(x, W[p + "post_attention_layernorm.weight"])
            g = lin(W, hn, p + "mlp.gate_proj")
            x = x + lin(W, g * torch.sigmoid(g) * lin(W, hn, p + "mlp.up_proj"), p + "mlp.down_proj")
        x = rms(x, W[pre + "norm.weight"])
        head = W[pre + "embed_tokens.weight"] if cfg["tie_word_embeddings"] else W["lm_head.weight"]
        return {"last_hidden_state": x, "causal-lm": x @ head.T, "score": x @ W["score.weight"].T}

    return W, forward


# ----------------------------------------------------------------------------- fixtures

def as_list(t):
    return t.detach().to(torch.float64).tolist()


def last_token(logits, mask):
    idx = mask.sum(1) - 1
    return logits[torch.arange(logits.shape[0]), idx]


def greedy(forward, ids, steps):
    """No-cache greedy decoding of one row."""
    seq = list(ids)
    for _ in range(steps):
        t = torch.tensor([seq])
        logits = forward(t, torch.ones_like(t), torch.arange(len(seq))[None])["causal-lm"]
        seq.append(int(logits[0, -1].argmax()))
    return seq[len(ids):]


def to_float32_weights(W):
    # The checkpoint stores float32; the reference computes with exactly those values.
    return {k: v.to(torch.float32).to(DT) for k, v in W.items()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="test/fixtures/models")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    wp, wp_config, wp_ids = wordpiece_tokenizer()
    texts = ["The cat sat on the mat.", "Unplayable dogs"]
    pair = ["Where is the money?", "The money is in the bank near the river."]
    tokenizer_expectations = {"wordpiece": {"texts": texts, "ids": [wordpiece_encode(t, wp_ids)[0] for t in texts], "pair": pair, "pair_ids": wordpiece_encode(pair[0], wp_ids, pair[1])[0], "pair_type_ids": wordpiece_encode(pair[0], wp_ids, pair[1])[1]}}

    common = {"initializer_range": 0.02, "num_labels": 3, "id2label": {"0": "neg", "1": "neu", "2": "pos"}, "label2id": {"neg": 0, "neu": 1, "pos": 2}}
    models = {}
    # Encoders (inputs: batch 2, seq 8, row 1 padded after 5 tokens)
    enc_ids, enc_types = wordpiece_encode(pair[0], wp_ids, "the bank")
    S = len(enc_ids)
    ids = torch.tensor([enc_ids, [wp_ids["[CLS]"]] + enc_ids[1:5] + [wp_ids["[SEP]"]] + [0] * (S - 6)])
    mask = torch.tensor([[1] * S, [1] * 6 + [0] * (S - 6)])
    types = torch.tensor([enc_types, [0] * S])
    pos = torch.arange(S).repeat(2, 1)
    for name, kind in [("bert-tiny", "bert"), ("distilbert-tiny", "distilbert")]:
        if kind == "bert":
            cfg = {"model_type": "bert", "architectures": ["BertForMaskedLM"], "vocab_size": len(wp_ids), "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64,
                   "hidden_act": "gelu", "max_position_embeddings": 64, "type_vocab_size": 2, "layer_norm_eps": 1e-12, "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1, "pad_token_id": 0, **common}
            W, fwd = bert_family(cfg, "bert")
        else:
            cfg = {"model_type": "distilbert", "architectures": ["DistilBertForMaskedLM"], "vocab_size": len(wp_ids), "dim": 32, "n_layers": 2, "n_heads": 4, "hidden_dim": 64, "activation": "gelu",
                   "max_position_embeddings": 64, "dropout": 0.1, "attention_dropout": 0.1, "pad_token_id": 0, **common}
            W, fwd = distilbert(cfg)
        models[name] = (cfg, W, (wp, wp_config), lambda W, fwd=fwd, kind=kind: fwd(ids, mask, types if kind == "bert" else None, pos), {"input_ids": ids, "attention_mask": mask, "token_type_ids": types, "position_ids": pos})

    rb_tok, rb_config, rb_ids, rb_encode = bytelevel_tokenizer("roberta")
    r1 = rb_encode("the cat sat on the mat")
    r2 = rb_encode("the dog")
    S = len(r1)
    rids = torch.tensor([r1, r2 + [1] * (S - len(r2))])
    rmask = torch.tensor([[1] * S, [1] * len(r2) + [0] * (S - len(r2))])
    rpos = torch.where(rmask == 1, torch.cumsum(rmask, 1) + 1, torch.ones_like(rmask))
    cfg = {"model_type": "roberta", "architectures": ["RobertaForMaskedLM"], "vocab_size": len(rb_ids), "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64, "hidden_act": "gelu",
           "max_position_embeddings": 66, "type_vocab_size": 1, "layer_norm_eps": 1e-5, "pad_token_id": 1, "bos_token_id": 0, "eos_token_id": 2, **common}
    W, fwd = bert_family(cfg, "roberta")
    models["roberta-tiny"] = (cfg, W, (rb_tok, rb_config), lambda W, fwd=fwd: fwd(rids, rmask, torch.zeros_like(rids), rpos), {"input_ids": rids, "attention_mask": rmask, "token_type_ids": torch.zeros_like(rids), "position_ids": rpos})
    tokenizer_expectations["roberta"] = {"texts": ["the cat sat on the mat", "the dog"], "ids": [r1, r2]}

    # Decoders (right padding on row 1)
    g_tok, g_config, g_ids, g_encode = bytelevel_tokenizer("gpt2")
    l_tok, l_config, l_ids, l_encode = bytelevel_tokenizer("llama")
    tokenizer_expectations["gpt2"] = {"texts": ["the cat sat on the mat.", "money in the bank"], "ids": [g_encode("the cat sat on the mat."), g_encode("money in the bank")]}
    tokenizer_expectations["llama"] = {"texts": ["the river bank"], "ids": [l_encode("the river bank")]}
    decoders = [
        ("gpt2-tiny", {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "vocab_size": len(g_ids), "n_embd": 32, "n_layer": 2, "n_head": 4, "n_positions": 64, "activation_function": "gelu_new",
                       "layer_norm_epsilon": 1e-5, "resid_pdrop": 0.1, "embd_pdrop": 0.1, "attn_pdrop": 0.1, "bos_token_id": g_ids["<|endoftext|>"], "eos_token_id": g_ids["<|endoftext|>"], "tie_word_embeddings": True, **common}, gpt2, (g_tok, g_config), g_encode),
        ("llama-tiny", {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "vocab_size": len(l_ids), "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
                        "intermediate_size": 48, "hidden_act": "silu", "max_position_embeddings": 128, "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "tie_word_embeddings": False, "attention_bias": False,
                        "bos_token_id": l_ids["<|begin_of_text|>"], "eos_token_id": l_ids["<|end_of_text|>"], "pad_token_id": l_ids["<|pad|>"], **common}, llama, (l_tok, l_config), l_encode),
        ("llama3-tiny", {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "vocab_size": len(l_ids), "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 1,
                         "intermediate_size": 48, "hidden_act": "silu", "max_position_embeddings": 256, "rms_norm_eps": 1e-5, "rope_theta": 500000.0, "tie_word_embeddings": True,
                         "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 16},
                         "bos_token_id": l_ids["<|begin_of_text|>"], "eos_token_id": l_ids["<|end_of_text|>"], "pad_token_id": l_ids["<|pad|>"], **common}, llama, (l_tok, l_config), l_encode),
        ("qwen2-tiny", {"model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"], "vocab_size": len(l_ids), "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
                        "intermediate_size": 48, "hidden_act": "silu", "max_position_embeddings": 128, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "tie_word_embeddings": True,
                        "bos_token_id": l_ids["<|begin_of_text|>"], "eos_token_id": l_ids["<|end_of_text|>"], "pad_token_id": l_ids["<|pad|>"], **common}, llama, (l_tok, l_config), l_encode),
    ]
    for name, cfg, arch, tok, encode in decoders:
        W, fwd = arch(cfg)
        a = encode("the cat sat on the mat")
        b = encode("the dog")
        S = len(a)
        pad = cfg.get("pad_token_id", cfg["eos_token_id"])
        dids = torch.tensor([a, b + [pad] * (S - len(b))])
        dmask = torch.tensor([[1] * S, [1] * len(b) + [0] * (S - len(b))])
        dpos = torch.arange(S).repeat(2, 1)
        models[name] = (cfg, W, tok, lambda W, fwd=fwd, dids=dids, dmask=dmask, dpos=dpos, prompt=a[:4]: {**fwd(dids, dmask, dpos), "greedy": greedy(fwd, prompt, 8)}, {"input_ids": dids, "attention_mask": dmask, "position_ids": dpos})

    for name, (cfg, W, (tok, tok_config), run, inputs) in models.items():
        d = os.path.join(args.out, name)
        os.makedirs(d, exist_ok=True)
        W32 = to_float32_weights(W)
        W.clear()
        W.update(W32)
        out = run(W)
        write_json(os.path.join(d, "config.json"), cfg)
        write_safetensors(os.path.join(d, "model.safetensors"), W)
        write_json(os.path.join(d, "tokenizer.json"), tok)
        write_json(os.path.join(d, "tokenizer_config.json"), tok_config)
        ref = {"inputs": {k: v.tolist() for k, v in inputs.items()}, "outputs": {}}
        for k, v in out.items():
            if k == "greedy":
                ref["greedy"] = {"prompt": inputs["input_ids"][0, :4].tolist(), "tokens": v}
            elif k == "score":
                ref["outputs"]["sequence-classification"] = as_list(last_token(v, inputs["attention_mask"]))
            else:
                ref["outputs"][k] = as_list(v)
        write_json(os.path.join(d, "reference.json"), ref)
        print(f"{name}: {sum(t.numel() for t in W.values())} parameters -> {d}")
    write_json(os.path.join(args.out, "tokenizer-expectations.json"), tokenizer_expectations)


if __name__ == "__main__":
    main()
