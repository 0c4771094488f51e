// Linear layers on Hugging Face weights, in float32 or with an int8 frozen weight.
import { type OpDef, type Value } from "../graph.js";
import { input } from "../ops/define.js";
import { add, concat, gemm, reduceSum, reshape, shapeOf, slice } from "../ops/index.js";
import { formatShape, sameDim } from "../shape.js";

/**
 * y = x W^T + b for x [..., in] and a Hugging Face `nn.Linear` weight W [out, in]. Lowered as
 * Gemm(transB=1) on the flattened input so ORT uses the weight as stored.
 */
export function linear(x: Value, weight: Value, bias?: Value): Value {
  const [out, inFeatures] = weight.shape;
  if (x.shape[x.rank - 1] !== inFeatures) {
    throw new RangeError(`linear: input ${x} has last dim ${x.shape[x.rank - 1]}, weight ${weight} expects ${inFeatures}`);
  }
  return matmulFlat(x, (x2) => gemm(x2, weight, { transB: 1 }, bias), out!);
}

/**
 * y = x W + b for a GPT-2 `Conv1D` weight W [in, out] (transformers stores it transposed).
 */
export function conv1d(x: Value, weight: Value, bias?: Value): Value {
  const [inFeatures, out] = weight.shape;
  if (x.shape[x.rank - 1] !== inFeatures) {
    throw new RangeError(`conv1d: input ${x} has last dim ${x.shape[x.rank - 1]}, weight ${weight} expects ${inFeatures}`);
  }
  return matmulFlat(x, (x2) => gemm(x2, weight, {}, bias), out!);
}

/** Apply a 2-D op to x flattened to [rows, in] and restore the leading dims. */
function matmulFlat(x: Value, op: (x2: Value) => Value, out: number | string): Value {
  if (x.rank === 2) return op(x);
  const y2 = op(reshape(x, [-1, x.shape[x.rank - 1] as number]));
  const lead = slice(shapeOf(x), [0], [x.rank - 1], [0]);
  return reshape(y2, concat([lead, x.graph.int64s([out as number])], 0));
}

// ---- Quantized frozen weights ---------------------------------------------------------------
// A frozen weight stored as int8 q [in, out] (MatMulInteger's B layout) with one float scale per
// output channel. The forward quantizes activations on the fly (DynamicQuantizeLinear) and runs
// an integer GEMM; the input gradient goes through the same weight, never through a float32 copy
// of the whole model (see Int8MatMul's kernels).

/** How Int8MatMul runs: int8 GEMM on dynamically quantized activations, or dequantize + Gemm. */
export type Int8Kernel = "integer" | "dequantize";
type Int8MatMulAttrs = { transB: number; kernel: string; gradKernel: string };

/**
 * y = x @ W (transB 0) or x @ W^T (transB 1) with W = q * scale[column], q int8 [K, N], scale
 * [N], x float32 2-D, optional bias. One IR node that lowers to several ONNX nodes:
 * - kernel "integer", transB 0: DynamicQuantizeLinear(x) -> MatMulInteger -> Cast -> Mul by
 *   x_scale * scale (the pattern ONNX Runtime fuses into one DynamicQuantizeMatMul);
 * - kernel "integer", transB 1 (the input gradient): the per-channel scale lies along the
 *   contraction, so it is folded into x first; x is quantized per row (symmetric, scale
 *   max|row| / 127), then MatMulInteger against q^T and a Mul by the row scales (ORT keeps a
 *   transposed int8 copy: twice the int8 weight memory, still half a float32 one);
 * - kernel "dequantize": DequantizeLinear(q) -> Gemm, a float32 copy of one layer's weight at a
 *   time (ORT does not constant-fold DequantizeLinear).
 * The gradient treats quantization as exact (straight-through): dx = g @ W^T, the float32
 * gradient through the dequantized weight; q and scale are frozen and get none.
 */
