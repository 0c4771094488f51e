// The int8 frozen Linear: host quantization round trips, the forward matches the float32 product
// within quantization error, and the input gradient equals the float32 gradient through the
// dequantized weight for every kernel (forward and backward variants).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { gradients } from "../../autodiff/gradients.js";
import { compile } from "../../runtime/session.js";
import { maxAbsDiff, randomF32 } from "../../../test/helpers.js";
import { Graph } from "../graph.js";
import { mul, sumAll } from "../ops/index.js";
import { dequantizeInt4Blockwise, dequantizeInt8, int8Storage, quantizeInt4Blockwise, quantizeInt8, transposeInt8, zeroPoints } from "../quantize.js";
import { tensor } from "../tensor.js";
import { int4Linear, int8Linear, linear, type Int8Kernel } from "./linear.js";

describe("int8 quantization on the host", () => {
  it("is symmetric per output channel, within half a step of the float value", () => {
    const w = randomF32([6, 10], 1, -2, 2);
    for (const axis of [0, 1] as const) {
      const qw = quantizeInt8(w, axis);
      assert.equal(qw.scale.length, axis === 0 ? 6 : 10);
      const back = dequantizeInt8(qw).data;
      for (let i = 0; i < back.length; i++) {
        const s = qw.scale[axis === 0 ? Math.floor(i / 10) : i % 10]!;
        assert.ok(Math.abs(back[i]! - w.data[i]!) <= s / 2 + 1e-7, `element ${i}`);
      }
      // The largest magnitude of each channel is exactly +-127.
      assert.equal(Math.max(...Array.from(qw.q, Math.abs)), 127);
    }
  });

  it("transposes without requantizing", () => {
    const qw = quantizeInt8(randomF32([3, 5], 2), 0);
    const t = transposeInt8(qw);
    assert.deepEqual(t.shape, [5, 3]);
    assert.equal(t.channelAxis, 1);
    const a = dequantizeInt8(qw).data;
    const b = dequantizeInt8(t).data;
    for (let i = 0; i < 3; i++) for (let j = 0; j < 5; j++) assert.equal(b[j * 3 + i], a[i * 5 + j]);
  });

  it("4-bit blockwise round trips within half a step per block", () => {
    const w = randomF32([4, 40], 3, -1, 1); // K = 40: a partial second block of 32
    const q = quantizeInt4Blockwise(w, 32);
    assert.equal(q.packed.length, 4 * 2 * 16);
    const back = dequantizeInt4Blockwise(q).data;
    for (let r = 0; r < 4; r++) for (let c = 0; c < 40; c++) assert.ok(Math.abs(back[r * 40 + c]! - w.data[r * 40 + c]!) <= q.scales[r * 2 + Math.floor(c / 32)]! / 2 + 1e-7);
  });
});

