// `peftjs export`: fine-tuned models that transformers.js (@huggingface/transformers, offline,
// local files, absolute paths) loads as they are and runs like peftjs: labels and probabilities
// of `peftjs predict`, tags, answer logits, and the greedy tokens of `peftjs generate` from one
// cache-aware decoder graph; int8; a moved export; the refusals.
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, renameSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { AutoModelForCausalLM, AutoModelForQuestionAnswering, AutoModelForTokenClassification, AutoTokenizer, env, pipeline } from "@huggingface/transformers";
import { main } from "../src/cli/main.js";
import { exportForTransformersJs } from "../src/export/transformers-js.js";
import { Generator } from "../src/models/generate.js";
import { loadModel, type PretrainedModel } from "../src/models/pretrained.js";
import { type Task } from "../src/models/task.js";
import { ModelProto } from "../src/runtime/onnx-schema.js";
import { PeftModel } from "../src/peft/peft-model.js";
import { maxAbsDiff, randomF32 } from "./helpers.js";

env.allowRemoteModels = false;
const FIXTURES = join(import.meta.dirname, "fixtures", "models");
const MODELS: Record<string, string> = { "encoder-mini": join(import.meta.dirname, "..", "models", "encoder-mini") };
const modelDir = (name: string) => MODELS[name] ?? join(FIXTURES, name);
const dir = mkdtempSync(join(tmpdir(), "peftjs-export-"));
const local = { local_files_only: true } as const;

async function run(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const code = await main(argv, { out: (s) => (out += `${s}\n`), write: (s) => (out += s), err: (s) => (err += `${s}\n`) });
  return { code, out, err };
}

/** A LoRA adapter with non-zero B (so the merge changes the model), saved with its head and labels. */
async function loraAdapter(name: string, task: Task, taskType: string, targets: string[], labels?: string[]): Promise<string> {
  const base = await loadModel(modelDir(name), { task });
  if (labels) (base.config as { numLabels: number }).numLabels = labels.length;
  const peft = PeftModel.create(base, { peft_type: "LORA", task_type: taskType, r: 4, lora_alpha: 8, target_modules: targets });
  let seed = 100;
  for (const [key, t] of peft.adapters.get("default")!.tensors) if (key.includes("lora_B")) (t.data as Float32Array).set(randomF32(t.shape, seed++, -0.3, 0.3).data);
  if (labels) peft.labels.set("default", labels);
  const out = join(dir, `${name}-${task}-adapter`);
  await peft.save(out);
  return out;
}

/** The model with the saved adapter, as `peftjs predict` loads it. */
async function peftFor(name: string, task: Task, adapter: string, labels?: number): Promise<{ base: PretrainedModel; peft: PeftModel }> {
  const base = await loadModel(modelDir(name), { task });
  if (labels) (base.config as { numLabels: number }).numLabels = labels;
  return { base, peft: await PeftModel.load(base, adapter) };
}

