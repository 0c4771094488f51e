// Ops that move data without arithmetic: shapes, reshapes, transposes, slicing, joining,
// gathering and scattering. Shapes of symbolic size flow through `known` contents of int64
// shape vectors, so `reshape(dy, shapeOf(x))` infers x's (symbolic) shape exactly.
import { type DType } from "../dtype.js";
import { type LoweredNode, type LoweringContext, type Node, type OpDef, type Value } from "../graph.js";
import { broadcastShapes, dimAdd, dimProduct, dimQuotient, formatShape, isStatic, normalizeAxis, type Dim } from "../shape.js";
import { input } from "./define.js";

const INT64_MAX = Number.MAX_SAFE_INTEGER; // large enough for "to the end" in Slice

function knownOf(v: Value, what: string): readonly Dim[] {
  if (!v.known) throw new Error(`${what} must be a constant or derived from shapeOf(); got ${v}`);
  return v.known;
}

const passThrough = (node: Node, ctx: LoweringContext, attrs: LoweredNode["attrs"] = {}, extra: string[] = []): LoweredNode => ({
  opType: node.op.type,
  inputs: [...node.inputs.map((v) => ctx.name(v)), ...extra],
  attrs,
});

/** The shape of a tensor as an int64 vector (its contents known symbolically). */
export const Shape: OpDef = {
  type: "Shape",
  attrs: {},
  infer: (inputs) => {
    const x = input(inputs, 0);
    return [{ dtype: "int64", shape: [x.rank], known: x.shape }];
  },
  grad: "nondifferentiable",
};

/** The element count of a tensor as an int64 scalar. */
export const Size: OpDef = {
  type: "Size",
  attrs: {},
  infer: () => [{ dtype: "int64", shape: [] }],
  grad: "nondifferentiable",
};

export const Reshape: OpDef = {
  type: "Reshape",
  attrs: {},
  infer: (inputs) => {
    const x = input(inputs, 0);
    const target = knownOf(input(inputs, 1), "Reshape target");
    const out: Dim[] = target.map((d, i) => (d === 0 ? (x.shape[i] ?? NaN) : d));
    const unknown = out.indexOf(-1);
    if (out.some((d, i) => d === -1 && i !== unknown)) throw new RangeError("at most one -1 in a Reshape target");
    if (unknown >= 0) {
      const rest = dimProduct(out.filter((_, i) => i !== unknown));
      const q = dimQuotient(dimProduct(x.shape), rest);
      if (q === undefined) throw new RangeError(`cannot reshape ${formatShape(x.shape)} to ${formatShape(target)}`);
      out[unknown] = q;
    } else if (dimQuotient(dimProduct(x.shape), dimProduct(out)) !== 1) {
      throw new RangeError(`cannot reshape ${formatShape(x.shape)} to ${formatShape(target)}: element counts differ`);
    }
    return [{ dtype: x.dtype, shape: out, known: x.known && x.rank === 1 && out.length === 1 ? x.known : undefined }];
  },
  grad: ({ inputs: [x], dy: [g] }) => [reshape(g!, shapeOf(x!)), undefined],
};

export const Transpose: OpDef<{ perm: readonly number[] }> = {
  type: "Transpose",
  attrs: { perm: "ints" },
  infer: (inputs, { perm }) => {
    const x = input(inputs, 0);
    if (perm.length !== x.rank || [...perm].sort().some((p, i) => p !== i)) throw new RangeError(`perm [${perm}] is not a permutation of rank ${x.rank}`);
    return [{ dtype: x.dtype, shape: perm.map((p) => x.shape[p]!) }];
  },
  grad: ({ dy: [g], attrs: { perm } }) => {
    const inv: number[] = [];
    perm.forEach((p, i) => (inv[p] = i));
    return [transpose(g!, inv)];
  },
};

