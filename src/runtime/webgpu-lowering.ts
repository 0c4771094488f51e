// Lowering for ONNX Runtime's WebGPU execution provider (onnxruntime-web in a browser with
// navigator.gpu, or onnxruntime-node's "webgpu" provider): ops whose WebGPU kernels are missing
// (as of ONNX Runtime 1.30) are written with ops that have them, with the same results:
//   LogSoftmax(x)         -> (x - max) - log(sum(exp(x - max)))   (ReduceMax, Sub, Exp, ReduceSum, Log)
//   ConstantOfShape(s, v) -> Expand(v, s), via a float32 scalar and a Cast for other dtypes
//   Size(x)               -> ReduceSum(Expand(1f, Shape(x))) cast to int64 (exact below 2^24 elements);
//                            a Cast of Size to a float type takes the float count directly
//   CumSum(reverse=1)     -> ReduceSum - forward CumSum (+ x when inclusive): the JSEP kernel
//                            computes reverse=1 wrongly
// The IR never emits ONNX Dropout (dropout is a hashed mask multiply, see ir/ops/nn.ts) nor
// NonZero in model graphs; lowering refuses them for this target rather than let a session fail.
// int64: onnxruntime-node 1.30's (native) WebGPU provider has int64 kernels only for the indices
// of Gather, GatherElements, ScatterElements and ScatterND and for Cast's output (found by
// creating one-node sessions with CPU fallback disabled); int32 it has for the ops used here
// except Slice. So:
// - Without fixed dims, shape arithmetic and integer inputs are left in int64 and ONNX Runtime
//   runs those small nodes on its CPU provider (ORT also moves nodes that feed shape inputs there).
// - At fixed input dims (LowerOptions.dims, SessionOptions.dims) the model is for one input
//   shape: the ops' shape inference runs again on concrete shapes (specializeShapes), so Shape,
//   Size and the int64 arithmetic on them become constants; int64 inputs and the integers computed
//   from them (labels, ids, masks) are int32 (fixShapes), int64 constants meeting them are fed as
//   int32, a Slice of them becomes Gathers with constant indices and ScatterND's indices are cast
//   back to int64. Every node of the tuner conformance graphs then has a WebGPU kernel and they
//   run with CPU fallback disabled (test/web-webgpu.test.ts).
import { type DType } from "../ir/dtype.js";
import { Value, type LoweredNode, type LoweringContext, type Node } from "../ir/graph.js";
import { formatShape, type Dim } from "../ir/shape.js";
import { numel } from "../ir/tensor.js";
import { OnnxDataType } from "./onnx-schema.js";

/** The concrete shape of every value of a graph specialized to fixed input dimensions. */
export interface Specialized {
  shape(v: Value): readonly number[];
  /** The contents of an int64 value that the specialization computes (shapes, element counts), else undefined. */
  constant(v: Value): readonly number[] | undefined;
}

/**
 * Shapes of `nodes`' values with the inputs' symbolic dimensions fixed to `dims`: the ops' own
 * shape inference runs again on concrete shapes, so int64 vectors derived from shapes (Shape,
 * Slice and Concat of them, Size) get concrete contents. Throws when an input dimension has no
 * size in `dims`.
 */
export function specializeShapes(nodes: readonly Node[], dims: Readonly<Record<string, number>>): Specialized {
  const shapes = new Map<Value, readonly number[]>();
  const known = new Map<Value, readonly number[]>();
  const concrete = (v: Value): Value => {
    let shape = shapes.get(v);
    if (!shape) {
      const s = v.source;
      if (s.kind === "node") throw new Error(`specializeShapes: ${v} is used before it is computed`);
      shape = v.shape.map((d) => fixedDim(d, dims, v));
      shapes.set(v, shape);
      if (v.known?.every((k) => typeof k === "number")) known.set(v, v.known as number[]);
      else if (s.kind === "constant" && v.dtype === "int64" && s.tensor.data.length <= MAX_FOLDED) known.set(v, Array.from(s.tensor.data as BigInt64Array, Number));
    }
    return new Value(v.graph, v.id, v.dtype, shape, v.source, known.get(v));
  };
  for (const node of nodes) {
    const inputs = node.inputs.map((v) => (v ? concrete(v) : undefined));
    const types = node.op.infer(inputs, node.attrs);
    node.outputs.forEach((o, i) => {
      const t = types[i]!;
      if (t.shape.some((d) => typeof d !== "number")) throw new Error(`specializeShapes: ${node.op.type} (node ${node.id}) output ${i} has shape ${formatShape(t.shape)} with ${JSON.stringify(dims)}`);
      const shape = t.shape as number[];
      shapes.set(o, shape);
      if (o.dtype !== "int64") return;
      const k = t.known?.every((d) => typeof d === "number") ? (t.known as number[]) : foldInt64(node, inputs, shape);
      if (k && k.length === numel(shape)) known.set(o, k);
    });
  }
  return {
    shape: (v) => shapes.get(v) ?? (concrete(v).shape as number[]),
    constant: (v) => known.get(v),
  };
}

