// Scaled dot-product attention with additive and causal masks, and grouped-query heads.
import { type Value } from "../graph.js";
import { add, cast, concat, constantOfShape, cumsum, dropout, expand, less, matmul, mul, reshape, shapeOf, slice, softmax, sub, transpose, trilu, unsqueeze } from "../ops/index.js";

/** The value added to masked attention scores (large and finite, so fully masked rows stay finite). */
export function maskValue(dtype: string): number {
  return dtype === "float16" ? -65504 : -1e9;
}

/**
 * An additive causal mask [q, k] for the query/key lengths of `q` [.., S, D] and `k` [.., T, D]:
 * query i may see keys j <= i + (T - S) (so cached past keys are visible). T - S may be known only at
 * run time (lengths "seq" and "past+seq").
 */
export function causalMask(q: Value, k: Value): Value {
  const s = slice(shapeOf(q), [q.rank - 2], [q.rank - 1], [0]);
  const t = slice(shapeOf(k), [k.rank - 2], [k.rank - 1], [0]);
  const full = constantOfShape(concat([s, t], 0), maskValue(q.dtype), q.dtype);
  const [qLen, kLen] = [q.shape[q.rank - 2]!, k.shape[k.rank - 2]!];
  if (qLen === kLen) return trilu(full, true, 1);
  if (typeof qLen === "number" && typeof kLen === "number") return trilu(full, true, kLen - qLen + 1);
  return runtimeOffsetCausalMask(s, t, q.dtype);
}

/**
 * The causal mask when the offset T - S is known only at run time (a graph that serves both the
 * prompt pass, past = 0, and each cached step, past = T - S): key j is masked for query i when
 * j > i + (T - S). Built from the lengths alone, so no gradient flows through it (it is a
 * function of shapes, constant with respect to q and k), and the attention around it keeps its
 * ordinary gradient.
 */
function runtimeOffsetCausalMask(s: Value, t: Value, dtype: Value["dtype"]): Value {
  const arange = (n: Value) => cumsum(constantOfShape(n, 1, "int64"), 0, { exclusive: true });
  const lastVisible = add(unsqueeze(arange(s), [1]), sub(t, s)); // [S, 1]: i + (T - S)
  const future = less(lastVisible, unsqueeze(arange(t), [0])); // [S, T]
  return mul(cast(future, dtype), maskValue(dtype));
}

export interface AttentionOptions {
  /** Additive mask broadcastable to [batch, heads, q, k] (0 = attend, large negative = masked). */
  mask?: Value;
  /** Add a causal mask. */
  causal?: boolean;
  /** With `causal`: the first `causalPrefix` keys are a prefix every query may see. */
  causalPrefix?: number;
  /** Score scale; default 1/sqrt(head_dim). */
  scale?: number;
  /** Dropout on the attention probabilities (training only). */
  dropout?: { ratio: number; training: boolean };
}

/**
 * softmax(q k^T * scale + mask) v for q [B, H, S, D], k and v [B, Hkv, T, D]. When Hkv < H
 * (grouped-query attention) each key/value head serves H/Hkv query heads.
 */
export function scaledDotProductAttention(q: Value, k: Value, v: Value, opts: AttentionOptions = {}): Value {
  const heads = q.shape[1] as number;
  const kvHeads = k.shape[1] as number;
  if (heads % kvHeads !== 0) throw new RangeError(`attention: ${heads} query heads are not a multiple of ${kvHeads} key/value heads`);
  const kk = repeatKv(k, heads / kvHeads);
  const vv = repeatKv(v, heads / kvHeads);
  const d = q.shape[3] as number;
  let scores = mul(matmul(q, transpose(kk, [0, 1, 3, 2])), opts.scale ?? 1 / Math.sqrt(d));
  if (opts.mask) scores = add(scores, opts.mask);
  if (opts.causal) {
    const p = opts.causalPrefix ?? 0;
    const causal = causalMask(q, p ? slice(kk, [p], [Number.MAX_SAFE_INTEGER], [2]) : kk);
    const qLen = slice(shapeOf(q), [q.rank - 2], [q.rank - 1], [0]);
    scores = add(scores, p ? concat([constantOfShape(concat([qLen, q.graph.int64s([p])], 0), 0, q.dtype), causal], 1) : causal);
  }
  const probs = opts.dropout ? dropout(softmax(scores, -1), opts.dropout.ratio, opts.dropout.training) : softmax(scores, -1);
  return matmul(probs, vv);
}

/** [B, Hkv, T, D] -> [B, Hkv*n, T, D], each head repeated n times in place (as transformers' repeat_kv). */
function repeatKv(x: Value, n: number): Value {
  if (n === 1) return x;
  const [, h, , d] = x.shape;
  const e = expand(unsqueeze(x, [2]), x.graph.int64s([1, 1, n, 1, 1]));
  return reshape(e, [0, (h as number) * n, -1, d as number]);
}
