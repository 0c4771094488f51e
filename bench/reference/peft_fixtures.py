#!/usr/bin/env python3
"""Adapter files in Hugging Face PEFT's format, with expected outputs, for peftjs's tests.

PEFT itself cannot be installed on this machine (no PyPI access), so the files are written from
PEFT's format as its source defines it, and the expected outputs come from independent PyTorch
math (merged weights) on the tiny checkpoints of tiny_checkpoints.py. Key rules, by source file
(huggingface/peft):
- file names adapter_config.json / adapter_model.safetensors: src/peft/utils/constants.py
  (CONFIG_NAME, SAFETENSORS_WEIGHTS_NAME);
- keys are the module path in the wrapped model (`base_model.model.` + transformers path) plus the
  parameter name, with the adapter name removed: src/peft/utils/save_and_load.py
  (get_peft_model_state_dict, `_remove_adapter_name_from_key`) and src/peft/tuners/tuners_utils.py
  (`_get_adapter_state_dict`);
- LoRA: `lora_A.weight` [r, in], `lora_B.weight` [out, r], scaling lora_alpha / r, for GPT-2's
  Conv1D (fan_in_fan_out) the update is transposed onto the [in, out] weight:
  src/peft/tuners/lora/layer.py (update_layer, get_delta_weight);
- modules_to_save (the classifier for SEQ_CLS, added automatically by
  PeftModelForSequenceClassification): key `base_model.model.classifier.weight`:
  src/peft/utils/other.py (ModulesToSaveWrapper.adapter_state_dict) and src/peft/peft_model.py;
- IA3: one parameter `ia3_l`, [out, 1] scaling the output, or [1, in] scaling the input of
  feed-forward modules: src/peft/tuners/ia3/layer.py (update_layer, forward);
- prompt tuning: a single tensor `prompt_embeddings` [num_virtual_tokens, token_dim]:
  src/peft/tuners/tuners_utils.py (prompt learning `_get_adapter_state_dict`); for SEQ_CLS the head is
  `base_model.classifier.*` (no `model.` level): src/peft/peft_model.py (PeftModel.__init__ keeps the
  transformers model itself as `base_model` for prompt learning; PeftModelForSequenceClassification adds
  classifier/score to modules_to_save); the forward prepends the prompt to the input embeddings, ones to the
  attention mask and zeros to token_type_ids, and drops position ids (PeftModelForSequenceClassification.forward);
- LoRA `lora_bias=True`: lora_B is nn.Linear(r, out, bias=True), key `lora_B.bias`, and the forward adds
  `lora_B(lora_A(x)) * scaling`, so the bias is scaled (src/peft/tuners/lora/layer.py update_layer, Linear.forward);
  `bias="all"` saves every `.bias` of the model, a LoRA-wrapped layer's as `<path>.base_layer.bias`
  (src/peft/tuners/tuners_utils.py BaseTuner._get_learnable_bias_state_dict; 0.14: save_and_load.py
  get_peft_model_state_dict, `"bias" in k`).
Config files list the fields PEFT's dataclasses serialize (src/peft/config.py, lora/config.py,
ia3/config.py), including ones peftjs ignores (it must tolerate them).

Run: /usr/bin/python3 bench/reference/peft_fixtures.py
"""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(__file__))
import tiny_checkpoints as tc  # noqa: E402
from models_torch import read_safetensors  # noqa: E402

ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "test", "fixtures")
DT = torch.float64


def load(name):
    d = os.path.join(ROOT, "models", name)
    cfg = json.load(open(os.path.join(d, "config.json")))
    W = {k: v.to(DT) for k, v in read_safetensors(os.path.join(d, "model.safetensors")).items()}
    return cfg, W


def bind(make, cfg, W):
    """Build a reference model, then point its weight dict at `W`."""
    W0, fwd = make(cfg)
    W0.clear()
    W0.update(W)
    return W0, fwd


def rnd(*shape, std=0.3, seed):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(*shape, generator=g, dtype=torch.float64) * std).to(torch.float32)


LORA_COMMON = {
    "alpha_pattern": {}, "auto_mapping": None, "bias": "none", "corda_config": None, "eva_config": None, "exclude_modules": None,
    "inference_mode": True, "init_lora_weights": True, "layer_replication": None, "layers_pattern": None, "layers_to_transform": None,
    "loftq_config": {}, "lora_bias": False, "lora_dropout": 0.1, "megatron_config": None, "megatron_core": "megatron.core",
    "peft_type": "LORA", "peft_version": "0.17.1", "qalora_group_size": 16, "rank_pattern": {}, "revision": None,
    "target_parameters": None, "trainable_token_indices": None, "use_dora": False, "use_qalora": False, "use_rslora": False,
}