export const Concat: OpDef<{ axis: number }> = {
  type: "Concat",
  attrs: { axis: "int" },
  infer: (inputs, { axis }) => {
    const xs = inputs.map((_, i) => input(inputs, i));
    const first = xs[0]!;
    const ax = normalizeAxis(axis, first.rank, "axis");
    for (const x of xs) {
      if (x.dtype !== first.dtype || x.rank !== first.rank || x.shape.some((d, i) => i !== ax && d !== first.shape[i])) {
        throw new RangeError(`inputs differ outside axis ${axis}: ${xs.map((v) => `${v.dtype}${formatShape(v.shape)}`).join(", ")}`);
      }
    }
    const shape = [...first.shape];
    shape[ax] = xs.map((x) => x.shape[ax]!).reduce(dimAdd);
    const known = first.rank === 1 && xs.every((x) => x.known) ? xs.flatMap((x) => x.known!) : undefined;
    return [{ dtype: first.dtype, shape, known }];
  },
  grad: ({ inputs, dy: [g], attrs: { axis }, needs }) => {
    const ax = normalizeAxis(axis, g!.rank, "axis");
    let offset: number | undefined = 0;
    return inputs.map((x, i) => {
      const d = x!.shape[ax]!;
      const last = i === inputs.length - 1;
      if (offset === undefined || (typeof d !== "number" && !last)) {
        throw new RangeError(`Concat gradient needs static sizes on axis ${axis} except for the last input; got ${inputs.map((v) => formatShape(v!.shape)).join(", ")}`);
      }
      const start = offset;
      offset = typeof d === "number" ? offset + d : undefined;
      return needs[i] ? slice(g!, [start], [last ? INT64_MAX : start + (d as number)], [ax]) : undefined;
    });
  },
};

type SliceAttrs = { starts: readonly number[]; ends: readonly number[]; axes: readonly number[]; steps: readonly number[] };

function sliceDim(d: Dim, start: number, end: number, step: number): Dim {
  if (typeof d === "number") {
    const clamp = (i: number, lo: number, hi: number) => Math.min(Math.max(i < 0 ? i + d : i, lo), hi);
    const s = step > 0 ? clamp(start, 0, d) : clamp(start, -1, d - 1);
    const e = step > 0 ? clamp(end, 0, d) : clamp(end, -1, d - 1);
    return Math.max(0, Math.ceil((e - s) / step));
  }
  if (start === 0 && end >= INT64_MAX && step === 1) return d;
  if (start >= 0 && end >= 0 && end < INT64_MAX && step === 1) return end - start; // assumes d >= end
  if (start < 0 && end >= INT64_MAX && step === 1) return -start; // the last -start elements (assumes d >= -start)
  if (start >= 0 && end >= INT64_MAX && step === 1) return dimAdd(d, -start);
  return `${d}[${start}:${end >= INT64_MAX ? "" : end}:${step}]`;
}

export const Slice: OpDef<SliceAttrs> = {
  type: "Slice",
  attrs: { starts: "ints", ends: "ints", axes: "ints", steps: "ints" },
  infer: (inputs, { starts, ends, axes, steps }) => {
    const x = input(inputs, 0);
    const shape = [...x.shape];
    let known = x.known ? [...x.known] : undefined;
    axes.forEach((a, i) => {
      const ax = normalizeAxis(a, x.rank, "axes");
      const [s, e, st] = [starts[i]!, ends[i]!, steps[i] ?? 1];
      if (st === 0) throw new RangeError("Slice step must not be 0");
      shape[ax] = sliceDim(shape[ax]!, s, e, st);
      if (known && x.rank === 1) {
        const n = known.length;
        const norm = (j: number) => Math.min(Math.max(j < 0 ? j + n : j, 0), n);
        known = st === 1 ? known.slice(norm(s), norm(e)) : undefined;
      }
    });
    return [{ dtype: x.dtype, shape, known }];
  },
  lower: (node, ctx) => {
    const { starts, ends, axes, steps } = node.attrs as SliceAttrs;
    return passThrough(node, ctx, {}, [ctx.int64s(starts), ctx.int64s(ends), ctx.int64s(axes), ctx.int64s(steps)]);
  },
  grad: ({ inputs: [x], dy: [g], attrs: { starts, ends, axes, steps } }) => {
    const r = x!.rank;
    const pads = new Array<number>(2 * r).fill(0);
    // Axes of symbolic size: the end padding is computed at run time from x's shape.
    const dynamicEnds = new Map<number, number>();
    axes.forEach((a, i) => {
      const ax = normalizeAxis(a, r, "axes");
      const d = x!.shape[ax]!;
      if ((steps[i] ?? 1) !== 1) throw new RangeError(`Slice gradient needs step 1 on axis ${a}`);
      if (typeof d !== "number") {
        if (starts[i]! < 0 || ends[i]! < 0) throw new RangeError(`Slice gradient on symbolic axis ${a} of ${formatShape(x!.shape)} needs non-negative bounds`);
        pads[ax] = starts[i]!;
        dynamicEnds.set(ax, ends[i]!);
        return;
      }
      const s = Math.min(Math.max(starts[i]! < 0 ? starts[i]! + d : starts[i]!, 0), d);
      const e = Math.min(Math.max(ends[i]! < 0 ? ends[i]! + d : ends[i]!, s), d);
      pads[ax] = s;
      pads[ax + r] = d - e;
    });
    if (dynamicEnds.size === 0) return [pad(g!, pads)];
    const g0 = g!.graph;
    const parts = pads.map((p, i) => {
      const end = i >= r ? dynamicEnds.get(i - r) : undefined;
      if (end === undefined) return g0.int64s([p]);
      const size = slice(shapeOf(x!), [i - r], [i - r + 1], [0]);
      return end >= INT64_MAX ? g0.int64s([0]) : g0.apply(SUB_INT, [size, g0.int64s([end])])[0]!;
    });
    return [g0.apply(PadTo, [g!, concat(parts, 0), x!])[0]!];
  },
};