function softmax(row: ArrayLike<number>): number[] {
  const m = Math.max(...Array.from(row));
  const e = Array.from(row, (x) => Math.exp(x - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / s);
}

const TEXTS = [
  "the cat sat on the mat", "a dog", "money money money now", "the whale saw the ship", "win a free prize now", "call me Ishmael",
  "the president spoke of the union", "Congress shall make no law", "click here for cash", "the sea was calm that night", "a b c", "taxes and tariffs",
];

after(async () => {
  const { rm } = await import("node:fs/promises");
  await rm(dir, { recursive: true, force: true });
});

describe("export for transformers.js: encoders", () => {
  // int8 everywhere; with full-range int8 weights (ORT's u8 x s8 kernels saturate) the fixtures'
  // probabilities were up to 0.07 off, with uint8 storage (zero point 128) at most 0.016.
  for (const [name, int8] of [["encoder-mini", true], ["roberta-tiny", true], ["bert-tiny", true]] as const) {
    it(`${name} + LoRA, text-classification: labels of peftjs predict, probabilities within 1e-5${int8 ? "; int8 close" : ""}; moved folder loads`, async () => {
      const labels = ["neg", "neu", "pos"];
      // The fixtures' tokenizers know more words than their 89-300-token embeddings: the first texts fit.
      const texts = name === "encoder-mini" ? TEXTS : TEXTS.slice(0, 4);
      const adapter = await loraAdapter(name, "sequence-classification", "SEQ_CLS", ["query", "value"], labels);
      const out = join(dir, `${name}-cls`);
      const res = await run(["export", "--model", modelDir(name), "--adapter", adapter, "--output", out, ...(int8 ? ["--quantize", "int8"] : [])]);
      assert.equal(res.code, 0, res.err);
      assert.match(res.out, /exported \w+ForSequenceClassification \(adapter merged\)/);
      const config = JSON.parse(readFileSync(join(out, "config.json"), "utf8")) as Record<string, unknown>;
      assert.deepEqual(config.id2label, { 0: "neg", 1: "neu", 2: "pos" });
      assert.deepEqual(config["transformers.js_config"], { dtype: int8 ? "q8" : "fp32" });
      for (const f of ["tokenizer.json", "tokenizer_config.json", "onnx/model.onnx", ...(int8 ? ["onnx/model_quantized.onnx"] : [])]) assert.ok(existsSync(join(out, f)), f);

      // What peftjs predict prints (probabilities rounded to 4 places) and computes (unrounded).
      const predicted = await run(["predict", "--model", modelDir(name), "--adapter", adapter, "--text", ...texts]);
      assert.equal(predicted.code, 0, predicted.err);
      const cli = predicted.out.trim().split("\n").map((l) => JSON.parse(l) as { label: string; probabilities: number[] });
      const { base, peft } = await peftFor(name, "sequence-classification", adapter, 3);
      const logits = (await peft.forward(base.tokenizer!.encodeBatch(texts))).logits!.data as Float32Array;
      const ours = texts.map((_, i) => softmax(logits.subarray(i * 3, i * 3 + 3)));

      const check = async (folder: string, dtype: "fp32" | "q8") => {
        const clf = await pipeline("text-classification", folder, { ...local, dtype });
        const got = (await clf(texts, { top_k: null })) as unknown as { label: string; score: number }[][];
        await clf.dispose();
        let agree = 0;
        let worst = 0;
        got.forEach((row, i) => {
          if (row[0]!.label === cli[i]!.label) agree++;
          for (const { label, score } of row) worst = Math.max(worst, Math.abs(score - ours[i]![labels.indexOf(label)]!));
        });
        return { agree: agree / texts.length, worst };
      };
      const fp32 = await check(out, "fp32");
      assert.equal(fp32.agree, 1, "labels equal peftjs predict");
      assert.ok(fp32.worst < 1e-5, `probabilities within 1e-5 of peftjs (max difference ${fp32.worst})`);
      cli.forEach((c, i) => c.probabilities.forEach((p, j) => assert.ok(Math.abs(p - ours[i]![j]!) < 1e-4)));
      if (int8) {
        const q8 = await check(out, "q8");
        assert.ok(q8.agree >= 0.95, `int8: ${q8.agree * 100}% of labels agree`);
        assert.ok(q8.worst < 0.05, `int8: probabilities within 0.05 (max difference ${q8.worst})`);
        // Every linear layer (a Gemm with a weight) became dynamic quantization + an integer GEMM.
        const ops = (file: string) => (ModelProto.decode(readFileSync(join(out, "onnx", file))) as unknown as { graph: { node: { opType: string }[] } }).graph.node.map((n) => n.opType);
        const [fp, q] = [ops("model.onnx"), ops("model_quantized.onnx")];
        const count = (list: string[], op: string) => list.filter((o) => o === op).length;
        assert.equal(count(fp, "Gemm"), base.modules().linear.length);
        assert.deepEqual([count(q, "Gemm"), count(q, "MatMulInteger"), count(q, "DynamicQuantizeLinear")], [0, count(fp, "Gemm"), count(fp, "Gemm")]);
      }

      // Self-contained: the folder works from anywhere.
      const moved = join(dir, `${name}-cls-moved`);
      renameSync(out, moved);
      assert.equal((await check(moved, "fp32")).worst < 1e-5, true);
      await peft.releaseSessions();
    });
  }

  it("adapters that stay in the graph (Houlsby bottleneck, prefix tuning) on roberta-tiny: probabilities within 1e-5", async () => {
    const configs = {
      houlsby: { peft_type: "BOTTLENECK", task_type: "SEQ_CLS", variant: "double_seq_bn", reduction_factor: 8 },
      prefix: { peft_type: "PREFIX_TUNING", task_type: "SEQ_CLS", num_virtual_tokens: 3 },
    } as const;
    const texts = TEXTS.slice(0, 4);
    for (const [method, config] of Object.entries(configs)) {
      const base = await loadModel(modelDir("roberta-tiny"), { task: "sequence-classification" });
      const peft = PeftModel.create(base, config);
      let seed = 200;
      for (const t of peft.adapters.get("default")!.tensors.values()) (t.data as Float32Array).set(randomF32(t.shape, seed++, -0.3, 0.3).data);
      const adapter = join(dir, `roberta-${method}-adapter`);
      await peft.save(adapter);
      const out = join(dir, `roberta-${method}`);
      const res = await run(["export", "--model", modelDir("roberta-tiny"), "--adapter", adapter, "--output", out]);
      assert.equal(res.code, 0, res.err);
      assert.match(res.out, /adapter in-graph/);
      const logits = (await peft.forward(base.tokenizer!.encodeBatch(texts))).logits!.data as Float32Array;
      const clf = await pipeline("text-classification", out, { ...local, dtype: "fp32" });
      const got = (await clf(texts, { top_k: null })) as unknown as { label: string; score: number }[][];
      const names = ["neg", "neu", "pos"];
      got.forEach((row, i) => {
        const want = softmax(logits.subarray(i * 3, i * 3 + 3));
        for (const { label, score } of row) assert.ok(Math.abs(score - want[names.indexOf(label)]!) < 1e-5, `${method}: text ${i} ${label}: ${score} vs ${want[names.indexOf(label)]}`);
      });
      await Promise.all([clf.dispose(), peft.releaseSessions()]);
    }
  });

  it("prompt tuning and P-tuning (virtual tokens put in front inside the graph): probabilities, tags and answer logits of peftjs within 1e-5", async () => {
    const configs = [
      { model: "bert-tiny", task: "sequence-classification", config: { peft_type: "PROMPT_TUNING", task_type: "SEQ_CLS", num_virtual_tokens: 4 } },
      { model: "roberta-tiny", task: "sequence-classification", config: { peft_type: "P_TUNING", task_type: "SEQ_CLS", num_virtual_tokens: 3, encoder_hidden_size: 16 } },
      { model: "roberta-tiny", task: "token-classification", config: { peft_type: "PROMPT_TUNING", task_type: "TOKEN_CLS", num_virtual_tokens: 5 } },
      { model: "bert-tiny", task: "question-answering", config: { peft_type: "P_TUNING", task_type: "QUESTION_ANS", num_virtual_tokens: 2, encoder_hidden_size: 16 } },
    ] as const;
    const texts = TEXTS.slice(0, 4);
    for (const c of configs) {
      const what = `${c.config.peft_type} ${c.model} ${c.task}`;
      const base = await loadModel(modelDir(c.model), { task: c.task });
      const peft = PeftModel.create(base, c.config);
      let seed = 600;
      for (const t of peft.adapters.get("default")!.tensors.values()) (t.data as Float32Array).set(randomF32(t.shape, seed++, -0.5, 0.5).data);
      const adapter = join(dir, `${c.model}-${c.task}-${c.config.peft_type}`);
      await peft.save(adapter);
      const out = `${adapter}-web`;
      const res = await run(["export", "--model", modelDir(c.model), "--adapter", adapter, "--output", out, "--quantize", "int8"]);
      assert.equal(res.code, 0, res.err);
      assert.match(res.out, /adapter in-graph/);
      // As peftjs predict runs it: the saved adapter loaded, placeholders in front of the tokens.
      const loaded = await PeftModel.load(await loadModel(modelDir(c.model), { task: c.task }), adapter);
      const n = loaded.virtualTokens;
      const tok = await AutoTokenizer.from_pretrained(out, local);
      if (c.task === "sequence-classification") {
        const logits = (await loaded.forward(base.tokenizer!.encodeBatch(texts))).logits!.data as Float32Array;
        const C = logits.length / texts.length;
        const names = loaded.labelNames() ?? Object.values(base.config.raw.id2label as Record<string, string>);
        const clf = await pipeline("text-classification", out, { ...local, dtype: "fp32" });
        const got = (await clf(texts, { top_k: null })) as unknown as { label: string; score: number }[][];
        got.forEach((row, i) => {
          const want = softmax(logits.subarray(i * C, (i + 1) * C));
          for (const { label, score } of row) assert.ok(Math.abs(score - want[names.indexOf(label)]!) < 1e-5, `${what}: text ${i} ${label}: ${score} vs ${want[names.indexOf(label)]}`);
        });
        const q8 = await pipeline("text-classification", out, { ...local, dtype: "q8" });
        assert.equal(((await q8(texts, { top_k: null })) as unknown as unknown[][]).length, texts.length, `${what}: int8 runs`);
        await Promise.all([clf.dispose(), q8.dispose()]);
      } else {
        const [question, context] = ["who sat on the mat", "the cat sat on the mat and the dog ran"];
        const ours = await loaded.forward(c.task === "question-answering" ? base.tokenizer!.encodeBatch([question], { pairs: [context] }) : base.tokenizer!.encodeBatch([texts[0]!]));
        const model = c.task === "question-answering" ? await AutoModelForQuestionAnswering.from_pretrained(out, { ...local, dtype: "fp32" }) : await AutoModelForTokenClassification.from_pretrained(out, { ...local, dtype: "fp32" });
        const theirs = await model(c.task === "question-answering" ? tok(question, { text_pair: context }) : tok([texts[0]!]));
        for (const k of c.task === "question-answering" ? (["start_logits", "end_logits"] as const) : (["logits"] as const)) {
          const t = ours[k]!;
          const per = t.shape.length === 3 ? (t.shape[2] as number) : 1;
          const a = (t.data as Float32Array).subarray(n * per); // one row: the real tokens after the n virtual ones
          const b = theirs[k].data as Float32Array;
          assert.deepEqual(theirs[k].dims[1], (t.shape[1] as number) - n, `${what} ${k}: the text's tokens only`);
          assert.ok(maxAbsDiff(a, b) < 1e-5, `${what} ${k} within 1e-5 (max difference ${maxAbsDiff(a, b)})`);
        }
        await model.dispose();
      }
      await Promise.all([peft.releaseSessions(), loaded.releaseSessions()]);
    }
  });

  it("token-classification (bert-tiny + LoRA): the tag of every token and the logits of peftjs", async () => {
    const labels = ["O", "B-ANIMAL", "I-ANIMAL"];
    const adapter = await loraAdapter("bert-tiny", "token-classification", "TOKEN_CLS", ["query", "value"], labels);
    const out = join(dir, "bert-tok");
    assert.equal((await run(["export", "--model", join(FIXTURES, "bert-tiny"), "--adapter", adapter, "--output", out])).code, 0);
    const { base, peft } = await peftFor("bert-tiny", "token-classification", adapter, 3);
    const text = "the cat sat on the mat";
    const enc = base.tokenizer!.encodeBatch([text]);
    const ours = (await peft.forward(enc)).logits!.data as Float32Array;
    const tok = await AutoTokenizer.from_pretrained(out, local);
    const model = await AutoModelForTokenClassification.from_pretrained(out, { ...local, dtype: "fp32" });
    const theirs = (await model(tok([text]))).logits.data as Float32Array;
    assert.ok(maxAbsDiff(ours, theirs) < 1e-5, `logits within 1e-5 (max difference ${maxAbsDiff(ours, theirs)})`);
    const tagger = await pipeline("token-classification", out, { ...local, dtype: "fp32" });
    const tags = (await tagger(text, { ignore_labels: [] })) as unknown as { entity: string; index: number }[];
    assert.ok(tags.length > 0);
    for (const t of tags) {
      const row = Array.from(ours.subarray(t.index * 3, t.index * 3 + 3));
      assert.equal(t.entity, labels[row.indexOf(Math.max(...row))], `token ${t.index}`);
    }
    await Promise.all([model.dispose(), tagger.dispose()]);
  });

  it("question-answering (roberta-tiny + LoRA): start/end logits of peftjs, the spans of peftjs predict", async () => {
    const adapter = await loraAdapter("roberta-tiny", "question-answering", "QUESTION_ANS", ["query", "value"]);
    const out = join(dir, "roberta-qa");
    assert.equal((await run(["export", "--model", join(FIXTURES, "roberta-tiny"), "--adapter", adapter, "--output", out])).code, 0);
    const [question, context] = ["who sat on the mat", "the cat sat on the mat and the dog ran"];
    const { base, peft } = await peftFor("roberta-tiny", "question-answering", adapter);
    const ours = await peft.forward(base.tokenizer!.encodeBatch([question], { pairs: [context] }));
    const tok = await AutoTokenizer.from_pretrained(out, local);
    const model = await AutoModelForQuestionAnswering.from_pretrained(out, { ...local, dtype: "fp32" });
    const enc = tok(question, { text_pair: context });
    const theirs = await model(enc);
    for (const k of ["start_logits", "end_logits"] as const) {
      const [a, b] = [ours[k]!.data as Float32Array, theirs[k].data as Float32Array];
      assert.equal(a.length, b.length, `${k}: same tokens`);
      assert.ok(maxAbsDiff(a, b) < 1e-5, `${k} within 1e-5 (max difference ${maxAbsDiff(a, b)})`);
    }
    // The span (its score is normalized differently: transformers.js over the context only).
    const qa = await pipeline("question-answering", out, { ...local, dtype: "fp32" });
    const cases = [[question, context], ["what ran", "the dog ran away from the cat"], ["where", "the whale saw the ship on the sea"]] as const;
    for (const [q, c] of cases) {
      const predicted = await run(["predict", "--model", modelDir("roberta-tiny"), "--adapter", adapter, "--question", q, "--context", c]);
      assert.equal(predicted.code, 0, predicted.err);
      const answer = (JSON.parse(predicted.out) as { answer: string }).answer;
      assert.equal(((await qa(q, c)) as unknown as { answer: string }).answer.trim(), answer, `"${q}"`);
    }
    await Promise.all([model.dispose(), qa.dispose()]);
  });
});

describe("export for transformers.js: decoders (one graph with past_key_values / present)", () => {
  const cases = [
    { name: "gpt2-tiny", targets: ["c_attn", "c_proj"] },
    { name: "llama-tiny", targets: ["q_proj", "k_proj", "v_proj", "o_proj"] }, // grouped-query: 4 heads, 2 kv heads
  ];
  for (const c of cases) {
    it(`${c.name} + LoRA, text-generation: greedy tokens of peftjs generate (single prompt and a left-padded batch); int8 runs`, async () => {
      const adapter = await loraAdapter(c.name, "causal-lm", "CAUSAL_LM", c.targets);
      const out = join(dir, `${c.name}-lm`);
      const res = await run(["export", "--model", join(FIXTURES, c.name), "--adapter", adapter, "--output", out, "--quantize", "int8"]);
      assert.equal(res.code, 0, res.err);
      assert.ok(existsSync(join(out, "generation_config.json")));
      // As `peftjs generate` runs it: the LoRA merged, prefill + decode graphs.
      const { peft } = await peftFor(c.name, "causal-lm", adapter);
      const gen = await Generator.create(peft.mergeAndUnload());
      const prompts = ["the cat sat on", "a dog"];
      const tok = await AutoTokenizer.from_pretrained(out, local);
      const lm = await AutoModelForCausalLM.from_pretrained(out, { ...local, dtype: "fp32" });
      const newTokens = async (m: typeof lm, texts: string[]) => {
        const enc = tok(texts, { padding: true });
        const ids = (await m.generate({ ...enc, max_new_tokens: 12, do_sample: false, min_new_tokens: 12 })) as unknown as { data: BigInt64Array; dims: number[] };
        const [rows, width] = ids.dims as [number, number];
        const start = (enc.input_ids as { dims: number[] }).dims[1]!;
        return Array.from({ length: rows }, (_, r) => Array.from(ids.data.subarray(r * width + start, (r + 1) * width), Number));
      };
      for (const p of prompts) {
        const ours = (await gen.generate([p], { maxNewTokens: 12, stopTokens: [] })).tokens[0]!;
        assert.deepEqual((await newTokens(lm, [p]))[0], ours, `prompt "${p}"`);
      }
      // A left-padded batch: each row as peftjs generates it in the same batch.
      tok.padding_side = "left";
      tok.pad_token_id ??= tok.eos_token_id;
      const batch = await gen.generate(prompts, { maxNewTokens: 12, stopTokens: [] });
      assert.deepEqual(await newTokens(lm, prompts), batch.tokens, "left-padded batch");
      const q8 = await AutoModelForCausalLM.from_pretrained(out, { ...local, dtype: "q8" });
      assert.equal((await newTokens(q8, [prompts[0]!]))[0]!.length, 12, "int8 generates");
      await Promise.all([lm.dispose(), q8.dispose(), gen.release()]);
    });
  }
});

describe("export for transformers.js: adapters that stay in a decoder's graph", () => {
  const configs = {
    houlsby: { peft_type: "BOTTLENECK", task_type: "CAUSAL_LM", variant: "double_seq_bn", reduction_factor: 8 },
    prefix: { peft_type: "PREFIX_TUNING", task_type: "CAUSAL_LM", num_virtual_tokens: 3 },
  } as const;
  for (const name of ["gpt2-tiny", "llama-tiny"]) {
    it(`${name}: Houlsby and prefix tuning generate the greedy tokens of peftjs generate (prefix positions first)`, async () => {
      for (const [method, config] of Object.entries(configs)) {
        const base = await loadModel(modelDir(name), { task: "causal-lm" });
        const peft = PeftModel.create(base, config);
        let seed = 300;
        for (const t of peft.adapters.get("default")!.tensors.values()) (t.data as Float32Array).set(randomF32(t.shape, seed++, -0.5, 0.5).data);
        const out = join(dir, `${name}-${method}-lm`);
        assert.equal((await exportForTransformersJs(peft, out)).adapter, "in-graph");
        const gen = await Generator.create(peft); // unmerged, as `peftjs generate` runs these methods
        const tok = await AutoTokenizer.from_pretrained(out, local);
        const lm = await AutoModelForCausalLM.from_pretrained(out, { ...local, dtype: "fp32" });
        const prompt = "the cat sat on";
        const enc = tok(prompt);
        const ids = (await lm.generate({ ...enc, max_new_tokens: 10, min_new_tokens: 10, do_sample: false })) as unknown as { data: BigInt64Array };
        const theirs = Array.from(ids.data.subarray((enc.input_ids as { dims: number[] }).dims[1]!), Number);
        assert.deepEqual(theirs, (await gen.generate([prompt], { maxNewTokens: 10, stopTokens: [] })).tokens[0], `${name} ${method}`);
        await Promise.all([lm.dispose(), gen.release()]);
      }
    });
  }
});

describe("export for transformers.js: the other families (no adapter)", () => {
  it("DistilBERT classifies with peftjs's probabilities; Llama-3 (rope scaling) and Qwen2 (q/k/v biases) generate its greedy tokens", async () => {
    const distil = await loadModel(modelDir("distilbert-tiny"), { task: "sequence-classification" });
    const out = join(dir, "distilbert");
    await exportForTransformersJs(distil, out);
    const logits = (await distil.forward(distil.tokenizer!.encodeBatch(["the cat sat"]))).logits!.data as Float32Array;
    const clf = await pipeline("text-classification", out, { ...local, dtype: "fp32" });
    const names = Object.values(distil.config.raw.id2label as Record<string, string>);
    for (const { label, score } of (await clf("the cat sat", { top_k: null })) as unknown as { label: string; score: number }[]) assert.ok(Math.abs(score - softmax(logits)[names.indexOf(label)]!) < 1e-5, label);
    await Promise.all([clf.dispose(), distil.releaseSessions()]);
    for (const name of ["llama3-tiny", "qwen2-tiny"]) {
      const model = await loadModel(modelDir(name), { task: "causal-lm" });
      const folder = join(dir, name);
      await exportForTransformersJs(model, folder);
      const gen = await Generator.create(model);
      const tok = await AutoTokenizer.from_pretrained(folder, local);
      const lm = await AutoModelForCausalLM.from_pretrained(folder, { ...local, dtype: "fp32" });
      const enc = tok("the cat sat on");
      const ids = (await lm.generate({ ...enc, max_new_tokens: 10, min_new_tokens: 10, do_sample: false })) as unknown as { data: BigInt64Array };
      const theirs = Array.from(ids.data.subarray((enc.input_ids as { dims: number[] }).dims[1]!), Number);
      assert.deepEqual(theirs, (await gen.generate(["the cat sat on"], { maxNewTokens: 10, stopTokens: [] })).tokens[0], name);
      await Promise.all([lm.dispose(), gen.release()]);
    }
  });
});

describe("export: weights in onnx/model.onnx_data (the layout past protobuf's 2 GB)", () => {
  it("loads with relative locations from a moved folder", async () => {
    const model = await loadModel(modelDir("roberta-tiny"), { task: "sequence-classification" });
    const out = join(dir, "external");
    const res = await exportForTransformersJs(model, out, { externalDataAbove: 0 });
    assert.deepEqual(res.files.filter((f) => f.startsWith("onnx/")), ["onnx/model.onnx", "onnx/model.onnx_data"]);
    const config = JSON.parse(readFileSync(join(out, "config.json"), "utf8")) as Record<string, unknown>;
    assert.deepEqual(config["transformers.js_config"], { dtype: "fp32", use_external_data_format: true });
    const moved = join(dir, "external-moved");
    renameSync(out, moved);
    const logits = (await model.forward(model.tokenizer!.encodeBatch(["the cat sat"]))).logits!.data as Float32Array;
    const clf = await pipeline("text-classification", moved, { ...local, dtype: "fp32" });
    const got = (await clf("the cat sat", { top_k: null })) as unknown as { label: string; score: number }[];
    const want = softmax(logits);
    for (const { label, score } of got) assert.ok(Math.abs(score - want[["neg", "neu", "pos"].indexOf(label)]!) < 1e-5);
    await Promise.all([clf.dispose(), model.releaseSessions()]);
  });
});

describe("export: refusals (one line, nothing written)", () => {
  it("an output that is or lies inside the model or adapter folder, an unknown task, a method that cannot be exported", async () => {
    const model = join(FIXTURES, "bert-tiny");
    const inside = await run(["export", "--model", model, "--output", join(model, "web")]);
    assert.equal(inside.code, 1);
    assert.match(inside.err, /--output .* lies inside the --model folder/);
    assert.ok(!existsSync(join(model, "web")));
    const task = await run(["export", "--model", model, "--output", join(dir, "x"), "--task", "summarization"]);
    assert.notEqual(task.code, 0);
    assert.match(task.err, /--task/);

    const base = await loadModel(join(FIXTURES, "gpt2-tiny"), { task: "causal-lm" });
    const prompt = PeftModel.create(base, { peft_type: "PROMPT_TUNING", task_type: "CAUSAL_LM", num_virtual_tokens: 4 });
    await prompt.save(join(dir, "prompt-adapter"));
    const refused = await run(["export", "--model", join(FIXTURES, "gpt2-tiny"), "--adapter", join(dir, "prompt-adapter"), "--output", join(dir, "prompt-web")]);
    assert.equal(refused.code, 1);
    assert.match(refused.err, /peftjs: export: adapter "default" is PROMPT_TUNING, which prepends virtual tokens/);
    assert.equal(refused.err.trim().split("\n").length, 2, "one line and a hint");
    assert.ok(!existsSync(join(dir, "prompt-web")));
    // A decoder with a classification head: transformers.js has no class that would load it.
    const cls = await loadModel(join(FIXTURES, "gpt2-tiny"), { task: "sequence-classification" });
    await assert.rejects(exportForTransformersJs(cls, join(dir, "gpt2-cls-web")), /sequence-classification head is not exported for transformers\.js .*no sequence- or token-classification class/);
    assert.ok(!existsSync(join(dir, "gpt2-cls-web")));
  });
});
