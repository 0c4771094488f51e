// Every architecture against an independent PyTorch implementation (bench/reference/
// tiny_checkpoints.py): tiny checkpoints in the Hugging Face layout, reference outputs in float64.
import assert from "node:assert/strict";
import { cpSync, mkdtempSync, readFileSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { compile } from "../src/runtime/session.js";
import { loadModel } from "../src/models/pretrained.js";
import { int64, tensor, type Tensor } from "../src/ir/tensor.js";
import { type Task } from "../src/models/task.js";
import { PeftModel } from "../src/peft/peft-model.js";
import { ForwardSessions } from "../src/models/forward.js";
import { seededRandom } from "../src/ir/random.js";

const FIXTURES = join(import.meta.dirname, "fixtures", "models");
type Nested = number | Nested[];
interface Reference {
  inputs: Record<string, number[][]>;
  outputs: Record<string, Nested>;
  greedy?: { prompt: number[]; tokens: number[] };
}

const flat = (x: Nested): number[] => (Array.isArray(x) ? x.flatMap(flat) : [x]);
const tensorOf = (rows: number[][]): Tensor<"int64"> => int64([rows.length, rows[0]!.length], rows.flat());

/** max |a - b| relative to max |b|. */
function relError(actual: ArrayLike<number>, expected: number[]): number {
  assert.equal(actual.length, expected.length, "element count");
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < expected.length; i++) {
    diff = Math.max(diff, Math.abs(Number(actual[i]) - expected[i]!));
    scale = Math.max(scale, Math.abs(expected[i]!));
  }
  return diff / scale;
}

const CASES: Record<string, { task: Task; output: string; ref: string }[]> = {
  "bert-tiny": [
    { task: "base", output: "last_hidden_state", ref: "last_hidden_state" },
    { task: "sequence-classification", output: "logits", ref: "sequence-classification" },
    { task: "token-classification", output: "logits", ref: "token-classification" },
    { task: "question-answering", output: "start_logits", ref: "start_logits" },
    { task: "question-answering", output: "end_logits", ref: "end_logits" },
    { task: "masked-lm", output: "logits", ref: "masked-lm" },
  ],
  "roberta-tiny": [
    { task: "base", output: "last_hidden_state", ref: "last_hidden_state" },
    { task: "sequence-classification", output: "logits", ref: "sequence-classification" },
    { task: "masked-lm", output: "logits", ref: "masked-lm" },
    { task: "question-answering", output: "start_logits", ref: "start_logits" },
  ],
  "distilbert-tiny": [
    { task: "base", output: "last_hidden_state", ref: "last_hidden_state" },
    { task: "sequence-classification", output: "logits", ref: "sequence-classification" },
    { task: "token-classification", output: "logits", ref: "token-classification" },
    { task: "question-answering", output: "end_logits", ref: "end_logits" },
    { task: "masked-lm", output: "logits", ref: "masked-lm" },
  ],
  ...Object.fromEntries(
    ["gpt2-tiny", "llama-tiny", "llama3-tiny", "qwen2-tiny"].map((m) => [
      m,
      [
        { task: "base", output: "last_hidden_state", ref: "last_hidden_state" },
        { task: "causal-lm", output: "logits", ref: "causal-lm" },
        { task: "sequence-classification", output: "logits", ref: "sequence-classification" },
      ],
    ]),
  ),
};

describe("architectures match the PyTorch reference (1e-4 relative)", () => {
  for (const [name, cases] of Object.entries(CASES)) {
    describe(name, () => {
      const ref = JSON.parse(readFileSync(join(FIXTURES, name, "reference.json"), "utf8")) as Reference;
      for (const c of cases) {
        it(`${c.task}: ${c.output}`, async () => {
          const model = await loadModel(join(FIXTURES, name), { task: c.task });
          const built = model.build();
          assert.deepEqual(built.newlyInitialized, [], "every head weight comes from the checkpoint");
          const out = built.outputs[c.output as keyof typeof built.outputs]!;
          const step = await compile({ out }, { threads: 1 });
          const feeds: Record<string, Tensor> = {};
          for (const input of step.inputNames) feeds[input] = tensorOf(ref.inputs[input]!);
          const res = await step.run(feeds);
          const err = relError(res.out!.data as Float32Array, flat(ref.outputs[c.ref]!));
          assert.ok(err < 1e-4, `relative error ${err}`);
          await step.release();
        });
      }
    });
  }
});