/** Constant zero padding; `pads` is ONNX's [begin_0, ..., begin_n, end_0, ..., end_n]. */
export const Pad: OpDef<{ pads: readonly number[] }> = {
  type: "Pad",
  attrs: { pads: "ints" },
  infer: (inputs, { pads }) => {
    const x = input(inputs, 0);
    if (pads.length !== 2 * x.rank) throw new RangeError(`pads has ${pads.length} entries, expected ${2 * x.rank}`);
    const shape = x.shape.map((d, i) => {
      const extra = pads[i]! + pads[i + x.rank]!;
      return extra === 0 ? d : dimAdd(d, extra);
    });
    return [{ dtype: x.dtype, shape }];
  },
  lower: (node, ctx) => passThrough(node, ctx, { mode: { kind: "string", value: "constant" } }, [ctx.int64s((node.attrs as { pads: number[] }).pads)]),
  grad: ({ inputs: [x], dy: [g], attrs: { pads } }) => {
    const r = x!.rank;
    const axes = [...Array(r).keys()].filter((i) => pads[i] !== 0 || pads[i + r] !== 0);
    const outShape = g!.shape;
    return [slice(g!, axes.map((i) => pads[i]!), axes.map((i) => (outShape[i] as number) - pads[i + r]!), axes)];
  },
};

/** Pad with run-time pads to the (symbolic) shape of a reference value: the Slice gradient. */
const PadTo: OpDef = {
  type: "Pad",
  attrs: {},
  infer: (inputs) => {
    const like = input(inputs, 2);
    return [{ dtype: input(inputs, 0).dtype, shape: like.shape }];
  },
  lower: (node, ctx) => ({ opType: "Pad", inputs: [ctx.name(node.inputs[0]), ctx.name(node.inputs[1])], attrs: { mode: { kind: "string", value: "constant" } } }),
  grad: "nondifferentiable",
};

/** int64 subtraction for shape arithmetic. */
const SUB_INT: OpDef = {
  type: "Sub",
  attrs: {},
  infer: (inputs) => [{ dtype: "int64", shape: input(inputs, 0).shape }],
  grad: "nondifferentiable",
};

export const Split: OpDef<{ axis: number; split: readonly number[] }> = {
  type: "Split",
  attrs: { axis: "int", split: "ints" },
  infer: (inputs, { axis, split }) => {
    const x = input(inputs, 0);
    const ax = normalizeAxis(axis, x.rank, "axis");
    const total = split.reduce((a, b) => a + b, 0);
    if (x.shape[ax] !== total) throw new RangeError(`split sizes [${split}] sum to ${total}, axis ${axis} has size ${x.shape[ax]}`);
    return split.map((n) => ({ dtype: x.dtype, shape: x.shape.map((d, i) => (i === ax ? n : d)) }));
  },
  lower: (node, ctx) => {
    const { axis, split } = node.attrs as { axis: number; split: number[] };
    return passThrough(node, ctx, { axis: { kind: "int", value: axis } }, [ctx.int64s(split)]);
  },
  grad: ({ outputs, dy, attrs: { axis } }) => [concat(outputs.map((y, i) => dy[i] ?? zerosLike(y)), axis)],
};

