// Combining LoRA adapters into a new one (PEFT's add_weighted_adapter): "linear" (same ranks;
// A and B are weighted sums with sqrt(|w s|) each, sign on A), "cat" (the ranks stacked, exact:
// the result equals the adapters active together, weighted) and "svd" (the weighted sum of the
// updates, truncated to a rank by its top singular vectors). The new adapter has alpha = r.
import { seededRandom } from "../../ir/random.js";
import { AdapterConfigError } from "../tuner.js";
import { type LoraAdapter } from "./adapter.js";

export type Combination = "linear" | "cat" | "svd";

/** New [A, B] per layer path for the combined adapter, and its rank. */
export function combineLora(adapters: readonly LoraAdapter[], weights: readonly number[], combination: Combination, svdRank?: number): { rank: number; layers: Map<string, { A: Float32Array; B: Float32Array }> } {
  if (adapters.length === 0 || adapters.length !== weights.length) throw new AdapterConfigError(`add_weighted_adapter: ${adapters.length} adapters but ${weights.length} weights`);
  const paths = [...adapters[0]!.layers.keys()];
  for (const a of adapters) {
    if (a.config.use_dora) throw new AdapterConfigError(`add_weighted_adapter: DoRA adapter "${a.name}" cannot be combined`);
    if (a.layers.size !== paths.length || paths.some((p) => !a.layers.has(p))) throw new AdapterConfigError(`add_weighted_adapter: adapter "${a.name}" targets different modules than "${adapters[0]!.name}"`);
  }
  const ranks = (p: string) => adapters.map((a) => a.layers.get(p)!.r);
  const rank =
    combination === "linear"
      ? (() => {
          if (new Set(paths.flatMap(ranks)).size !== 1) throw new AdapterConfigError("add_weighted_adapter: linear combination needs the same r in every adapter and layer; use cat or svd");
          return adapters[0]!.config.r;
        })()
      : combination === "cat"
        ? Math.max(...paths.map((p) => ranks(p).reduce((x, y) => x + y, 0)))
        : (svdRank ?? Math.max(...paths.flatMap(ranks)));
  const layers = new Map<string, { A: Float32Array; B: Float32Array }>();
  for (const path of paths) {
    const { inFeatures: I, outFeatures: O } = adapters[0]!.layers.get(path)!;
    const A = new Float32Array(rank * I);
    const B = new Float32Array(O * rank);
    const parts = adapters.map((a, k) => ({ ...a.factors(path), scale: weights[k]! * a.layers.get(path)!.scaling }));
    if (combination === "linear") {
      for (const { A: a, B: b, scale } of parts) {
        const root = Math.sqrt(Math.abs(scale));
        a.forEach((v, i) => (A[i]! += Math.sign(scale) * root * v));
        b.forEach((v, i) => (B[i]! += root * v));
      }
    } else if (combination === "cat") {
      let offset = 0;
      for (const { A: a, B: b, r, scale } of parts) {
        a.forEach((v, i) => (A[offset * I + i] = scale * v));
        for (let o = 0; o < O; o++) for (let k = 0; k < r; k++) B[o * rank + offset + k] = b[o * r + k]!;
        offset += r;
      }
    } else {
      const delta = new Float64Array(O * I);
      for (const { A: a, B: b, r, scale } of parts) for (let o = 0; o < O; o++) for (let k = 0; k < r; k++) {
        const bv = scale * b[o * r + k]!;
        for (let i = 0; i < I; i++) delta[o * I + i]! += bv * a[k * I + i]!;
      }
      const { U, V } = truncatedSvd(delta, O, I, rank);
      A.set(V);
      B.set(U);
    }
    layers.set(path, { A, B });
  }
  return { rank, layers };
}

/**
 * Rank-k truncated SVD of M [m, n] by subspace iteration: returns U·S [m, k] and V^T [k, n] with
 * M ≈ (U S) V^T. (A dense SVD is not needed: LoRA ranks are small.)
 */
export function truncatedSvd(M: Float64Array, m: number, n: number, k: number): { U: Float32Array; V: Float32Array } {
  const rand = seededRandom(1234);
  let Q = Float64Array.from({ length: n * k }, () => rand() - 0.5); // [n, k], columns
  const mulM = (X: Float64Array) => {
    const Y = new Float64Array(m * k);
    for (let r = 0; r < m; r++) for (let c = 0; c < n; c++) {
      const v = M[r * n + c]!;
      if (v !== 0) for (let j = 0; j < k; j++) Y[r * k + j]! += v * X[c * k + j]!;
    }
    return Y;
  };
  const mulMt = (Y: Float64Array) => {
    const X = new Float64Array(n * k);
    for (let r = 0; r < m; r++) for (let c = 0; c < n; c++) {
      const v = M[r * n + c]!;
      if (v !== 0) for (let j = 0; j < k; j++) X[c * k + j]! += v * Y[r * k + j]!;
    }
    return X;
  };
  const orthonormalize = (X: Float64Array, rows: number) => {
    for (let j = 0; j < k; j++) {
      for (let p = 0; p < j; p++) {
        let d = 0;
        for (let r = 0; r < rows; r++) d += X[r * k + j]! * X[r * k + p]!;
        for (let r = 0; r < rows; r++) X[r * k + j]! -= d * X[r * k + p]!;
      }
      let norm = 0;
      for (let r = 0; r < rows; r++) norm += X[r * k + j]! ** 2;
      norm = Math.sqrt(norm) || 1;
      for (let r = 0; r < rows; r++) X[r * k + j]! /= norm;
    }
  };
  orthonormalize(Q, n);
  for (let it = 0; it < 60; it++) {
    Q = mulMt(mulM(Q));
    orthonormalize(Q, n);
  }
  // With V (= Q) spanning the top right-singular subspace, M ≈ (M V) V^T.
  const MV = mulM(Q);
  const U = Float32Array.from(MV);
  const V = new Float32Array(k * n);
  for (let j = 0; j < k; j++) for (let c = 0; c < n; c++) V[j * n + c] = Q[c * k + j]!;
  return { U, V };
}
