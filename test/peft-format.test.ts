// Compatibility with Hugging Face PEFT's files (fixtures written from PEFT's format, see
// bench/reference/peft_fixtures.py), and the errors users get for bad adapters.
import assert from "node:assert/strict";
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { readSafetensors, writeSafetensors } from "../src/io/safetensors.js";
import { int64, type Tensor } from "../src/ir/tensor.js";
import { loadModel } from "../src/models/pretrained.js";
import { type Task } from "../src/models/task.js";
import { PeftModel } from "../src/peft/peft-model.js";
import { compile } from "../src/runtime/session.js";

const FIXTURES = join(import.meta.dirname, "fixtures");
const CASES: { name: string; base: string; task: Task; config: Record<string, unknown> }[] = [
  { name: "bert-lora-seq-cls", base: "bert-tiny", task: "sequence-classification", config: { peft_type: "LORA", r: 4, lora_alpha: 8, target_modules: ["value", "query"] } },
  { name: "gpt2-lora-causal-lm", base: "gpt2-tiny", task: "causal-lm", config: { peft_type: "LORA", r: 4, lora_alpha: 8, target_modules: ["c_attn"], fan_in_fan_out: true } },
  { name: "llama-ia3-causal-lm", base: "llama-tiny", task: "causal-lm", config: { peft_type: "IA3" } },
  // lora_bias (lora/layer.py update_layer: lora_B = nn.Linear(r, out, bias=lora_bias); Linear.forward scales
  // it with the update) and bias="all" (tuners_utils.py BaseTuner._get_learnable_bias_state_dict: every
  // ".bias" key, LayerNorms included; a wrapped layer's as "<path>.base_layer.bias").
  { name: "gpt2-lora-bias-all-causal-lm", base: "gpt2-tiny", task: "causal-lm", config: { peft_type: "LORA", r: 4, lora_alpha: 8, target_modules: ["c_attn"], lora_bias: true, bias: "all" } },
  // bias="all" with a head: both halves of the classifier's ModulesToSaveWrapper end in ".bias" and are saved too
  // (classifier.original_module.bias, classifier.modules_to_save.bias).
  { name: "bert-lora-bias-all-seq-cls", base: "bert-tiny", task: "sequence-classification", config: { peft_type: "LORA", r: 4, lora_alpha: 8, target_modules: ["value", "query"], bias: "all" } },
  // Prompt learning wraps the transformers model directly (peft_model.py PeftModel.__init__), so the
  // SEQ_CLS head that PeftModelForSequenceClassification adds is saved as "base_model.classifier.*".
  { name: "bert-prompt-tuning-seq-cls", base: "bert-tiny", task: "sequence-classification", config: { peft_type: "PROMPT_TUNING", num_virtual_tokens: 3 } },
];

type Nested = number | Nested[];
const flat = (x: Nested): number[] => (Array.isArray(x) ? x.flatMap(flat) : [x]);

