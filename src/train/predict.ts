// Predictions from a model's outputs, per task: a class with probabilities, a label per token, or
// an answer span. Evaluation (trainer.ts) scores these against the targets; `predict` runs a
// model over examples that have no targets (the CLI's `peftjs predict`).
import { type Tensor } from "../ir/tensor.js";
import { type Task } from "../models/task.js";
import { type PeftModel } from "../peft/peft-model.js";
import { collate, epochBatches, type Example } from "./data.js";

export type Prediction =
  /** Sequence classification: the argmax class and the softmax over classes. */
  | { label: number; probabilities: number[] }
  /** Token classification: the argmax label of every token of the example (ids order). */
  | { tokenLabels: number[] }
  /**
   * Extractive QA: the best context span (token indices into ids, end >= start), its text, its
   * probability within the window and its start + end logit (comparable across the windows of one
   * long context: see bestWindows).
   */
  | { start: number; end: number; answer: string; score: number; logit: number };

/** Tasks whose outputs decode into predictions (the others are language modeling). */
export const PREDICTION_TASKS: readonly Task[] = ["sequence-classification", "token-classification", "question-answering"];

/** Longest answer considered, in tokens (transformers' run_qa max_answer_length). */
const MAX_ANSWER_TOKENS = 30;

/**
 * The context span [start, end] (indices into the example's ids) with the highest start + end
 * logit, end >= start and at most MAX_ANSWER_TOKENS long. Logits rows are [batch, shift + seq].
 */
export function bestSpan(e: Example, startLogits: Tensor, endLogits: Tensor, row: number, shift = 0): [number, number] {
  const width = startLogits.shape[1] as number;
  const s = startLogits.data as Float32Array;
  const t = endLogits.data as Float32Array;
  const from = e.contextStart ?? 0;
  let best: [number, number] = [0, -1];
  let score = -Infinity;
  for (let i = from; i < e.ids.length; i++) {
    for (let j = i; j < Math.min(e.ids.length, i + MAX_ANSWER_TOKENS); j++) {
      const v = s[row * width + shift + i]! + t[row * width + shift + j]!;
      if (v > score) [score, best] = [v, [i, j]];
    }
  }
  return best;
}

function softmax(z: ArrayLike<number>): number[] {
  let m = -Infinity;
  for (let i = 0; i < z.length; i++) m = Math.max(m, z[i]!);
  const e = Array.from(z, (x) => Math.exp(x - m));
  const sum = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / sum);
}

const argmax = (z: ArrayLike<number>) => {
  let best = 0;
  for (let i = 1; i < z.length; i++) if (z[i]! > z[best]!) best = i;
  return best;
};

/**
 * Decode one batch's outputs (`logits`, or `start_logits` + `end_logits`) into a prediction per
 * example. `shift` is the number of virtual tokens the adapters prepend (prompt / P-tuning).
 */
export function decodePredictions(model: PeftModel, examples: readonly Example[], out: Readonly<Record<string, Tensor>>): Prediction[] {
  const task = model.base.task;
  const shift = model.virtualTokens;
  if (task === "sequence-classification" && out.logits) {
    const z = out.logits.data as Float32Array;
    const C = z.length / examples.length;
    return examples.map((_, r) => {
      const row = z.subarray(r * C, (r + 1) * C);
      return { label: argmax(row), probabilities: softmax(row) };
    });
  }
  if (task === "token-classification" && out.logits) {
    const z = out.logits.data as Float32Array;
    const [, width, C] = out.logits.shape as [number, number, number];
    return examples.map((e, r) => ({ tokenLabels: e.ids.map((_, t) => argmax(z.subarray((r * width + t + shift) * C, (r * width + t + shift + 1) * C))) }));
  }
  if (task === "question-answering" && out.start_logits && out.end_logits) {
    const width = out.start_logits.shape[1] as number;
    return examples.map((e, r) => {
      const [start, end] = bestSpan(e, out.start_logits!, out.end_logits!, r, shift);
      const row = (t: Tensor) => (t.data as Float32Array).subarray(r * width + shift, r * width + shift + e.ids.length);
      const found = end >= start;
      const [zs, ze] = [row(out.start_logits!), row(out.end_logits!)];
      const score = found ? softmax(zs)[start]! * softmax(ze)[end]! : 0;
      const answer = found ? model.base.tokenizer!.decode(e.ids.slice(start, end + 1), { skipSpecialTokens: true }).trim() : "";
      return { start, end, answer, score, logit: found ? zs[start]! + ze[end]! : -Infinity };
    });
  }
  throw new Error(`no predictions for task "${task}" (outputs: ${Object.keys(out).join(", ")})`);
}

/**
 * One prediction per QA record: of the windows of a long context (examples sharing a `group`),
 * the one whose best span has the highest start + end logit (transformers' run_qa
 * post-processing). Returns [example index, prediction] pairs in record order.
 */
export function bestWindows(examples: readonly Example[], predictions: readonly Prediction[]): [number, Extract<Prediction, { answer: string }>][] {
  const best = new Map<number | string, [number, Extract<Prediction, { answer: string }>]>();
  predictions.forEach((p, i) => {
    if (!("answer" in p)) throw new Error(`example ${i} has no answer span prediction`);
    const key = examples[i]!.group ?? `example ${i}`;
    const seen = best.get(key);
    if (!seen || p.logit > seen[1].logit) best.set(key, [i, p]);
  });
  return [...best.values()];
}

/**
 * Run the model (its active adapters) over examples, in order and without targets, dropout off,
 * through `model.forward` (whose session stays cached on the model; `releaseSessions()` frees it).
 *
 * @example
 *   const { examples } = classificationExamples(records, model.tokenizer!, { maxLength: 128, labelNames: peft.labelNames() });
 *   const [first] = await predict(peft, examples); // { label, probabilities }
 */
export async function predict(model: PeftModel, examples: readonly Example[], opts: { batchSize?: number; threads?: number } = {}): Promise<Prediction[]> {
  const tok = model.base.tokenizer;
  const padId = tok?.padTokenId ?? tok?.eosTokenId ?? 0;
  const predictions: Prediction[] = [];
  for (const b of epochBatches(examples, opts.batchSize ?? 16, 0, 0, { shuffle: false, groupByLength: false })) {
    const batch = b.map((i) => examples[i]!);
    const { input_ids, attention_mask, token_type_ids } = collate(batch, padId);
    const out = await model.forward({ input_ids, attention_mask, token_type_ids }, opts.threads ? { threads: opts.threads } : {});
    predictions.push(...decodePredictions(model, batch, out as Record<string, Tensor>));
  }
  return predictions;
}
