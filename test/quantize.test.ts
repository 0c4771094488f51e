// loadModel(dir, { quantize: "int8" }): frozen Linear weights in int8 on every architecture:
// outputs near float32, only the frozen linears quantized (no float32 copy of them in the graph),
// LoRA gradients through the int8 base near the float32 ones, and a merge that re-quantizes.
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { main } from "../src/cli/main.js";
import { seededRandom } from "../src/ir/random.js";
import { type Value } from "../src/ir/graph.js";
import { int64 } from "../src/ir/tensor.js";
import { loadModel, type PretrainedModel } from "../src/models/pretrained.js";
import { type Task } from "../src/models/task.js";
import { readSafetensors } from "../src/io/safetensors.js";
import { dequantizeAdapterTensors, INT8_ADAPTER_WEIGHTS, INT8_CONFIG_FLAG } from "../src/peft/int8-adapter.js";
import { PeftModel } from "../src/peft/peft-model.js";
import { lowerToOnnx } from "../src/runtime/lower.js";
import { ModelProto } from "../src/runtime/onnx-schema.js";
import { compile } from "../src/runtime/session.js";
import { TrainStep } from "../src/train/train-step.js";
import { Generator } from "../src/models/generate.js";
import { createServer } from "../src/serve/server.js";
import { makeAdapters, postJson } from "./serve-support.js";
import { RECORDS } from "./support/tiny-training.js";

const FIXTURES = join(import.meta.dirname, "fixtures", "models");
const CASES: { model: string; task: Task; output: string; targets: string[]; linears: number }[] = [
  // 2 layers x (q, k, v, attention out, intermediate, output); pooler and classifier stay float32.
  { model: "bert-tiny", task: "sequence-classification", output: "logits", targets: ["query", "value"], linears: 12 },
  // 2 layers x (c_attn, c_proj, c_fc, mlp c_proj); the tied LM head stays float32.
  { model: "gpt2-tiny", task: "causal-lm", output: "logits", targets: ["c_attn"], linears: 8 },
  // 2 layers x (q, k, v, o, gate, up, down).
  { model: "llama-tiny", task: "causal-lm", output: "logits", targets: ["q_proj", "v_proj"], linears: 14 },
];

const ids = (rows: number, seq: number, vocab: number) => {
  const rand = seededRandom(11);
  return int64([rows, seq], Array.from({ length: rows * seq }, () => 1 + Math.floor(rand() * (vocab - 2))));
};

function relError(a: Float32Array, b: Float32Array): number {
  let diff = 0;
  let scale = 0;
  a.forEach((v, i) => ((diff = Math.max(diff, Math.abs(v - b[i]!))), (scale = Math.max(scale, Math.abs(b[i]!)))));
  return diff / scale;
}

function cosine(a: Float32Array, b: Float32Array): number {
  let ab = 0;
  let aa = 0;
  let bb = 0;
  a.forEach((v, i) => ((ab += v * b[i]!), (aa += v * v), (bb += b[i]! * b[i]!)));
  return ab / Math.sqrt(aa * bb);
}

async function forward(model: PretrainedModel, output: string, via: { build(): { outputs: object } } = model): Promise<Float32Array> {
  const step = await compile({ y: (via.build().outputs as Record<string, Value>)[output]! }, { threads: 1 });
  const out = await step.run(model.prepareInputs({ input_ids: ids(2, 5, model.config.vocabSize) }));
  await step.release();
  return out.y!.data as Float32Array;
}

async function loraGrads(model: PretrainedModel, targets: string[]) {
  const peft = PeftModel.create(model, { peft_type: "LORA", r: 2, lora_alpha: 4, target_modules: targets, init_lora_weights: false });
  const rand = seededRandom(5);
  for (const t of peft.adapters.get("default")!.tensors.values()) (t.data as Float32Array).forEach((_, i, d) => (d[i] = (rand() - 0.5) * 0.5));
  const input = ids(2, 5, model.config.vocabSize);
  const labels = model.task === "causal-lm" ? input : int64([2], [0, 1]);
  const step = await TrainStep.create(peft.build({ withLoss: true }).outputs.loss!, { session: { threads: 1 } });
  const r = await step.run(peft.prepareInputs({ input_ids: input }, { labels }));
  await step.release();
  return r;
}

