// Elementwise ops (numpy broadcasting), each with its inference, gradient rule and builder.
// Gradients are returned in the broadcast shape; the autodiff engine sums them to input shapes.
import { isFloat, type DType } from "../dtype.js";
import { type OpDef, type Value } from "../graph.js";
import { broadcastShapes, formatShape } from "../shape.js";
import { broadcastInfer, expectSameDtype, graphOf, input, unaryFloatInfer, values, type Operand } from "./define.js";

const binary = (type: string, grad: OpDef["grad"]): OpDef => ({ type, attrs: {}, infer: (inputs) => broadcastInfer([input(inputs, 0), input(inputs, 1)]), grad });
const unary = (type: string, grad: OpDef["grad"]): OpDef => ({ type, attrs: {}, infer: unaryFloatInfer, grad });

export const Add = binary("Add", ({ dy }) => [dy[0], dy[0]]);
export const Sub = binary("Sub", ({ dy, needs }) => [dy[0], needs[1] ? neg(dy[0]!) : undefined]);
export const Mul = binary("Mul", ({ inputs: [a, b], dy: [g], needs }) => [needs[0] ? mul(g!, b!) : undefined, needs[1] ? mul(g!, a!) : undefined]);
export const Div = binary("Div", ({ inputs: [, b], outputs: [y], dy: [g], needs }) => [
  needs[0] ? div(g!, b!) : undefined,
  needs[1] ? neg(div(mul(g!, y!), b!)) : undefined, // d(a/b)/db = -y/b
]);
export const Pow = binary("Pow", ({ inputs: [x, p], outputs: [y], dy: [g], needs }) => [
  needs[0] ? mul(g!, mul(p!, pow(x!, sub(p!, 1)))) : undefined,
  needs[1] ? mul(g!, mul(y!, log(x!))) : undefined,
]);
/** Elementwise maximum; the gradient goes to the first argument where they tie. */
export const Max = binary("Max", ({ inputs: [a, b], dy: [g], needs }) => {
  const aWins = not(less(a!, b!));
  const zero = graphOf(g!).scalar(g!.dtype, 0);
  return [needs[0] ? where(aWins, g!, zero) : undefined, needs[1] ? where(aWins, zero, g!) : undefined];
});

export const Neg = unary("Neg", ({ dy: [g] }) => [neg(g!)]);
export const Sqrt = unary("Sqrt", ({ outputs: [y], dy: [g] }) => [div(mul(g!, 0.5), y!)]);
export const Exp = unary("Exp", ({ outputs: [y], dy: [g] }) => [mul(g!, y!)]);
export const Log = unary("Log", ({ inputs: [x], dy: [g] }) => [div(g!, x!)]);
export const Tanh = unary("Tanh", ({ outputs: [y], dy: [g] }) => [mul(g!, sub(1, mul(y!, y!)))]);
export const Sigmoid = unary("Sigmoid", ({ outputs: [y], dy: [g] }) => [mul(g!, mul(y!, sub(1, y!)))]);
export const Sin = unary("Sin", ({ inputs: [x], dy: [g] }) => [mul(g!, cos(x!))]);
export const Cos = unary("Cos", ({ inputs: [x], dy: [g] }) => [neg(mul(g!, sin(x!)))]);
export const Erf = unary("Erf", ({ inputs: [x], dy: [g] }) => [mul(g!, mul(exp(neg(mul(x!, x!))), 2 / Math.sqrt(Math.PI)))]);
// NOTE: Relu is not differentiable at 0; like PyTorch we take the subgradient 0 there.
export const Relu = unary("Relu", ({ outputs: [y], dy: [g] }) => [where(less(0, y!), g!, 0)]);

/** `cond ? a : b` elementwise; no gradient flows to the condition. */
export const Where: OpDef = {
  type: "Where",
  attrs: {},
  infer: (inputs) => {
    const c = input(inputs, 0);
    if (c.dtype !== "bool") throw new TypeError(`condition must be bool, got ${c.dtype}`);
    const a = input(inputs, 1);
    const b = input(inputs, 2);
    const dtype = expectSameDtype([a, b]);
    const shape = broadcastShapes([c.shape, a.shape, b.shape]);
    if (!shape) throw new RangeError(`shapes do not broadcast: ${[c, a, b].map((v) => formatShape(v.shape)).join(", ")}`);
    return [{ dtype, shape }];
  },
  grad: ({ inputs: [c], dy: [g], needs }) => {
    const zero = graphOf(g!).scalar(g!.dtype, 0);
    return [undefined, needs[1] ? where(c!, g!, zero) : undefined, needs[2] ? where(c!, zero, g!) : undefined];
  },
};

