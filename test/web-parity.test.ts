// The same seed and data give the same loss at each of 10 LoRA steps on encoder-mini with
// onnxruntime-node (native kernels) and onnxruntime-web (wasm kernels, run here in Node):
// within 1e-4. The page version of this check is in test/web-browser.test.ts.
import assert from "node:assert/strict";
import { join } from "node:path";
import { it } from "node:test";
import { onnxRuntimeKind, setOnnxRuntime } from "../src/runtime/onnxruntime.js";
import { loraStepLosses } from "./web-lora-steps.js";

const MODEL = join(import.meta.dirname, "..", "models", "encoder-mini");

it("10 LoRA steps on encoder-mini: onnxruntime-web (wasm) losses match onnxruntime-node within 1e-4", async (t) => {
  const native = await loraStepLosses(MODEL, { threads: 1 });
  const web = await import("onnxruntime-web");
  setOnnxRuntime(web);
  let wasm: number[];
  try {
    assert.equal(onnxRuntimeKind(), "web");
    wasm = await loraStepLosses(MODEL, { threads: 1 });
  } finally {
    setOnnxRuntime("platform");
  }
  assert.equal(onnxRuntimeKind(), "native");
  assert.equal(native.length, 10);
  assert.ok(native[9]! < native[0]!, `the loss falls over 10 steps: ${native.join(", ")}`);
  const diffs = native.map((l, i) => Math.abs(l - wasm[i]!));
  t.diagnostic(`max |native - wasm| over 10 steps: ${Math.max(...diffs).toExponential(2)}; losses ${native[0]!.toFixed(5)} -> ${native[9]!.toFixed(5)}`);
  assert.ok(Math.max(...diffs) <= 1e-4, `per-step |native - wasm|: ${diffs.map((d) => d.toExponential(2)).join(", ")}\nnative ${native.join(", ")}\nwasm   ${wasm.join(", ")}`);
});
