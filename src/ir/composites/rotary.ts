// Rotary position embeddings (Su et al. 2021, RoFormer) in the "rotate half" layout that
// Hugging Face's Llama family uses, including Llama-3 style frequency scaling.
import { type Value } from "../graph.js";
import { add, cast, concat, cos, mul, neg, sin, slice, unsqueeze } from "../ops/index.js";

/** Llama-3 `rope_scaling` (rope_type "llama3"). */
export interface Llama3RopeScaling {
  factor: number;
  low_freq_factor: number;
  high_freq_factor: number;
  original_max_position_embeddings: number;
}

/** Inverse frequencies theta^(-2i/d), with Llama-3 scaling when given. */
export function rotaryInverseFrequencies(dim: number, theta = 10000, scaling?: Llama3RopeScaling): Float64Array {
  const inv = Float64Array.from({ length: dim / 2 }, (_, i) => 1 / Math.pow(theta, (2 * i) / dim));
  if (!scaling) return inv;
  const { factor, low_freq_factor: low, high_freq_factor: high, original_max_position_embeddings: orig } = scaling;
  const lowWavelen = orig / low;
  const highWavelen = orig / high;
  return inv.map((f) => {
    const wavelen = (2 * Math.PI) / f;
    if (wavelen < highWavelen) return f;
    if (wavelen > lowWavelen) return f / factor;
    const smooth = (orig / wavelen - low) / (high - low);
    return (1 - smooth) * (f / factor) + smooth * f;
  });
}

/**
 * cos and sin tables [B, 1, S, dim] for int64 `positions` [B, S], to broadcast over heads.
 */
export function rotaryTables(positions: Value, invFreq: Float64Array, dtype: "float32" | "float64" = "float32"): { cos: Value; sin: Value } {
  const g = positions.graph;
  const inv = g.constant({ dtype, shape: [invFreq.length], data: dtype === "float64" ? Float64Array.from(invFreq) : Float32Array.from(invFreq) });
  const freqs = mul(unsqueeze(cast(positions, dtype), [-1]), inv); // [B, S, dim/2]
  const emb = unsqueeze(concat([freqs, freqs], -1), [1]); // [B, 1, S, dim]
  return { cos: cos(emb), sin: sin(emb) };
}

/** x * cos + rotate_half(x) * sin for x [B, H, S, dim]; rotate_half(x) = [-x2, x1]. */
export function applyRotary(x: Value, tables: { cos: Value; sin: Value }): Value {
  const dim = x.shape[x.rank - 1] as number;
  const x1 = slice(x, [0], [dim / 2], [-1]);
  const x2 = slice(x, [dim / 2], [dim], [-1]);
  const rotated = concat([neg(x2), x1], -1);
  return add(mul(x, cast(tables.cos, x.dtype)), mul(rotated, cast(tables.sin, x.dtype)));
}
