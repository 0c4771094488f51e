// Composite ops (built from primitives) through the same finite-difference conformance runner.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { checkGradients } from "../../autodiff/gradcheck.js";
import { compile } from "../../runtime/session.js";
import { buildGraph, runGradCase, type GradCase } from "../../../test/conformance.js";
import { maxAbsDiff, randomF64 } from "../../../test/helpers.js";
import { Graph } from "../graph.js";
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

describe("causal mask with a run-time offset (one graph for the prompt pass and cached steps)", () => {
  // q [1, 2, 2, 4] against keys of a symbolic length: the offset T - S exists only at run time.
  const symbolic = () => {
    const g = new Graph();
    const q = g.input("q", "float64", [1, 2, 2, 4]);
    const k = g.input("k", "float64", [1, 2, "total", 4]);
    const v = g.input("v", "float64", [1, 2, "total", 4]);
    return { g, q, k, v };
  };
  const feeds = (t: number) => ({ q: r([1, 2, 2, 4], 30), k: r([1, 2, t, 4], 31), v: r([1, 2, t, 4], 32) });

  it("equals the static causal mask for every key length, including past = 0", async () => {
    const { q, k, v } = symbolic();
    const step = await compile({ out: scaledDotProductAttention(q, k, v, { causal: true }) }, { threads: 1 });
    for (const t of [2, 3, 5]) {
      const f = feeds(t);
      const { vals } = buildGraph(f);
      const ref = await compile({ out: scaledDotProductAttention(vals.q!, vals.k!, vals.v!, { causal: true }) }, { threads: 1 });
      const [got, want] = [(await step.run(f)).out!, (await ref.run(f)).out!];
      assert.ok(maxAbsDiff(got.data as Float64Array, want.data as Float64Array) < 1e-12, `keys ${t}`);
      await ref.release();
    }
    // It is causal: the first query of a 2-token step after 3 cached keys does not see the last key.
    const f = feeds(5);
    const moved = { ...f, v: { ...f.v, data: Float64Array.from(f.v.data, (x, i) => (i % 20 >= 16 ? x + 100 : x)) } };
    const [a, b] = [(await step.run(f)).out!.data as Float64Array, (await step.run(moved)).out!.data as Float64Array];
    assert.ok(Math.abs(a[0]! - b[0]!) < 1e-12 && Math.abs(a[4]! - b[4]!) > 1);
    await step.release();
  });

  it("has the gradient of the attention around it (finite differences)", async () => {
    const { g, q, k, v } = symbolic();
    const out = scaledDotProductAttention(q, k, v, { causal: true });
    const res = await checkGradients(g, out, feeds(4), ["q", "k", "v"]);
    assert.ok(res.checked > 0);
    assert.deepEqual(res.mismatches, []);
  });
});
