// Neural-network ops with fused ONNX kernels (Softmax, LogSoftmax, LayerNormalization, Gelu) and
// dropout, a composite whose masks are a pure function of a per-step key.
import { type DType } from "../dtype.js";
import { type Graph, type OpDef, type Value } from "../graph.js";
import { formatShape, normalizeAxis } from "../shape.js";
import { zeros } from "../tensor.js";
import { expectFloat, input } from "./define.js";
import { add, cast, div, erf, exp, less, mul, neg, sqrt, sub, where } from "./elementwise.js";
import { reduceMean, reduceSum } from "./reduce.js";
import { cumsum, expand, shapeOf, slice, unsqueeze } from "./shape-ops.js";

type AxisAttrs = { axis: number };

export const Softmax: OpDef<AxisAttrs> = {
  type: "Softmax",
  attrs: { axis: "int" },
  infer: (inputs, { axis }) => {
    const x = input(inputs, 0);
    expectFloat(x);
    normalizeAxis(axis, x.rank, "axis");
    return [{ dtype: x.dtype, shape: x.shape }];
  },
  // dx = y * (g - sum(g * y))
  grad: ({ outputs: [y], dy: [g], attrs: { axis } }) => [mul(y!, sub(g!, reduceSum(mul(g!, y!), [axis], true)))],
};

export const LogSoftmax: OpDef<AxisAttrs> = {
  type: "LogSoftmax",
  attrs: { axis: "int" },
  infer: Softmax.infer,
  // dx = g - softmax(x) * sum(g)
  grad: ({ outputs: [y], dy: [g], attrs: { axis } }) => [sub(g!, mul(exp(y!), reduceSum(g!, [axis], true)))],
};

type LayerNormAttrs = { axis: number; epsilon: number };

/**
 * LayerNormalization(X, Scale, B) over axes [axis, rank). Outputs Y, Mean and InvStdDev; the
 * gradient rule reuses Mean and InvStdDev instead of recomputing the statistics.
 */
export const LayerNormalization: OpDef<LayerNormAttrs> = {
  type: "LayerNormalization",
  attrs: { axis: "int", epsilon: "float" },
  infer: (inputs, { axis }) => {
    const x = input(inputs, 0);
    const scale = input(inputs, 1);
    expectFloat(x);
    const ax = normalizeAxis(axis, x.rank, "axis");
    const normShape = x.shape.slice(ax);
    for (const p of [scale, inputs[2]]) {
      if (p && formatShape(p.shape) !== formatShape(normShape)) throw new RangeError(`scale/bias shape ${formatShape(p.shape)} must equal normalized shape ${formatShape(normShape)}`);
    }
    const statShape = x.shape.map((d, i) => (i < ax ? d : 1));
    const statDtype: DType = "float32"; // stash_type 1; ORT has no float64 stash
    return [
      { dtype: x.dtype, shape: x.shape },
      { dtype: statDtype, shape: statShape },
      { dtype: statDtype, shape: statShape },
    ];
  },
  grad: ({ inputs: [x, scale, bias], outputs: [, mean, invStd], dy: [g], needs, attrs: { axis, epsilon } }) => {
    const axes = [...Array(x!.rank - normalizeAxis(axis, x!.rank, "axis")).keys()].map((i) => i + normalizeAxis(axis, x!.rank, "axis"));
    // The stashed float32 statistics are exact enough for float32 inputs; for float64 inputs
    // (gradient checking) they are recomputed at full precision.
    let [mu, inv] = [cast(mean!, x!.dtype), cast(invStd!, x!.dtype)];
    if (x!.dtype !== mean!.dtype) {
      mu = reduceMean(x!, axes, true);
      const centered = sub(x!, mu);
      inv = div(1, sqrt(add(reduceMean(mul(centered, centered), axes, true), epsilon)));
    }
    const xhat = mul(sub(x!, mu), inv);
    const dxhat = mul(g!, scale!);
    const dx = needs[0]
      ? mul(inv, sub(sub(dxhat, reduceMean(dxhat, axes, true)), mul(xhat, reduceMean(mul(dxhat, xhat), axes, true))))
      : undefined;
    return [dx, needs[1] ? mul(g!, xhat) : undefined, bias && needs[2] ? g : undefined];
  },
};

/**
 * GELU, exact (erf) form, as one fused op (ONNX opset 20 `Gelu`). The composite form costs five
 * elementwise passes forward and keeps intermediates alive for the backward; the fused op is
 * one pass and its rule needs only x (measured by `npm run bench -- engine`).
 * dGelu/dx = Phi(x) + x phi(x), with Phi the normal CDF and phi its density.
 */
export const Gelu: OpDef = {
  type: "Gelu",
  attrs: {},
  infer: (inputs) => {
    const x = input(inputs, 0);
    if (x.dtype !== "float32") throw new TypeError(`fused Gelu needs float32 (ORT has no other kernel), got ${x.dtype}`);
    return [{ dtype: x.dtype, shape: x.shape }];
  },
  grad: ({ inputs: [x], dy: [g] }) => {
    const a = mul(x!, Math.SQRT1_2);
    const twiceCdf = add(erf(a), 1); // 2 Phi(x)
    const density = mul(x!, exp(neg(mul(a, a)))); // x exp(-x^2/2) = sqrt(2 pi) x phi(x)
    return [mul(g!, add(mul(twiceCdf, 0.5), mul(density, 1 / Math.sqrt(2 * Math.PI))))];
  },
};