describe("int8 frozen base", () => {
  for (const c of CASES) {
    it(`${c.model}: outputs within 6% of float32; ${c.linears} linears in int8, none of them kept in float32`, async () => {
      const fp32 = await loadModel(join(FIXTURES, c.model), { task: c.task });
      const int8 = await loadModel(join(FIXTURES, c.model), { task: c.task, quantize: "int8" });
      const err = relError(await forward(int8, c.output), await forward(fp32, c.output));
      // Tiny random checkpoints (hidden 32-64) are the worst case for per-tensor activation scales.
      assert.ok(err < 0.06, `relative error ${err}`);
      assert.ok(err > 0, "the int8 graph really differs from float32");

      const lowered = lowerToOnnx({ y: (int8.build().outputs as unknown as Record<string, Value>)[c.output]! });
      assert.equal(lowered.opCounts.MatMulInteger, c.linears, JSON.stringify(lowered.opCounts));
      const { graph } = ModelProto.decode(lowered.bytes) as unknown as { graph: { initializer: { name: string; dataType: number }[] } };
      const names = graph.initializer.map((t) => t.name);
      const quantized = [...int8.quantizedWeights.keys()];
      assert.equal(quantized.length, c.linears);
      for (const w of quantized) {
        assert.ok(!names.includes(w), `float32 ${w} is not an initializer`);
        assert.ok(names.includes(`${w}.int8`), `${w}.int8 is`);
      }
      const dtypes = graph.initializer.filter((t) => t.name.endsWith(".int8")).map((t) => t.dataType);
      assert.ok(dtypes.every((d) => d === 2), "stored as uint8 with zero point 128");
    });

    it(`${c.model}: LoRA loss and gradients through the int8 base match float32 (cosine > 0.98)`, async () => {
      const fp32 = await loraGrads(await loadModel(join(FIXTURES, c.model), { task: c.task }), c.targets);
      const int8 = await loraGrads(await loadModel(join(FIXTURES, c.model), { task: c.task, quantize: "int8" }), c.targets);
      assert.ok(Math.abs(int8.loss - fp32.loss) / fp32.loss < 0.02, `loss ${int8.loss} vs ${fp32.loss}`);
      for (const [k, g] of fp32.grads) {
        const cos = cosine(int8.grads.get(k)!.data as Float32Array, g.data as Float32Array);
        assert.ok(cos > 0.98, `${k}: cosine ${cos}`);
      }
    });
  }

  it("merging LoRA into an int8 base re-quantizes the merged weights and says so", async () => {
    const base = await loadModel(join(FIXTURES, "bert-tiny"), { task: "sequence-classification", quantize: "int8" });
    const peft = PeftModel.create(base, { peft_type: "LORA", r: 2, lora_alpha: 4, target_modules: ["query", "value"], init_lora_weights: false });
    const unmerged = await forward(base, "logits", peft);
    const warnings: string[] = [];
    peft.warn = (m) => warnings.push(m);
    const merged = peft.mergeAndUnload();
    assert.equal(merged.quantize, "int8");
    assert.match(warnings.join("\n"), /re-quantized to int8/);
    const out = await forward(merged, "logits");
    assert.ok(relError(out, unmerged) < 0.06, `merged vs unmerged ${relError(out, unmerged)}`);
    assert.equal(merged.quantizedWeights.size, 12, "the merged model's linears are int8 again");
  });
});

