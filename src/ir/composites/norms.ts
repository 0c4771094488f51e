// Normalizations composed from primitives.
import { type Value } from "../graph.js";
import { add, cast, div, mul, reduceMean, sqrt } from "../ops/index.js";

/**
 * RMSNorm (Zhang & Sennrich 2019; Llama): x / sqrt(mean(x^2) + eps) * weight, over the last
 * axis, computed in float32 (or float64) like transformers' LlamaRMSNorm.
 */
export function rmsNorm(x: Value, weight: Value, epsilon = 1e-6): Value {
  const compute = x.dtype === "float64" ? "float64" : "float32";
  const xf = cast(x, compute);
  const normed = div(xf, sqrt(add(reduceMean(mul(xf, xf), [-1], true), epsilon)));
  return mul(weight, cast(normed, x.dtype));
}
