// Bottleneck adapters as AdapterHub (`adapters` v1.1) computes, loads and saves them. Expected
// outputs come from bench/reference/adapterhub_fixtures.py, an independent PyTorch implementation
// of AdapterHub's placement rules (src/adapters/methods/modeling.py Adapter.pre_forward / forward /
// post_forward, ParallelAdapter; methods/bottleneck.py BottleneckLayer.bottleneck_layer_forward;
// models/bert/modeling_bert.py passes the block's LayerNorm, models/gpt2/modeling_gpt2.py and
// models/llama/modeling_llama.py pass None) with non-zero random adapter weights, written in
// AdapterHub's folder layout (loading.py AdapterLoader.save: adapter_config.json from
// configuration/model_adapters_config.py build_full_config, pytorch_adapter.bin or
// adapter.safetensors).
import assert from "node:assert/strict";
import { cpSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { main } from "../src/cli/main.js";
import { readSafetensors } from "../src/io/safetensors.js";
import { writeStoredZip } from "../src/io/stored-zip.js";
import { PickleError, readTorchStateDict, writeTorchStateDict } from "../src/io/torch-pickle.js";
import { float32, int64, type Tensor } from "../src/ir/tensor.js";
import { RECORDS } from "./support/tiny-training.js";
import { loadModel } from "../src/models/pretrained.js";
import { PeftModel } from "../src/peft/peft-model.js";
import { compile } from "../src/runtime/session.js";
import { BOTTLENECK } from "../src/tuners/bottleneck/index.js";
import { PRESETS } from "../src/tuners/registry.js";

const FIXTURES = join(import.meta.dirname, "fixtures");
const HUB = join(FIXTURES, "adapterhub");
const TOL = 1e-5;

type Nested = number | Nested[];
const flat = (x: Nested): number[] => (Array.isArray(x) ? x.flatMap(flat) : [x]);
interface Expected {
  inputs: { input_ids: number[][]; attention_mask: number[][] };
  last_hidden_state: Nested;
  logits_columns?: number[];
  logits?: Nested;
  moved_from_base: number;
  /** Head fixtures: the classification logits [batch, labels]. */
  sequence_logits?: number[][];
}

const archOf = (dir: string) => /^(bert-tiny|distilbert-tiny|gpt2-tiny|llama-tiny)-/.exec(dir)![1]!;
const model = (arch: string, task?: "base" | "causal-lm" | "sequence-classification") => loadModel(join(FIXTURES, "models", arch), { task: task ?? (arch.includes("bert") ? "base" : "causal-lm") });
const batchOf = (e: Expected) => ({
  input_ids: int64([e.inputs.input_ids.length, e.inputs.input_ids[0]!.length], e.inputs.input_ids.flat()),
  attention_mask: int64([e.inputs.attention_mask.length, e.inputs.attention_mask[0]!.length], e.inputs.attention_mask.flat()),
});

async function outputs(peft: PeftModel, e: Expected, names: ("last_hidden_state" | "logits")[]): Promise<Record<string, Tensor>> {
  const built = peft.build();
  const step = await compile(Object.fromEntries(names.map((n) => [n, built.outputs[n]!])), { threads: 1 });
  const got = await step.run(peft.prepareInputs(batchOf(e)));
  await step.release();
  return got;
}

/** Largest difference from the reference over attended tokens (padding positions are not compared). */
async function maxError(peft: PeftModel, e: Expected): Promise<{ hidden: number; logits: number }> {
  const got = await outputs(peft, e, e.logits ? ["last_hidden_state", "logits"] : ["last_hidden_state"]);
  const seq = e.inputs.input_ids[0]!.length;
  const attended = (token: number) => e.inputs.attention_mask[Math.floor(token / seq)]![token % seq] === 1;
  const compare = (want: number[], have: ArrayLike<number>, per: number) => want.reduce((m, v, i) => (attended(Math.floor(i / per)) ? Math.max(m, Math.abs(v - have[i]!)) : m), 0);
  const h = got.last_hidden_state!;
  const hidden = compare(flat(e.last_hidden_state), h.data as Float32Array, h.shape[2] as number);
  let logits = 0;
  if (e.logits) {
    const all = got.logits!.data as Float32Array;
    const vocab = got.logits!.shape[2] as number;
    const cols = e.logits_columns!;
    logits = compare(flat(e.logits), Float32Array.from({ length: all.length / vocab * cols.length }, (_, i) => all[Math.floor(i / cols.length) * vocab + cols[i % cols.length]!]!), cols.length);
  }
  return { hidden, logits };
}

const fixture = (dir: string) => JSON.parse(readFileSync(join(HUB, dir, "expected.json"), "utf8")) as Expected;
const ALL = readdirSync(HUB).sort();
/** Adapter-only folders; "-head" ones carry a prediction head too. */
const DIRS = ALL.filter((d) => !d.endsWith("-head"));

describe("AdapterHub bottleneck placement (every option, post-LN BERT / DistilBERT and pre-LN GPT-2 / Llama)", () => {
  it("the fixtures cover every placement option on each architecture", () => {
    for (const arch of ["bert-tiny", "gpt2-tiny", "llama-tiny"]) {
      const configs = DIRS.filter((d) => archOf(d) === arch).map((d) => (JSON.parse(readFileSync(join(HUB, d, "adapter_config.json"), "utf8")) as { config: Record<string, unknown> }).config);
      for (const [k, values] of Object.entries({ original_ln_before: [true, false], residual_before_ln: arch === "bert-tiny" ? [true, false, "post_add"] : [true, false], adapter_residual_before_ln: [true, false], ln_before: [true, false], ln_after: [true, false], is_parallel: [true, false], mh_adapter: [true, false] })) {
        for (const v of values) assert.ok(configs.some((c) => c[k] === v), `${arch}: no fixture with ${k} = ${JSON.stringify(v)}`);
      }
      for (const parallel of [true, false]) assert.ok(configs.some((c) => c.original_ln_after === false && c.is_parallel === parallel), `${arch}: original_ln_after false${parallel ? " (parallel)" : ""}`);
    }
  });

  for (const dir of DIRS) {
    it(`${dir}: AdapterHub's folder loads and computes its outputs within ${TOL}`, async (t) => {
      const e = fixture(dir);
      // The reference moves the outputs far more than the tolerance, so a wrong placement fails.
      assert.ok(e.moved_from_base > 100 * TOL, `fixture barely moves the outputs (${e.moved_from_base})`);
      const peft = await PeftModel.load(await model(archOf(dir)), join(HUB, dir));
      const { hidden, logits } = await maxError(peft, e);
      t.diagnostic(`max abs diff: last_hidden_state ${hidden.toExponential(2)}, logits ${logits.toExponential(2)}`);
      assert.ok(hidden < TOL, `last_hidden_state max abs diff ${hidden}`);
      assert.ok(logits < TOL, `logits max abs diff ${logits}`);
    });
  }

  it("bert-tiny-seq_bn-head: the adapter and its flex classification head (heads.<name>.1.*) compute AdapterHub's logits", async () => {
    const e = fixture("bert-tiny-seq_bn-head");
    const peft = await PeftModel.load(await model("bert-tiny", "sequence-classification"), join(HUB, "bert-tiny-seq_bn-head"));
    assert.deepEqual(peft.labels.get("default"), ["neg", "neu", "pos"], "labels from head_config.json's label2id");
    const got = (await outputs(peft, e, ["logits"])).logits!;
    const want = e.sequence_logits!.flat();
    const diff = want.reduce((m, v, i) => Math.max(m, Math.abs(v - (got.data as Float32Array)[i]!)), 0);
    assert.deepEqual(got.shape, [e.sequence_logits!.length, e.sequence_logits![0]!.length]);
    assert.ok(diff < TOL, `logits max abs diff ${diff}`);
  });

  it("Pfeiffer on GPT-2 reads sublayer output + residual (the sublayer output alone is off by far more)", async () => {
    // The rule issue 16 found broken: with original_ln_before false the same weights compute something else.
    const dir = "gpt2-tiny-seq_bn-residual_after_ln";
    const e = fixture(dir);
    const src = join(HUB, dir);
    const copy = mkdtempSync(join(tmpdir(), "peftjs-ah-"));
    cpSync(src, copy, { recursive: true });
    const cfg = JSON.parse(readFileSync(join(copy, "adapter_config.json"), "utf8")) as { config: Record<string, unknown> };
    cfg.config.original_ln_before = false;
    writeFileSync(join(copy, "adapter_config.json"), JSON.stringify(cfg));
    const { hidden } = await maxError(await PeftModel.load(await model("gpt2-tiny"), copy), e);
    assert.ok(hidden > 1e-2, `original_ln_before false should differ, got ${hidden}`);
  });
});

describe("AdapterHub folders: layout, round trip, refusals", () => {
  it("a loaded AdapterHub adapter saved with format adapterhub reloads with the same outputs; floats are written as floats", async () => {
    for (const dir of ["bert-tiny-double_seq_bn-ln_before", "gpt2-tiny-par_bn", "llama-tiny-seq_bn-ln_before_after"]) {
      const e = fixture(dir);
      const peft = await PeftModel.load(await model(archOf(dir)), join(HUB, dir));
      const out = mkdtempSync(join(tmpdir(), "peftjs-ah-save-"));
      await peft.save(out, { format: "adapterhub" });
      const text = readFileSync(join(out, "adapter_config.json"), "utf8");
      assert.match(text, /"scaling": \d+\.\d+/, "scaling is written as a float");
      assert.match(text, /"dropout": 0\.0/);
      const theirs = JSON.parse(readFileSync(join(HUB, dir, "adapter_config.json"), "utf8")) as Record<string, unknown> & { config: Record<string, unknown> };
      const ours = JSON.parse(text) as typeof theirs;
      assert.deepEqual(Object.keys(ours).sort(), Object.keys(theirs).sort(), "top-level fields as build_full_config writes them");
      assert.deepEqual(ours.config, theirs.config, "every BnConfig field, as AdapterHub's to_dict writes it");
      assert.equal(ours.name, "default");
      // Both weight files, with AdapterHub's keys (renamed to the saved adapter's name).
      const bin = readTorchStateDict(readFileSync(join(out, "pytorch_adapter.bin")), "bin");
      const safe = await readSafetensors(join(out, "adapter.safetensors"));
      const want = readTorchStateDictOrSafe(join(HUB, dir));
      assert.deepEqual([...bin.keys()].sort(), [...want.keys()].map((k) => k.replace(".adapters.mine.", ".adapters.default.")).sort());
      assert.deepEqual(safe.names().sort(), [...bin.keys()].sort());
      for (const [k, t] of want) assert.deepEqual(Array.from(bin.get(k.replace(".adapters.mine.", ".adapters.default."))!.data as Float32Array), Array.from(t.data as Float32Array), k);
      const again = await PeftModel.load(await model(archOf(dir)), out);
      const { hidden, logits } = await maxError(again, e);
      assert.ok(hidden < TOL && logits < TOL, `${dir} after the round trip: ${hidden}, ${logits}`);
    }
  });

  it("a head trained beside the adapter is written as AdapterHub's flex head and reads back", async () => {
    const base = await model("bert-tiny", "sequence-classification");
    const peft = PeftModel.create(base, { peft_type: "BOTTLENECK", variant: "seq_bn", reduction_factor: 4 });
    const a = peft.adapters.get("default")!;
    let s = 1;
    for (const t of a.tensors.values()) for (let i = 0; i < t.data.length; i++) (t.data as Float32Array)[i] = Math.sin(s++) * 0.3;
    const out = mkdtempSync(join(tmpdir(), "peftjs-ah-head-"));
    await peft.save(out, { format: "adapterhub" });
    const head = JSON.parse(readFileSync(join(out, "head_config.json"), "utf8")) as { config: Record<string, unknown>; model_class: string; name: string };
    // head_utils.py STATIC_TO_FLEX_HEAD_MAP["BertForSequenceClassification"]: one layer on the pooler, weights at index 1.
    assert.equal(head.model_class, "BertAdapterModel");
    assert.equal(head.name, "default");
    assert.deepEqual({ ...head.config, label2id: undefined }, { head_type: "classification", layers: 1, activation_function: null, use_pooler: true, num_labels: base.config.numLabels, label2id: undefined });
    const weights = readTorchStateDict(readFileSync(join(out, "pytorch_model_head.bin")), "head");
    assert.deepEqual([...weights.keys()].sort(), ["heads.default.1.bias", "heads.default.1.weight"]);
    assert.deepEqual((await readSafetensors(join(out, "model_head.safetensors"))).names().sort(), ["heads.default.1.bias", "heads.default.1.weight"]);
    const e: Expected = { inputs: { input_ids: [[2, 5, 7, 3]], attention_mask: [[1, 1, 1, 1]] }, last_hidden_state: [], moved_from_base: 1 };
    const before = (await outputs(peft, e, ["logits"])).logits!.data as Float32Array;
    const again = await PeftModel.load(await model("bert-tiny", "sequence-classification"), out);
    const after = (await outputs(again, e, ["logits"])).logits!.data as Float32Array;
    assert.ok(before.every((v, i) => Math.abs(v - after[i]!) < 1e-6), `${before} vs ${after}`);
    // Without its head the folder is refused on a classification model, by name.
    const headless = mkdtempSync(join(tmpdir(), "peftjs-ah-headless-"));
    for (const f of ["adapter_config.json", "pytorch_adapter.bin"]) cpSync(join(out, f), join(headless, f));
    await assert.rejects(PeftModel.load(await model("bert-tiny", "sequence-classification"), headless), /no prediction head/);
  });

  it("an unexpected tensor (an invertible adapter's) is an error, not dropped", async () => {
    const dir = mkdtempSync(join(tmpdir(), "peftjs-ah-extra-"));
    cpSync(join(HUB, "bert-tiny-seq_bn"), dir, { recursive: true });
    const sd = readTorchStateDict(readFileSync(join(dir, "pytorch_adapter.bin")), "bin");
    sd.set("bert.invertible_adapters.mine.F.0.weight", float32([2, 2], [1, 2, 3, 4]));
    writeFileSync(join(dir, "pytorch_adapter.bin"), writeTorchStateDict(sd));
    await assert.rejects(PeftModel.load(await model("bert-tiny"), dir), /does not use: (bert\.)?invertible_adapters\.mine\.F\.0\.weight/);
  });

  it("invertible adapters: refused with their weights; a config naming one without weights loads as AdapterHub's legacy fix does; old weight names are renamed", async () => {
    const dir = mkdtempSync(join(tmpdir(), "peftjs-ah-inv-"));
    cpSync(join(HUB, "bert-tiny-seq_bn"), dir, { recursive: true });
    const cfg = JSON.parse(readFileSync(join(dir, "adapter_config.json"), "utf8")) as { config: Record<string, unknown> };
    Object.assign(cfg.config, { inv_adapter: "nice", inv_adapter_reduction_factor: 2 });
    writeFileSync(join(dir, "adapter_config.json"), JSON.stringify(cfg));
    // loading.py AdapterLoader._fix_legacy_config: no invertible weights, so the invertible adapter is dropped.
    const e = fixture("bert-tiny-seq_bn");
    const loaded = await PeftModel.load(await model("bert-tiny"), dir);
    assert.ok((await maxError(loaded, e)).hidden < TOL);
    // adapter-transformers' weight names (legacy_weights_mapping) and the invertible adapter's weights.
    const sd = readTorchStateDict(readFileSync(join(dir, "pytorch_adapter.bin")), "bin");
    const old = new Map([...sd].map(([k, t]) => [k.replace(".output.adapters.", ".output.layer_text_task_adapters."), t]));
    writeFileSync(join(dir, "pytorch_adapter.bin"), writeTorchStateDict(old));
    assert.ok((await maxError(await PeftModel.load(await model("bert-tiny"), dir), e)).hidden < TOL, "legacy names load");
    old.set("bert.invertible_lang_adapters.mine.F.0.weight", float32([2, 2], [1, 2, 3, 4]));
    writeFileSync(join(dir, "pytorch_adapter.bin"), writeTorchStateDict(old));
    await assert.rejects(PeftModel.load(await model("bert-tiny"), dir), /"inv_adapter" = "nice".*invertible adapters .* are not implemented/);
  });

  it("unsupported AdapterHub settings are refused by name when the config is read", async () => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ phm_layer: true }, /"phm_layer" = true.*Compacter/],
      [{ non_linearity: "mish" }, /"non_linearity".*one of relu/],
      [{ scaling: "learned" }, /"scaling" = "learned"/],
      [{ dropout: 0.1 }, /"dropout" = 0\.1/],
      [{ use_gating: true }, /"use_gating" = true/],
    ];
    for (const [change, error] of cases) {
      const dir = mkdtempSync(join(tmpdir(), "peftjs-ah-bad-"));
      cpSync(join(HUB, "bert-tiny-seq_bn"), dir, { recursive: true });
      const cfg = JSON.parse(readFileSync(join(dir, "adapter_config.json"), "utf8")) as { config: Record<string, unknown> };
      Object.assign(cfg.config, change);
      writeFileSync(join(dir, "adapter_config.json"), JSON.stringify(cfg));
      await assert.rejects(PeftModel.load(await model("bert-tiny"), dir), error, JSON.stringify(change));
    }
    const lora = mkdtempSync(join(tmpdir(), "peftjs-ah-lora-"));
    writeFileSync(join(lora, "adapter_config.json"), JSON.stringify({ config: { architecture: "lora", r: 8 }, hidden_size: 32, model_class: "BertAdapterModel", model_name: "x", name: "x", version: "adapters.1.1.0" }));
    await assert.rejects(PeftModel.load(await model("bert-tiny"), lora), /architecture "lora" is not supported/);
    // Placements AdapterHub itself cannot compute on a model, or peftjs does not: refused when the adapter is created.
    const gpt2 = await model("gpt2-tiny");
    assert.throws(() => PeftModel.create(gpt2, { peft_type: "BOTTLENECK", variant: "seq_bn", residual_before_ln: "post_add" }), /"post_add".*pre-LN model/);
    assert.throws(() => PeftModel.create(gpt2, { peft_type: "BOTTLENECK", variant: "seq_bn", residual_before_ln: "post_add", original_ln_before: false }), /"post_add" needs original_ln_before/);
  });

  it("presets named after AdapterHub's configs mean what they mean there", () => {
    const parse = (p: Record<string, unknown>) => BOTTLENECK.parseConfig(p, "preset");
    // adapter_config.py SeqBnConfig / DoubleSeqBnConfig / ParBnConfig over BnConfig's defaults.
    const bn = { original_ln_after: true, residual_before_ln: true, adapter_residual_before_ln: false, ln_before: false, ln_after: false, leave_out: [], use_gating: false, train_layer_norms: false };
    assert.deepEqual(pick(parse(PRESETS.pfeiffer), bn), { ...bn, mh_adapter: false, output_adapter: true, original_ln_before: true, non_linearity: "relu", reduction_factor: 16, init_weights: "bert", is_parallel: false, scaling: 1 });
    assert.deepEqual(pick(parse(PRESETS.houlsby), bn), { ...bn, mh_adapter: true, output_adapter: true, original_ln_before: false, non_linearity: "swish", reduction_factor: 16, init_weights: "bert", is_parallel: false, scaling: 1 });
    assert.deepEqual(pick(parse(PRESETS.parallel), bn), { ...bn, mh_adapter: false, output_adapter: true, original_ln_before: false, non_linearity: "relu", reduction_factor: 2, init_weights: "mam_adapter", is_parallel: true, scaling: 4 });
    // AdapterHub's own names for the presets.
    assert.equal(parse({ variant: "pfeiffer" }).variant, "seq_bn");
    assert.equal(parse({ variant: "houlsby" }).variant, "double_seq_bn");
  });

  it('init_weights "bert" draws N(0, 0.02) weights and zero biases', async () => {
    const peft = PeftModel.create(await model("gpt2-tiny"), PRESETS.houlsby);
    const a = peft.adapters.get("default")!;
    const w = [...a.tensors].filter(([k]) => k.endsWith("weight")).flatMap(([, t]) => Array.from(t.data as Float32Array));
    const std = Math.sqrt(w.reduce((s, v) => s + v * v, 0) / w.length);
    assert.ok(Math.abs(std - 0.02) < 0.002, `std ${std}`);
    assert.ok([...a.tensors].filter(([k]) => k.endsWith("bias")).every(([, t]) => (t.data as Float32Array).every((v) => v === 0)));
    assert.ok(![...a.tensors.keys()].some((k) => /ln_|LayerNorm|norm\./.test(k)), "no trained LayerNorm copies by default");
  });
});

