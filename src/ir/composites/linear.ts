// Linear layers on Hugging Face weights.
import { type Value } from "../graph.js";
import { concat, gemm, reshape, shapeOf, slice } from "../ops/index.js";

/**
 * y = x W^T + b for x [..., in] and a Hugging Face `nn.Linear` weight W [out, in]. Lowered as
 * Gemm(transB=1) on the flattened input so ORT uses the weight as stored.
 */
export function linear(x: Value, weight: Value, bias?: Value): Value {
  const [out, inFeatures] = weight.shape;
  if (x.shape[x.rank - 1] !== inFeatures) {
    throw new RangeError(`linear: input ${x} has last dim ${x.shape[x.rank - 1]}, weight ${weight} expects ${inFeatures}`);
  }
  return matmulFlat(x, (x2) => gemm(x2, weight, { transB: 1 }, bias), out!);
}

/**
 * y = x W + b for a GPT-2 `Conv1D` weight W [in, out] (transformers stores it transposed).
 */
export function conv1d(x: Value, weight: Value, bias?: Value): Value {
  const [inFeatures, out] = weight.shape;
  if (x.shape[x.rank - 1] !== inFeatures) {
    throw new RangeError(`conv1d: input ${x} has last dim ${x.shape[x.rank - 1]}, weight ${weight} expects ${inFeatures}`);
  }
  return matmulFlat(x, (x2) => gemm(x2, weight, {}, bias), out!);
}

/** Apply a 2-D op to x flattened to [rows, in] and restore the leading dims. */
function matmulFlat(x: Value, op: (x2: Value) => Value, out: number | string): Value {
  if (x.rank === 2) return op(x);
  const y2 = op(reshape(x, [-1, x.shape[x.rank - 1] as number]));
  const lead = slice(shapeOf(x), [0], [x.rank - 1], [0]);
  return reshape(y2, concat([lead, x.graph.int64s([out as number])], 0));
}