describe("PEFT file format", () => {
  for (const c of CASES) {
    it(`${c.name}: loads PEFT's files and reproduces the expected outputs`, async () => {
      const base = await loadModel(join(FIXTURES, "models", c.base), { task: c.task });
      const warnings: string[] = [];
      const peft = new PeftModel(base);
      peft.warn = (m) => warnings.push(m);
      await peft.loadAdapter(join(FIXTURES, "peft", c.name));
      const { inputs, expected } = JSON.parse(readFileSync(join(FIXTURES, "peft", c.name, "expected.json"), "utf8")) as { inputs: Record<string, number[][]>; expected: { logits: Nested } };
      const step = await compile({ logits: peft.build().outputs.logits! }, { threads: 1 });
      const t = (n: string) => int64([inputs[n]!.length, inputs[n]![0]!.length], inputs[n]!.flat());
      // Prompt methods: the virtual tokens' room is made by prepareInputs; other fixtures carry every input.
      const all: Record<string, Tensor> = peft.virtualTokens ? peft.prepareInputs({ input_ids: t("input_ids"), attention_mask: t("attention_mask"), token_type_ids: inputs.token_type_ids && t("token_type_ids") }) : Object.fromEntries(Object.keys(inputs).map((n) => [n, t(n)]));
      const feeds = Object.fromEntries(step.inputNames.map((n) => [n, all[n]!]));
      const got = (await step.run(feeds)).logits!.data as Float32Array;
      const want = flat(expected.logits);
      const scale = Math.max(...want.map(Math.abs));
      const err = want.reduce((m, v, i) => Math.max(m, Math.abs(v - got[i]!)), 0) / scale;
      assert.ok(err < 1e-4, `relative error ${err}`);
      // PEFT's informational fields (loftq_config, megatron_core, ...; see peft_fixtures.py LORA_COMMON) load quietly.
      assert.deepEqual(warnings, [], "a normal PEFT config loads without warnings");
    });

    it(`${c.name}: peftjs saves the same keys, shapes, dtypes and config fields`, async () => {
      const base = await loadModel(join(FIXTURES, "models", c.base), { task: c.task });
      const dir = mkdtempSync(join(tmpdir(), "peftjs-fmt-"));
      await PeftModel.create(base, c.config as { peft_type: string }).save(dir);
      const ours = await readSafetensors(join(dir, "adapter_model.safetensors"));
      const theirs = await readSafetensors(join(FIXTURES, "peft", c.name, "adapter_model.safetensors"));
      assert.deepEqual(ours.names().sort(), theirs.names().sort());
      for (const n of theirs.names()) {
        assert.deepEqual(ours.tensors.get(n)!.shape, theirs.tensors.get(n)!.shape, n);
        assert.equal(ours.tensors.get(n)!.dtype, theirs.tensors.get(n)!.dtype, n);
      }
      const ourConfig = JSON.parse(readFileSync(join(dir, "adapter_config.json"), "utf8")) as Record<string, unknown>;
      const theirConfig = JSON.parse(readFileSync(join(FIXTURES, "peft", c.name, "adapter_config.json"), "utf8")) as Record<string, unknown>;
      assert.deepEqual(Object.keys(ourConfig).filter((k) => !(k in theirConfig)), [], "every field we write is a PEFT field");
      // PEFT's save_pretrained writes inference_mode true; fan_in_fan_out as PEFT corrects it for the wrapped layer type.
      assert.equal(ourConfig.inference_mode, true);
      if ("fan_in_fan_out" in theirConfig) assert.equal(ourConfig.fan_in_fan_out, theirConfig.fan_in_fan_out, "fan_in_fan_out");
      assert.equal(ourConfig.base_model_name_or_path, join(FIXTURES, "models", c.base), "base_model_name_or_path as the user passed it to loadModel");
      for (const k of ["peft_type", "task_type", "target_modules", "r", "lora_alpha", "feedforward_modules"]) if (k in theirConfig) assert.ok(k in ourConfig, k);
      assert.equal(ourConfig.task_type, theirConfig.task_type);
    });
  }
});