describe("task losses", () => {
  const logSoftmaxRow = (row: number[]) => {
    const m = Math.max(...row);
    const lse = m + Math.log(row.reduce((a, x) => a + Math.exp(x - m), 0));
    return row.map((x) => x - lse);
  };

  it("sequence classification: mean cross-entropy of the logits", async () => {
    const model = await loadModel(join(FIXTURES, "bert-tiny"), { task: "sequence-classification" });
    const built = model.build({ withLoss: true });
    const step = await compile({ loss: built.outputs.loss!, logits: built.outputs.logits! }, { threads: 1 });
    const batch = model.tokenizer!.encodeBatch(["the cat sat", "a dog on the mat"]);
    const out = await step.run({ ...model.prepareInputs(batch), labels: int64([2], [2, 0]) });
    const z = Array.from(out.logits!.data as Float32Array);
    const expected = -(logSoftmaxRow(z.slice(0, 3))[2]! + logSoftmaxRow(z.slice(3, 6))[0]!) / 2;
    assert.ok(Math.abs(Number(out.loss!.data[0]) - expected) < 1e-5);
  });

  it("causal LM: position t predicts label t+1, -100 ignored", async () => {
    const model = await loadModel(join(FIXTURES, "gpt2-tiny"), { task: "causal-lm" });
    const built = model.build({ withLoss: true });
    const step = await compile({ loss: built.outputs.loss!, logits: built.outputs.logits! }, { threads: 1 });
    const ids = [257, 276, 280, 294];
    const labels = [257, 276, -100, 294];
    const out = await step.run({ ...model.prepareInputs({ input_ids: int64([1, 4], ids) }), labels: int64([1, 4], labels) });
    const z = Array.from(out.logits!.data as Float32Array);
    const V = z.length / 4;
    // Pairs (position, target): (0, 276), (2, 294); position 1's target is ignored.
    const expected = -(logSoftmaxRow(z.slice(0, V))[276]! + logSoftmaxRow(z.slice(2 * V, 3 * V))[294]!) / 2;
    assert.ok(Math.abs(Number(out.loss!.data[0]) - expected) < 1e-5, `${out.loss!.data[0]} vs ${expected}`);
  });
});

const values = (t: Tensor | undefined) => Array.from(t!.data as Float32Array);

/** A copy of a fixture with its config.json edited. */
function withConfig(name: string, edit: (c: Record<string, unknown>) => void): string {
  const dir = mkdtempSync(join(tmpdir(), "peftjs-arch-"));
  cpSync(join(FIXTURES, name), dir, { recursive: true });
  const c = JSON.parse(readFileSync(join(dir, "config.json"), "utf8")) as Record<string, unknown>;
  edit(c);
  writeFileSync(join(dir, "config.json"), JSON.stringify(c));
  return dir;
}