export const Int8MatMul: OpDef<Int8MatMulAttrs> = {
  type: "Int8MatMul",
  attrs: { transB: "int", kernel: "string", gradKernel: "string" },
  infer: (inputs, { transB }) => {
    const x = input(inputs, 0);
    const q = input(inputs, 1);
    const scale = input(inputs, 2);
    const zero = inputs[3];
    if (x.dtype !== "float32" || x.rank !== 2) throw new TypeError(`x must be 2-D float32, got ${x}`);
    if ((q.dtype !== "int8" && q.dtype !== "uint8") || q.rank !== 2) throw new TypeError(`q must be 2-D int8 or uint8, got ${q}`);
    if (zero && (zero.dtype !== q.dtype || zero.rank !== 1 || !sameDim(zero.shape[0]!, q.shape[1]!))) throw new RangeError(`zero point must be ${q.dtype} [${q.shape[1]}], got ${zero}`);
    const [k, n] = transB ? [q.shape[1]!, q.shape[0]!] : [q.shape[0]!, q.shape[1]!];
    if (!sameDim(x.shape[1]!, k)) throw new RangeError(`inner dims differ: x ${formatShape(x.shape)}, q ${formatShape(q.shape)} (transB=${transB})`);
    if (scale.dtype !== "float32" || scale.rank !== 1 || !sameDim(scale.shape[0]!, q.shape[1]!)) throw new RangeError(`scale must be float32 [${q.shape[1]}], got ${scale}`);
    const bias = inputs[4];
    if (bias && (bias.rank !== 1 || !sameDim(bias.shape[0]!, n))) throw new RangeError(`bias must be [${n}], got ${bias}`);
    return [{ dtype: "float32", shape: [x.shape[0]!, n] }];
  },
  grad: ({ inputs: [, q, scale, zero, bias], dy: [g], needs, attrs: { transB, kernel, gradKernel } }) => [
    needs[0] ? int8MatMul(g!, { q: q!, scale: scale!, zeroPoint: zero, kernel: gradKernel as Int8Kernel, gradKernel: kernel as Int8Kernel }, 1 - transB) : undefined,
    undefined,
    undefined,
    undefined,
    bias && needs[4] ? reduceSum(g!, [0]) : undefined,
  ],
  lower: (node, ctx) => {
    const [x, q, scale, zero, bias] = node.inputs.map((v) => ctx.name(v)) as [string, string, string, string, string];
    const { transB, kernel } = node.attrs as Int8MatMulAttrs;
    if (kernel === "dequantize") {
      const [w] = ctx.emit({ opType: "DequantizeLinear", inputs: zero ? [q, scale, zero] : [q, scale], attrs: { axis: { kind: "int", value: 1 } } }, 1);
      return { opType: "Gemm", inputs: bias ? [x, w!, bias] : [x, w!], attrs: { transB: { kind: "int", value: transB } } };
    }
    if (kernel !== "integer") throw new Error(`Int8MatMul: unknown kernel "${kernel}" (integer or dequantize)`);
    let s: string;
    let acc: string;
    if (transB && zero) {
      // The input gradient g [M, N] @ W^T: the per-channel scale lies along the contraction, so
      // it is folded into g first. g is then quantized per row, symmetric (scale max|row| / 127,
      // stored + 128 as uint8): per-tensor quantization would round the rows of small gradient to
      // zero. q's zero points are all 128, so one scalar serves the columns of q^T as well.
      const one = (opType: string, inputs: string[], attrs?: Parameters<typeof ctx.emit>[0]["attrs"]) => ctx.emit({ opType, inputs, attrs }, 1)[0]!;
      const a = one("Mul", [x, scale]);
      const rowMax = one("ReduceMax", [one("Abs", [a]), ctx.int64s([1])], { keepdims: { kind: "int", value: 1 } });
      s = one("Max", [one("Div", [rowMax, ctx.scalar("float32", 127)]), ctx.scalar("float32", 1e-30)]);
      const aq = one("Cast", [one("Add", [one("Round", [one("Div", [a, s])]), ctx.scalar("float32", 128)])], { to: { kind: "int", value: 2 } });
      const z = ctx.scalar("uint8", 128);
      acc = one("MatMulInteger", [aq, one("Transpose", [q], { perm: { kind: "ints", value: [1, 0] } }), z, z]);
    } else {
      if (transB) throw new Error("Int8MatMul: the int8 input-gradient kernel needs uint8 storage with zero points");
      const [aq, aScale, aZero] = ctx.emit({ opType: "DynamicQuantizeLinear", inputs: [x] }, 3) as [string, string, string];
      [acc] = ctx.emit({ opType: "MatMulInteger", inputs: zero ? [aq, q, aZero, zero] : [aq, q, aZero] }, 1) as [string];
      [s] = ctx.emit({ opType: "Mul", inputs: [aScale, scale] }, 1) as [string];
    }
    const [accF] = ctx.emit({ opType: "Cast", inputs: [acc], attrs: { to: { kind: "int", value: 1 } } }, 1) as [string];
    if (!bias) return { opType: "Mul", inputs: [accF, s] };
    const [y] = ctx.emit({ opType: "Mul", inputs: [accF, s] }, 1) as [string];
    return { opType: "Add", inputs: [y, bias] };
  },
};

export function int8MatMul(x: Value, w: Int8Weight, transB = 0, bias?: Value): Value {
  // The int8 input gradient is the default where it can run (uint8 storage): faster than
  // dequantize + Gemm on every BERT-base shape measured (bench quant, case gemm).
  const attrs: Int8MatMulAttrs = { transB, kernel: w.kernel ?? "integer", gradKernel: w.gradKernel ?? (w.zeroPoint ? "integer" : "dequantize") };
  return x.graph.apply(Int8MatMul, [x, w.q, w.scale, w.zeroPoint, bias], attrs)[0]!;
}