describe("strict loading", () => {
  const copyFixture = (name: string) => {
    const dir = mkdtempSync(join(tmpdir(), "peftjs-strict-"));
    cpSync(join(FIXTURES, "peft", name), dir, { recursive: true });
    return dir;
  };
  const rewrite = async (dir: string, edit: (t: Map<string, Tensor>) => void) => {
    const f = await readSafetensors(join(dir, "adapter_model.safetensors"));
    const m = new Map(f.names().map((n) => [n, f.get(n)]));
    edit(m);
    await writeSafetensors(join(dir, "adapter_model.safetensors"), m);
  };

  it("a tensor the adapter does not consume is an error naming it (a lora_bias file read as plain LoRA)", async () => {
    const dir = copyFixture("gpt2-lora-bias-all-causal-lm");
    const cfg = JSON.parse(readFileSync(join(dir, "adapter_config.json"), "utf8")) as Record<string, unknown>;
    writeFileSync(join(dir, "adapter_config.json"), JSON.stringify({ ...cfg, lora_bias: false, bias: "none" }));
    const base = await loadModel(join(FIXTURES, "models", "gpt2-tiny"), { task: "causal-lm" });
    await assert.rejects(PeftModel.load(base, dir), /tensors this LORA adapter does not use: .*transformer\.h\.0\.attn\.c_attn\.base_layer\.bias/);
  });

  it("a missing tensor is an error naming it", async () => {
    const dir = copyFixture("bert-prompt-tuning-seq-cls");
    await rewrite(dir, (m) => m.delete("base_model.classifier.bias"));
    const base = await loadModel(join(FIXTURES, "models", "bert-tiny"), { task: "sequence-classification" });
    await assert.rejects(PeftModel.load(base, dir), /missing adapter weights base_model\.classifier\.bias/);
  });

  it("a head saved under the wrong prefix (base_model.model. for prompt tuning) is refused", async () => {
    const dir = copyFixture("bert-prompt-tuning-seq-cls");
    await rewrite(dir, (m) => {
      for (const k of ["weight", "bias"]) {
        m.set(`base_model.model.classifier.${k}`, m.get(`base_model.classifier.${k}`)!);
        m.delete(`base_model.classifier.${k}`);
      }
    });
    const base = await loadModel(join(FIXTURES, "models", "bert-tiny"), { task: "sequence-classification" });
    await assert.rejects(PeftModel.load(base, dir), /missing adapter weights base_model\.classifier\.weight, base_model\.classifier\.bias/);
  });

  it("a config field that changes the computation and is not implemented is an error; informational ones pass", async () => {
    const base = await loadModel(join(FIXTURES, "models", "gpt2-tiny"), { task: "causal-lm" });
    for (const [field, value] of [["use_qalora", true], ["layer_replication", [[0, 1]]], ["trainable_token_indices", [1, 2]]] as const) {
      const dir = copyFixture("gpt2-lora-causal-lm");
      const cfg = JSON.parse(readFileSync(join(dir, "adapter_config.json"), "utf8")) as Record<string, unknown>;
      writeFileSync(join(dir, "adapter_config.json"), JSON.stringify({ ...cfg, [field]: value }));
      await assert.rejects(PeftModel.load(base, dir), new RegExp(`config field "${field}" = .* changes what the adapter computes`));
    }
    const dir = copyFixture("gpt2-lora-causal-lm");
    const cfg = JSON.parse(readFileSync(join(dir, "adapter_config.json"), "utf8")) as Record<string, unknown>;
    writeFileSync(join(dir, "adapter_config.json"), JSON.stringify({ ...cfg, loftq_config: { loftq_bits: 4 }, megatron_core: "x", unknown_field: 1 }));
    await assert.rejects(PeftModel.load(base, dir), /unknown LORA config field "unknown_field"/);
  });

  it("an unknown or mistyped field is an error with a suggestion", async () => {
    const base = await loadModel(join(FIXTURES, "models", "bert-tiny"));
    // The same mistakes in a config literal are type errors (registry.ts KnownFields); configs from files are checked at run time.
    // @ts-expect-error "rank" is not a LORA config field
    assert.throws(() => PeftModel.create(base, { peft_type: "LORA", rank: 16 }), /unknown LORA config field "rank"; did you mean "r"\?/);
    // @ts-expect-error "lora_alpah" is not a LORA config field
    assert.throws(() => PeftModel.create(base, { peft_type: "LORA", lora_alpah: 16 }), /did you mean "lora_alpha"/);
    // @ts-expect-error "num_virtual_token" is not a PROMPT_TUNING config field
    assert.throws(() => PeftModel.create(base, { peft_type: "PROMPT_TUNING", num_virtual_token: 4 }), /did you mean "num_virtual_tokens"/);
    assert.throws(() => PeftModel.create(base, { peft_type: "HYBRID", lora: { rank: 4 } }), /\(lora\): unknown LORA config field "rank"; did you mean "r"/);
    const fromFile: Record<string, unknown> = { peft_type: "LORA", rank: 16 };
    assert.throws(() => PeftModel.create(base, fromFile as { peft_type: string }), /did you mean "r"/);
  });

  it("a targeted embed_tokens saves its base table as PEFT does; a file whose copy differs is refused", async () => {
    const base = await loadModel(join(FIXTURES, "models", "llama-tiny"), { task: "causal-lm" });
    const dir = mkdtempSync(join(tmpdir(), "peftjs-embed-"));
    await PeftModel.create(base, { peft_type: "LORA", target_modules: ["embed_tokens", "q_proj"] }).save(dir);
    const key = "base_model.model.model.embed_tokens.base_layer.weight";
    const f = await readSafetensors(join(dir, "adapter_model.safetensors"));
    assert.deepEqual(f.get(key).shape, [299, 32]);
    await PeftModel.load(base, dir);
    await rewrite(dir, (m) => {
      const t = m.get(key)!;
      const data = Float32Array.from(t.data as Float32Array);
      data[5]! += 1;
      m.set(key, { ...t, data });
    });
    await assert.rejects(PeftModel.load(base, dir), /"base_model\.model\.model\.embed_tokens\.base_layer\.weight" differs from the weights this adapter computes with/);
  });

  it("a float16 / bfloat16 adapter file (PEFT saves the parameters' dtype) loads as its float32 values", async () => {
    const { float32ToBfloat16Bits, float32ToFloat16Bits } = await import("../src/io/half.js");
    const base = await loadModel(join(FIXTURES, "models", "gpt2-tiny"), { task: "causal-lm" });
    const want = await PeftModel.load(base, join(FIXTURES, "peft", "gpt2-lora-causal-lm"));
    for (const [dtype, bits, tol] of [["float16", float32ToFloat16Bits, 1e-3], ["bfloat16", float32ToBfloat16Bits, 1e-2]] as const) {
      const dir = copyFixture("gpt2-lora-causal-lm");
      await rewrite(dir, (m) => {
        for (const [k, t] of m) m.set(k, { dtype, shape: t.shape, data: Uint16Array.from(t.data as Float32Array, bits) } as Tensor);
      });
      const got = (await PeftModel.load(base, dir)).adapters.get("default")!.tensors;
      for (const [k, t] of want.adapters.get("default")!.tensors) {
        const g = got.get(k)!.data as Float32Array;
        (t.data as Float32Array).forEach((v, i) => assert.ok(Math.abs(v - g[i]!) <= tol * Math.max(1, Math.abs(v)), `${dtype} ${k}[${i}]: ${g[i]} vs ${v}`));
      }
    }
  });

  it("bias=lora_only: a PEFT 0.14 file (which saved no biases) keeps the base biases; a file with only some is refused", async () => {
    const base = await loadModel(join(FIXTURES, "models", "gpt2-tiny"), { task: "causal-lm" });
    const dir = mkdtempSync(join(tmpdir(), "peftjs-loraonly-"));
    await PeftModel.create(base, { peft_type: "LORA", target_modules: ["c_attn"], bias: "lora_only" }).save(dir);
    const biasKeys = (await readSafetensors(join(dir, "adapter_model.safetensors"))).names().filter((k) => k.endsWith(".base_layer.bias"));
    assert.deepEqual(biasKeys, ["base_model.model.transformer.h.0.attn.c_attn.base_layer.bias", "base_model.model.transformer.h.1.attn.c_attn.base_layer.bias"]);
    await rewrite(dir, (m) => m.delete(biasKeys[0]!));
    await assert.rejects(PeftModel.load(base, dir), /missing adapter weights base_model\.model\.transformer\.h\.0\.attn\.c_attn\.base_layer\.bias/);
    await rewrite(dir, (m) => m.delete(biasKeys[1]!));
    const loaded = await PeftModel.load(base, dir);
    const copy = [...loaded.adapters.get("default")!.tensors].find(([k]) => k === "transformer.h.0.attn.c_attn.modules_to_save.bias")![1];
    assert.deepEqual(Array.from(copy.data as Float32Array), Array.from(base.weight("transformer.h.0.attn.c_attn.bias").data as Float32Array));
  });

  it("adapter names are validated", async () => {
    const base = await loadModel(join(FIXTURES, "models", "bert-tiny"));
    for (const bad of ["", ".", "..", "a/b", "a\\b"]) assert.throws(() => PeftModel.create(base, { peft_type: "LORA" }, bad), /invalid adapter name/, JSON.stringify(bad));
    assert.ok(PeftModel.create(base, { peft_type: "LORA" }, "my adapter.v2"));
  });

  it("lora_bias merges into the base bias (scaled, as PEFT's Linear.merge) and refuses a layer without one", async () => {
    const gpt2 = await loadModel(join(FIXTURES, "models", "gpt2-tiny"), { task: "causal-lm" });
    const peft = await PeftModel.load(gpt2, join(FIXTURES, "peft", "gpt2-lora-bias-all-causal-lm"));
    const { expected, inputs } = JSON.parse(readFileSync(join(FIXTURES, "peft", "gpt2-lora-bias-all-causal-lm", "expected.json"), "utf8")) as { inputs: Record<string, number[][]>; expected: { logits: Nested } };
    const merged = peft.mergeAndUnload();
    const step = await compile({ logits: merged.build().outputs.logits! }, { threads: 1 });
    const feeds = Object.fromEntries(step.inputNames.map((n) => [n, int64([inputs[n]!.length, inputs[n]![0]!.length], inputs[n]!.flat())]));
    const got = (await step.run(feeds)).logits!.data as Float32Array;
    await step.release();
    const want = flat(expected.logits);
    assert.ok(want.every((v, i) => Math.abs(v - got[i]!) < 1e-4), "merged lora_bias model reproduces PEFT's outputs");
    const llama = await loadModel(join(FIXTURES, "models", "llama-tiny"), { task: "causal-lm" });
    assert.throws(() => PeftModel.create(llama, { peft_type: "LORA", target_modules: ["q_proj"], lora_bias: true }).mergeAndUnload(), /cannot merge lora_bias into model\.layers\.0\.self_attn\.q_proj, which has no bias/);
  });
});