describe("--quantize int8 on the command line", () => {
  it("train, eval, predict and generate run on an int8 base; generate on a 4-bit one; train refuses int4", async () => {
    const dir = mkdtempSync(join(tmpdir(), "peftjs-quant-"));
    const data = join(dir, "train.jsonl");
    writeFileSync(data, RECORDS.map((r) => JSON.stringify(r)).join("\n"));
    const output = join(dir, "out");
    const bert = join(FIXTURES, "bert-tiny");
    const train = await run(["train", "--model", bert, "--data", data, "--output", output, "--quantize", "int8", "--max-steps", "3", "--batch-size", "4", "--threads", "1", "--target-modules", "query,value"]);
    assert.equal(train.code, 0, train.out);
    const adapter = join(output, "adapter");
    const evaluation = await run(["eval", "--model", bert, "--data", data, "--adapter", adapter, "--quantize", "int8"]);
    assert.equal(evaluation.code, 0, evaluation.out);
    assert.match(evaluation.out, /"accuracy"/);
    const predict = await run(["predict", "--model", bert, "--adapter", adapter, "--text", "the cat sat", "--quantize", "int8"]);
    assert.equal(predict.code, 0, predict.out);
    assert.match(predict.out, /"label":"(animal|other)"/);
    const generate = await run(["generate", "--model", join(FIXTURES, "gpt2-tiny"), "--prompt", "ab", "--max-new-tokens", "3", "--quantize", "int8"]);
    assert.equal(generate.code, 0, generate.out);
    let err = "";
    const code = await main(["train", "--model", bert, "--data", data, "--quantize", "int4"], { out: () => undefined, write: () => undefined, err: (s) => (err += s) });
    assert.equal(code, 1);
    assert.match(err, /--quantize: expected one of int8, got "int4"/, "4-bit is for inference only");
    const int4 = await run(["generate", "--model", join(FIXTURES, "gpt2-tiny"), "--prompt", "ab", "--max-new-tokens", "3", "--quantize", "int4"]);
    assert.equal(int4.code, 0, int4.out);
  });
});

describe("peftjs serve --quantize", () => {
  for (const quantize of ["int8", "int4"] as const) {
    it(`serves a LoRA adapter unmerged over a ${quantize} base: greedy completions equal Generator's over the same base`, async () => {
      const gpt2 = join(FIXTURES, "gpt2-tiny");
      const root = await makeAdapters(gpt2, "causal-lm", [{ name: "g1", config: { peft_type: "LORA", r: 4, lora_alpha: 8, target_modules: ["c_attn"] }, seed: 3 }]);
      const base = await loadModel(gpt2, { task: "causal-lm", quantize });
      const gen = await Generator.create(await PeftModel.load(base, join(root, "g1")), { session: { threads: 1 } });
      const [expected] = (await gen.generate(["the"], { maxNewTokens: 6 })).texts;
      await gen.release();
      if (quantize === "int4") {
        // Here the 4-bit base's greedy text differs from float32's, so equality shows the option reaches the model.
        const fp32 = await Generator.create(await PeftModel.load(await loadModel(gpt2, { task: "causal-lm" }), join(root, "g1")), { session: { threads: 1 } });
        assert.notEqual((await fp32.generate(["the"], { maxNewTokens: 6 })).texts[0], expected);
        await fp32.release();
      }
      const server = await createServer({ model: gpt2, adapters: root, quantize, port: 0, logLevel: "silent", threads: 1 });
      try {
        const url = await server.listen();
        const r = await postJson(`${url}/v1/completions`, { model: "g1", prompt: "the", max_tokens: 6, temperature: 0 });
        assert.equal(r.status, 200, JSON.stringify(r.body));
        assert.equal(r.body.choices[0].text, expected);
      } finally {
        await server.close();
      }
    });
  }
});

async function run(argv: string[]): Promise<{ code: number; out: string }> {
  let out = "";
  const code = await main(argv, { out: (s) => (out += `${s}\n`), write: (s) => (out += s), err: (s) => (out += `${s}\n`) });
  return { code, out };
}