const compare = (type: string): OpDef => ({
  type,
  attrs: {},
  infer: (inputs) => broadcastInfer([input(inputs, 0), input(inputs, 1)], "bool"),
  grad: "nondifferentiable",
});
export const Equal = compare("Equal");
export const Less = compare("Less");
export const Not: OpDef = {
  type: "Not",
  attrs: {},
  infer: (inputs) => {
    const x = input(inputs, 0);
    if (x.dtype !== "bool") throw new TypeError(`Not needs bool, got ${x.dtype}`);
    return [{ dtype: "bool", shape: x.shape }];
  },
  grad: "nondifferentiable",
};

const DTYPE_CODE: Readonly<Record<DType, number>> = { float32: 1, uint8: 2, int8: 3, int32: 6, int64: 7, bool: 9, float16: 10, float64: 11, bfloat16: 16 };

/** Cast to another dtype; the gradient is cast back when both dtypes are float. */
export const Cast: OpDef<{ to: number }> = {
  type: "Cast",
  attrs: { to: "int" },
  infer: (inputs, { to }) => {
    const x = input(inputs, 0);
    const dtype = (Object.keys(DTYPE_CODE) as DType[]).find((d) => DTYPE_CODE[d] === to);
    if (!dtype) throw new TypeError(`unknown Cast target code ${to}`);
    return [{ dtype, shape: x.shape, known: x.known }];
  },
  grad: ({ inputs: [x], outputs: [y], dy: [g] }) => {
    if (!isFloat(x!.dtype) || !isFloat(y!.dtype)) throw new TypeError(`Cast ${x!.dtype} -> ${y!.dtype} has no gradient; only float -> float casts do`);
    return [cast(g!, x!.dtype)];
  },
};

export const add = (a: Operand, b: Operand): Value => bin(Add, a, b);
export const sub = (a: Operand, b: Operand): Value => bin(Sub, a, b);
export const mul = (a: Operand, b: Operand): Value => bin(Mul, a, b);
export const div = (a: Operand, b: Operand): Value => bin(Div, a, b);
export const pow = (a: Operand, b: Operand): Value => bin(Pow, a, b);
export const max = (a: Operand, b: Operand): Value => bin(Max, a, b);
export const equal = (a: Operand, b: Operand): Value => bin(Equal, a, b);
export const less = (a: Operand, b: Operand): Value => bin(Less, a, b);
export const neg = (x: Value): Value => x.graph.apply(Neg, [x])[0]!;
export const sqrt = (x: Value): Value => x.graph.apply(Sqrt, [x])[0]!;
export const exp = (x: Value): Value => x.graph.apply(Exp, [x])[0]!;
export const log = (x: Value): Value => x.graph.apply(Log, [x])[0]!;
export const tanh = (x: Value): Value => x.graph.apply(Tanh, [x])[0]!;
export const sigmoid = (x: Value): Value => x.graph.apply(Sigmoid, [x])[0]!;
export const sin = (x: Value): Value => x.graph.apply(Sin, [x])[0]!;
export const cos = (x: Value): Value => x.graph.apply(Cos, [x])[0]!;
// NOTE: ORT's CPU provider has no float64 Erf kernel, so float64 graphs evaluate erf in float32.
export const erf = (x: Value): Value => (x.dtype === "float64" ? cast(erf(cast(x, "float32")), "float64") : x.graph.apply(Erf, [x])[0]!);
export const relu = (x: Value): Value => x.graph.apply(Relu, [x])[0]!;
export const not = (x: Value): Value => x.graph.apply(Not, [x])[0]!;
export const cast = (x: Value, to: DType): Value => (x.dtype === to ? x : x.graph.apply(Cast, [x], { to: DTYPE_CODE[to] })[0]!);

/** `cond ? a : b`; numbers take the dtype of the value operand. */
export function where(cond: Value, a: Operand, b: Operand): Value {
  const [va, vb] = values(a, b);
  return cond.graph.apply(Where, [cond, va, vb])[0]!;
}

function bin(op: OpDef, a: Operand, b: Operand): Value {
  const [va, vb] = values(a, b);
  if (typeof a !== "number" && typeof b !== "number" && a.dtype !== b.dtype) {
    throw new TypeError(`${op.type}: dtypes differ (${a} and ${b})`);
  }
  return graphOf(a, b).apply(op, [va, vb])[0]!;
}