describe("bad adapters give clear errors", () => {
  it("target_modules matching nothing lists close module names", async () => {
    const base = await loadModel(join(FIXTURES, "models", "bert-tiny"));
    assert.throws(() => PeftModel.create(base, { peft_type: "LORA", target_modules: ["qeury"] }), /match no linear layer of this model; closest module names: .*query/);
  });

  it("a rank larger than the layer", async () => {
    const base = await loadModel(join(FIXTURES, "models", "bert-tiny"));
    assert.throws(() => PeftModel.create(base, { peft_type: "LORA", r: 64, target_modules: ["query"] }), /rank 64 is larger than layer (bert\.)?encoder.layer.0.attention.self.query allows \(in 32, out 32\)/);
  });

  it("virtual tokens pushing a sequence past the position table", async () => {
    const base = await loadModel(join(FIXTURES, "models", "bert-tiny"), { task: "sequence-classification" });
    const peft = PeftModel.create(base, { peft_type: "PROMPT_TUNING", num_virtual_tokens: 60 });
    const batch = base.tokenizer!.encodeBatch(["the cat sat on the mat"]);
    assert.throws(() => peft.prepareInputs(batch), /sequence of 68 tokens is longer than bert's 64 positions/);
  });

  it("an adapter saved for another base names the mismatched key", async () => {
    const other = await loadModel(join(FIXTURES, "models", "llama3-tiny"), { task: "causal-lm" });
    await assert.rejects(PeftModel.load(other, join(FIXTURES, "peft", "llama-ia3-causal-lm")), /"base_model.model.model.layers.0.self_attn.k_proj.ia3_l" has shape \[16, 1\], this base model needs \[8, 1\]/);
  });

  it("BitFit on a model without bias terms (Llama)", async () => {
    const base = await loadModel(join(FIXTURES, "models", "llama-tiny"), { task: "causal-lm" });
    assert.throws(() => PeftModel.create(base, { peft_type: "BITFIT" }), /BITFIT adapter "default": no parameter of this model is selected/);
  });

  it("an unknown peft_type lists the supported ones", async () => {
    const dir = mkdtempSync(join(tmpdir(), "peftjs-bad-"));
    cpSync(join(FIXTURES, "peft", "bert-lora-seq-cls"), dir, { recursive: true });
    writeFileSync(join(dir, "adapter_config.json"), JSON.stringify({ peft_type: "VERA", r: 4 }));
    const base = await loadModel(join(FIXTURES, "models", "bert-tiny"), { task: "sequence-classification" });
    await assert.rejects(PeftModel.load(base, dir), /adapter_config.json: unknown peft_type "VERA"; supported: LORA, ADALORA, IA3, PROMPT_TUNING/);
  });
});
