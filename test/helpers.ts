// Test helpers: seeded random tensors.
import { seededRandom } from "../src/autodiff/gradcheck.js";
import { type Tensor } from "../src/ir/tensor.js";

/** A float64 tensor of uniform values in [lo, hi), reproducible from `seed`. */
export function randomF64(shape: readonly number[], seed: number, lo = -1, hi = 1): Tensor<"float64"> {
  const rand = seededRandom(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  return { dtype: "float64", shape: [...shape], data: Float64Array.from({ length: n }, () => lo + (hi - lo) * rand()) };
}

/** A float32 tensor of uniform values in [lo, hi). */
export function randomF32(shape: readonly number[], seed: number, lo = -1, hi = 1): Tensor<"float32"> {
  const t = randomF64(shape, seed, lo, hi);
  return { dtype: "float32", shape: t.shape, data: Float32Array.from(t.data) };
}

/** Values bounded away from zero (for Relu kinks, divisions, Max ties). */
export function awayFromZero(shape: readonly number[], seed: number): Tensor<"float64"> {
  const t = randomF64(shape, seed, 0.2, 1);
  const rand = seededRandom(seed + 99);
  t.data.forEach((v, i) => (t.data[i] = rand() < 0.5 ? -v : v));
  return t;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(Number(a[i]) - Number(b[i])));
  return m;
}