describe("loadModel reads the head from config.json's architectures (transformers' Auto classes)", () => {
  it("each fixture gets the head its architectures entry names", async () => {
    const expected: Record<string, Task> = {
      "bert-tiny": "masked-lm", // BertForMaskedLM
      "roberta-tiny": "masked-lm",
      "distilbert-tiny": "masked-lm",
      "gpt2-tiny": "causal-lm", // GPT2LMHeadModel
      "llama-tiny": "causal-lm", // LlamaForCausalLM
      "qwen2-tiny": "causal-lm",
    };
    for (const [name, task] of Object.entries(expected)) assert.equal((await loadModel(join(FIXTURES, name))).task, task, name);
  });

  it("classification, token classification, QA and bare-model classes; no field means no head", async () => {
    const cases: [string, string, Task][] = [
      ["bert-tiny", "BertForSequenceClassification", "sequence-classification"],
      ["roberta-tiny", "RobertaForSequenceClassification", "sequence-classification"],
      ["llama-tiny", "LlamaForSequenceClassification", "sequence-classification"],
      ["bert-tiny", "BertForTokenClassification", "token-classification"],
      ["distilbert-tiny", "DistilBertForQuestionAnswering", "question-answering"],
      ["bert-tiny", "BertModel", "base"],
      ["gpt2-tiny", "GPT2Model", "base"],
    ];
    for (const [name, arch, task] of cases) assert.equal((await loadModel(withConfig(name, (c) => (c.architectures = [arch])))).task, task, arch);
    assert.equal((await loadModel(withConfig("bert-tiny", (c) => delete c.architectures))).task, "base");
  });

  it("a sequence classifier gets num_labels outputs; an explicit task wins over architectures", async () => {
    const dir = withConfig("bert-tiny", (c) => (c.architectures = ["BertForSequenceClassification"]));
    const model = await loadModel(dir);
    assert.deepEqual(model.config.id2label, { 0: "neg", 1: "neu", 2: "pos" });
    assert.deepEqual((await model.forward({ input_ids: [[2, 61, 72, 3]] })).logits!.shape, [1, 3]);
    assert.equal((await loadModel(dir, { task: "base" })).task, "base");
    await model.releaseSessions();
  });

  it("a saved model records its head in architectures and loads back with it", async () => {
    for (const [name, task, arch] of [["bert-tiny", "sequence-classification", "BertForSequenceClassification"], ["gpt2-tiny", "causal-lm", "GPT2LMHeadModel"], ["llama-tiny", "base", "LlamaModel"]] as const) {
      const dir = mkdtempSync(join(tmpdir(), "peftjs-saved-"));
      await (await loadModel(join(FIXTURES, name), { task })).save(dir);
      assert.deepEqual((JSON.parse(readFileSync(join(dir, "config.json"), "utf8")) as { architectures: string[] }).architectures, [arch]);
      assert.equal((await loadModel(dir)).task, task);
    }
  });

  it("a class without a peftjs head, or a head the family lacks, is an error naming it", async () => {
    await assert.rejects(loadModel(withConfig("bert-tiny", (c) => (c.architectures = ["BertForMultipleChoice"]))), /config.json: architectures\[0\] is "BertForMultipleChoice", a head peftjs does not build .*loadModel\(dir, \{ task \}\)/);
    await assert.rejects(loadModel(withConfig("gpt2-tiny", (c) => (c.architectures = ["GPT2ForTokenClassification"]))), /architectures\[0\] "GPT2ForTokenClassification" has a token-classification head, which peftjs does not build for gpt2 \(it builds base, causal-lm, sequence-classification\)/);
    await assert.rejects(loadModel(withConfig("bert-tiny", (c) => (c.architectures = "BertModel"))), /"architectures" must be a list of class names/);
    // Choosing a head by hand still loads such checkpoints.
    assert.equal((await loadModel(withConfig("bert-tiny", (c) => (c.architectures = ["BertForMultipleChoice"])), { task: "base" })).task, "base");
  });

  it("a config.json far larger than any config is refused from its size, before it is read", async () => {
    const dir = withConfig("bert-tiny", () => undefined);
    truncateSync(join(dir, "config.json"), 2 ** 30); // sparse: 1 GiB of zeros
    const before = process.memoryUsage().arrayBuffers;
    await assert.rejects(loadModel(dir), /config\.json: 1073741824 bytes, more than a config file holds/);
    assert.ok(process.memoryUsage().arrayBuffers - before < 64 * 2 ** 20, "not read into memory");
  });
});

