// Task heads shared by the encoder architectures, with transformers' losses.
import { crossEntropy } from "../ir/composites/losses.js";
import { linear } from "../ir/composites/linear.js";
import { type Value } from "../ir/graph.js";
import { add, mul, reshape, split, squeeze } from "../ir/ops/index.js";
import { type ModelBuilder } from "./builder.js";
import { flattenTokens } from "./layers.js";
import { type ModelInputs, type ModelOutputs } from "./task.js";

/** Mean cross-entropy over tokens against `labels` [batch, seq] (-100 ignored); adds the input. */
export function tokenLoss(logits: Value, inputs: ModelInputs): Value {
  inputs.labels = logits.graph.input("labels", "int64", ["batch", "seq"]);
  return crossEntropy(flattenTokens(logits), reshape(inputs.labels, [-1]));
}

/** Sequence-level cross-entropy against `labels` [batch]; adds the input. */
export function sequenceLoss(logits: Value, inputs: ModelInputs): Value {
  inputs.labels = logits.graph.input("labels", "int64", ["batch"]);
  return crossEntropy(logits, inputs.labels);
}

/** A `classifier` over every token. */
export function tokenClassification(b: ModelBuilder, h: Value, classes: number, inputs: ModelInputs, outputs: ModelOutputs, withLoss: boolean): void {
  outputs.logits = b.linear("classifier", h, classes, h.shape[2] as number, { head: true });
  if (withLoss) outputs.loss = tokenLoss(outputs.logits, inputs);
}

/** `qa_outputs` -> start and end logits; the loss averages both (as transformers does). */
export function questionAnswering(b: ModelBuilder, h: Value, inputs: ModelInputs, outputs: ModelOutputs, withLoss: boolean): void {
  const [s, e] = split(b.linear("qa_outputs", h, 2, h.shape[2] as number, { head: true }), [1, 1], -1);
  outputs.start_logits = squeeze(s!, [2]);
  outputs.end_logits = squeeze(e!, [2]);
  if (!withLoss) return;
  const g = h.graph;
  inputs.start_positions = g.input("start_positions", "int64", ["batch"]);
  inputs.end_positions = g.input("end_positions", "int64", ["batch"]);
  outputs.loss = mul(add(crossEntropy(outputs.start_logits, inputs.start_positions), crossEntropy(outputs.end_logits, inputs.end_positions)), 0.5);
}

/** An output projection tied to the word embeddings (LM heads), through the linear hook. */
export function tiedDecoder(b: ModelBuilder, path: string, x: Value, weight: Value, bias: Value | undefined): Value {
  const base = (t: Value) => linear(t, weight, bias);
  return b.hooks.linear?.({ path, x, weight, bias, layout: "linear", base }) ?? base(x);
}