describe("AdapterHub folders on the command line", () => {
  const run = async (argv: string[]) => {
    let out = "";
    const code = await main(argv, { out: (t) => (out += `${t}\n`), write: (t) => (out += t), err: (t) => (out += `${t}\n`) });
    return { code, out };
  };

  it("train --format adapterhub writes AdapterHub's layout; info, eval and predict read it as it is", async () => {
    const dir = mkdtempSync(join(tmpdir(), "peftjs-ah-cli-"));
    const data = join(dir, "train.jsonl");
    writeFileSync(data, RECORDS.map((r) => JSON.stringify(r)).join("\n"));
    const bert = join(FIXTURES, "models", "bert-tiny");
    const output = join(dir, "out");
    const train = await run(["train", "--model", bert, "--data", data, "--output", output, "--method", "pfeiffer", "--reduction-factor", "4", "--epochs", "1", "--batch-size", "4", "--threads", "1", "--format", "adapterhub"]);
    assert.equal(train.code, 0, train.out);
    const adapter = join(output, "adapter");
    assert.deepEqual(readdirSync(adapter).filter((f) => !f.endsWith(".json") || f.includes("config")).sort(), ["adapter.safetensors", "adapter_config.json", "head_config.json", "model_head.safetensors", "pytorch_adapter.bin", "pytorch_model_head.bin"]);
    const info = await run(["info", bert, "--adapter", adapter]);
    assert.equal(info.code, 0, info.out);
    assert.match(info.out, /BOTTLENECK/);
    assert.match(info.out, /parameters \(sequence-classification\)/, "the task comes from head_config.json");
    const evaluation = await run(["eval", "--model", bert, "--adapter", adapter, "--data", data]);
    assert.equal(evaluation.code, 0, evaluation.out);
    const predict = await run(["predict", "--model", bert, "--adapter", adapter, "--text", "the cat sat"]);
    assert.equal(predict.code, 0, predict.out);
    // A fixture written by the reference script loads on the bare model.
    const ref = await run(["info", bert, "--adapter", join(HUB, "bert-tiny-seq_bn")]);
    assert.equal(ref.code, 0, ref.out);
    const lora = await run(["train", "--model", bert, "--data", data, "--output", join(dir, "lora"), "--method", "lora", "--format", "adapterhub", "--epochs", "1"]);
    assert.notEqual(lora.code, 0);
    assert.match(lora.out, /--format adapterhub: --method lora is LORA/);
  });
});