/** Entries of a [batch, seq, ...] output at unpadded positions ([batch, ...] outputs: all). */
function unpadded(values: ArrayLike<number>, shape: readonly number[], mask: number[][]): number[] {
  const [batch, seq] = [mask.length, mask[0]!.length];
  const tokenLevel = shape.length >= 2 && shape[0] === batch && shape[1] === seq;
  const inner = values.length / (tokenLevel ? batch * seq : 1);
  return Array.from(values, Number).filter((_, i) => !tokenLevel || mask[Math.floor(i / inner / seq)]![Math.floor(i / inner) % seq] === 1);
}

describe("model.forward: one call, named and shaped outputs", () => {
  // The default head of each fixture (from architectures) against the PyTorch reference. Padded
  // positions are left out: their position ids are a convention (they are masked everywhere).
  const DEFAULT_HEADS: [string, keyof Reference["outputs"] & string, string][] = [
    ["bert-tiny", "logits", "masked-lm"],
    ["roberta-tiny", "logits", "masked-lm"],
    ["distilbert-tiny", "logits", "masked-lm"],
    ["gpt2-tiny", "logits", "causal-lm"],
    ["llama-tiny", "logits", "causal-lm"],
    ["qwen2-tiny", "logits", "causal-lm"],
  ];
  for (const [name, output, refName] of DEFAULT_HEADS) {
    it(`${name}: forward from plain arrays matches the reference ${refName} ${output}`, async () => {
      const ref = JSON.parse(readFileSync(join(FIXTURES, name, "reference.json"), "utf8")) as Reference;
      const model = await loadModel(join(FIXTURES, name));
      const { input_ids, attention_mask, token_type_ids } = ref.inputs;
      const out = await model.forward({ input_ids: input_ids!, attention_mask: attention_mask!, token_type_ids }, { threads: 1 });
      assert.deepEqual(Object.keys(out), [output]);
      const t = out[output as "logits"]!;
      assert.deepEqual(t.shape, [input_ids!.length, input_ids![0]!.length, model.config.vocabSize], "[batch, seq, vocab]");
      const expected = flat(ref.outputs[refName]!);
      assert.ok(relError(unpadded(t.data as Float32Array, t.shape, attention_mask!), unpadded(expected, t.shape, attention_mask!)) < 1e-4);
      await model.releaseSessions();
    });
  }

  it("QA gives start and end logits [batch, seq]; a bare model its last hidden state", async () => {
    const ref = JSON.parse(readFileSync(join(FIXTURES, "bert-tiny", "reference.json"), "utf8")) as Reference;
    const inputs = { input_ids: ref.inputs.input_ids!, attention_mask: ref.inputs.attention_mask!, token_type_ids: ref.inputs.token_type_ids! };
    const qa = await loadModel(join(FIXTURES, "bert-tiny"), { task: "question-answering" });
    const out = await qa.forward(inputs);
    assert.deepEqual(Object.keys(out).sort(), ["end_logits", "start_logits"]);
    assert.deepEqual(out.start_logits!.shape, [2, 13]);
    assert.ok(relError(out.end_logits!.data as Float32Array, flat(ref.outputs.end_logits!)) < 1e-4);
    const bare = await loadModel(join(FIXTURES, "bert-tiny"), { task: "base" });
    const hidden = (await bare.forward(inputs)).last_hidden_state!;
    assert.deepEqual(hidden.shape, [2, 13, bare.config.hidden]);
    assert.ok(relError(hidden.data as Float32Array, flat(ref.outputs.last_hidden_state!)) < 1e-4);
    await Promise.all([qa.releaseSessions(), bare.releaseSessions()]);
  });

  it("compiles once and reuses the session across calls and batch shapes; releaseSessions frees it", async () => {
    const model = await loadModel(join(FIXTURES, "gpt2-tiny"));
    const first = await model.forward({ input_ids: [[257, 276, 280]] });
    const again = await model.forward({ input_ids: int64([1, 3], [257, 276, 280]) });
    assert.deepEqual([...(again.logits!.data as Float32Array)], [...(first.logits!.data as Float32Array)]);
    const batch = model.tokenizer!.encodeBatch(["the cat sat on the mat", "a dog"]);
    assert.deepEqual((await model.forward(batch)).logits!.shape, [2, batch.input_ids.shape[1], model.config.vocabSize]);
    assert.deepEqual([model.sessions.compiled, model.sessions.size], [1, 1]);
    await model.releaseSessions();
    assert.equal(model.sessions.size, 0);
    await model.forward({ input_ids: [[257]] });
    assert.equal(model.sessions.compiled, 2, "compiled again after release");
    await model.releaseSessions();
  });

  it("concurrent first calls compile once; the least recently used session beyond the limit is released", async () => {
    const model = await loadModel(join(FIXTURES, "gpt2-tiny"));
    const sessions = new ForwardSessions(model, 1);
    const input = { input_ids: [[257, 276]] };
    const [a, b] = await Promise.all([sessions.run("x", input), sessions.run("x", input)]);
    assert.deepEqual(values(a.logits), values(b.logits));
    assert.equal(sessions.compiled, 1);
    await sessions.run("y", input);
    assert.deepEqual([sessions.compiled, sessions.size], [2, 1]);
    await sessions.run("x", input);
    assert.equal(sessions.compiled, 3, "x was evicted by y");
    await sessions.release();
  });

  it("takes int32 tensors and bigint rows; bad inputs are errors naming the input", async () => {
    const model = await loadModel(join(FIXTURES, "bert-tiny"), { task: "sequence-classification" });
    const a = await model.forward({ input_ids: tensor("int32", [1, 4], Int32Array.of(2, 61, 72, 3)) });
    const b = await model.forward({ input_ids: [[2n, 61n, 72n, 3n]], attention_mask: [[1, 1, 1, 1]] });
    assert.deepEqual([...(a.logits!.data as Float32Array)], [...(b.logits!.data as Float32Array)]);
    await assert.rejects(model.forward({ input_ids: [2, 61, 72] as unknown as number[][] }), /input_ids: expected rows \[batch, seq\] of integers; wrap one sequence as \[\[...ids\]\]/);
    await assert.rejects(model.forward({ input_ids: [[2, 61], [2]] }), /input_ids: row 1 has 1 entries, row 0 has 2/);
    await assert.rejects(model.forward({ input_ids: [[2, 1.5]] }), /input_ids\[0\]\[1\] = 1.5 is not an integer/);
    await assert.rejects(model.forward({ input_ids: [[2, 61]], attention_mask: [[1, 1, 1]] }), /attention_mask is \[1, 3\] but input_ids is \[1, 2\]/);
    await assert.rejects(model.forward({ input_ids: [[2, 9999]] }), /input_ids\[0\]\[1\] = 9999 is outside the vocabulary/);
    await model.releaseSessions();
  });
});

