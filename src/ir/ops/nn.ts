// Neural-network ops with fused ONNX kernels: Softmax, LogSoftmax, LayerNormalization, Dropout.
import { type DType } from "../dtype.js";
import { type LoweredNode, type Node, type OpDef, type Value } from "../graph.js";
import { formatShape, normalizeAxis } from "../shape.js";
import { zeros } from "../tensor.js";
import { expectFloat, input } from "./define.js";
import { add, cast, div, erf, exp, mul, neg, sqrt, sub } from "./elementwise.js";
import { reduceMean, reduceSum } from "./reduce.js";

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

type DropoutAttrs = { ratio: number; seed: number };

/** Training-mode dropout: outputs Y and the keep-mask; inverted scaling by 1/(1-ratio). */
export const Dropout: OpDef<DropoutAttrs> = {
  type: "Dropout",
  attrs: { ratio: "float", seed: "int" },
  infer: (inputs, { ratio }) => {
    const x = input(inputs, 0);
    expectFloat(x);
    if (!(ratio >= 0 && ratio < 1)) throw new RangeError(`ratio must be in [0, 1), got ${ratio}`);
    return [
      { dtype: x.dtype, shape: x.shape },
      { dtype: "bool", shape: x.shape },
    ];
  },
  lower: (node, ctx) => {
    const { ratio, seed } = node.attrs as DropoutAttrs;
    const x = node.inputs[0]!;
    const attrs: LoweredNode["attrs"] = {};
    if (seed >= 0) attrs.seed = { kind: "int", value: seed };
    return { opType: "Dropout", inputs: [ctx.name(x), ctx.scalar(x.dtype, ratio), ctx.scalar("bool", 1)], attrs };
  },
  grad: ({ outputs: [, mask], dy: [g], attrs: { ratio } }) => [applyMask(g!, mask!, ratio)],
  // Recomputation must reuse the mask drawn in the forward pass, not draw a new one.
  recompute: (node: Node, [x]) => [applyMask(x!, node.outputs[1]!, (node.attrs as DropoutAttrs).ratio), node.outputs[1]!],
};

function applyMask(x: Value, mask: Value, ratio: number): Value {
  return mul(mul(x, cast(mask, x.dtype)), 1 / (1 - ratio));
}

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

/**
 * Dropout: identity when not training or when `ratio` is 0. `seed` < 0 draws from ORT's
 * generator; a fixed seed makes the masks of a session reproducible.
 */
export function dropout(x: Value, ratio: number, training: boolean, seed = -1): Value {
  if (!training || ratio === 0) return x;
  return x.graph.apply(Dropout, [x], { ratio, seed })[0]!;
}
