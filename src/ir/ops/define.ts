// Shared pieces for defining ops: operands (values or plain numbers) and common inference rules.
import { isFloat, type DType } from "../dtype.js";
import { type Graph, type OutputType, type Value } from "../graph.js";
import { broadcastShapes, formatShape } from "../shape.js";

/** An op operand: a graph value, or a number that becomes a scalar of the other operand's dtype. */
export type Operand = Value | number;

/** The graph of the first value among the operands (numbers carry no graph). */
export function graphOf(...xs: Operand[]): Graph {
  for (const x of xs) if (typeof x !== "number") return x.graph;
  throw new TypeError("an op needs at least one graph value among its operands");
}

/** Turn operands into values; numbers become scalars of the dtype of the first value. */
export function values(...xs: Operand[]): Value[] {
  const g = graphOf(...xs);
  const dtype = (xs.find((x) => typeof x !== "number") as Value).dtype;
  return xs.map((x) => (typeof x === "number" ? g.scalar(dtype, x) : x));
}

export function input(inputs: readonly (Value | undefined)[], i: number): Value {
  const v = inputs[i];
  if (!v) throw new Error(`input ${i} is required`);
  return v;
}

export function expectFloat(v: Value, what = "input"): void {
  if (!isFloat(v.dtype)) throw new TypeError(`${what} must be a float tensor, got ${v.dtype}`);
}

export function expectSameDtype(vs: readonly Value[]): DType {
  const d = vs[0]!.dtype;
  for (const v of vs) if (v.dtype !== d) throw new TypeError(`dtypes differ: ${vs.map((x) => x.dtype).join(" vs ")}`);
  return d;
}

/** Broadcasting inference for n-ary elementwise ops. */
export function broadcastInfer(vs: readonly Value[], outDtype?: DType): OutputType[] {
  const dtype = expectSameDtype(vs);
  const shape = broadcastShapes(vs.map((v) => v.shape));
  if (!shape) throw new RangeError(`shapes do not broadcast: ${vs.map((v) => formatShape(v.shape)).join(" and ")}`);
  return [{ dtype: outDtype ?? dtype, shape }];
}

/** Inference for unary float ops: same dtype and shape as the input. */
export function unaryFloatInfer(inputs: readonly (Value | undefined)[]): OutputType[] {
  const x = input(inputs, 0);
  expectFloat(x);
  return [{ dtype: x.dtype, shape: x.shape }];
}
