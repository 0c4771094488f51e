// A quantized model does not keep the float32 copies of the Linear weights it quantized
// (issue 15): the checkpoint is read a buffer per tensor, the builder releases each weight it
// quantizes from the weight source and its graph Param stands for the quantized storage.
// Results must not change: logits equal those of a model that keeps its float32 weights.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { describe, it } from "node:test";
import { type Value } from "../src/ir/graph.js";
import { seededRandom } from "../src/ir/random.js";
import { int64 } from "../src/ir/tensor.js";
import { dequantizeStorage, type WeightSource } from "../src/models/builder.js";
import { loadModel, PretrainedModel } from "../src/models/pretrained.js";
import { type Task } from "../src/models/task.js";
import { PeftModel } from "../src/peft/peft-model.js";
import { compile } from "../src/runtime/session.js";

const FIXTURES = join(import.meta.dirname, "fixtures", "models");
const CASES: { model: string; task: Task; targets: string[] }[] = [
  { model: "bert-tiny", task: "sequence-classification", targets: ["query", "value"] },
  { model: "gpt2-tiny", task: "causal-lm", targets: ["c_attn"] },
  { model: "llama-tiny", task: "causal-lm", targets: ["q_proj", "v_proj"] },
];
const KINDS = ["int8", "int4"] as const;

const ids = (rows: number, seq: number, vocab: number) => {
  const rand = seededRandom(11);
  return int64([rows, seq], Array.from({ length: rows * seq }, () => 1 + Math.floor(rand() * (vocab - 2))));
};

async function logits(model: PretrainedModel, via: { build(): { outputs: object } } = model): Promise<Float32Array> {
  const step = await compile({ y: (via.build().outputs as Record<string, Value>).logits! }, { threads: 1 });
  const out = await step.run(model.prepareInputs({ input_ids: ids(2, 5, model.config.vocabSize) }));
  await step.release();
  return out.y!.data as Float32Array;
}

/** The same checkpoint quantized the way it was before issue 15: the source keeps every float32 tensor. */
async function keepingFloats(model: string, task: Task, quantize: "int8" | "int4"): Promise<PretrainedModel> {
  const fp32 = await loadModel(join(FIXTURES, model), { task, noTokenizer: true });
  const w = fp32.weights;
  const source: WeightSource = { names: () => w.names(), has: (n) => w.has(n), get: (n) => w.get(n) }; // no release
  const m = new PretrainedModel(fp32.dir, fp32.config, source, undefined, task);
  m.quantize = quantize;
  return m;
}

/** A LoRA adapter with seeded non-zero factors. */
function lora(base: PretrainedModel, targets: string[]): PeftModel {
  const peft = PeftModel.create(base, { peft_type: "LORA", r: 2, lora_alpha: 4, target_modules: targets, init_lora_weights: false });
  const rand = seededRandom(5);
  for (const t of peft.adapters.get("default")!.tensors.values()) (t.data as Float32Array).forEach((_, i, d) => (d[i] = (rand() - 0.5) * 0.5));
  return peft;
}

describe("quantized model without float32 copies", () => {
  for (const c of CASES) {
    for (const kind of KINDS) {
      it(`${c.model} ${kind}: the float32 data of quantized linears is freed once the graph is built`, () => {
        const r = spawnSync(process.execPath, ["--expose-gc", "--import", "tsx", join(import.meta.dirname, "support", "quantize-lean-child.ts"), c.model, c.task, kind], { encoding: "utf8", timeout: 120_000 });
        assert.equal(r.status, 0, r.stderr);
        const got = JSON.parse(r.stdout.trim().split("\n").pop()!) as { quantized: number; quantizedAlive: string[]; kept: number; keptAlive: number };
        assert.ok(got.quantized > 0, "the fixture has quantized linears");
        assert.deepEqual(got.quantizedAlive, [], "float32 buffers of quantized weights still referenced");
        // The check can see a live buffer: the weights left float32 (embeddings, norms, heads) stay.
        assert.ok(got.kept > 0);
        assert.equal(got.keptAlive, got.kept);
      });

      it(`${c.model} ${kind}: logits, weight() and a LoRA merge match a model that keeps its float32 weights`, async () => {
        const lean = await loadModel(join(FIXTURES, c.model), { task: c.task, quantize: kind, noTokenizer: true });
        const kept = await keepingFloats(c.model, c.task, kind);
        assert.deepEqual(await logits(lean), await logits(kept));
        // A second build (stand-in Params, nothing re-read) computes the same.
        assert.deepEqual(await logits(lean), await logits(kept));

        // weight() of a released weight: the dequantized values, in the checkpoint's shape.
        const stored = kind === "int8" ? lean.quantizedWeights : lean.quantized4Weights;
        assert.ok(stored.size > 0);
        for (const [name, s] of stored) {
          const w = lean.weight(name);
          assert.deepEqual(w.shape, kept.weight(name).shape, name);
          assert.deepEqual(w.data, dequantizeStorage(s).data, name);
          assert.deepEqual(lean.computedWeight(name), kept.computedWeight(name), name);
        }

        // Merge into the quantized base: the same merged (re-quantized) model either way.
        const leanPeft = lora(lean, c.targets);
        const keptPeft = lora(kept, c.targets);
        assert.deepEqual(await logits(lean, leanPeft), await logits(kept, keptPeft));
        const a = await logits(leanPeft.mergeAndUnload());
        const b = await logits(keptPeft.mergeAndUnload());
        let diff = 0;
        let scale = 0;
        a.forEach((v, i) => ((diff = Math.max(diff, Math.abs(v - b[i]!))), (scale = Math.max(scale, Math.abs(b[i]!)))));
        // The lean merge re-quantizes the unmerged layers from their dequantized values, which
        // reproduces their codes (absmax scaling is idempotent) up to float rounding of the scale.
        assert.ok(diff / scale < 1e-5, `merged logits differ by ${diff} (scale ${scale})`);
      });

      it(`${c.model} ${kind}: DoRA's magnitude starts from the dequantized weight, so at init it computes the base model`, async () => {
        // PEFT's DoraLinearLayer.update_layer (peft/tuners/lora/dora.py) takes the norm of
        // dequantize_module_weight(base_layer); from the float32 weight the ratio m / ||W_q|| is off 1
        // by the quantization error and the adapter at init would not reproduce its base.
        const base = await loadModel(join(FIXTURES, c.model), { task: c.task, quantize: kind, noTokenizer: true });
        const dora = PeftModel.create(base, { peft_type: "LORA", r: 2, lora_alpha: 4, target_modules: c.targets, use_dora: true });
        const a = await logits(base, dora);
        const b = await logits(base);
        let diff = 0;
        let scale = 0;
        a.forEach((v, i) => ((diff = Math.max(diff, Math.abs(v - b[i]!))), (scale = Math.max(scale, Math.abs(b[i]!)))));
        assert.ok(diff / scale < 1e-5, `DoRA at init differs from its base by ${diff} (scale ${scale})`);
      });
    }
  }
});