/** Largest int64 value (in elements) the specialization computes at lowering time. */
const MAX_FOLDED = 1 << 16;

/**
 * The contents of an int64 result of `node` whose inputs' contents are known: the integer
 * arithmetic of shape computations (ONNX Div truncates), fills, and reshapes (contents unchanged).
 */
function foldInt64(node: Node, inputs: readonly (Value | undefined)[], shape: readonly number[]): number[] | undefined {
  const ks = inputs.map((v) => v?.known as readonly number[] | undefined);
  const n = numel(shape);
  if (n > MAX_FOLDED) return undefined;
  switch (node.op.type) {
    case "Size":
      return [numel(inputs[0]!.shape as number[])];
    case "ConstantOfShape":
      return new Array<number>(n).fill((node.attrs as { value: number }).value);
    case "Reshape":
    case "Unsqueeze":
    case "Squeeze":
    case "Identity":
      return ks[0] ? [...ks[0]] : undefined;
    case "Add":
    case "Sub":
    case "Mul":
    case "Div": {
      const [a, b] = ks;
      // Same shapes, or one operand a single element (all that shape arithmetic uses).
      if (!a || !b || !(a.length === b.length || a.length === 1 || b.length === 1)) return undefined;
      if (Math.max(a.length, b.length) !== n) return undefined;
      const f = { Add: (x: number, y: number) => x + y, Sub: (x: number, y: number) => x - y, Mul: (x: number, y: number) => x * y, Div: (x: number, y: number) => Math.trunc(x / y) }[node.op.type];
      return Array.from({ length: n }, (_, i) => f(a[a.length === 1 ? 0 : i]!, b[b.length === 1 ? 0 : i]!));
    }
    default:
      return undefined;
  }
}

function fixedDim(d: Dim, dims: Readonly<Record<string, number>>, v: Value): number {
  if (typeof d === "number") return d;
  const n = dims[d];
  if (n === undefined) throw new Error(`${v} has dimension "${d}", which has no fixed size (given: ${JSON.stringify(dims)})`);
  return n;
}

/**
 * A graph lowered for WebGPU at fixed input dimensions: concrete shapes, and the int64 values
 * the device computes (int64 inputs and what is derived from them, not shape arithmetic), which
 * are lowered as int32 because ONNX Runtime's WebGPU provider has int64 kernels only for the
 * indices of Gather, GatherElements, ScatterElements and ScatterND and for Cast's output.
 */
export interface FixedShapes {
  spec: Specialized;
  int32: ReadonlySet<Value>;
}

export function fixShapes(nodes: readonly Node[], dims: Readonly<Record<string, number>>): FixedShapes {
  const spec = specializeShapes(nodes, dims);
  const int32 = new Set<Value>();
  for (const n of nodes) {
    for (const v of n.inputs) if (v?.source.kind === "input" && v.dtype === "int64") int32.add(v);
    // Computed from int32 values, or converted (Cast, a fill): int32 too. An int64 result of
    // constants alone that the specialization does not compute stays int64: ONNX Runtime folds it.
    const fromDevice = n.op.type === "Cast" || n.op.type === "ConstantOfShape" || n.inputs.some((v) => v && int32.has(v));
    for (const o of n.outputs) if (o.dtype === "int64" && !spec.constant(o) && fromDevice) int32.add(o);
  }
  return { spec, int32 };
}

/** Ops whose inputs other than a Where condition share one element type. */
const SAME_TYPE_OPS = new Set(["Add", "Sub", "Mul", "Div", "Mod", "Max", "Min", "Equal", "Less", "LessOrEqual", "Greater", "GreaterOrEqual", "Where", "Concat"]);
const INT32_MIN = -(2 ** 31);
const INT32_MAX = 2 ** 31 - 1;

/**
 * `ctx` for lowering `node` at fixed shapes: an int64 constant that meets an int32-lowered
 * value in an op of one element type (Equal(labels, -100), Concat with a fill) is fed as an
 * int32 Constant instead.
 */
