// The op conformance table: every registered op is checked here, differentiable ones against
// central finite differences in float64, the rest against values computed in JS.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { runForwardCase, runGradCase, type ForwardCase, type GradCase } from "../../../test/conformance.js";
import { awayFromZero, randomF32, randomF64 } from "../../../test/helpers.js";
import { int64, tensor, type Tensor } from "../tensor.js";
import * as o from "./index.js";
import { OPS, type OpName } from "./index.js";

type Entry = { grad: GradCase[]; forward?: ForwardCase[] } | { nondifferentiable: ForwardCase[] } | { skip: string };

const r = randomF64;
const pos = (shape: number[], seed: number) => randomF64(shape, seed, 0.5, 2);
const bools = (shape: number[], values: number[]): Tensor => tensor("bool", shape, Uint8Array.from(values));

const OP_CASES: Record<OpName, Entry> = {
  Add: { grad: [{ name: "broadcast both ways", inputs: { a: r([2, 1], 1), b: r([1, 3], 2) }, build: ({ a, b }) => o.add(a!, b!) }, { name: "rank-extending", inputs: { a: r([2, 3], 1), b: r([3], 2) }, build: ({ a, b }) => o.add(a!, b!) }] },
  Sub: { grad: [{ name: "broadcast", inputs: { a: r([2, 3], 3), b: r([3], 4) }, build: ({ a, b }) => o.sub(a!, b!) }] },
  Mul: { grad: [{ name: "broadcast", inputs: { a: r([2, 3], 5), b: r([2, 1], 6) }, build: ({ a, b }) => o.mul(a!, b!) }, { name: "same input twice", inputs: { a: r([4], 7) }, build: ({ a }) => o.mul(a!, a!) }] },
  Div: { grad: [{ name: "broadcast", inputs: { a: r([2, 3], 8), b: pos([3], 9) }, build: ({ a, b }) => o.div(a!, b!) }] },
  Pow: { grad: [{ name: "tensor exponent", inputs: { x: pos([2, 3], 10), p: r([2, 3], 11) }, build: ({ x, p }) => o.pow(x!, p!) }, { name: "constant exponent", inputs: { x: pos([5], 12) }, build: ({ x }) => o.pow(x!, 3) }] },
  Max: { grad: [{ name: "broadcast", inputs: { a: awayFromZero([2, 3], 13), b: r([3], 14, -0.1, 0.1) }, build: ({ a, b }) => o.max(a!, b!) }] },
  Neg: { grad: [{ name: "neg", inputs: { x: r([3], 15) }, build: ({ x }) => o.neg(x!) }] },
  Sqrt: { grad: [{ name: "sqrt", inputs: { x: pos([4], 16) }, build: ({ x }) => o.sqrt(x!) }] },
  Exp: { grad: [{ name: "exp", inputs: { x: r([4], 17) }, build: ({ x }) => o.exp(x!) }] },
  Log: { grad: [{ name: "log", inputs: { x: pos([4], 18) }, build: ({ x }) => o.log(x!) }] },
  // ORT has no float64 Erf, so erf runs in float32 here: a larger step and a float32 tolerance.
  Erf: { grad: [{ name: "erf (float32 kernel)", inputs: { x: r([6], 19, -2, 2) }, build: ({ x }) => o.erf(x!), opts: { eps: 1e-3, rtol: 1e-3, atol: 1e-4 } }] },
  Tanh: { grad: [{ name: "tanh", inputs: { x: r([6], 20, -2, 2) }, build: ({ x }) => o.tanh(x!) }] },
  Sigmoid: { grad: [{ name: "sigmoid", inputs: { x: r([6], 21, -3, 3) }, build: ({ x }) => o.sigmoid(x!) }] },
  Relu: { grad: [{ name: "away from the kink", inputs: { x: awayFromZero([8], 22) }, build: ({ x }) => o.relu(x!) }] },
  Sin: { grad: [{ name: "sin", inputs: { x: r([6], 23, -3, 3) }, build: ({ x }) => o.sin(x!) }] },
  Cos: { grad: [{ name: "cos", inputs: { x: r([6], 24, -3, 3) }, build: ({ x }) => o.cos(x!) }] },
  Where: {
    grad: [{ name: "broadcast branches", inputs: { c: bools([2, 3], [1, 0, 1, 0, 0, 1]), a: r([2, 3], 25), b: r([3], 26) }, wrt: ["a", "b"], build: ({ c, a, b }) => o.where(c!, a!, b!) }],
  },
  Equal: { nondifferentiable: [{ name: "equal", inputs: { a: tensor("float64", [3], Float64Array.of(1, 2, 3)), b: tensor("float64", [3], Float64Array.of(1, 0, 3)) }, build: ({ a, b }) => o.equal(a!, b!), expect: [1, 0, 1] }] },
  Less: { nondifferentiable: [{ name: "less", inputs: { a: tensor("float64", [3], Float64Array.of(1, 2, 3)), b: tensor("float64", [3], Float64Array.of(2, 2, 2)) }, build: ({ a, b }) => o.less(a!, b!), expect: [1, 0, 0] }] },
  Not: { nondifferentiable: [{ name: "not", inputs: { a: bools([2], [1, 0]) }, build: ({ a }) => o.not(a!), expect: [0, 1] }] },
  Cast: {
    grad: [{ name: "float64 -> float32 -> float64 (linear, so a large step is exact)", inputs: { x: r([4], 27) }, build: ({ x }) => o.cast(o.mul(o.cast(x!, "float32"), 3), "float64"), opts: { eps: 1e-2, rtol: 1e-5, atol: 1e-5 } }],
    forward: [{ name: "int64 -> float64", inputs: { i: int64([3], [1, -2, 7]) }, build: ({ i }) => o.cast(i!, "float64"), expect: [1, -2, 7] }],
  },
  MatMul: {
    grad: [
      { name: "2-D", inputs: { a: r([2, 3], 28), b: r([3, 4], 29) }, build: ({ a, b }) => o.matmul(a!, b!) },
      { name: "batched with broadcast weight", inputs: { a: r([2, 2, 3], 30), b: r([3, 2], 31) }, build: ({ a, b }) => o.matmul(a!, b!) },
      { name: "batched both", inputs: { a: r([2, 1, 2, 3], 32), b: r([3, 3, 2], 33) }, build: ({ a, b }) => o.matmul(a!, b!) },
    ],
  },
  Gemm: {
    grad: [0, 1, 2, 3].map((t) => {
      const transA = t & 1;
      const transB = (t >> 1) & 1;
      return {
        name: `transA=${transA} transB=${transB} alpha beta bias`,
        inputs: { a: r(transA ? [3, 2] : [2, 3], 34 + t), b: r(transB ? [4, 3] : [3, 4], 40 + t), c: r([4], 44 + t) },
        build: ({ a, b, c }) => o.gemm(a!, b!, { transA, transB, alpha: 0.7, beta: 1.3 }, c),
      };
    }),
  },
  ReduceSum: { grad: [{ name: "axis 1", inputs: { x: r([2, 3, 2], 50) }, build: ({ x }) => o.reduceSum(x!, [1], false) }, { name: "axes 0,2 keepdims", inputs: { x: r([2, 3, 2], 51) }, build: ({ x }) => o.reduceSum(x!, [0, -1], true) }] },
  ReduceMean: { grad: [{ name: "last axis", inputs: { x: r([2, 3, 4], 52) }, build: ({ x }) => o.reduceMean(x!, [-1], false) }] },
  ReduceMax: { grad: [{ name: "axis 1", inputs: { x: r([3, 4], 53) }, build: ({ x }) => o.reduceMax(x!, [1], false) }, { name: "keepdims", inputs: { x: r([3, 4], 54) }, build: ({ x }) => o.reduceMax(x!, [0], true) }] },
  Softmax: { grad: [{ name: "last axis", inputs: { x: r([2, 5], 55, -2, 2) }, build: ({ x }) => o.softmax(x!, -1) }, { name: "axis 0", inputs: { x: r([3, 2], 56) }, build: ({ x }) => o.softmax(x!, 0) }] },
  LogSoftmax: { grad: [{ name: "last axis", inputs: { x: r([2, 5], 57, -2, 2) }, build: ({ x }) => o.logSoftmax(x!, -1) }] },
  LayerNormalization: {
    grad: [
      { name: "last axis", inputs: { x: r([2, 3, 4], 58), s: r([4], 59), b: r([4], 60) }, build: ({ x, s, b }) => o.layerNorm(x!, s!, b!, 1e-5) },
      { name: "last two axes, no bias", inputs: { x: r([2, 3, 4], 61), s: r([3, 4], 62) }, build: ({ x, s }) => o.layerNorm(x!, s!, undefined, 1e-5, -2) },
    ],
  },
  // ORT has only a float32 Gelu kernel: float32 differences with a larger step.
  Gelu: { grad: [{ name: "float32", inputs: { x: randomF32([12], 90, -3, 3) }, build: ({ x }) => o.fusedGelu(x!), opts: { eps: 1e-2, rtol: 2e-3, atol: 2e-4 } }] },
  Shape: { nondifferentiable: [{ name: "shape", inputs: { x: r([2, 3], 63) }, build: ({ x }) => o.shapeOf(x!), expect: [2, 3] }] },
  Size: { nondifferentiable: [{ name: "size", inputs: { x: r([2, 3], 64) }, build: ({ x }) => o.size(x!), expect: [6] }] },
  Reshape: { grad: [{ name: "0 and -1", inputs: { x: r([2, 3, 4], 65) }, build: ({ x }) => o.reshape(x!, [0, -1]) }] },
  Transpose: { grad: [{ name: "perm 2,0,1", inputs: { x: r([2, 3, 4], 66) }, build: ({ x }) => o.transpose(x!, [2, 0, 1]) }] },
  Concat: { grad: [{ name: "three inputs, axis 1", inputs: { a: r([2, 1], 67), b: r([2, 3], 68), c: r([2, 2], 69) }, build: ({ a, b, c }) => o.concat([a!, b!, c!], 1) }] },
  Slice: { grad: [{ name: "negative bounds, two axes", inputs: { x: r([3, 5], 70) }, build: ({ x }) => o.slice(x!, [1, -4], [3, -1], [0, 1]) }] },
  Pad: { grad: [{ name: "both sides", inputs: { x: r([2, 3], 71) }, build: ({ x }) => o.pad(x!, [1, 0, 0, 2]) }] },
  Split: { grad: [{ name: "one output unused", inputs: { x: r([2, 5], 72) }, build: ({ x }) => o.mul(o.split(x!, [2, 3], 1)[1]!, 2) }, { name: "both used", inputs: { x: r([4, 2], 73) }, build: ({ x }) => { const [a, b] = o.split(x!, [1, 3], 0); return o.concat([b!, a!], 0); } }] },
  Gather: { grad: [{ name: "embedding lookup with repeated ids", inputs: { w: r([5, 3], 74), ids: int64([2, 2], [1, 4, 1, 0]) }, wrt: ["w"], build: ({ w, ids }) => o.gather(w!, ids!, 0) }] },
  GatherElements: { grad: [{ name: "axis 1", inputs: { x: r([3, 4], 75), i: int64([3, 2], [0, 3, 1, 1, 2, 0]) }, wrt: ["x"], build: ({ x, i }) => o.gatherElements(x!, i!, 1) }] },
  ScatterND: { skip: "emitted only by the Gather gradient rule and checked through it; second-order gradients are not supported" },
  ScatterElements: { skip: "emitted only by the GatherElements gradient rule and checked through it; second-order gradients are not supported" },
  Expand: { grad: [{ name: "[3,1] -> [2,3,4]", inputs: { x: r([3, 1], 76) }, build: ({ x }) => o.expand(x!, x!.graph.int64s([2, 3, 4])) }] },
  Unsqueeze: { grad: [{ name: "two axes", inputs: { x: r([2, 3], 77) }, build: ({ x }) => o.unsqueeze(x!, [0, 3]) }] },
  Squeeze: { grad: [{ name: "middle axis", inputs: { x: r([2, 1, 3], 78) }, build: ({ x }) => o.squeeze(x!, [1]) }] },
  ConstantOfShape: { nondifferentiable: [{ name: "fill", inputs: { x: r([2, 2], 79) }, build: ({ x }) => o.constantOfShape(o.shapeOf(x!), 2.5, "float64"), expect: [2.5, 2.5, 2.5, 2.5] }] },
  CumSum: { grad: [{ name: "axis 1", inputs: { x: r([2, 4], 82) }, build: ({ x }) => o.cumsum(x!, 1) }, { name: "exclusive, reverse", inputs: { x: r([3, 2], 83) }, build: ({ x }) => o.cumsum(x!, 0, { exclusive: true, reverse: true }) }] },
  NonZero: { nondifferentiable: [{ name: "indices of true elements (ORT has no float64 kernel)", inputs: { x: bools([2, 3], [0, 1, 0, 1, 0, 1]) }, build: ({ x }) => o.nonZero(x!), expect: [0, 1, 1, 1, 0, 2] }] },
  StopGradient: { nondifferentiable: [{ name: "passes values through (lowered to ONNX Identity)", inputs: { x: tensor("float64", [2], Float64Array.of(1.5, -2)) }, build: ({ x }) => o.stopGradient(x!), expect: [1.5, -2] }] },
  Trilu: { grad: [{ name: "upper k=1", inputs: { x: r([3, 3], 80) }, build: ({ x }) => o.trilu(x!, true, 1) }, { name: "lower", inputs: { x: r([2, 3, 3], 81) }, build: ({ x }) => o.trilu(x!, false, 0) }] },
};

describe("op conformance (float64 finite differences)", () => {
  for (const [op, entry] of Object.entries(OP_CASES)) {
    describe(op, () => {
      if ("skip" in entry) {
        it.skip(`${op}: ${entry.skip}`);
        return;
      }
      if ("nondifferentiable" in entry) {
        assert.equal(OPS[op as OpName].grad, "nondifferentiable", `${op} is listed as nondifferentiable but has a rule`);
        for (const c of entry.nondifferentiable) it(`${c.name} (forward; no gradient by definition)`, () => runForwardCase(c));
        return;
      }
      for (const c of entry.grad) it(c.name, () => runGradCase(c));
      for (const c of entry.forward ?? []) it(`${c.name} (forward)`, () => runForwardCase(c));
    });
  }

  it("every registered op has an entry in the table", () => {
    const missing = Object.keys(OPS).filter((k) => !(k in OP_CASES));
    assert.deepEqual(missing, []);
  });
});
