// Prefix tuning exactly as Hugging Face PEFT runs it: the prefix is the model's past key/values,
// so the real tokens' positions start after it, and grouped-query models get prefixes sized
// for their key/value heads. Expected outputs come from bench/reference/prefix_fixtures.py (an
// independent PyTorch implementation of the tiny architectures, rules cited there):
// - positions after the prefix: transformers 4.47 BertEmbeddings.forward (position_ids buffer
//   sliced at past_key_values_length), RoBERTa create_position_ids_from_input_ids(input_ids,
//   padding_idx, past_key_values_length), GPT2Model.forward (arange(past_length, past_length +
//   seq)), LlamaModel.forward (cache_position = arange(past_seen_tokens, ...)); the prefix's
//   attention-mask ones: peft/peft_model.py PeftModelForCausalLM.forward and
//   PeftModelForFeatureExtraction.forward (v0.14.0);
// - generation: PeftModelForCausalLM.prepare_inputs_for_generation (the prefix is injected as
//   the cache once; later positions continue after it);
// - grouped-query sizes: peft/utils/other.py _prepare_prompt_learning_config (token_dim =
//   head_dim * num_key_value_heads, num_attention_heads = num_key_value_heads, peft #1901) and
//   PeftModel.get_prompt's view [batch, n, num_layers * 2, num_attention_heads, token_dim //
//   num_attention_heads].
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { readSafetensors } from "../src/io/safetensors.js";
import { int64, type Tensor } from "../src/ir/tensor.js";
import { Generator } from "../src/models/generate.js";
import { loadModel, type PretrainedModel } from "../src/models/pretrained.js";
import { PeftModel, type PeftConfigInput } from "../src/peft/peft-model.js";
import { compile } from "../src/runtime/session.js";

const FIXTURES = join(import.meta.dirname, "fixtures");
const PREFIX = join(FIXTURES, "peft", "prefix");
const ARCHS = ["bert-tiny", "roberta-tiny", "gpt2-tiny", "llama-tiny", "qwen2-tiny"];
const DECODERS = new Set(["gpt2-tiny", "llama-tiny", "qwen2-tiny"]);

type Nested = number | Nested[];
const flat = (x: Nested): number[] => (Array.isArray(x) ? x.flatMap(flat) : [x]);

interface Expected {
  num_virtual_tokens: number;
  inputs: { input_ids: number[][]; attention_mask: number[][] };
  positions: number[][];
  last_hidden_state: Nested;
  logits_columns?: number[];
  logits?: Nested;
  greedy?: { prompt: number[]; tokens: number[] };
}

const fixture = (dir: string) => JSON.parse(readFileSync(join(dir, "expected.json"), "utf8")) as Expected;
const batchOf = (e: Expected) => ({
  input_ids: int64([e.inputs.input_ids.length, e.inputs.input_ids[0]!.length], e.inputs.input_ids.flat()),
  attention_mask: int64([e.inputs.attention_mask.length, e.inputs.attention_mask[0]!.length], e.inputs.attention_mask.flat()),
});
const base = (arch: string) => loadModel(join(FIXTURES, "models", arch), { task: DECODERS.has(arch) ? "causal-lm" : "base" });

/**
 * Largest difference from the reference over the attended tokens (padding rows' outputs are
 * not compared: transformers gives padding the next positions, peftjs position 1).
 */
async function maxError(peft: PeftModel, e: Expected): Promise<{ hidden: number; logits: number; positions: number[][] }> {
  const built = peft.build();
  const outs = { last_hidden_state: built.outputs.last_hidden_state!, ...(e.logits ? { logits: built.outputs.logits! } : {}) };
  const step = await compile(outs, { threads: 1 });
  const feeds = peft.prepareInputs(batchOf(e));
  const got = await step.run(feeds);
  await step.release();
  const [rows, seq] = [e.inputs.input_ids.length, e.inputs.input_ids[0]!.length];
  const attended = (token: number) => e.inputs.attention_mask[Math.floor(token / seq)]![token % seq] === 1;
  const compare = (want: number[], have: Float32Array, perToken: number) => want.reduce((m, v, i) => (attended(Math.floor(i / perToken)) ? Math.max(m, Math.abs(v - have[i]!)) : m), 0);
  const hidden = compare(flat(e.last_hidden_state), got.last_hidden_state!.data as Float32Array, got.last_hidden_state!.shape[2] as number);
  let logits = 0;
  if (e.logits) {
    const all = got.logits!.data as Float32Array;
    const vocab = got.logits!.shape[2] as number;
    const cols = e.logits_columns!;
    const picked = Float32Array.from({ length: rows * seq * cols.length }, (_, i) => all[Math.floor(i / cols.length) * vocab + cols[i % cols.length]!]!);
    logits = compare(flat(e.logits), picked, cols.length);
  }
  const pos = Array.from(feeds.position_ids!.data as BigInt64Array, Number);
  return { hidden, logits, positions: e.positions.map((row, r) => row.map((_, s) => pos[r * seq + s]!)) };
}