export function int32Context(node: Node, ctx: LoweringContext, fixed: FixedShapes): LoweringContext {
  if (!SAME_TYPE_OPS.has(node.op.type) || !node.inputs.some((v) => v && fixed.int32.has(v))) return ctx;
  const renamed = new Map<Value, string>();
  for (const v of node.inputs) {
    if (!v || v.dtype !== "int64" || fixed.int32.has(v)) continue;
    const s = v.source;
    const data = fixed.spec.constant(v) ?? (s.kind === "constant" ? Array.from(s.tensor.data as BigInt64Array, Number) : undefined);
    if (!data) {
      // Computed from constants only (see fixShapes): ONNX Runtime folds this Cast with them.
      renamed.set(v, ctx.emit({ opType: "Cast", inputs: [ctx.name(v)], attrs: to("int32") }, 1)[0]!);
      continue;
    }
    const bad = data.find((x) => x < INT32_MIN || x > INT32_MAX);
    if (bad !== undefined) throw new RangeError(`lowering for WebGPU: ${node.op.type} (node ${node.id}): constant ${bad} of ${v} does not fit in int32`);
    const value = { dtype: "int32" as const, shape: [...fixed.spec.shape(v)], data: Int32Array.from(data) };
    renamed.set(v, ctx.emit({ opType: "Constant", inputs: [], attrs: { value: { kind: "tensor", value } } }, 1)[0]!);
  }
  return { ...ctx, name: (v) => (v && renamed.get(v)) ?? ctx.name(v) };
}

/** Op types the WebGPU lowering removes (or refuses) from graphs. */
export const WEBGPU_MISSING_OPS = ["Dropout", "NonZero", "LogSoftmax", "ConstantOfShape", "Size"] as const;

const FLOAT_TYPES = new Set<DType>(["float32", "float16", "float64", "bfloat16"]);

const to = (dtype: DType) => ({ to: { kind: "int" as const, value: OnnxDataType[dtype] } });

/**
 * The number of elements of `x` as a float32 scalar: static dims multiply into a constant; each
 * run-time dim d is counted as the sum of d ones (Expand of 1 to [d], ReduceSum), so nothing of
 * x's size is allocated and no int64 value is converted on the device. Exact below 2^24.
 */
function elementCount(ctx: LoweringContext, x: Value, fixed: FixedShapes | undefined): string {
  if (fixed) return ctx.scalar("float32", numel(fixed.spec.shape(x)));
  let known = 1;
  const counts: string[] = [];
  x.shape.forEach((d, k) => {
    if (typeof d === "number") {
      known *= d;
      return;
    }
    const [shape] = ctx.emit({ opType: "Shape", inputs: [ctx.name(x)], attrs: { start: { kind: "int", value: k }, end: { kind: "int", value: k + 1 } } }, 1);
    const [ones] = ctx.emit({ opType: "Expand", inputs: [ctx.scalar("float32", 1), shape!] }, 1);
    const [n] = ctx.emit({ opType: "ReduceSum", inputs: [ones!], attrs: { keepdims: { kind: "int", value: 0 } } }, 1);
    counts.push(n!);
  });
  let total = ctx.scalar("float32", known);
  for (const c of counts) [total] = ctx.emit({ opType: "Mul", inputs: [total, c] }, 1) as [string];
  return total;
}

/**
 * The WebGPU-compatible lowering of `node`, or undefined when its ordinary lowering already is.
 * Intermediate nodes go through `ctx.emit`; the returned node writes `node`'s outputs.
 */
