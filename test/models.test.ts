// Every architecture against an independent PyTorch implementation (bench/reference/
// tiny_checkpoints.py): tiny checkpoints in the Hugging Face layout, reference outputs in float64.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { compile } from "../src/runtime/session.js";
import { loadModel } from "../src/models/pretrained.js";
import { int64, type Tensor } from "../src/ir/tensor.js";
import { type Task } from "../src/models/task.js";

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