describe("torch.save state dicts (restricted unpickler)", () => {
  const dir = join(FIXTURES, "pickle");

  it("reads a real torch.save'd state dict: views, offsets, float16, int64, 0-d and empty tensors", () => {
    const sd = readTorchStateDict(readFileSync(join(dir, "state_dict.bin")), "state_dict.bin");
    const want = JSON.parse(readFileSync(join(dir, "state_dict.json"), "utf8")) as Record<string, { dtype: string; shape: number[]; values: number[] }>;
    assert.deepEqual([...sd.keys()], Object.keys(want));
    for (const [k, w] of Object.entries(want)) {
      const t = sd.get(k)!;
      assert.deepEqual(t.shape, w.shape, k);
      const values = t.dtype === "int64" ? Array.from(t.data as BigInt64Array, Number) : t.dtype === "float16" ? Array.from(t.data as Uint16Array) : Array.from(t.data as Float32Array);
      if (t.dtype === "float16") assert.deepEqual(values, [0x3e00, 0xc080, 0x7bff], k);
      else assert.deepEqual(values, w.values, k);
    }
    // And what we write reads back the same (torch.load reads it too: checked with bench/reference by hand).
    const again = readTorchStateDict(writeTorchStateDict(sd), "rewritten");
    for (const [k, t] of sd) assert.deepEqual(Array.from(again.get(k)!.data as ArrayLike<number>), Array.from(t.data as ArrayLike<number>), k);
  });

  it("refuses a pickle that names posix.system, without running it", () => {
    assert.throws(() => readTorchStateDict(readFileSync(join(dir, "malicious.bin")), "malicious.bin"), (e: Error) => e instanceof PickleError && /malicious\.bin.*global "posix\.system" is not allowed/.test(e.message));
  });

  it("a corrupted file reads or fails with PickleError, never another exception (300 seeded byte corruptions)", () => {
    const good = readFileSync(join(HUB, "bert-tiny-seq_bn", "pytorch_adapter.bin"));
    let seed = 7;
    const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
    let refused = 0;
    for (let i = 0; i < 300; i++) {
      const bytes = Uint8Array.from(good);
      // Corrupt the pickle stream mostly (it leads the archive), sometimes anywhere.
      const span = i % 3 === 0 ? bytes.length : 1200;
      for (let k = 0; k < 1 + (i % 4); k++) bytes[Math.floor(rand() * span)] = Math.floor(rand() * 256);
      try {
        readTorchStateDict(bytes, "corrupt.bin");
      } catch (e) {
        assert.ok(e instanceof PickleError, `corruption ${i}: ${(e as Error).constructor.name}: ${(e as Error).message}`);
        refused++;
      }
    }
    assert.ok(refused > 50, `only ${refused} corruptions were noticed`);
  });

  it("refuses other globals, object-building opcodes, non-tensor values and legacy files by name", () => {
    const zip = (pkl: number[]) => writeZipWith(pkl);
    const text = (s: string) => Array.from(new TextEncoder().encode(s));
    // builtins.eval via STACK_GLOBAL
    assert.throws(() => readTorchStateDict(zip([0x80, 2, 0x8c, 8, ...text("builtins"), 0x8c, 4, ...text("eval"), 0x93, 0x2e]), "x"), /global "builtins\.eval" is not allowed/);
    // NEWOBJ
    assert.throws(() => readTorchStateDict(zip([0x80, 2, 0x7d, 0x29, 0x81, 0x2e]), "x"), /opcode 0x81 \(NEWOBJ\)/);
    // {"a": 1}: a value that is not a tensor
    assert.throws(() => readTorchStateDict(zip([0x80, 2, 0x7d, 0x8c, 1, 0x61, 0x4b, 1, 0x73, 0x2e]), "x"), /"a" is 1, not a tensor/);
    assert.throws(() => readTorchStateDict(Uint8Array.from([0x80, 2, 0x8a, 10]), "old.bin"), /legacy \(torch < 1\.6\)/);
    assert.throws(() => readTorchStateDict(Uint8Array.from([1, 2, 3]), "junk.bin"), /not a readable PyTorch zip archive/);
  });
});