export function lowerForWebGpu(node: Node, ctx: LoweringContext, fixed?: FixedShapes): LoweredNode | undefined {
  const attrs = node.attrs as Record<string, unknown>;
  const int32 = (v: Value | undefined) => v !== undefined && fixed !== undefined && fixed.int32.has(v);
  switch (node.op.type) {
    case "LogSoftmax": {
      const x = ctx.name(node.inputs[0]);
      const axes = ctx.int64s([attrs.axis as number]);
      const keep = { keepdims: { kind: "int" as const, value: 1 } };
      const [max] = ctx.emit({ opType: "ReduceMax", inputs: [x, axes], attrs: keep }, 1);
      const [shifted] = ctx.emit({ opType: "Sub", inputs: [x, max!] }, 1);
      const [e] = ctx.emit({ opType: "Exp", inputs: [shifted!] }, 1);
      const [sum] = ctx.emit({ opType: "ReduceSum", inputs: [e!, axes], attrs: keep }, 1);
      const [log] = ctx.emit({ opType: "Log", inputs: [sum!] }, 1);
      return { opType: "Sub", inputs: [shifted!, log!] };
    }
    case "ConstantOfShape": {
      const { value, dtype } = attrs as { value: number; dtype: DType };
      const shape = ctx.name(node.inputs[0]);
      if (dtype === "float32") return { opType: "Expand", inputs: [ctx.scalar("float32", value), shape] };
      const [filled] = ctx.emit({ opType: "Expand", inputs: [ctx.scalar("float32", value), shape] }, 1);
      return { opType: "Cast", inputs: [filled!], attrs: to(int32(node.outputs[0]) ? "int32" : dtype) };
    }
    case "Size":
      return { opType: "Cast", inputs: [elementCount(ctx, node.inputs[0]!, fixed)], attrs: to("int64") };
    case "Cast": {
      const src = node.inputs[0]!;
      const target = node.outputs[0]!.dtype;
      // To int64 on the device: to int32 (from int32, nothing to do).
      if (int32(node.outputs[0])) return int32(src) ? { opType: "Identity", inputs: [ctx.name(src)] } : { opType: "Cast", inputs: [ctx.name(src)], attrs: to("int32") };
      // Size -> Cast to a float type: the float count itself (no int64 on the device).
      if (src.producer?.op.type !== "Size" || !FLOAT_TYPES.has(target)) return undefined;
      const n = elementCount(ctx, src.producer.inputs[0]!, fixed);
      return target === "float32" ? { opType: "Identity", inputs: [n] } : { opType: "Cast", inputs: [n], attrs: to(target) };
    }
    case "CumSum": {
      const { axis, exclusive, reverse } = attrs as { axis: number; exclusive: number; reverse: number };
      if (!reverse) return undefined;
      const x = ctx.name(node.inputs[0]);
      const axisName = ctx.int64s([axis]);
      const [total] = ctx.emit({ opType: "ReduceSum", inputs: [x, axisName], attrs: { keepdims: { kind: "int", value: 1 } } }, 1);
      const [forward] = ctx.emit({ opType: "CumSum", inputs: [x, ctx.scalar("int64", axis)] }, 1);
      // reverse exclusive: total - forward inclusive; reverse inclusive: that + x.
      if (exclusive) return { opType: "Sub", inputs: [total!, forward!] };
      const [rest] = ctx.emit({ opType: "Sub", inputs: [total!, forward!] }, 1);
      return { opType: "Add", inputs: [rest!, x] };
    }
    case "Slice": {
      // No int32 Slice kernel: the same elements by Gathers with constant indices, axis by axis.
      const x = node.inputs[0]!;
      if (!int32(x)) return undefined;
      const { starts, ends, axes, steps } = attrs as { starts: number[]; ends: number[]; axes: number[]; steps: number[] };
      if (axes.length === 0) return { opType: "Identity", inputs: [ctx.name(x)] };
      const shape = fixed!.spec.shape(x);
      let cur = ctx.name(x);
      const gathers = axes.map((a, i) => {
        const ax = a < 0 ? a + shape.length : a;
        return { ax, indices: sliceIndices(shape[ax]!, starts[i]!, ends[i]!, steps[i] ?? 1) };
      });
      gathers.forEach(({ ax, indices }, i) => {
        const g: LoweredNode = { opType: "Gather", inputs: [cur, ctx.int64s(indices)], attrs: { axis: { kind: "int", value: ax } } };
        if (i < gathers.length - 1) cur = ctx.emit(g, 1)[0]!;
      });
      const last = gathers[gathers.length - 1]!;
      return { opType: "Gather", inputs: [cur, ctx.int64s(last.indices)], attrs: { axis: { kind: "int", value: last.ax } } };
    }
    case "ScatterND": {
      // ScatterND takes int64 indices only (ONNX), which the WebGPU kernel reads: cast int32 ones back.
      const [data, indices, updates] = node.inputs;
      if (!int32(indices)) return undefined;
      const [idx64] = ctx.emit({ opType: "Cast", inputs: [ctx.name(indices)], attrs: to("int64") }, 1);
      return { opType: "ScatterND", inputs: [ctx.name(data), idx64!, ctx.name(updates)], attrs: { reduction: { kind: "string", value: "add" } } };
    }
    case "Dropout":
    case "NonZero":
      throw new Error(`lowering for WebGPU: ${node.op.type} (node ${node.id}) has no WebGPU kernel in ONNX Runtime 1.30 and no rewrite here`);
    default:
      return undefined;
  }
}

/** The indices ONNX Slice takes along a dim of size `d` (negative bounds count from the end; clamped). */
function sliceIndices(d: number, start: number, end: number, step: number): number[] {
  if (step === 0) throw new RangeError("Slice step must not be 0");
  const norm = (i: number) => (i < 0 ? i + d : i);
  const out: number[] = [];
  if (step > 0) for (let i = Math.max(0, norm(start)), e = Math.min(d, norm(end)); i < e; i += step) out.push(i);
  else for (let i = Math.min(d - 1, norm(start)), e = Math.max(-1, norm(end)); i > e; i += step) out.push(i);
  return out;
}

/** Whether `node` is lowered by the WebGPU rewrite of a consumer and need not be emitted itself. */
export function absorbedForWebGpu(node: Node, consumers: readonly Node[]): boolean {
  return node.op.type === "Size" && consumers.length > 0 && consumers.every((c) => c.op.type === "Cast" && FLOAT_TYPES.has(c.outputs[0]!.dtype));
}