export const Gather: OpDef<{ axis: number }> = {
  type: "Gather",
  attrs: { axis: "int" },
  infer: (inputs, { axis }) => {
    const data = input(inputs, 0);
    const idx = input(inputs, 1);
    if (idx.dtype !== "int64" && idx.dtype !== "int32") throw new TypeError(`indices must be int64 or int32, got ${idx.dtype}`);
    const ax = normalizeAxis(axis, data.rank, "axis");
    const shape = [...data.shape.slice(0, ax), ...idx.shape, ...data.shape.slice(ax + 1)];
    let known: Dim[] | undefined;
    if (data.rank === 1 && data.known && idx.known) known = idx.known.map((i) => data.known![Number(i) < 0 ? Number(i) + data.known!.length : Number(i)]!);
    else if (data.rank === 1 && data.known && idx.source.kind === "constant" && idx.rank === 0) known = [data.known[Number(idx.source.tensor.data[0])]!];
    return [{ dtype: data.dtype, shape, known }];
  },
  grad: ({ inputs: [data, idx], dy: [g], attrs: { axis } }) => {
    if (normalizeAxis(axis, data!.rank, "axis") !== 0) throw new RangeError(`Gather gradient is implemented for axis 0 (embedding lookups), got axis ${axis}`);
    return [scatterNDAdd(zerosLike(data!), unsqueeze(idx!, [idx!.rank]), g!), undefined];
  },
};

export const GatherElements: OpDef<{ axis: number }> = {
  type: "GatherElements",
  attrs: { axis: "int" },
  infer: (inputs) => {
    const data = input(inputs, 0);
    const idx = input(inputs, 1);
    if (idx.rank !== data.rank) throw new RangeError(`indices rank ${idx.rank} differs from data rank ${data.rank}`);
    return [{ dtype: data.dtype, shape: idx.shape }];
  },
  grad: ({ inputs: [data, idx], dy: [g], attrs: { axis } }) => [scatterElementsAdd(zerosLike(data!), idx!, g!, axis), undefined],
};

/** ScatterND with `reduction="add"`: used by gradient rules of gathers. */
export const ScatterND: OpDef = {
  type: "ScatterND",
  attrs: {},
  infer: (inputs) => {
    const data = input(inputs, 0);
    return [{ dtype: data.dtype, shape: data.shape }];
  },
  lower: (node, ctx) => passThrough(node, ctx, { reduction: { kind: "string", value: "add" } }),
};

/** ScatterElements with `reduction="add"`: used by gradient rules of gathers. */
export const ScatterElements: OpDef<{ axis: number }> = {
  type: "ScatterElements",
  attrs: { axis: "int" },
  infer: (inputs) => {
    const data = input(inputs, 0);
    return [{ dtype: data.dtype, shape: data.shape }];
  },
  lower: (node, ctx) => passThrough(node, ctx, { axis: { kind: "int", value: (node.attrs as { axis: number }).axis }, reduction: { kind: "string", value: "add" } }),
};

export const Expand: OpDef = {
  type: "Expand",
  attrs: {},
  infer: (inputs) => {
    const x = input(inputs, 0);
    const target = knownOf(input(inputs, 1), "Expand shape");
    const shape = broadcastShapes([x.shape, target]);
    if (!shape) throw new RangeError(`cannot expand ${formatShape(x.shape)} to ${formatShape(target)}`);
    return [{ dtype: x.dtype, shape }];
  },
  grad: ({ dy: [g] }) => [g, undefined],
};

type AxesAttrs = { axes: readonly number[] };
const axesLower = (node: Node, ctx: LoweringContext) => passThrough(node, ctx, {}, [ctx.int64s((node.attrs as AxesAttrs).axes)]);

export const Unsqueeze: OpDef<AxesAttrs> = {
  type: "Unsqueeze",
  attrs: { axes: "ints" },
  infer: (inputs, { axes }) => {
    const x = input(inputs, 0);
    const rank = x.rank + axes.length;
    const ax = new Set(axes.map((a) => normalizeAxis(a, rank, "axes")));
    const shape: Dim[] = [];
    let j = 0;
    for (let i = 0; i < rank; i++) shape.push(ax.has(i) ? 1 : x.shape[j++]!);
    const known = x.rank === 0 && x.source.kind === "constant" ? [Number(x.source.tensor.data[0])] : x.known;
    return [{ dtype: x.dtype, shape, known }];
  },
  lower: axesLower,
  grad: ({ dy: [g], attrs: { axes } }) => [squeeze(g!, axes)],
};

