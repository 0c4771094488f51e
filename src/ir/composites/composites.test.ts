// Composite ops (built from primitives) through the same finite-difference conformance runner.
import { describe, it } from "node:test";
import { runGradCase, type GradCase } from "../../../test/conformance.js";
import { randomF64 } from "../../../test/helpers.js";
import { int64, tensor } from "../tensor.js";
import { DROPOUT_KEY, dropout, mul, reshape } from "../ops/index.js";
import { gelu, geluTanh, silu } from "./activations.js";
import { causalMask, scaledDotProductAttention } from "./attention.js";
import { conv1d, linear } from "./linear.js";
import { crossEntropy } from "./losses.js";
import { rmsNorm } from "./norms.js";
import { applyRotary, rotaryInverseFrequencies, rotaryTables } from "./rotary.js";

const r = randomF64;
const f32Erf = { eps: 1e-3, rtol: 1e-3, atol: 1e-4 }; // erf runs in float32 (no float64 kernel in ORT)

const CASES: GradCase[] = [
  { name: "gelu (erf)", inputs: { x: r([8], 1, -3, 3) }, build: ({ x }) => gelu(x!), opts: f32Erf },
  { name: "gelu (tanh)", inputs: { x: r([8], 2, -3, 3) }, build: ({ x }) => geluTanh(x!) },
  { name: "silu", inputs: { x: r([8], 3, -3, 3) }, build: ({ x }) => silu(x!) },
  { name: "rmsNorm", inputs: { x: r([2, 3, 4], 4), w: r([4], 5) }, build: ({ x, w }) => rmsNorm(x!, w!, 1e-6) },
  { name: "linear on [B,S,in] with bias", inputs: { x: r([2, 3, 4], 6), w: r([5, 4], 7), b: r([5], 8) }, build: ({ x, w, b }) => linear(x!, w!, b!) },
  { name: "conv1d (GPT-2 [in,out] weight)", inputs: { x: r([2, 3, 4], 9), w: r([4, 5], 10), b: r([5], 11) }, build: ({ x, w, b }) => conv1d(x!, w!, b!) },
  {
    name: "attention, causal + additive mask",
    inputs: { q: r([2, 2, 3, 4], 12), k: r([2, 2, 3, 4], 13), v: r([2, 2, 3, 4], 14), m: tensor("float64", [2, 1, 1, 3], Float64Array.of(0, 0, 0, 0, 0, -1e9)) },
    wrt: ["q", "k", "v"],
    build: ({ q, k, v, m }) => scaledDotProductAttention(q!, k!, v!, { mask: m!, causal: true }),
  },
  {
    name: "attention, grouped-query (4 query heads, 2 kv heads)",
    inputs: { q: r([1, 4, 3, 2], 15), k: r([1, 2, 3, 2], 16), v: r([1, 2, 3, 2], 17) },
    build: ({ q, k, v }) => scaledDotProductAttention(q!, k!, v!, { causal: true }),
  },
  {
    name: "attention, longer keys (cached prefix) with causal offset",
    inputs: { q: r([1, 1, 2, 2], 18), k: r([1, 1, 4, 2], 19), v: r([1, 1, 4, 2], 20) },
    build: ({ q, k, v }) => scaledDotProductAttention(q!, k!, v!, { mask: causalMask(q!, k!) }),
  },
  {
    name: "rotary embeddings (Llama-3 scaling)",
    inputs: { x: r([1, 2, 3, 8], 21), p: int64([1, 3], [0, 5, 9]) },
    wrt: ["x"],
    build: ({ x, p }) => applyRotary(x!, rotaryTables(p!, rotaryInverseFrequencies(8, 500000, { factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 16 }), "float64")),
  },
  {
    name: "cross-entropy with ignored labels",
    inputs: { z: r([4, 5], 22, -2, 2), y: int64([4], [1, -100, 4, 0]) },
    wrt: ["z"],
    build: ({ z, y }) => reshape(crossEntropy(z!, y!), [1]),
  },
  {
    // A fixed key fixes the mask, so dropout is a deterministic function to difference.
    name: "dropout (fixed key) in a nonlinear function",
    inputs: { x: r([3, 8], 23), [DROPOUT_KEY]: tensor("int32", [], Int32Array.of(5)) },
    wrt: ["x"],
    build: ({ x }) => mul(dropout(mul(x!, x!), 0.4, true), x!),
  },
  {
    name: "attention with dropout on its probabilities (fixed key)",
    inputs: { q: r([1, 2, 3, 2], 24), k: r([1, 2, 3, 2], 25), v: r([1, 2, 3, 2], 26), [DROPOUT_KEY]: tensor("int32", [], Int32Array.of(9)) },
    wrt: ["q", "k", "v"],
    build: ({ q, k, v }) => scaledDotProductAttention(q!, k!, v!, { dropout: { ratio: 0.3, training: true } }),
  },
];

describe("composite ops (float64 finite differences)", () => {
  for (const c of CASES) it(c.name, () => runGradCase(c));
});
