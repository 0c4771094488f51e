// Lowering and sessions: external frozen weights, trainable parameters fed per run, input checks.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { randomF32 } from "../../test/helpers.js";
import { linear } from "../ir/composites/linear.js";
import { Graph } from "../ir/graph.js";
import { add, cast, matmul, mul, stopGradient } from "../ir/ops/index.js";
import { float32 } from "../ir/tensor.js";
import { IR_VERSION, lowerToOnnx, OPSET } from "./lower.js";
import { ModelProto } from "./onnx-schema.js";
import { onnxRuntimeKind, setOnnxRuntime } from "./onnxruntime.js";
import { compile, trainingSessionOptions } from "./session.js";

interface DecodedModel {
  graph: { initializer: { name: string; dataLocation?: number; rawData?: Uint8Array }[]; input: { name: string }[]; output: { name: string }[] };
  opsetImport: { version: number | { toNumber(): number } }[];
  irVersion: number | { toNumber(): number };
}

describe("lowering and sessions", () => {
  it("frozen weights are external initializers, trainable ones are graph inputs", () => {
    const g = new Graph();
    const x = g.input("x", "float32", ["batch", 64]);
    const w = g.param("encoder.weight", randomF32([64, 64], 1));
    const a = g.param("lora_A", randomF32([4, 64], 2), { trainable: true });
    const y = add(linear(x, w), linear(linear(x, a), g.param("lora_B", randomF32([64, 4], 3), { trainable: true })));
    const lowered = lowerToOnnx({ y });
    const m = ModelProto.decode(lowered.bytes) as unknown as DecodedModel;
    const init = m.graph.initializer.find((t) => t.name === "encoder.weight")!;
    assert.equal(init.dataLocation, 1, "EXTERNAL");
    assert.ok(!init.rawData?.length, "no bytes embedded");
    assert.ok(lowered.bytes.byteLength < 64 * 64 * 4, "model proto is smaller than the frozen weight");
    assert.deepEqual(m.graph.input.map((i) => i.name), ["x", "lora_A", "lora_B"]);
    assert.deepEqual(m.graph.output.map((o) => o.name), ["y"]);
    assert.deepEqual(lowered.trainable.map((p) => p.name), ["lora_A", "lora_B"]);
    assert.equal(Number(m.opsetImport[0]!.version), OPSET);
    assert.equal(Number(m.irVersion), IR_VERSION);
  });

  it("a stop-gradient is its own IR op and lowers to ONNX Identity", async () => {
    const g = new Graph();
    const x = g.input("x", "float32", [2]);
    const y = stopGradient(mul(x, 2));
    assert.equal(y.producer!.op.type, "StopGradient");
    const step = await compile({ y: add(y, 1) });
    assert.equal(step.opCounts.Identity, 1);
    assert.deepEqual([...(await step.run({ x: float32([2], [1, -3]) })).y!.data], [3, -5]);
    await step.release();
  });

  it("feeds trainable parameters from their current data on every run", async () => {
    const g = new Graph();
    const x = g.input("x", "float32", [1, 2]);
    const w = g.param("w", float32([1, 2], [1, 1]), { trainable: true });
    const step = await compile({ y: linear(x, w) });
    const feeds = { x: float32([1, 2], [2, 3]) };
    assert.equal((await step.run(feeds)).y!.data[0], 5);
    (g.params.get("w")!.data as Float32Array).set([10, 0]);
    assert.equal((await step.run(feeds)).y!.data[0], 20);
    assert.deepEqual(step.trainableParams.map((p) => p.name), ["w"]);
    await step.release();
  });

  it("checks dtypes and consistent symbolic dims across inputs", async () => {
    const g = new Graph();
    const a = g.input("a", "float32", ["batch", 2]);
    const b = g.input("b", "float32", ["batch", 2]);
    const step = await compile({ y: mul(a, b) }, { threads: 1, optimizationLevel: "basic", prepacking: false, memoryArena: false });
    await assert.rejects(step.run({ a: randomF32([3, 2], 1), b: randomF32([2, 2], 2) }), /dimension "batch" is 2 here but 3 in input "a"/);
    await assert.rejects(step.run({ a: randomF32([3, 2], 1), b: { dtype: "float64", shape: [3, 2], data: new Float64Array(6) } }), /input "b": expected dtype float32, got float64/);
    assert.deepEqual(step.inputNames, ["a", "b"]);
  });

  it("runs float16 graphs (cast to float32 for compute)", async () => {
    const g = new Graph();
    const h = g.input("h", "float16", [2, 2]);
    const w = g.param("w", randomF32([2, 2], 3));
    const step = await compile({ y: matmul(cast(h, "float32"), w) });
    // float16 bits of [1, 2, 0.5, -1]
    const out = await step.run({ h: { dtype: "float16", shape: [2, 2], data: Uint16Array.of(0x3c00, 0x4000, 0x3800, 0xbc00) } });
    const wd = g.params.get("w")!.data as Float32Array;
    assert.ok(Math.abs(out.y!.data[0] as number - (1 * wd[0]! + 2 * wd[2]!)) < 1e-6);
  });

  it("training-sized sessions feed frozen weights in place on onnxruntime-node's CPU provider only", async () => {
    const inPlace = (o: Parameters<typeof trainingSessionOptions>[0]) => trainingSessionOptions(o).frozenWeightsAsInputs;
    assert.equal(onnxRuntimeKind(), "native");
    assert.equal(inPlace({}), true);
    assert.equal(inPlace({ threads: 2, executionProviders: ["cpu"] }), true);
    assert.deepEqual(trainingSessionOptions({ threads: 2 }), { threads: 2, frozenWeightsAsInputs: true });
    assert.equal(inPlace({ frozenWeightsAsInputs: false }), false, "the caller's choice stands");
    // A worker session clones its feeds on each run; WebGPU would upload them on each run.
    assert.equal(inPlace({ worker: true }), false);
    assert.equal(inPlace({ executionProviders: ["webgpu"] }), false);
    // onnxruntime-web copies every input into its wasm heap on each run.
    setOnnxRuntime(await import("onnxruntime-web"));
    try {
      assert.equal(inPlace({}), false);
    } finally {
      setOnnxRuntime("platform");
    }
  });

  it("with frozen weights fed in place, a deferred parameter is an initializer, computed once", async () => {
    const g = new Graph();
    const x = g.input("x", "float32", [1, 2]);
    let computed = 0;
    const w = g.param("w", { dtype: "float32", shape: [2, 1], data: () => (computed++, Float32Array.of(1, 2)) });
    const held = g.param("v", float32([2, 1], [3, 4]));
    const step = await compile({ y: add(matmul(x, w), matmul(x, held)) }, { frozenWeightsAsInputs: true });
    for (let i = 0; i < 3; i++) assert.equal((await step.run({ x: float32([1, 2], [2, 3]) })).y!.data[0], 2 + 6 + 6 + 12);
    assert.equal(computed, 1, "computed at lowering only");
    assert.deepEqual(lowerToOnnx({ y: matmul(x, w) }, { frozenAsInputs: true }).trainable.map((p) => p.name), []);
    assert.deepEqual(lowerToOnnx({ y: matmul(x, held) }, { frozenAsInputs: true }).trainable.map((p) => p.name), ["v"]);
    await step.release();
  });
});
