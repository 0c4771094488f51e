// The WebGPU lowering at fixed input dimensions (LowerOptions.dims / SessionOptions.dims), run on
// the CPU provider: shape arithmetic becomes constants, int64 inputs and the integers computed from
// them are int32 in the model, results equal the plain lowering's, and runs with other shapes or
// values beyond int32 fail by name. (The WebGPU device check is test/web-webgpu.test.ts.)
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { randomF32 } from "../../test/helpers.js";
import { gradients } from "../autodiff/gradients.js";
import { crossEntropy } from "../ir/composites/losses.js";
import { Graph } from "../ir/graph.js";
import { cast, concat, constantOfShape, cumsum, div, equal, gather, reshape, shapeOf, size, slice, sumAll } from "../ir/ops/index.js";
import { int64 } from "../ir/tensor.js";
import { lowerToOnnx } from "./lower.js";
import { ModelProto, OnnxDataType } from "./onnx-schema.js";
import { compile } from "./session.js";

interface Decoded {
  graph: {
    node: { opType: string; input: string[] }[];
    input: { name: string; type: { tensorType: { elemType: number; shape: { dim: { dimValue?: number; dimParam?: string }[] } } } }[];
    output: { name: string; type: { tensorType: { elemType: number } } }[];
  };
}

/** Embedding lookup by ids, logits through a run-time shape, a causal-LM label shift and its loss. */
function lmGraph() {
  const g = new Graph();
  const ids = g.input("ids", "int64", ["batch", "seq"]);
  const labels = g.input("labels", "int64", ["batch", "seq"]);
  const emb = g.param("emb", randomF32([10, 4], 1), { trainable: true });
  const h = gather(emb, ids); // [batch, seq, 4]
  const logits = reshape(h, concat([slice(shapeOf(h), [0], [2], [0]), g.int64s([4])], 0));
  const batchBy1 = concat([slice(shapeOf(labels), [0], [1], [0]), g.int64s([1])], 0);
  const shifted = concat([slice(labels, [1], [Number.MAX_SAFE_INTEGER], [1]), constantOfShape(batchBy1, -100, "int64")], 1);
  const loss = div(crossEntropy(reshape(logits, [-1, 4]), reshape(shifted, [-1])), cast(size(ids), "float32"));
  const [gradEmb] = gradients(loss, [emb]);
  // An int64 result of constants alone (arange by CumSum) compared with an int32-lowered input.
  const arange = cumsum(constantOfShape(slice(shapeOf(ids), [1], [2], [0]), 1, "int64"), 0, { exclusive: true });
  const atPosition = cast(equal(ids, arange), "float32");
  return { outputs: { loss, grad_emb: gradEmb!, shifted, total: sumAll(logits), at_position: atPosition }, emb };
}

const feeds = (batch: number, seq: number, label = 3) => ({
  ids: int64([batch, seq], Array.from({ length: batch * seq }, (_, i) => (i * 7) % 10)),
  labels: int64([batch, seq], Array.from({ length: batch * seq }, (_, i) => (i % 4 === 1 ? -100 : (i * label) % 4))),
});

describe("WebGPU lowering at fixed dims", () => {
  it("shape arithmetic is constant and int64 inputs are int32 in the model; the int64 output stays int64", () => {
    const { outputs } = lmGraph();
    const plain = ModelProto.decode(lowerToOnnx(outputs, { target: "webgpu" }).bytes) as unknown as Decoded;
    assert.ok(plain.graph.node.some((n) => n.opType === "Shape"), "without dims the shape chain is there (the check can fail)");
    const lowered = lowerToOnnx(outputs, { target: "webgpu", dims: { batch: 2, seq: 5 } });
    const m = ModelProto.decode(lowered.bytes) as unknown as Decoded;
    assert.deepEqual(m.graph.node.filter((n) => ["Shape", "Size", "Slice", "ConstantOfShape"].includes(n.opType)).map((n) => n.opType), []);
    assert.deepEqual(lowered.int32Inputs, ["ids", "labels"]);
    for (const name of ["ids", "labels"]) {
      const i = m.graph.input.find((x) => x.name === name)!;
      assert.equal(i.type.tensorType.elemType, OnnxDataType.int32, name);
      assert.deepEqual(i.type.tensorType.shape.dim.map((d) => Number(d.dimValue)), [2, 5], name);
    }
    assert.equal(m.graph.output.find((o) => o.name === "shifted")!.type.tensorType.elemType, OnnxDataType.int64);
    assert.deepEqual(lowered.dims, { batch: 2, seq: 5 });
  });

  it("computes what the plain lowering computes (CPU provider)", async () => {
    const { outputs } = lmGraph();
    const f = feeds(2, 5);
    const plain = await compile(outputs, { threads: 1 });
    const fixed = await compile(outputs, { threads: 1, lowering: "webgpu", dims: { batch: 2, seq: 5 } });
    try {
      const [a, b] = [await plain.run(f), await fixed.run(f)];
      assert.equal(b.shifted!.dtype, "int64");
      assert.deepEqual(Array.from(b.shifted!.data as BigInt64Array), Array.from(a.shifted!.data as BigInt64Array));
      for (const k of ["loss", "grad_emb", "total", "at_position"]) {
        const [x, y] = [a[k]!.data as Float32Array, b[k]!.data as Float32Array];
        assert.equal(x.length, y.length, k);
        for (let i = 0; i < x.length; i++) assert.ok(Math.abs(x[i]! - y[i]!) <= 1e-6 * (1 + Math.abs(x[i]!)), `${k}[${i}]: ${x[i]} vs ${y[i]}`);
      }
      assert.ok(Math.abs((a.loss!.data as Float32Array)[0]!) > 0, "a loss that is not trivially 0");
      assert.ok((a.at_position!.data as Float32Array).some((x) => x === 1), "some id equals its position");
    } finally {
      await plain.release();
      await fixed.release();
    }
  });

  it("a run with other sizes, or an int64 value beyond int32, fails by name", async () => {
    const { outputs } = lmGraph();
    const fixed = await compile(outputs, { threads: 1, lowering: "webgpu", dims: { batch: 2, seq: 5 } });
    try {
      await assert.rejects(fixed.run(feeds(3, 5)), /input "ids": dimension "batch" is 3, but this session was compiled for batch = 2/);
      const big = feeds(2, 5);
      (big.labels.data as BigInt64Array)[7] = 2n ** 31n;
      await assert.rejects(fixed.run(big), /input "labels": element 7 is 2147483648, which does not fit in int32/);
    } finally {
      await fixed.release();
    }
  });

  it("dims are refused without target webgpu, and a missing dimension is named", () => {
    const { outputs } = lmGraph();
    assert.throws(() => lowerToOnnx(outputs, { dims: { batch: 2, seq: 5 } }), /dims \(fixed input dimensions\) are for target "webgpu" only/);
    assert.throws(() => lowerToOnnx(outputs, { target: "webgpu", dims: { batch: 2 } }), /dimension "seq", which has no fixed size/);
  });
});
