// Reductions over chosen axes. In the IR the axes are an attribute; they lower to the axes
// input that ONNX reductions take since opset 18.
import { type LoweredNode, type OpDef, type Value } from "../graph.js";
import { isStatic, normalizeAxis, type Dim } from "../shape.js";
import { numel } from "../tensor.js";
import { cast, div, equal, mul } from "./elementwise.js";
import { input } from "./define.js";
import { expand, shapeOf, size, unsqueeze } from "./shape-ops.js";

type ReduceAttrs = { axes: readonly number[]; keepdims: number };

function reduceInfer(inputs: readonly (Value | undefined)[], { axes, keepdims }: ReduceAttrs) {
  const x = input(inputs, 0);
  const ax = new Set(axes.map((a) => normalizeAxis(a, x.rank, "axes")));
  const shape: Dim[] = [];
  x.shape.forEach((d, i) => {
    if (!ax.has(i)) shape.push(d);
    else if (keepdims) shape.push(1);
  });
  return [{ dtype: x.dtype, shape }];
}

function reduceLower(node: { op: OpDef; inputs: readonly (Value | undefined)[]; attrs: object }, ctx: Parameters<NonNullable<OpDef["lower"]>>[1]): LoweredNode {
  const { axes, keepdims } = node.attrs as ReduceAttrs;
  return { opType: node.op.type, inputs: [ctx.name(node.inputs[0]), ctx.int64s(axes)], attrs: { keepdims: { kind: "int", value: keepdims } } };
}

/** dy brought back to the input's shape (re-inserting reduced axes, then broadcasting). */
function spread(x: Value, dy: Value, { axes, keepdims }: ReduceAttrs): Value {
  const kept = keepdims ? dy : unsqueeze(dy, axes.map((a) => normalizeAxis(a, x.rank, "axes")));
  return expand(kept, shapeOf(x));
}

export const ReduceSum: OpDef<ReduceAttrs> = {
  type: "ReduceSum",
  attrs: { axes: "ints", keepdims: "int" },
  infer: reduceInfer,
  lower: reduceLower,
  grad: ({ inputs: [x], dy: [g], attrs }) => [spread(x!, g!, attrs)],
};

export const ReduceMean: OpDef<ReduceAttrs> = {
  type: "ReduceMean",
  attrs: { axes: "ints", keepdims: "int" },
  infer: reduceInfer,
  lower: reduceLower,
  grad: ({ inputs: [x], outputs: [y], dy: [g], attrs }) => [div(spread(x!, g!, attrs), reducedCount(x!, y!))],
};

/** Max over axes; the gradient is shared equally between tied maxima. */
export const ReduceMax: OpDef<ReduceAttrs> = {
  type: "ReduceMax",
  attrs: { axes: "ints", keepdims: "int" },
  infer: reduceInfer,
  lower: reduceLower,
  grad: ({ inputs: [x], outputs: [y], dy: [g], attrs }) => {
    const isMax = cast(equal(x!, spread(x!, y!, attrs)), x!.dtype);
    const ties = x!.graph.apply(ReduceSum, [isMax], attrs)[0]!;
    return [mul(isMax, spread(x!, div(g!, ties), attrs))];
  },
};

/** Number of elements reduced into each output element, as a scalar of x's dtype. */
function reducedCount(x: Value, y: Value): Value {
  if (isStatic(x.shape) && isStatic(y.shape)) return x.graph.scalar(x.dtype, numel(x.shape) / numel(y.shape));
  return cast(div(size(x), size(y)), x.dtype);
}

const reduce = (op: OpDef<ReduceAttrs>) => (x: Value, axes: readonly number[], keepdims = true): Value => x.graph.apply(op, [x], { axes: [...axes], keepdims: keepdims ? 1 : 0 })[0]!;
export const reduceSum = reduce(ReduceSum);
export const reduceMean = reduce(ReduceMean);
export const reduceMax = reduce(ReduceMax);

/** Sum of `x` over all elements. Convenience for losses and tests. */
export function sumAll(x: Value): Value {
  return reduceSum(x, [...x.shape.keys()], false);
}
