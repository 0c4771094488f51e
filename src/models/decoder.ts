// What GPT-2 and the Llama family share: causal attention with an optional key/value cache,
// the causal-LM loss (labels shifted inside the model, as transformers does) and last-token
// pooling for sequence classification.
import { scaledDotProductAttention } from "../ir/composites/attention.js";
import { crossEntropy } from "../ir/composites/losses.js";
import { type Graph, type Value } from "../ir/graph.js";
import { dimAdd } from "../ir/shape.js";
import { add, concat, constantOfShape, gatherElements, expand, reduceSum, reshape, shapeOf, slice, squeeze, sub, unsqueeze } from "../ir/ops/index.js";
import { type ModelBuilder } from "./builder.js";
import { sequenceLoss } from "./heads.js";
import { additiveMask, flattenTokens } from "./layers.js";
import { type ModelInputs, type ModelOutputs } from "./task.js";

const END = Number.MAX_SAFE_INTEGER;

export interface DecoderOptions {
  /** Build the incremental decode graph: one new token per row, past keys/values as inputs. */
  withPast?: boolean;
  /** Also output each layer's keys/values (present.{i}.key / .value) for the cache. */
  returnPresent?: boolean;
  /** Compute logits for the last position only (generation). */
  lastTokenLogits?: boolean;
  /**
   * One graph for the prompt pass and every cached step (the layout transformers.js and optimum
   * use): `seq` new tokens, past keys/values of a run-time length (0 on the prompt pass), the mask
   * over past + new tokens, present keys/values out; the causal mask's offset is the past length.
   */
  cacheAware?: boolean;
  /**
   * Added to the position_ids fed in: positions a prefix adapter occupies before the tokens, for
   * runtimes that count positions from the mask alone (transformers.js).
   */
  positionOffset?: number;
}

/** Standard decoder inputs; with `withPast` the sequence axis of new tokens is 1. */
export function decoderInputs(g: Graph, opts: DecoderOptions): ModelInputs {
  const seq = opts.withPast ? 1 : "seq";
  return {
    input_ids: g.input("input_ids", "int64", ["batch", seq]),
    // With a cache the mask covers past and new tokens (past + seq, the concatenated key length).
    attention_mask: g.input("attention_mask", "int64", ["batch", opts.withPast || opts.cacheAware ? dimAdd("past", seq) : "seq"]),
    position_ids: opts.positionOffset ? add(g.input("position_ids", "int64", ["batch", seq]), opts.positionOffset) : g.input("position_ids", "int64", ["batch", seq]),
  };
}

/**
 * Self-attention over [batch, heads, seq, dim] queries with keys/values of `kvHeads`, using and
 * extending the cache of layer `i` when the graph has one.
 */
export class CausalAttention {
  readonly mask: Value;
  readonly present: Record<string, Value> = {};

  constructor(
    private readonly b: ModelBuilder,
    inputs: ModelInputs,
    private readonly kvShape: { kvHeads: number; headDim: number },
    private readonly opts: DecoderOptions,
  ) {
    this.mask = additiveMask(inputs.attention_mask);
  }

  attend(i: number, path: string, q: Value, k: Value, v: Value, dropoutRatio: number): Value {
    const g = this.b.graph;
    const cached = this.opts.withPast || this.opts.cacheAware;
    if (cached) {
      const shape = ["batch", this.kvShape.kvHeads, "past", this.kvShape.headDim] as const;
      k = concat([g.input(`past_key_values.${i}.key`, "float32", shape), k], 2);
      v = concat([g.input(`past_key_values.${i}.value`, "float32", shape), v], 2);
    }
    if (this.opts.returnPresent || cached) {
      this.present[`present.${i}.key`] = k;
      this.present[`present.${i}.value`] = v;
    }
    let mask: Value | undefined = this.mask;
    let prefix = 0;
    const hooked = this.b.hooks.keyValue?.({ path, layer: i, k, v, mask });
    if (hooked) ({ k, v, mask, prefix = 0 } = hooked);
    // One new token sees every cached position: only the padding mask applies. With `cacheAware`
    // the causal mask's offset is the past length, known at run time.
    return scaledDotProductAttention(q, k, v, { mask, causal: !this.opts.withPast, causalPrefix: prefix, dropout: { ratio: dropoutRatio, training: this.b.training } });
  }
}

/** The causal-LM loss: position t predicts label t+1; labels of -100 are ignored. */
export function causalLmLoss(logits: Value, labels: Value): Value {
  const g = labels.graph;
  const next = slice(labels, [1], [END], [1]);
  const padShape = concat([slice(shapeOf(labels), [0], [1], [0]), g.int64s([1])], 0);
  const shifted = concat([next, constantOfShape(padShape, -100, "int64")], 1);
  return crossEntropy(flattenTokens(logits), reshape(shifted, [-1]));
}

/** Logits of the last attended token of each row ([batch, seq, C] -> [batch, C]); right padding. */
export function lastTokenPool(logits: Value, attentionMask: Value): Value {
  const last = sub(reduceSum(attentionMask, [1], true), 1); // [batch, 1]
  const classes = logits.shape[2] as number;
  const idx = expand(unsqueeze(last, [2]), concat([slice(shapeOf(logits), [0], [1], [0]), logits.graph.int64s([1, classes])], 0));
  return squeeze(gatherElements(logits, idx, 1), [1]);
}

/** Add the loss for causal-LM or sequence classification when requested. */
export function decoderHead(outputs: ModelOutputs, inputs: ModelInputs, task: string, withLoss: boolean): void {
  if (!withLoss || !outputs.logits) return;
  const g = inputs.input_ids.graph;
  if (task === "causal-lm") outputs.loss = causalLmLoss(outputs.logits, (inputs.labels = g.input("labels", "int64", ["batch", "seq"])));
  else if (task === "sequence-classification") outputs.loss = sequenceLoss(outputs.logits, inputs);
}

/** The last position of [batch, seq, hidden]. */
export function lastPosition(h: Value): Value {
  return slice(h, [-1], [END], [1]);
}
