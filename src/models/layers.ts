// Building blocks shared by the architectures: masks, head reshapes, embeddings lookups.
import { type Value } from "../ir/graph.js";
import { add, cast, constantOfShape, cumsum, mul, reshape, shapeOf, slice, sub, transpose, unsqueeze } from "../ir/ops/index.js";
import { maskValue } from "../ir/composites/attention.js";

/** HF attention_mask [batch, seq] (1 = attend) -> additive float mask [batch, 1, 1, seq]. */
export function additiveMask(attentionMask: Value, dtype: "float32" | "float64" = "float32"): Value {
  const m = cast(attentionMask, dtype);
  return unsqueeze(mul(sub(1, m), maskValue(dtype)), [1, 2]);
}

/** [batch, seq, heads*dim] -> [batch, heads, seq, dim]. */
export function splitHeads(x: Value, heads: number, dim: number): Value {
  return transpose(reshape(x, [0, 0, heads, dim]), [0, 2, 1, 3]);
}

/** [batch, heads, seq, dim] -> [batch, seq, heads*dim]. */
export function mergeHeads(x: Value, heads: number, dim: number): Value {
  return reshape(transpose(x, [0, 2, 1, 3]), [0, 0, heads * dim]);
}

/** The first token's vector: [batch, seq, hidden] -> [batch, hidden]. */
export function firstToken(x: Value): Value {
  return reshape(slice(x, [0], [1], [1]), [0, x.shape[2] as number]);
}

/** [batch, seq, hidden] -> [batch*seq, hidden] and back, for per-token losses. */
export function flattenTokens(x: Value): Value {
  return reshape(x, [-1, x.shape[x.rank - 1] as number]);
}

/**
 * Position ids computed inside the graph from the attention mask [batch, seq], for runtimes that
 * feed none (transformers.js): offset..offset+seq-1 as [1, seq] (BERT), or with `paddingIdx`
 * RoBERTa's rule, padding_idx + 1 + offset + the number of attended tokens before, and padding_idx
 * at padding (transformers' create_position_ids_from_input_ids, on the mask as
 * PretrainedModel.positionIds). `offset`: cached positions before the tokens (a prefix adapter's).
 */
export function positionsFromMask(attentionMask: Value, paddingIdx?: number, offset = 0): Value {
  if (paddingIdx !== undefined) return add(mul(add(cumsum(attentionMask, 1), offset), attentionMask), paddingIdx);
  const seq = slice(shapeOf(attentionMask), [1], [2], [0]);
  const arange = unsqueeze(cumsum(constantOfShape(seq, 1, "int64"), 0, { exclusive: true }), [0]);
  return offset ? add(arange, offset) : arange;
}