/** A torch.save-shaped zip around a hand-written pickle. */
function writeZipWith(pkl: number[]): Uint8Array {
  return writeStoredZip([["archive/data.pkl", Uint8Array.from(pkl)], ["archive/version", new TextEncoder().encode("3\n")]]);
}

function pick<T extends object>(c: T, extra: object): Record<string, unknown> {
  const keys = [...Object.keys(extra), "mh_adapter", "output_adapter", "original_ln_before", "non_linearity", "reduction_factor", "init_weights", "is_parallel", "scaling"];
  return Object.fromEntries(keys.map((k) => [k, (c as Record<string, unknown>)[k]]));
}

function readTorchStateDictOrSafe(dir: string): Map<string, Tensor> {
  const bin = join(dir, "pytorch_adapter.bin");
  try {
    return readTorchStateDict(readFileSync(bin), bin);
  } catch {
    const bytes = readFileSync(join(dir, "adapter.safetensors"));
    const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
    const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n))) as Record<string, { shape: number[]; data_offsets: [number, number] }>;
    return new Map(
      Object.entries(header)
        .filter(([k]) => k !== "__metadata__")
        .map(([k, h]) => [k, float32(h.shape, new Float32Array(bytes.buffer.slice(bytes.byteOffset + 8 + n + h.data_offsets[0], bytes.byteOffset + 8 + n + h.data_offsets[1])))]),
    );
  }
}