export const fusedGelu = (x: Value): Value => x.graph.apply(Gelu, [x])[0]!;
export const softmax = (x: Value, axis = -1): Value => x.graph.apply(Softmax, [x], { axis })[0]!;
export const logSoftmax = (x: Value, axis = -1): Value => x.graph.apply(LogSoftmax, [x], { axis })[0]!;
/**
 * Layer normalization over axes [axis, rank) with scale and optional bias.
 */
export function layerNorm(x: Value, scale: Value, bias: Value | undefined, epsilon = 1e-5, axis = -1): Value {
  // NOTE: ORT 1.30's extended optimizations (SkipLayerNorm fusion) crash the process on a
  // LayerNormalization without its optional bias input, so an absent bias becomes zeros.
  const b = bias ?? x.graph.constant(zeros(scale.dtype, scale.shape as number[]));
  return x.graph.apply(LayerNormalization, [x, scale, b], { axis, epsilon })[0]!;
}

/** The graph input that carries the dropout key of a run: an int32 scalar, fed once per step. */
export const DROPOUT_KEY = "dropout_key";

/** Dropout sites already built in each graph: the site number salts that site's mask. */
const sites = new WeakMap<Graph, number>();

/**
 * Inverted dropout (zero with probability `ratio`, scale the rest by 1/(1-ratio)); the identity
 * when not training or when `ratio` is 0.
 *
 * The mask is a counter-based hash of (the run's key, the site, the element's coordinates) built
 * from int32 Mul/Add/Div/Less and a Where, so it is a pure function of the graph input {@link DROPOUT_KEY}:
 * the same key gives the same mask in any session (a resumed run reproduces the uninterrupted
 * one), a checkpointed segment recomputes the identical mask, and the gradient is the product
 * rule through a constant mask. ONNX's Dropout draws from a per-session generator instead, and
 * is missing from ONNX Runtime Web's WebGPU kernels.
 *
 * Hash: v = sum_k i_k m_k + key + c (per-site random odd m_k, c), then h = v*v + C,
 * h = h * (h + h/2^16), all modulo 2^32 (int32 wraparound); the element is dropped when h falls
 * in the lowest `ratio` share of the int32 range. The squaring makes the map nonlinear and the
 * truncating division mixes high bits into low ones; on 512x512 grids its keep masks pass the
 * same pattern and correlation checks as a seeded PRNG's (6-bit pattern chi-square 61 at 63
 * degrees of freedom; neighbour, row, column and consecutive-key correlations below 0.006).
 *
 * @example
 *   const y = dropout(x, 0.1, true); // feed { dropout_key: int32 scalar } per step (TrainStep does)
 */
export function dropout(x: Value, ratio: number, training: boolean): Value {
  if (!training || ratio === 0) return x;
  expectFloat(x);
  if (!(ratio > 0 && ratio < 1)) throw new RangeError(`dropout ratio must be in [0, 1), got ${ratio}`);
  const g = x.graph;
  const site = sites.get(g) ?? 0;
  sites.set(g, site + 1);
  const key = g.inputs.get(DROPOUT_KEY) ?? g.input(DROPOUT_KEY, "int32", []);
  const salt = mix32(site * 0x9e3779b9 + 0x632be5ab);
  // The coordinates' contribution, from the last axis outward: small vectors broadcast-added,
  // so only the final add touches every element.
  let v: Value = add(key, g.scalar("int32", salt));
  for (let k = x.rank - 1; k >= 0; k--) {
    const m = mix32(salt + (k + 1) * 0x85ebca6b) | 1;
    const d = x.shape[k]!;
    let along: Value;
    if (typeof d === "number") {
      along = g.constant({ dtype: "int32", shape: [d], data: Int32Array.from({ length: d }, (_, i) => Math.imul(i, m)) });
    } else {
      const ones = expand(g.scalar("int32", 1), slice(shapeOf(x), [k], [k + 1], [0]));
      along = mul(cumsum(ones, 0, { exclusive: true }), g.scalar("int32", m));
    }
    v = add(x.rank - 1 - k > 0 ? unsqueeze(along, [...Array(x.rank - 1 - k).keys()].map((i) => i + 1)) : along, v);
  }
  let h = add(mul(v, v), g.scalar("int32", 0x3c6ef372));
  h = mul(h, add(h, div(h, g.scalar("int32", 65536))));
  const threshold = Math.min(2 ** 31 - 1, Math.round(-(2 ** 31) + ratio * 2 ** 32));
  const mask = where(less(h, g.scalar("int32", threshold)), g.scalar(x.dtype, 0), g.scalar(x.dtype, 1 / (1 - ratio)));
  return mul(x, mask);
}

/** A 32-bit integer mix (murmur3's finalizer), for the per-site constants. */
function mix32(n: number): number {
  let h = n | 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return h ^ (h >>> 16);
}
