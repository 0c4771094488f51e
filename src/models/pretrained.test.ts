// Loading checkpoints: prefixes, fresh heads, half-precision shards, and every bad input.
import assert from "node:assert/strict";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { float32ToFloat16Bits } from "../io/half.js";
import { readSafetensors, writeSafetensors, writeShardedSafetensors } from "../io/safetensors.js";
import { int64, type Tensor } from "../ir/tensor.js";
import { compile } from "../runtime/session.js";
import { loadModel } from "./pretrained.js";

const FIXTURES = join(import.meta.dirname, "..", "..", "test", "fixtures", "models");
const copy = (name: string) => {
  const dir = mkdtempSync(join(tmpdir(), "peftjs-ckpt-"));
  cpSync(join(FIXTURES, name), dir, { recursive: true });
  return dir;
};
const editConfig = (dir: string, edit: (c: Record<string, unknown>) => void) => {
  const c = JSON.parse(readFileSync(join(dir, "config.json"), "utf8"));
  edit(c);
  writeFileSync(join(dir, "config.json"), JSON.stringify(c));
};

async function logits(dir: string, task: "sequence-classification" | "base" = "sequence-classification"): Promise<Float32Array> {
  const model = await loadModel(dir, { task });
  const built = model.build();
  const step = await compile({ out: task === "base" ? built.outputs.last_hidden_state : built.outputs.logits! }, { threads: 1 });
  const batch = model.tokenizer!.encodeBatch(["the cat sat on the mat", "a dog"]);
  const out = await step.run(model.prepareInputs(batch));
  await step.release();
  return out.out!.data as Float32Array;
}

describe("loading checkpoints", () => {
  it("loads half-precision sharded weights (converted to float32)", async () => {
    const dir = copy("bert-tiny");
    const f = await readSafetensors(join(dir, "model.safetensors"));
    const half: Record<string, Tensor> = {};
    for (const n of f.names()) {
      const t = f.get(n);
      half[n] = { dtype: "float16", shape: t.shape, data: Uint16Array.from(t.data as Float32Array, float32ToFloat16Bits) };
    }
    rmSync(join(dir, "model.safetensors"));
    await writeShardedSafetensors(dir, half, { maxShardBytes: 20_000 });
    const [a, b] = [await logits(join(FIXTURES, "bert-tiny")), await logits(dir)];
    for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i]! - b[i]!) < 2e-2, `logit ${i}: ${a[i]} vs ${b[i]}`);
  });

  it("a base-model checkpoint (no `bert.` prefix) loads into a task model with a fresh head", async () => {
    const dir = copy("bert-tiny");
    const f = await readSafetensors(join(dir, "model.safetensors"));
    const base: Record<string, Tensor> = {};
    for (const n of f.names()) if (n.startsWith("bert.")) base[n.slice(5)] = f.get(n);
    await writeSafetensors(join(dir, "model.safetensors"), base);
    const model = await loadModel(dir, { task: "sequence-classification" });
    const built = model.build();
    assert.deepEqual(built.newlyInitialized, ["classifier.weight", "classifier.bias"]);
    assert.ok(built.graph.params.has("bert.encoder.layer.0.attention.self.query.weight"), "task-model names");
    const same = await logits(join(FIXTURES, "bert-tiny"), "base");
    const fromBase = await logits(dir, "base");
    assert.deepEqual(Array.from(fromBase), Array.from(same));
  });

  it("names what is wrong: unknown architecture, missing files, contradicting config", async () => {
    const dir = copy("bert-tiny");
    editConfig(dir, (c) => (c.model_type = "mamba"));
    await assert.rejects(loadModel(dir), /unsupported model_type "mamba"; supported: bert, roberta, distilbert, gpt2, llama, qwen2, mistral/);
    await assert.rejects(loadModel(join(tmpdir(), "definitely-not-here-peftjs")), /not a directory and not a hub repo id|no such/);
    const empty = mkdtempSync(join(tmpdir(), "peftjs-empty-"));
    await assert.rejects(loadModel(empty), /config.json: not found/);
    const noWeights = copy("bert-tiny");
    rmSync(join(noWeights, "model.safetensors"));
    await assert.rejects(loadModel(noWeights), /no model.safetensors or model.safetensors.index.json found/);
    const wrong = copy("bert-tiny");
    editConfig(wrong, (c) => (c.intermediate_size = 80));
    const model = await loadModel(wrong);
    assert.throws(() => model.build(), /shape mismatches: .*encoder.layer.0.intermediate.dense.weight: checkpoint has \[64, 32\], config implies \[80, 32\]/);
    const badField = copy("bert-tiny");
    editConfig(badField, (c) => (c.num_attention_heads = 5));
    await assert.rejects(loadModel(badField), /hidden size 32 is not divisible by 5 attention heads/);
    await assert.rejects(loadModel(join(FIXTURES, "gpt2-tiny"), { task: "question-answering" }), /task "question-answering" is not supported for gpt2; supported: base, causal-lm, sequence-classification/);
  });

  it("rejects token ids outside the vocabulary and inputs longer than the position table", async () => {
    const model = await loadModel(join(FIXTURES, "bert-tiny"));
    assert.throws(() => model.prepareInputs({ input_ids: int64([1, 3], [2, 9999, 3]) }), /input_ids\[0\]\[1\] = 9999 is outside the vocabulary \(size 89\)/);
    assert.throws(() => model.prepareInputs({ input_ids: int64([1, 70], new Array(70).fill(5)) }), /sequence of 70 tokens is longer than bert's 64 positions/);
  });
});
