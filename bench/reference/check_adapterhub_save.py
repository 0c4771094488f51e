#!/usr/bin/env python3
"""Check an AdapterHub folder written by peftjs (`save(dir, { format: "adapterhub" })`) the way
AdapterHub 1.1 would read it, without AdapterHub installed: adapter_config.json parsed as
AdapterConfig.load would (BnConfig fields; `scaling` must be a float: modeling.py Adapter.__init__
raises "Unknown scaling type" otherwise), pytorch_adapter.bin through torch.load(weights_only=True)
as loading.py WeightsLoaderHelper.load_weights does, the keys matched to the model's adapter modules,
and the outputs recomputed with adapterhub_fixtures.py's independent placement rules and compared
with an expected.json.

Run: /usr/bin/python3 bench/reference/check_adapterhub_save.py <saved dir> <arch> <expected.json>
(e.g. after saving test/fixtures/adapterhub/gpt2-tiny-seq_bn again from peftjs).
"""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(__file__))
import adapterhub_fixtures as ah  # noqa: E402
from models_torch import read_safetensors  # noqa: E402


def main(saved, arch, expected_path):
    full = json.load(open(os.path.join(saved, "adapter_config.json")))
    for k in ("config", "hidden_size", "model_class", "model_name", "model_type", "name", "version"):
        assert k in full, f"adapter_config.json lacks {k}"
    config = {**ah.BN_DEFAULTS, **full["config"]}
    assert isinstance(config["scaling"], float), f"scaling {config['scaling']!r} is not a float"
    assert set(full["config"]) == set(ah.BN_DEFAULTS), f"fields differ from BnConfig's: {set(full['config']) ^ set(ah.BN_DEFAULTS)}"
    sd = torch.load(os.path.join(saved, "pytorch_adapter.bin"), map_location="cpu", weights_only=True)
    name = full["name"]
    forward, module = {a[0]: (a[1], a[3]) for a in ah.ARCHS}[arch]
    d = os.path.join(ah.ROOT, "models", arch)
    cfg = json.load(open(os.path.join(d, "config.json")))
    W = {k: v.to(ah.DT) for k, v in read_safetensors(os.path.join(d, "model.safetensors")).items()}
    H = full["hidden_size"]
    L = cfg.get("num_hidden_layers", cfg.get("n_layer", cfg.get("n_layers")))
    ad = ah.make_adapters(config, H, L, 0)
    used = set()
    for (i, kind), a in ad.items():
        prefix = f"{module(i, kind)}.adapters.{name}."
        for k in list(a.state()):
            key = prefix + k
            assert key in sd, f"missing {key}"
            used.add(key)
            if k in a.w:
                a.w[k] = sd[key].to(ah.DT)
    assert used == set(sd), f"unexpected keys: {sorted(set(sd) - used)[:5]}"
    e = json.load(open(expected_path))
    ids, mask = torch.tensor(e["inputs"]["input_ids"]), torch.tensor(e["inputs"]["attention_mask"])
    out = forward(cfg, W, ids, mask, ad)
    want = torch.tensor(e["last_hidden_state"], dtype=ah.DT)
    m = mask.bool()
    diff = (out["last_hidden_state"] - want).abs()[m].max().item()
    print(f"{saved}: {len(sd)} tensors, config as BnConfig, last_hidden_state max abs diff {diff:.2e}")
    assert diff < 1e-5


if __name__ == "__main__":
    main(*sys.argv[1:4])