describe("PeftModel.forward: active adapters, any head, sessions follow adapter changes", () => {
  const PEFT_FIXTURES = join(import.meta.dirname, "fixtures", "peft");
  const maxDiff = (a: number[], b: number[]) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);
  const lora = { peft_type: "LORA", r: 2, lora_alpha: 4, target_modules: ["query", "value"] };
  const perturb = (peft: PeftModel, seed: number) => {
    const rand = seededRandom(seed);
    for (const t of peft.trainableTensors().values()) (t.data as Float32Array).forEach((v, i, d) => (d[i] = v + (rand() - 0.5) * 0.5));
  };

  it("a PEFT-written LoRA adapter reproduces PEFT's logits", async () => {
    const expected = JSON.parse(readFileSync(join(PEFT_FIXTURES, "bert-lora-seq-cls", "expected.json"), "utf8")) as { inputs: Record<string, number[][]>; expected: { logits: number[][] } };
    const base = await loadModel(join(FIXTURES, "bert-tiny"), { task: "sequence-classification" });
    const peft = await PeftModel.load(base, join(PEFT_FIXTURES, "bert-lora-seq-cls"));
    const { input_ids, attention_mask, token_type_ids } = expected.inputs;
    const { logits } = await peft.forward({ input_ids: input_ids!, attention_mask: attention_mask!, token_type_ids: token_type_ids! });
    assert.deepEqual(logits!.shape, [2, 3]);
    assert.ok(relError(logits!.data as Float32Array, expected.expected.logits.flat()) < 1e-4);
    await peft.releaseSessions();
  });

  it("switching, disabling, training in place and merging give the matching outputs, compiling only new graphs", async () => {
    const base = await loadModel(join(FIXTURES, "bert-tiny"), { task: "sequence-classification" });
    const inputs = base.tokenizer!.encodeBatch(["the cat sat on the mat", "a dog"]);
    const plain = values((await base.forward(inputs)).logits);
    const peft = PeftModel.create(base, lora, "a");
    perturb(peft, 1);
    const a = values((await peft.forward(inputs)).logits);
    assert.ok(maxDiff(a, plain) > 1e-3, "adapter a changes the logits");
    assert.ok(maxDiff(values((await peft.withAdaptersDisabled(() => peft.forward(inputs))).logits), plain) < 1e-6, "disabled = base");
    peft.addAdapter("b", lora);
    peft.setAdapter("b");
    perturb(peft, 2);
    const b = values((await peft.forward(inputs)).logits);
    assert.ok(maxDiff(b, a) > 1e-3, "adapter b is not adapter a");
    assert.equal(peft.sessions.compiled, 3, "a, disabled, b");
    peft.setAdapter("a");
    assert.deepEqual(values((await peft.forward(inputs)).logits), a, "back to a");
    assert.equal(peft.sessions.compiled, 3, "a's session is reused");
    perturb(peft, 3); // an optimizer step, in place
    const trained = values((await peft.forward(inputs)).logits);
    assert.ok(maxDiff(trained, a) > 1e-4, "in-place updates reach the session");
    assert.equal(peft.sessions.compiled, 3, "no recompile for new values");
    peft.merge();
    assert.ok(maxDiff(values((await peft.forward(inputs)).logits), trained) < 1e-5, "merged = unmerged");
    peft.unmerge();
    assert.deepEqual(values((await peft.forward(inputs)).logits), trained);
    assert.equal(peft.sessions.compiled, 4, "only the merge compiled");
    await Promise.all([peft.releaseSessions(), base.releaseSessions()]);
  });

  it("prompt tuning on a causal LM: logits include the virtual tokens, as in PEFT", async () => {
    const base = await loadModel(join(FIXTURES, "gpt2-tiny"));
    const peft = PeftModel.create(base, { peft_type: "PROMPT_TUNING", num_virtual_tokens: 4 });
    const { logits } = await peft.forward({ input_ids: [[257, 276, 280]] });
    assert.deepEqual(logits!.shape, [1, 4 + 3, base.config.vocabSize]);
    await peft.releaseSessions();
  });

  it("an adapter whose task_type needs another head says which head and how to load it", async () => {
    const mlm = await loadModel(join(FIXTURES, "bert-tiny")); // BertForMaskedLM
    await assert.rejects(
      PeftModel.load(mlm, join(PEFT_FIXTURES, "bert-lora-seq-cls")),
      /adapter_config.json: task_type "SEQ_CLS" needs a sequence-classification head, but .*bert-tiny was loaded with masked-lm \(architectures in its config.json: BertForMaskedLM\); load it with loadModel\(dir, \{ task: "sequence-classification" \}\)/,
    );
    const gpt2 = await loadModel(join(FIXTURES, "gpt2-tiny"), { task: "sequence-classification" });
    await assert.rejects(PeftModel.load(gpt2, join(PEFT_FIXTURES, "gpt2-lora-causal-lm")), /task_type "CAUSAL_LM" needs a causal-lm head, but .* was loaded with sequence-classification/);
  });
});