export const Squeeze: OpDef<AxesAttrs> = {
  type: "Squeeze",
  attrs: { axes: "ints" },
  infer: (inputs, { axes }) => {
    const x = input(inputs, 0);
    const ax = new Set(axes.map((a) => normalizeAxis(a, x.rank, "axes")));
    for (const a of ax) if (x.shape[a] !== 1) throw new RangeError(`cannot squeeze axis ${a} of size ${x.shape[a]}`);
    return [{ dtype: x.dtype, shape: x.shape.filter((_, i) => !ax.has(i)) }];
  },
  lower: axesLower,
  grad: ({ inputs: [x], dy: [g], attrs: { axes } }) => [unsqueeze(g!, axes.map((a) => normalizeAxis(a, x!.rank, "axes")))],
};

type ConstantOfShapeAttrs = { value: number; dtype: string };
/** A tensor of the given (run-time) shape filled with one value. */
export const ConstantOfShape: OpDef<ConstantOfShapeAttrs> = {
  type: "ConstantOfShape",
  attrs: { value: "float", dtype: "string" },
  infer: (inputs, { dtype }) => [{ dtype: dtype as DType, shape: knownOf(input(inputs, 0), "ConstantOfShape shape") }],
  lower: (node, ctx) => {
    const { value, dtype } = node.attrs as ConstantOfShapeAttrs;
    const data = dtype === "float64" ? Float64Array.of(value) : dtype === "int64" ? BigInt64Array.of(BigInt(value)) : Float32Array.of(value);
    return { opType: "ConstantOfShape", inputs: [ctx.name(node.inputs[0])], attrs: { value: { kind: "tensor", value: { dtype: dtype as DType, shape: [1], data } } } };
  },
  grad: "nondifferentiable",
};

type TriluAttrs = { upper: number; k: number };
/** Keep the upper (or lower) triangle of the last two axes, from diagonal k; zero the rest. */
export const Trilu: OpDef<TriluAttrs> = {
  type: "Trilu",
  attrs: { upper: "int", k: "int" },
  infer: (inputs) => {
    const x = input(inputs, 0);
    if (x.rank < 2) throw new RangeError("Trilu needs rank >= 2");
    return [{ dtype: x.dtype, shape: x.shape }];
  },
  lower: (node, ctx) => passThrough(node, ctx, { upper: { kind: "int", value: (node.attrs as TriluAttrs).upper } }, [ctx.scalar("int64", (node.attrs as TriluAttrs).k)]),
  grad: ({ dy: [g], attrs }) => [g!.graph.apply(Trilu, [g!], attrs)[0]!],
};

let nonZeroCount = 0;
/**
 * Indices of the non-zero elements, [rank, n]; n is known only at run time and gets a fresh
 * symbol (e.g. the labelled positions of a masked-LM batch, to run the LM head only there).
 */
export const NonZero: OpDef = {
  type: "NonZero",
  attrs: {},
  infer: (inputs) => {
    const x = input(inputs, 0);
    return [{ dtype: "int64", shape: [x.rank, `nonzero${++nonZeroCount}`] }];
  },
  grad: "nondifferentiable",
};

type CumSumAttrs = { axis: number; exclusive: number; reverse: number };
/** Cumulative sum along an axis (e.g. RoBERTa position ids from a padding mask). */
export const CumSum: OpDef<CumSumAttrs> = {
  type: "CumSum",
  attrs: { axis: "int", exclusive: "int", reverse: "int" },
  infer: (inputs, { axis }) => {
    const x = input(inputs, 0);
    normalizeAxis(axis, x.rank, "axis");
    return [{ dtype: x.dtype, shape: x.shape }];
  },
  lower: (node, ctx) => {
    const { axis, exclusive, reverse } = node.attrs as CumSumAttrs;
    return passThrough(node, ctx, { exclusive: { kind: "int", value: exclusive }, reverse: { kind: "int", value: reverse } }, [ctx.scalar("int64", axis)]);
  },
  // The gradient of a cumulative sum is the cumulative sum of the gradient in the other direction.
  grad: ({ dy: [g], attrs }) => [g!.graph.apply(CumSum, [g!], { ...attrs, reverse: 1 - attrs.reverse })[0]!],
};

