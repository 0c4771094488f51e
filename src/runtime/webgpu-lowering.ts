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
// What stays on the CPU: int64 tensors (shape arithmetic and integer labels), which the WebGPU
// provider has no kernels for at all (not even Cast from int64); ONNX Runtime runs those small
// nodes on its CPU provider.
import { type DType } from "../ir/dtype.js";
import { type LoweredNode, type LoweringContext, type Node, type Value } from "../ir/graph.js";
import { OnnxDataType } from "./onnx-schema.js";

/** Op types the WebGPU lowering removes (or refuses) from graphs. */
export const WEBGPU_MISSING_OPS = ["Dropout", "NonZero", "LogSoftmax", "ConstantOfShape", "Size"] as const;

const FLOAT_TYPES = new Set<DType>(["float32", "float16", "float64", "bfloat16"]);

const to = (dtype: DType) => ({ to: { kind: "int" as const, value: OnnxDataType[dtype] } });

/**
 * The number of elements of `x` as a float32 scalar: static dims multiply into a constant; each
 * run-time dim d is counted as the sum of d ones (Expand of 1 to [d], ReduceSum), so nothing of
 * x's size is allocated and no int64 value is converted on the device. Exact below 2^24.
 */
function elementCount(ctx: LoweringContext, x: Value): string {
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
export function lowerForWebGpu(node: Node, ctx: LoweringContext): LoweredNode | undefined {
  const attrs = node.attrs as Record<string, unknown>;
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
      return { opType: "Cast", inputs: [filled!], attrs: to(dtype) };
    }
    case "Size":
      return { opType: "Cast", inputs: [elementCount(ctx, node.inputs[0]!)], attrs: to("int64") };
    case "Cast": {
      // Size -> Cast to a float type: the float count itself (no int64 on the device).
      const src = node.inputs[0]!;
      const target = node.outputs[0]!.dtype;
      if (src.producer?.op.type !== "Size" || !FLOAT_TYPES.has(target)) return undefined;
      const n = elementCount(ctx, src.producer.inputs[0]!);
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
    case "Dropout":
    case "NonZero":
      throw new Error(`lowering for WebGPU: ${node.op.type} (node ${node.id}) has no WebGPU kernel in ONNX Runtime 1.30 and no rewrite here`);
    default:
      return undefined;
  }
}

/** Whether `node` is lowered by the WebGPU rewrite of a consumer and need not be emitted itself. */
export function absorbedForWebGpu(node: Node, consumers: readonly Node[]): boolean {
  return node.op.type === "Size" && consumers.length > 0 && consumers.every((c) => c.op.type === "Cast" && FLOAT_TYPES.has(c.outputs[0]!.dtype));
}