describe("int8 Linear in the graph", () => {
  const [rows, inF, outF] = [6, 16, 12];
  const x = randomF32([2, 3, inF], 4, -2, 2);
  const w = randomF32([outF, inF], 5, -0.5, 0.5);
  const bias = randomF32([outF], 6);
  const qw = transposeInt8(quantizeInt8(w, 0)); // [in, out], scale per out
  const wDeq = dequantizeInt8(quantizeInt8(w, 0)); // [out, in]
  const upstream = randomF32([2, 3, outF], 7);

  /** y and dL/dx for L = sum(y * upstream), with the float32 linear or the int8 one. */
  const weight = (g: Graph, storage: "int8" | "uint8") => ({
    q: g.param("q", storage === "int8" ? { dtype: "int8", shape: qw.shape, data: qw.q } : { dtype: "uint8", shape: qw.shape, data: int8Storage(qw.q) }),
    scale: g.param("s", { dtype: "float32", shape: [outF], data: qw.scale }),
    zeroPoint: storage === "uint8" ? g.param("z", { dtype: "uint8", shape: [outF], data: zeroPoints(outF) }) : undefined,
  });
  async function run(quantized: { kernel: Int8Kernel; gradKernel: Int8Kernel; storage?: "int8" | "uint8" } | undefined, dy = upstream) {
    const g = new Graph();
    const xv = g.param("x", x, { trainable: true });
    const b = g.param("b", bias);
    const y = quantized
      ? int8Linear(xv, { ...weight(g, quantized.storage ?? "uint8"), kernel: quantized.kernel, gradKernel: quantized.gradKernel }, b)
      : linear(xv, g.param("w", wDeq), b);
    const loss = sumAll(mul(y, g.constant(dy)));
    const [dx] = gradients(loss, [xv]);
    const step = await compile({ y, dx: dx! });
    const out = await step.run({});
    await step.release();
    return { y: out.y!.data as Float32Array, dx: out.dx!.data as Float32Array, ops: step.opCounts };
  }

  it("forward: dynamic int8 activations match the dequantized weight's product within quantization error", async () => {
    const ref = await run(undefined);
    const q = await run({ kernel: "integer", gradKernel: "dequantize", storage: "uint8" });
    assert.ok((q.ops.MatMulInteger ?? 0) >= 1 && (q.ops.DynamicQuantizeLinear ?? 0) >= 1, JSON.stringify(q.ops));
    // Activation quantization: |x| <= 2 over 255 levels -> step ~0.016, times sum |w| over 16 inputs.
    const err = maxAbsDiff(q.y, ref.y);
    assert.ok(err < 0.05, `max error ${err}`);
    assert.ok(err > 0, "the integer kernel quantizes activations, so it is not bit-identical");
    for (const storage of ["int8", "uint8"] as const) {
      const dq = await run({ kernel: "dequantize", gradKernel: "dequantize", storage });
      assert.ok(maxAbsDiff(dq.y, ref.y) < 1e-5, storage);
    }
  });

  for (const gradKernel of ["dequantize", "integer"] as const) {
    it(`dX through the int8 weight (${gradKernel} backward) equals the float32 gradient through the dequantized weight`, async () => {
      const ref = await run(undefined);
      const q = await run({ kernel: "integer", gradKernel, storage: "uint8" });
      const err = maxAbsDiff(q.dx, ref.dx);
      // Dequantize-and-multiply is exact up to float32 rounding; the int8 GEMM on a dynamically
      // quantized gradient is within its quantization step.
      assert.ok(err < (gradKernel === "dequantize" ? 1e-5 : 0.02), `max dx error ${err}`);
      assert.equal(q.ops.Gemm ?? 0, gradKernel === "dequantize" ? 1 : 0, "no float32 Gemm on a dequantized weight unless asked");
    });
  }

  it("the int8 backward quantizes the gradient per row: a row 1e4 times smaller keeps its relative accuracy", async () => {
    const dy = { ...upstream, data: (upstream.data as Float32Array).map((v, i) => (i < outF ? v * 1e-4 : v)) };
    const ref = await run(undefined, dy);
    const q = await run({ kernel: "integer", gradKernel: "integer", storage: "uint8" }, dy);
    for (const [r, rows2] of [[0, [0, inF]], [1, [inF, 2 * inF]]] as const) {
      const [a, b] = [q.dx.subarray(rows2[0], rows2[1]), ref.dx.subarray(rows2[0], rows2[1])];
      const rel = maxAbsDiff(a, b) / Math.max(...Array.from(b, Math.abs));
      // Per-tensor quantization would round the small row to zero (relative error 1).
      assert.ok(rel < 0.03, `row ${r}: relative dx error ${rel}`);
    }
  });

  it("4-bit: MatMulNBits computes exactly the product with the dequantized blockwise weight", async () => {
    const K = 40; // a partial second block
    const w4 = randomF32([outF, K], 8, -0.5, 0.5);
    const q = quantizeInt4Blockwise(w4, 32);
    const g = new Graph();
    const xv = g.input("x", "float32", [rows, K]);
    const y = int4Linear(xv, { packed: g.param("p", { dtype: "uint8", shape: [outF, 2, 16], data: q.packed }), scales: g.param("s", tensor("float32", [outF * 2], q.scales)), inFeatures: K, blockSize: 32 });
    const ref = linear(xv, g.param("w", dequantizeInt4Blockwise(q)));
    const step = await compile({ y, ref });
    const out = await step.run({ x: randomF32([rows, K], 9, -2, 2) });
    await step.release();
    assert.ok(maxAbsDiff(out.y!.data as Float32Array, out.ref!.data as Float32Array) < 1e-5);
  });

  it("refuses a weight of the wrong shape, naming it", () => {
    const g = new Graph();
    const xv = g.input("x", "float32", [rows, inF + 1]);
    const w = weight(g, "uint8");
    assert.throws(() => int8Linear(xv, w), /int8Linear: input .* expects 16/);
    assert.throws(() => int8Linear(g.input("x2", "float32", [rows, inF]), { ...w, scale: g.param("s2", tensor("float32", [outF + 1], new Float32Array(outF + 1))) }), /scale must be float32 \[12\]/);
  });
});
