// Matrix products. Linear layers use Gemm with transB=1 on Hugging Face's [out, in] weights:
// ORT would otherwise constant-fold MatMul(x, Transpose(W)) into a second copy of every weight.
import { type OpDef, type Value } from "../graph.js";
import { broadcastShapes, formatShape, sameDim } from "../shape.js";
import { expectFloat, expectSameDtype, input } from "./define.js";
import { mul } from "./elementwise.js";
import { transpose } from "./shape-ops.js";

export const MatMul: OpDef = {
  type: "MatMul",
  attrs: {},
  infer: (inputs) => {
    const a = input(inputs, 0);
    const b = input(inputs, 1);
    const dtype = expectSameDtype([a, b]);
    expectFloat(a);
    if (a.rank < 2 || b.rank < 2) throw new RangeError("MatMul operands need rank >= 2 (reshape vectors first)");
    const [m, k] = a.shape.slice(-2);
    const [k2, n] = b.shape.slice(-2);
    if (!sameDim(k!, k2!)) throw new RangeError(`inner dims differ: ${formatShape(a.shape)} @ ${formatShape(b.shape)}`);
    const batch = broadcastShapes([a.shape.slice(0, -2), b.shape.slice(0, -2)]);
    if (!batch) throw new RangeError(`batch dims do not broadcast: ${formatShape(a.shape)} @ ${formatShape(b.shape)}`);
    return [{ dtype, shape: [...batch, m!, n!] }];
  },
  grad: ({ inputs: [a, b], dy: [g], needs }) => [needs[0] ? matmul(g!, swapLast(b!)) : undefined, needs[1] ? matmul(swapLast(a!), g!) : undefined],
};

type GemmAttrs = { alpha: number; beta: number; transA: number; transB: number };

/** Y = alpha * op(A) @ op(B) + beta * C, with A and B 2-D. */
export const Gemm: OpDef<GemmAttrs> = {
  type: "Gemm",
  attrs: { alpha: "float", beta: "float", transA: "int", transB: "int" },
  infer: (inputs, { transA, transB }) => {
    const a = input(inputs, 0);
    const b = input(inputs, 1);
    const c = inputs[2];
    const dtype = expectSameDtype(c ? [a, b, c] : [a, b]);
    expectFloat(a);
    if (a.rank !== 2 || b.rank !== 2) throw new RangeError("Gemm operands must be 2-D");
    const [m, k] = transA ? [a.shape[1]!, a.shape[0]!] : [a.shape[0]!, a.shape[1]!];
    const [k2, n] = transB ? [b.shape[1]!, b.shape[0]!] : [b.shape[0]!, b.shape[1]!];
    if (!sameDim(k, k2)) throw new RangeError(`inner dims differ: ${formatShape(a.shape)} (transA=${transA}) and ${formatShape(b.shape)} (transB=${transB})`);
    if (c && !broadcastShapes([c.shape, [m, n]])) throw new RangeError(`C ${formatShape(c.shape)} does not broadcast to [${m}, ${n}]`);
    return [{ dtype, shape: [m, n] }];
  },
  grad: ({ inputs: [a, b, c], dy: [g], needs, attrs: { alpha, beta, transA, transB } }) => {
    // With A' = op(A), B' = op(B): dA' = g B'^T and dB' = A'^T g; transposed back where op
    // transposed. alpha rides along in the backward Gemms (no extra elementwise pass).
    const dA = !needs[0] ? undefined : transA ? gemm(b!, g!, { alpha, transA: transB, transB: 1 }) : gemm(g!, b!, { alpha, transB: 1 - transB });
    const dB = !needs[1] ? undefined : transB ? gemm(g!, a!, { alpha, transA: 1, transB: transA }) : gemm(a!, g!, { alpha, transA: 1 - transA });
    return [dA, dB, c && needs[2] ? (beta === 1 ? g : mul(g!, beta)) : undefined];
  },
};

/** Swap the last two axes. */
function swapLast(x: Value): Value {
  const perm = [...x.shape.keys()];
  perm.splice(-2, 2, x.rank - 1, x.rank - 2);
  return transpose(x, perm);
}

export const matmul = (a: Value, b: Value): Value => a.graph.apply(MatMul, [a, b])[0]!;
export function gemm(a: Value, b: Value, opts: Partial<GemmAttrs> = {}, c?: Value): Value {
  const attrs: GemmAttrs = { alpha: 1, beta: 1, transA: 0, transB: 0, ...opts };
  return a.graph.apply(Gemm, c ? [a, b, c] : [a, b], attrs)[0]!;
}
