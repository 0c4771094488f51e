// The op registry: every primitive op of the IR, by its ONNX name. The gradient checker's
// table must cover every entry (a meta-test enforces it).
import { type OpDef } from "../graph.js";
import * as ew from "./elementwise.js";
import * as la from "./linalg.js";
import * as nn from "./nn.js";
import * as rd from "./reduce.js";
import * as sh from "./shape-ops.js";

export const OPS = {
  Add: ew.Add, Sub: ew.Sub, Mul: ew.Mul, Div: ew.Div, Pow: ew.Pow, Max: ew.Max,
  Neg: ew.Neg, Sqrt: ew.Sqrt, Exp: ew.Exp, Log: ew.Log, Erf: ew.Erf, Tanh: ew.Tanh, Sigmoid: ew.Sigmoid,
  Relu: ew.Relu, Sin: ew.Sin, Cos: ew.Cos, Where: ew.Where, Equal: ew.Equal, Less: ew.Less, Not: ew.Not, Cast: ew.Cast,
  MatMul: la.MatMul, Gemm: la.Gemm,
  ReduceSum: rd.ReduceSum, ReduceMean: rd.ReduceMean, ReduceMax: rd.ReduceMax,
  Softmax: nn.Softmax, LogSoftmax: nn.LogSoftmax, LayerNormalization: nn.LayerNormalization, Gelu: nn.Gelu,
  Shape: sh.Shape, Size: sh.Size, Reshape: sh.Reshape, Transpose: sh.Transpose, Concat: sh.Concat, Slice: sh.Slice,
  Pad: sh.Pad, Split: sh.Split, Gather: sh.Gather, GatherElements: sh.GatherElements, ScatterND: sh.ScatterND,
  ScatterElements: sh.ScatterElements, Expand: sh.Expand, Unsqueeze: sh.Unsqueeze, Squeeze: sh.Squeeze,
  ConstantOfShape: sh.ConstantOfShape, Trilu: sh.Trilu, CumSum: sh.CumSum, StopGradient: sh.StopGradient, NonZero: sh.NonZero,
} as const satisfies Record<string, OpDef<never>>;

export type OpName = keyof typeof OPS;

export {
  add, sub, mul, div, pow, max, neg, sqrt, exp, log, erf, tanh, sigmoid, relu, sin, cos, where, equal, less, not, cast,
} from "./elementwise.js";
export { matmul, gemm } from "./linalg.js";
export { reduceSum, reduceMean, reduceMax, sumAll } from "./reduce.js";
export { softmax, logSoftmax, layerNorm, dropout, fusedGelu, DROPOUT_KEY } from "./nn.js";
export {
  shapeOf, size, reshape, transpose, concat, slice, pad, split, gather, gatherElements, expand, unsqueeze, squeeze,
  constantOfShape, trilu, cumsum, zerosLike, stopGradient, nonZero,
} from "./shape-ops.js";
export type { Operand } from "./define.js";