def write(name, config, tensors, inputs, expected):
    d = os.path.join(ROOT, "peft", name)
    os.makedirs(d, exist_ok=True)
    tc.write_json(os.path.join(d, "adapter_config.json"), config)
    tc.write_safetensors(os.path.join(d, "adapter_model.safetensors"), tensors)
    tc.write_json(os.path.join(d, "expected.json"), {"inputs": {k: v.tolist() for k, v in inputs.items()}, "expected": {k: tc.as_list(v) for k, v in expected.items()}})
    print(name, sorted(tensors)[:3], "...", len(tensors), "tensors")


def main():
    # 1. BERT sequence classification, LoRA on query/value + the classifier (modules_to_save).
    cfg, W = load("bert-tiny")
    ref = json.load(open(os.path.join(ROOT, "models", "bert-tiny", "reference.json")))
    inputs = {k: torch.tensor(v) for k, v in ref["inputs"].items()}
    r, alpha = 4, 8
    T, merged = {}, dict(W)
    seed = 1
    for i in range(cfg["num_hidden_layers"]):
        for m in ("query", "value"):
            path = f"bert.encoder.layer.{i}.attention.self.{m}"
            A, B = rnd(r, 32, seed=seed), rnd(32, r, seed=seed + 1)
            seed += 2
            T[f"base_model.model.{path}.lora_A.weight"] = A
            T[f"base_model.model.{path}.lora_B.weight"] = B
            merged[path + ".weight"] = W[path + ".weight"] + (alpha / r) * (B.to(DT) @ A.to(DT))
    T["base_model.model.classifier.weight"] = rnd(3, 32, seed=99)
    T["base_model.model.classifier.bias"] = rnd(3, seed=98)
    merged["classifier.weight"], merged["classifier.bias"] = T["base_model.model.classifier.weight"].to(DT), T["base_model.model.classifier.bias"].to(DT)
    _, fwd = bind(lambda c: tc.bert_family(c, "bert"), cfg, merged)
    out = fwd(inputs["input_ids"], inputs["attention_mask"], inputs["token_type_ids"], inputs["position_ids"])
    config = {**LORA_COMMON, "base_model_name_or_path": "tiny/bert-tiny", "task_type": "SEQ_CLS", "r": r, "lora_alpha": alpha, "fan_in_fan_out": False,
              "target_modules": ["value", "query"], "modules_to_save": ["classifier", "score"]}
    write("bert-lora-seq-cls", config, T, inputs, {"logits": out["sequence-classification"]})

    # 2. GPT-2 causal LM, LoRA on the fused c_attn Conv1D (fan_in_fan_out).
    cfg, W = load("gpt2-tiny")
    ref = json.load(open(os.path.join(ROOT, "models", "gpt2-tiny", "reference.json")))
    inputs = {k: torch.tensor(v) for k, v in ref["inputs"].items()}
    T, merged = {}, dict(W)
    for i in range(cfg["n_layer"]):
        path = f"transformer.h.{i}.attn.c_attn"
        A, B = rnd(r, 32, seed=10 + i), rnd(96, r, seed=20 + i)
        T[f"base_model.model.{path}.lora_A.weight"] = A
        T[f"base_model.model.{path}.lora_B.weight"] = B
        merged[path + ".weight"] = W[path + ".weight"] + (alpha / r) * (B.to(DT) @ A.to(DT)).T
    _, fwd = bind(tc.gpt2, cfg, merged)
    out = fwd(inputs["input_ids"], inputs["attention_mask"], inputs["position_ids"])
    config = {**LORA_COMMON, "base_model_name_or_path": "tiny/gpt2-tiny", "task_type": "CAUSAL_LM", "r": r, "lora_alpha": alpha, "fan_in_fan_out": True,
              "target_modules": ["c_attn"], "modules_to_save": None}
    write("gpt2-lora-causal-lm", config, T, inputs, {"logits": out["causal-lm"]})

    # 3. Llama causal LM, IA3 on k_proj / v_proj (output scaling) and down_proj (input scaling).
    cfg, W = load("llama-tiny")
    ref = json.load(open(os.path.join(ROOT, "models", "llama-tiny", "reference.json")))
    inputs = {k: torch.tensor(v) for k, v in ref["inputs"].items()}
    T, merged = {}, dict(W)
    for i in range(cfg["num_hidden_layers"]):
        for m, ff in (("self_attn.k_proj", False), ("self_attn.v_proj", False), ("mlp.down_proj", True)):
            path = f"model.layers.{i}.{m}"
            w = W[path + ".weight"]
            shape = (1, w.shape[1]) if ff else (w.shape[0], 1)
            l = 1 + rnd(*shape, std=0.2, seed=30 + 7 * i + len(T))
            T[f"base_model.model.{path}.ia3_l"] = l
            merged[path + ".weight"] = w * l.to(DT)
    _, fwd = bind(tc.llama, cfg, merged)
    out = fwd(inputs["input_ids"], inputs["attention_mask"], inputs["position_ids"])
    config = {"auto_mapping": None, "base_model_name_or_path": "tiny/llama-tiny", "exclude_modules": None, "fan_in_fan_out": False,
              "feedforward_modules": ["down_proj"], "inference_mode": True, "init_ia3_weights": True, "modules_to_save": None, "peft_type": "IA3",
              "peft_version": "0.17.1", "revision": None, "target_modules": ["k_proj", "v_proj", "down_proj"], "task_type": "CAUSAL_LM"}
    write("llama-ia3-causal-lm", config, T, inputs, {"logits": out["causal-lm"]})

    # 4. GPT-2 causal LM, LoRA with lora_bias=True and bias="all": every bias of the model (LayerNorms
    #    included) is trained and saved; c_attn's bias as base_layer.bias; lora_B.bias scaled like the update.
    cfg, W = load("gpt2-tiny")
    ref = json.load(open(os.path.join(ROOT, "models", "gpt2-tiny", "reference.json")))
    inputs = {k: torch.tensor(v) for k, v in ref["inputs"].items()}
    T, merged = {}, dict(W)
    for i in range(cfg["n_layer"]):
        path = f"transformer.h.{i}.attn.c_attn"
        A, B, b = rnd(r, 32, seed=40 + i), rnd(96, r, seed=50 + i), rnd(96, seed=60 + i)
        T[f"base_model.model.{path}.lora_A.weight"] = A
        T[f"base_model.model.{path}.lora_B.weight"] = B
        T[f"base_model.model.{path}.lora_B.bias"] = b
        trained_bias = W[path + ".bias"].to(torch.float32) + rnd(96, std=0.1, seed=70 + i)
        T[f"base_model.model.{path}.base_layer.bias"] = trained_bias
        merged[path + ".weight"] = W[path + ".weight"] + (alpha / r) * (B.to(DT) @ A.to(DT)).T
        merged[path + ".bias"] = trained_bias.to(DT) + (alpha / r) * b.to(DT)
    seed = 80
    for name in sorted(W):
        if name.endswith(".bias") and not name.endswith("attn.c_attn.bias"):
            t = W[name].to(torch.float32) + rnd(*W[name].shape, std=0.1, seed=seed)
            seed += 1
            T[f"base_model.model.{name}"] = t
            merged[name] = t.to(DT)
    _, fwd = bind(tc.gpt2, cfg, merged)
    out = fwd(inputs["input_ids"], inputs["attention_mask"], inputs["position_ids"])
    config = {**LORA_COMMON, "base_model_name_or_path": "tiny/gpt2-tiny", "task_type": "CAUSAL_LM", "r": r, "lora_alpha": alpha, "fan_in_fan_out": True,
              "target_modules": ["c_attn"], "modules_to_save": None, "lora_bias": True, "bias": "all"}
    write("gpt2-lora-bias-all-causal-lm", config, T, inputs, {"logits": out["causal-lm"]})

    # 5. BERT sequence classification, prompt tuning: prompt_embeddings + the head as base_model.classifier.*.
    cfg, W = load("bert-tiny")
    ref = json.load(open(os.path.join(ROOT, "models", "bert-tiny", "reference.json")))
    ids, mask, types = (torch.tensor(ref["inputs"][k]) for k in ("input_ids", "attention_mask", "token_type_ids"))
    n, H, V = 3, cfg["hidden_size"], cfg["vocab_size"]
    prompt = rnd(n, H, std=1.0, seed=90)
    T = {"prompt_embeddings": prompt, "base_model.classifier.weight": rnd(3, H, seed=91), "base_model.classifier.bias": rnd(3, seed=92)}
    merged = dict(W)
    merged["classifier.weight"], merged["classifier.bias"] = T["base_model.classifier.weight"].to(DT), T["base_model.classifier.bias"].to(DT)
    # Prepending embeddings = looking up extra rows appended to the word-embedding table.
    emb = "bert.embeddings.word_embeddings.weight"
    merged[emb] = torch.cat([W[emb], prompt.to(DT)], 0)
    merged["cls.predictions.bias"] = torch.cat([W["cls.predictions.bias"], torch.zeros(n, dtype=DT)])  # only so the unused masked-LM output computes
    b = ids.shape[0]
    virt = torch.arange(V, V + n).repeat(b, 1)
    full_ids = torch.cat([virt, ids], 1)
    full_mask = torch.cat([torch.ones(b, n, dtype=mask.dtype), mask], 1)
    full_types = torch.cat([torch.zeros(b, n, dtype=types.dtype), types], 1)
    pos = torch.arange(full_ids.shape[1]).repeat(b, 1)
    _, fwd = bind(lambda c: tc.bert_family(c, "bert"), cfg, merged)
    out = fwd(full_ids, full_mask, full_types, pos)
    config = {"auto_mapping": None, "base_model_name_or_path": "tiny/bert-tiny", "inference_mode": True, "num_attention_heads": cfg["num_attention_heads"],
              "num_layers": cfg["num_hidden_layers"], "num_transformer_submodules": 1, "num_virtual_tokens": n, "peft_type": "PROMPT_TUNING", "peft_version": "0.17.1",
              "prompt_tuning_init": "RANDOM", "prompt_tuning_init_text": None, "revision": None, "task_type": "SEQ_CLS", "token_dim": H, "tokenizer_kwargs": None,
              "tokenizer_name_or_path": None}
    write("bert-prompt-tuning-seq-cls", config, T, {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}, {"logits": out["sequence-classification"]})

    # 6. BERT sequence classification, LoRA with bias="all": every bias of BertForSequenceClassification is
    #    saved, a wrapped layer's as base_layer.bias, and the classifier's ModulesToSaveWrapper contributes
    #    classifier.original_module.bias (the base bias) and classifier.modules_to_save.bias (the trained
    #    copy) besides classifier.bias, since the filter takes every key ending in ".bias".
    cfg, W = load("bert-tiny")
    ref = json.load(open(os.path.join(ROOT, "models", "bert-tiny", "reference.json")))
    inputs = {k: torch.tensor(v) for k, v in ref["inputs"].items()}
    T, merged = {}, dict(W)
    seed = 200
    wrapped = set()
    for i in range(cfg["num_hidden_layers"]):
        for m in ("query", "value"):
            path = f"bert.encoder.layer.{i}.attention.self.{m}"
            wrapped.add(path)
            A, B = rnd(r, 32, seed=seed), rnd(32, r, seed=seed + 1)
            seed += 2
            T[f"base_model.model.{path}.lora_A.weight"] = A
            T[f"base_model.model.{path}.lora_B.weight"] = B
            merged[path + ".weight"] = W[path + ".weight"] + (alpha / r) * (B.to(DT) @ A.to(DT))
    for name in sorted(W):
        if not (name.startswith("bert.") and name.endswith(".bias")):
            continue
        t = W[name].to(torch.float32) + rnd(*W[name].shape, std=0.1, seed=seed)
        seed += 1
        module = name[: -len(".bias")]
        T[f"base_model.model.{module}.base_layer.bias" if module in wrapped else f"base_model.model.{name}"] = t
        merged[name] = t.to(DT)
    T["base_model.model.classifier.weight"] = rnd(3, 32, seed=299)
    T["base_model.model.classifier.bias"] = rnd(3, seed=298)
    T["base_model.model.classifier.modules_to_save.bias"] = T["base_model.model.classifier.bias"]
    T["base_model.model.classifier.original_module.bias"] = W["classifier.bias"].to(torch.float32)
    merged["classifier.weight"], merged["classifier.bias"] = T["base_model.model.classifier.weight"].to(DT), T["base_model.model.classifier.bias"].to(DT)
    _, fwd = bind(lambda c: tc.bert_family(c, "bert"), cfg, merged)
    out = fwd(inputs["input_ids"], inputs["attention_mask"], inputs["token_type_ids"], inputs["position_ids"])
    config = {**LORA_COMMON, "base_model_name_or_path": "tiny/bert-tiny", "task_type": "SEQ_CLS", "r": r, "lora_alpha": alpha, "fan_in_fan_out": False,
              "target_modules": ["value", "query"], "modules_to_save": ["classifier", "score"], "bias": "all"}
    write("bert-lora-bias-all-seq-cls", config, T, inputs, {"logits": out["sequence-classification"]})


if __name__ == "__main__":
    main()