/** W = (q - zeroPoint) * scale along `axis` as a float32 value (DequantizeLinear); frozen. */
export const DequantizeLinear: OpDef<{ axis: number }> = {
  type: "DequantizeLinear",
  attrs: { axis: "int" },
  infer: (inputs) => {
    const q = input(inputs, 0);
    if (q.dtype !== "int8" && q.dtype !== "uint8") throw new TypeError(`DequantizeLinear needs int8/uint8, got ${q}`);
    return [{ dtype: "float32", shape: q.shape }];
  },
  grad: "nondifferentiable",
};
export const dequantizeLinear = (q: Value, scale: Value, axis = 1, zeroPoint?: Value): Value => q.graph.apply(DequantizeLinear, zeroPoint ? [q, scale, zeroPoint] : [q, scale], { axis })[0]!;

/**
 * A frozen Linear's 8-bit weight: q [in, out] and the per-output-channel scale [out]. Symmetric
 * int8 has no zero point; the same values stored as uint8 carry zero point 128 per channel,
 * which ORT's AVX2 kernels need: their u8 x s8 products saturate int16 pairwise sums for
 * full-range weights (measured: errors ~50x the quantization step), u8 x u8 does not.
 */
export interface Int8Weight {
  q: Value;
  scale: Value;
  zeroPoint?: Value;
  kernel?: Int8Kernel;
  /** The input gradient's kernel (default "integer" with a zero point, else "dequantize"). */
  gradKernel?: Int8Kernel;
}

/**
 * y = x W^T + b for x [..., in] with W stored as int8 (see Int8MatMul): the quantized twin of
 * `linear` / `conv1d` (both store q as [in, out]).
 */
export function int8Linear(x: Value, w: Int8Weight, bias?: Value): Value {
  const [inFeatures, out] = w.q.shape;
  if (x.shape[x.rank - 1] !== inFeatures) {
    throw new RangeError(`int8Linear: input ${x} has last dim ${x.shape[x.rank - 1]}, weight ${w.q} expects ${inFeatures}`);
  }
  return matmulFlat(x, (x2) => int8MatMul(x2, w, 0, bias), out!);
}

/** A frozen Linear's 4-bit weight in ONNX Runtime's MatMulNBits layout (see quantizeInt4Blockwise). */
export interface Int4Weight {
  /** uint8 [out, blocks, blockSize / 2]: two 4-bit values per byte, zero point 8. */
  packed: Value;
  /** float32 [out * blocks]. */
  scales: Value;
  inFeatures: number;
  blockSize: number;
}

type MatMulNBitsAttrs = { K: number; N: number; bits: number; block_size: number };

/**
 * y = x W^T with W 4-bit blockwise: ONNX Runtime's MatMulNBits (com.microsoft; not a standard
 * ONNX op, so a graph using it runs on ORT only). Inference only: it has no input-gradient rule
 * here (train over an int8 base instead).
 */
export const MatMulNBits: OpDef<MatMulNBitsAttrs> = {
  type: "MatMulNBits",
  attrs: { K: "int", N: "int", bits: "int", block_size: "int" },
  infer: (inputs, { K, N }) => {
    const x = input(inputs, 0);
    if (x.dtype !== "float32" || x.rank !== 2 || !sameDim(x.shape[1]!, K)) throw new TypeError(`x must be float32 [rows, ${K}], got ${x}`);
    return [{ dtype: "float32", shape: [x.shape[0]!, N] }];
  },
  lower: (node, ctx) => ({ opType: "MatMulNBits", domain: "com.microsoft", inputs: node.inputs.map((v) => ctx.name(v)), attrs: Object.fromEntries(Object.entries(node.attrs).map(([k, v]) => [k, { kind: "int" as const, value: v }])) }),
};

/** y = x W^T + b for x [..., in] with W stored 4-bit blockwise (inference graphs). */
export function int4Linear(x: Value, w: Int4Weight, bias?: Value): Value {
  const out = w.packed.shape[0] as number;
  if (x.shape[x.rank - 1] !== w.inFeatures) throw new RangeError(`int4Linear: input ${x} has last dim ${x.shape[x.rank - 1]}, weight ${w.packed} expects ${w.inFeatures}`);
  return matmulFlat(
    x,
    (x2) => {
      const y = x2.graph.apply(MatMulNBits, [x2, w.packed, w.scales], { K: w.inFeatures, N: out, bits: 4, block_size: w.blockSize })[0]!;
      return bias ? add(y, bias) : y;
    },
    out,
  );
}