/**
 * Passes its input through and blocks gradients (JAX's stop_gradient, torch's detach). Not an
 * ONNX op: it exists only for the autodiff engine and lowers to ONNX `Identity`.
 */
export const StopGradient: OpDef = {
  type: "StopGradient",
  attrs: {},
  infer: (inputs) => {
    const x = input(inputs, 0);
    return [{ dtype: x.dtype, shape: x.shape, known: x.known }];
  },
  lower: (node, ctx) => ({ opType: "Identity", inputs: [ctx.name(node.inputs[0])] }),
  grad: "nondifferentiable",
};

export const stopGradient = (x: Value): Value => x.graph.apply(StopGradient, [x])[0]!;
export const shapeOf = (x: Value): Value => x.graph.apply(Shape, [x])[0]!;
export const size = (x: Value): Value => x.graph.apply(Size, [x])[0]!;
/** Reshape to `target` (ONNX rules: 0 copies the input dim, -1 is inferred) or to a shape vector. */
export const reshape = (x: Value, target: readonly number[] | Value): Value =>
  x.graph.apply(Reshape, [x, Array.isArray(target) ? x.graph.int64s(target as number[]) : (target as Value)])[0]!;
export const transpose = (x: Value, perm: readonly number[]): Value => x.graph.apply(Transpose, [x], { perm: [...perm] })[0]!;
export const concat = (xs: readonly Value[], axis: number): Value => (xs.length === 1 ? xs[0]! : xs[0]!.graph.apply(Concat, xs, { axis })[0]!);
export const slice = (x: Value, starts: readonly number[], ends: readonly number[], axes: readonly number[], steps?: readonly number[]): Value =>
  x.graph.apply(Slice, [x], { starts: [...starts], ends: [...ends], axes: [...axes], steps: steps ? [...steps] : starts.map(() => 1) })[0]!;
export const pad = (x: Value, pads: readonly number[]): Value => x.graph.apply(Pad, [x], { pads: [...pads] })[0]!;
export const split = (x: Value, sizes: readonly number[], axis: number): Value[] => x.graph.apply(Split, [x], { axis, split: [...sizes] });
export const gather = (data: Value, indices: Value, axis = 0): Value => data.graph.apply(Gather, [data, indices], { axis })[0]!;
export const nonZero = (x: Value): Value => x.graph.apply(NonZero, [x], {})[0]!;
export const gatherElements = (data: Value, indices: Value, axis: number): Value => data.graph.apply(GatherElements, [data, indices], { axis })[0]!;
export const scatterNDAdd = (data: Value, indices: Value, updates: Value): Value => data.graph.apply(ScatterND, [data, indices, updates])[0]!;
export const scatterElementsAdd = (data: Value, indices: Value, updates: Value, axis: number): Value => data.graph.apply(ScatterElements, [data, indices, updates], { axis })[0]!;
export const expand = (x: Value, shape: Value): Value => x.graph.apply(Expand, [x, shape])[0]!;
export const unsqueeze = (x: Value, axes: readonly number[]): Value => x.graph.apply(Unsqueeze, [x], { axes: [...axes] })[0]!;
export const squeeze = (x: Value, axes: readonly number[]): Value => x.graph.apply(Squeeze, [x], { axes: [...axes] })[0]!;
export const constantOfShape = (shape: Value, value: number, dtype: DType): Value => shape.graph.apply(ConstantOfShape, [shape], { value, dtype })[0]!;
export const cumsum = (x: Value, axis: number, opts: { exclusive?: boolean; reverse?: boolean } = {}): Value =>
  x.graph.apply(CumSum, [x], { axis, exclusive: opts.exclusive ? 1 : 0, reverse: opts.reverse ? 1 : 0 })[0]!;
export const trilu = (x: Value, upper: boolean, k = 0): Value => x.graph.apply(Trilu, [x], { upper: upper ? 1 : 0, k })[0]!;

/** Zeros with the (run-time) shape and dtype of `x`; static shapes become constants. */
export function zerosLike(x: Value): Value {
  if (isStatic(x.shape)) return constantOfShape(x.graph.int64s(x.shape), 0, x.dtype);
  return constantOfShape(shapeOf(x), 0, x.dtype);
}
