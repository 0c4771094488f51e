// Compatibility with Hugging Face PEFT's files (fixtures written from PEFT's format, see
// bench/reference/peft_fixtures.py), and the errors users get for bad adapters.
import assert from "node:assert/strict";
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { readSafetensors } from "../src/io/safetensors.js";
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
      const feeds: Record<string, Tensor> = {};
      for (const n of step.inputNames) feeds[n] = int64([inputs[n]!.length, inputs[n]![0]!.length], inputs[n]!.flat());
      const got = (await step.run(feeds)).logits!.data as Float32Array;
      const want = flat(expected.logits);
      const scale = Math.max(...want.map(Math.abs));
      const err = want.reduce((m, v, i) => Math.max(m, Math.abs(v - got[i]!)), 0) / scale;
      assert.ok(err < 1e-4, `relative error ${err}`);
      if (c.config.peft_type === "LORA") assert.ok(warnings.some((w) => /ignoring config fields peftjs does not use: .*loftq_config/.test(w)), "unknown PEFT fields are tolerated with a warning");
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
      for (const k of ["peft_type", "task_type", "target_modules", "r", "lora_alpha", "feedforward_modules"]) if (k in theirConfig) assert.ok(k in ourConfig, k);
      assert.equal(ourConfig.task_type, theirConfig.task_type);
    });
  }
});

describe("bad adapters give clear errors", () => {
  it("target_modules matching nothing lists close module names", async () => {
    const base = await loadModel(join(FIXTURES, "models", "bert-tiny"));
    assert.throws(() => PeftModel.create(base, { peft_type: "LORA", target_modules: ["qeury"] }), /match no linear layer of this model; closest module names: .*query/);
  });

  it("a rank larger than the layer", async () => {
    const base = await loadModel(join(FIXTURES, "models", "bert-tiny"));
    assert.throws(() => PeftModel.create(base, { peft_type: "LORA", r: 64, target_modules: ["query"] }), /rank 64 is larger than layer encoder.layer.0.attention.self.query allows \(in 32, out 32\)/);
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