describe("INT8 adapter files", () => {
  it("quantize-adapter writes int8 weights with per-row scales and a config flag; loading dequantizes them", async () => {
    const dir = mkdtempSync(join(tmpdir(), "peftjs-int8-adapter-"));
    const base = await loadModel(join(FIXTURES, "bert-tiny"), { task: "sequence-classification" });
    const peft = PeftModel.create(base, { peft_type: "LORA", r: 4, lora_alpha: 8, target_modules: ["query", "value"], init_lora_weights: false });
    await peft.save(join(dir, "fp32"));
    const q = await run(["quantize-adapter", "--adapter", join(dir, "fp32"), "--output", join(dir, "int8")]);
    assert.equal(q.code, 0, q.out);
    assert.match(q.out, /9 of 10 tensors in int8.*Python PEFT cannot/, "8 LoRA matrices and the classifier weight; its bias stays float32");
    const config = JSON.parse(readFileSync(join(dir, "int8", "adapter_config.json"), "utf8")) as Record<string, unknown>;
    assert.equal(config[INT8_CONFIG_FLAG], "int8");
    assert.ok(!existsSync(join(dir, "int8", "adapter_model.safetensors")), "no file PEFT would load as float weights");
    const file = await readSafetensors(join(dir, "int8", INT8_ADAPTER_WEIGHTS));
    const key = "base_model.model.bert.encoder.layer.0.attention.self.query.lora_A.weight";
    assert.equal(file.get(key).dtype, "int8");
    assert.deepEqual(file.get(`${key}.scale`).shape, [4], "lora_A [r, in]: a scale per rank row");
    assert.deepEqual(file.get(`${key.replace("lora_A", "lora_B")}.scale`).shape, [4], "lora_B [out, r]: a scale per rank column, not per output row");
    const tensorBytes = async (d: string, f: string) => {
      const st = await readSafetensors(join(dir, d, f));
      return st.names().reduce((a, n) => a + st.get(n).data.byteLength, 0);
    };
    // 0.25x for the int8 values plus r scales per matrix (and the head's bias, kept in float32).
    const ratio = (await tensorBytes("int8", INT8_ADAPTER_WEIGHTS)) / (await tensorBytes("fp32", "adapter_model.safetensors"));
    assert.ok(ratio < 0.3, `size ratio ${ratio}`);

    const fromFloat = await forward(base, "logits", await PeftModel.load(base, join(dir, "fp32")));
    const fromInt8 = await forward(base, "logits", await PeftModel.load(base, join(dir, "int8")));
    const err = relError(fromInt8, fromFloat);
    assert.ok(err > 0 && err < 0.01, `int8 adapter vs float32: ${err}`);
    // Saving a loaded INT8 adapter writes an ordinary float32 PEFT folder again.
    await (await PeftModel.load(base, join(dir, "int8"))).save(join(dir, "again"));
    assert.ok(!("peftjs_weights" in JSON.parse(readFileSync(join(dir, "again", "adapter_config.json"), "utf8"))));
  });

  it("an int8 tensor without its scales is an error naming the file and the key", () => {
    const t = { dtype: "int8" as const, shape: [2, 2], data: Int8Array.of(1, 2, 3, 4) };
    assert.throws(() => dequantizeAdapterTensors(new Map([["w", t]]), "x/adapter_model.int8.safetensors"), /x\/adapter_model\.int8\.safetensors: int8 tensor "w" \[2, 2\] needs a float32 "w\.scale" of 2 scales, found none/);
  });
});

describe("4-bit frozen base (inference)", () => {
  for (const c of CASES) {
    it(`${c.model}: MatMulNBits blockwise 4-bit linears, outputs near float32`, async () => {
      const fp32 = await loadModel(join(FIXTURES, c.model), { task: c.task });
      const int4 = await loadModel(join(FIXTURES, c.model), { task: c.task, quantize: "int4" });
      const err = relError(await forward(int4, c.output), await forward(fp32, c.output));
      // 4 bits per weight (15 levels per block of 32) on tiny random checkpoints (hidden 32-64)
      // is coarse; decoder-mini's perplexity is the real measure (bench quant-accuracy).
      assert.ok(err > 0 && err < 0.5, `relative error ${err}`);
      const lowered = lowerToOnnx({ y: (int4.build().outputs as unknown as Record<string, Value>)[c.output]! });
      assert.equal(lowered.opCounts.MatMulNBits, c.linears);
      assert.equal(int4.quantized4Weights.size, c.linears);
    });
  }

  it("training through a 4-bit base is refused, naming the op", async () => {
    const int4 = await loadModel(join(FIXTURES, "bert-tiny"), { task: "sequence-classification", quantize: "int4" });
    const peft = PeftModel.create(int4, { peft_type: "LORA", r: 2, lora_alpha: 4, target_modules: ["query"] });
    await assert.rejects(TrainStep.create(peft.build({ withLoss: true }).outputs.loss!), /no gradient rule registered for op MatMulNBits/);
  });
});