/** The reference positions on attended tokens, the others as peftjs computes them. */
const attendedPositions = (e: Expected, got: number[][]) => e.positions.map((row, r) => row.map((p, s) => (e.inputs.attention_mask[r]![s] === 1 ? p : got[r]![s]!)));

describe("prefix tuning as PEFT computes it (positions after the prefix)", () => {
  for (const arch of ARCHS) {
    for (const variant of ["plain", "projection"]) {
      const dir = join(PREFIX, `${arch}-${variant}`);

      it(`${arch} (${variant === "plain" ? "P-tuning v2" : "prefix_projection"}): PEFT's adapter reproduces transformers' outputs within 1e-4`, async () => {
        const e = fixture(dir);
        const peft = await PeftModel.load(await base(arch), dir);
        const { hidden, logits, positions } = await maxError(peft, e);
        assert.deepEqual(positions, attendedPositions(e, positions), "positions of the real tokens start after the prefix");
        assert.ok(hidden < 1e-4, `last_hidden_state max abs diff ${hidden}`);
        assert.ok(logits < 1e-4, `logits max abs diff ${logits}`);
      });
    }

    it(`${arch}: a peftjs adapter computed through the projection MLP matches the reference, and saves what PEFT saves`, async () => {
      const dir = join(PREFIX, `${arch}-projection`);
      const e = fixture(dir);
      const theirs = JSON.parse(readFileSync(join(dir, "adapter_config.json"), "utf8")) as Record<string, unknown>;
      const model = await base(arch);
      const peft = PeftModel.create(model, { peft_type: "PREFIX_TUNING", num_virtual_tokens: 3, prefix_projection: true, encoder_hidden_size: theirs.encoder_hidden_size });
      const mlp = await readSafetensors(join(dir, "projection.safetensors"));
      const tensors = peft.adapters.get("default")!.tensors;
      for (const n of mlp.names()) {
        const t = tensors.get(`prompt_encoder.${n}`);
        assert.ok(t, `peftjs allocates PrefixEncoder's ${n}`);
        assert.deepEqual(t.shape, mlp.get(n).shape, `${n}: the shape PEFT allocates`);
        (t.data as Float32Array).set(mlp.get(n).data as Float32Array);
      }
      const { hidden, logits } = await maxError(peft, e);
      assert.ok(hidden < 1e-4 && logits < 1e-4, `max abs diff: hidden ${hidden}, logits ${logits}`);

      const out = mkdtempSync(join(tmpdir(), "peftjs-prefix-"));
      await peft.save(out);
      const saved = await readSafetensors(join(out, "adapter_model.safetensors"));
      const want = await readSafetensors(join(dir, "adapter_model.safetensors"));
      assert.deepEqual(saved.names(), ["prompt_embeddings"]);
      assert.deepEqual(saved.get("prompt_embeddings").shape, want.get("prompt_embeddings").shape);
      const a = saved.get("prompt_embeddings").data as Float32Array;
      const b = want.get("prompt_embeddings").data as Float32Array;
      assert.ok(a.every((v, i) => Math.abs(v - b[i]!) < 1e-5), "saved prompt_embeddings = the projection's output");
      const ours = JSON.parse(readFileSync(join(out, "adapter_config.json"), "utf8")) as Record<string, unknown>;
      for (const k of ["token_dim", "num_attention_heads", "num_layers", "encoder_hidden_size", "prefix_projection", "num_virtual_tokens"]) assert.equal(ours[k], theirs[k], k);
    });
  }

  it("the positions moved by the prefix change the outputs (the old rule is off by far more than 1e-4)", async () => {
    // Guard that the fixtures can tell the rules apart: the same prefix with positions from 0.
    const dir = join(PREFIX, "gpt2-tiny-plain");
    const e = fixture(dir);
    const peft = await PeftModel.load(await base("gpt2-tiny"), dir);
    const step = await compile({ logits: peft.build().outputs.logits! }, { threads: 1 });
    const feeds = peft.prepareInputs(batchOf(e));
    const shifted = (await step.run(feeds)).logits!.data as Float32Array;
    const fromZero = (await step.run({ ...feeds, position_ids: peft.base.prepareInputs(batchOf(e)).position_ids! })).logits!.data as Float32Array;
    await step.release();
    assert.ok(shifted.some((v, i) => Math.abs(v - fromZero[i]!) > 0.05));
  });

  it("RoBERTa: padding keeps the padding index; the real tokens count from padding_idx + 1 + n", async () => {
    const e = fixture(join(PREFIX, "roberta-tiny-plain"));
    const peft = await PeftModel.load(await base("roberta-tiny"), join(PREFIX, "roberta-tiny-plain"));
    const pos = peft.prepareInputs(batchOf(e)).position_ids!;
    assert.deepEqual(Array.from(pos.data as BigInt64Array, Number), e.positions.flat(), "create_position_ids_from_input_ids(ids, 1, 3), padding included");
  });

  it("feature extraction ignores token_type_ids, as PEFT's PeftModelForFeatureExtraction.forward drops them", async () => {
    const dir = join(PREFIX, "bert-tiny-plain");
    const e = fixture(dir);
    const peft = await PeftModel.load(await base("bert-tiny"), dir);
    const step = await compile({ h: peft.build().outputs.last_hidden_state! }, { threads: 1 });
    const b = batchOf(e);
    const [rows, seq] = b.input_ids.shape as [number, number];
    const plain = (await step.run(peft.prepareInputs(b))).h!.data as Float32Array;
    const typed = (await step.run(peft.prepareInputs({ ...b, token_type_ids: int64([rows, seq], new Array(rows * seq).fill(1)) }))).h!.data as Float32Array;
    await step.release();
    assert.deepEqual(Array.from(typed), Array.from(plain));
  });

  it("positions go back to 0 with the adapters disabled", async () => {
    const e = fixture(join(PREFIX, "gpt2-tiny-plain"));
    const peft = await PeftModel.load(await base("gpt2-tiny"), join(PREFIX, "gpt2-tiny-plain"));
    const first = (f: Record<string, Tensor>) => Number((f.position_ids!.data as BigInt64Array)[0]);
    assert.equal(first(peft.prepareInputs(batchOf(e))), 3);
    assert.equal(await peft.withAdaptersDisabled(() => first(peft.prepareInputs(batchOf(e)))), 0);
  });

  it("a sequence that fits alone but not after the prefix is refused", async () => {
    const model = await loadModel(join(FIXTURES, "models", "gpt2-tiny"), { task: "causal-lm" });
    const peft = PeftModel.create(model, { peft_type: "PREFIX_TUNING", num_virtual_tokens: 10 });
    assert.throws(() => peft.prepareInputs({ input_ids: int64([1, 60], new Array(60).fill(5)) }), /sequence of 70 tokens is longer than gpt2's 64 positions/);
  });

  it("DistilBERT is refused: transformers' DistilBertModel takes no past key/values", async () => {
    const model = await loadModel(join(FIXTURES, "models", "distilbert-tiny"), { task: "sequence-classification" });
    assert.throws(() => PeftModel.create(model, { peft_type: "PREFIX_TUNING", num_virtual_tokens: 3 }), /DistilBERT.*past key\/values/);
  });

  it("mixed-adapter batches with a prefix adapter are refused by name", async () => {
    const model = await loadModel(join(FIXTURES, "models", "gpt2-tiny"), { task: "causal-lm" });
    const peft = PeftModel.create(model, { peft_type: "PREFIX_TUNING", num_virtual_tokens: 3 });
    peft.addAdapter("lora", { peft_type: "LORA", target_modules: ["c_attn"], fan_in_fan_out: true });
    peft.setAdapter(["default", "lora"]);
    assert.throws(() => peft.build({ mixedAdapters: true }), /prefix tuning adapter "default".*mixed-adapter batches/);
  });
});

describe("prefix tuning on grouped-query models (sizes PEFT allocates)", () => {
  const llama = () => loadModel(join(FIXTURES, "models", "llama-tiny"), { task: "causal-lm" });

  it("llama-tiny (4 query heads, 2 key/value heads of 8): token_dim 16, num_attention_heads 2, prompt_embeddings [n, 2 * 2 * 16]", async () => {
    for (const projection of [false, true]) {
      const peft = PeftModel.create(await llama(), { peft_type: "PREFIX_TUNING", num_virtual_tokens: 3, prefix_projection: projection });
      const dir = mkdtempSync(join(tmpdir(), "peftjs-gqa-"));
      await peft.save(dir);
      const config = JSON.parse(readFileSync(join(dir, "adapter_config.json"), "utf8")) as Record<string, unknown>;
      assert.equal(config.token_dim, 16);
      assert.equal(config.num_attention_heads, 2);
      assert.equal(config.num_layers, 2);
      assert.equal(config.encoder_hidden_size, 16, "PEFT's default: token_dim after the grouped-query adjustment");
      const saved = await readSafetensors(join(dir, "adapter_model.safetensors"));
      assert.deepEqual(saved.get("prompt_embeddings").shape, [3, 64]);
      const t = peft.adapters.get("default")!.tensors;
      // PrefixEncoder(config): embedding [n, token_dim] -> Linear(token_dim, E) -> Tanh -> Linear(E, L * 2 * token_dim).
      if (projection) {
        assert.deepEqual(t.get("prompt_encoder.embedding.weight")!.shape, [3, 16]);
        assert.deepEqual(t.get("prompt_encoder.transform.0.weight")!.shape, [16, 16]);
        assert.deepEqual(t.get("prompt_encoder.transform.2.weight")!.shape, [64, 16]);
      } else assert.deepEqual(t.get("prompt_encoder.embedding.weight")!.shape, [3, 64]);
      // And it loads back.
      await PeftModel.load(await llama(), dir);
    }
  });

  it("reads configs the way PEFT prepares them: hidden-size token_dim and query heads are reduced to the key/value heads", async () => {
    // A config written with the model's full sizes (token_dim 32, 4 heads): PEFT's
    // _prepare_prompt_learning_config turns it into 32 // 4 * 2 = 16 and 2 heads.
    const peft = PeftModel.create(await llama(), { peft_type: "PREFIX_TUNING", num_virtual_tokens: 3, token_dim: 32, num_attention_heads: 4 } as PeftConfigInput);
    const c = peft.adapters.get("default")!.config as unknown as Record<string, unknown>;
    assert.equal(c.token_dim, 16);
    assert.equal(c.num_attention_heads, 2);
  });

  it("a token_dim that does not fit the model's attention is an error naming the field", async () => {
    // PEFT would build the prefixes and fail inside attention; peftjs says why when loading.
    const model = await loadModel(join(FIXTURES, "models", "gpt2-tiny"), { task: "causal-lm" });
    assert.throws(() => PeftModel.create(model, { peft_type: "PREFIX_TUNING", num_virtual_tokens: 3, token_dim: 24 } as PeftConfigInput), /token_dim 24 with num_attention_heads 4 gives prefixes of 4 heads of 6; the model's attention takes 4 key\/value heads of 8 \(token_dim 32\)/);
  });
});

describe("generation with a prefix adapter", () => {
  for (const arch of [...DECODERS]) {
    it(`${arch}: greedy tokens continue the positions after the prefix (PEFT's generate)`, async () => {
      const dir = join(PREFIX, `${arch}-plain`);
      const e = fixture(dir);
      const peft = await PeftModel.load(await base(arch), dir);
      const gen = await Generator.create(peft, { session: { threads: 1 } });
      const { tokens } = await gen.generate([e.greedy!.prompt], { maxNewTokens: e.greedy!.tokens.length, stopTokens: [] });
      await gen.release();
      assert.deepEqual(tokens[0], e.greedy!.tokens);
    });
  }

  it("batched prompts with left padding give each row's own tokens (positions per row)", async () => {
    const dir = join(PREFIX, "llama-tiny-projection");
    const model: PretrainedModel = await base("llama-tiny");
    const peft = await PeftModel.load(model, dir);
    const gen = await Generator.create(peft, { session: { threads: 1 } });
    const prompts = ["the cat sat on the mat", "money", "the river"];
    const batched = await gen.generate(prompts, { maxNewTokens: 5, stopTokens: [] });
    for (let r = 0; r < prompts.length; r++) assert.deepEqual(batched.tokens[r], (await gen.generate([prompts[r]!], { maxNewTokens: 5, stopTokens: [] })).tokens[0], `row ${r}`);
    await gen.release();
  });

  it("prompt-tuning adapters are refused (their prompt is not a cache)", async () => {
    const peft = PeftModel.create(await base("gpt2-tiny"), { peft_type: "PROMPT_TUNING", num_virtual_tokens: 3 });
    await assert.rejects(Generator.create(peft), /PROMPT_TUNING.*generat/);
  });
});
