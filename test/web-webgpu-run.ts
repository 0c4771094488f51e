// Child process of test/web-webgpu.test.ts (ONNX Runtime logs node placements on the native
// stderr, which only a parent can read): every conformance graph lowered for WebGPU runs on
// onnxruntime-node's WebGPU provider and on the CPU provider. stdout: one JSON line per graph
// (name, the session's log id, max relative difference, the IR node ids with int64 values);
// stderr: ONNX Runtime's verbose log, each line tagged with its session's log id.
// Needs a Vulkan driver: LD_LIBRARY_PATH=/usr/lib/chromium VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json
import ort from "onnxruntime-node";
import { neededNodes } from "../src/runtime/lower.js";
import { compile } from "../src/runtime/session.js";
import { lowerToOnnx } from "../src/runtime/lower.js";
import { type Tensor } from "../src/ir/tensor.js";
import { conformanceGraphs } from "./web-webgpu-graphs.js";

// PEFTJS_WEBGPU_PRESETS: comma-separated presets to run (default: all of them).
const presets = process.env.PEFTJS_WEBGPU_PRESETS?.split(",");
const archs = process.env.PEFTJS_WEBGPU_ARCHS?.split(","); // likewise for architectures
let graphs = 0;
for await (const g of conformanceGraphs((preset, arch) => (!presets || presets.includes(preset)) && (!archs || archs.includes(arch)))) {
  if ("skipped" in g) {
    console.log(JSON.stringify({ name: g.name, skipped: g.skipped }));
    continue;
  }
  const cpu = await compile(g.outputs, { threads: 1 });
  const names = new Set(cpu.inputNames);
  const feeds = Object.fromEntries(Object.entries(g.feeds).filter(([k]) => names.has(k)));
  const expected = await cpu.run(feeds);
  await cpu.release();
  const model = lowerToOnnx(g.outputs, { target: "webgpu" });
  const logId = `peftjs-graph-${graphs++}`;
  let maxDiff = 0;
  let error: string | undefined;
  try {
    const session = await ort.InferenceSession.create(model.bytes, { externalData: model.externalData, executionProviders: ["webgpu"], logSeverityLevel: 0, logVerbosityLevel: 0, logId });
    const ortFeeds: Record<string, ort.Tensor> = {};
    for (const [k, t] of Object.entries(feeds) as [string, Tensor][]) ortFeeds[k] = new ort.Tensor(t.dtype as "float32", t.data as Float32Array, t.shape as number[]);
    for (const p of model.trainable) ortFeeds[p.name] = new ort.Tensor(p.tensor.dtype as "float32", p.tensor.data as Float32Array, p.tensor.shape as number[]);
    const out = await session.run(ortFeeds);
    for (const [k, t] of Object.entries(expected)) {
      const a = t.data as Float32Array;
      const b = out[k]!.data as Float32Array;
      for (let i = 0; i < a.length; i++) maxDiff = Math.max(maxDiff, Math.abs(a[i]! - b[i]!) / (1 + Math.abs(a[i]!)));
    }
    await session.release();
  } catch (e) {
    error = (e as Error).message;
  }
  const int64Nodes = neededNodes(Object.values(g.outputs))
    .filter((n) => [...n.inputs, ...n.outputs].some((v) => v?.dtype === "int64"))
    .map((n) => n.id);
  console.log(JSON.stringify({ name: g.name, logId, maxDiff, error, int64Nodes }));
}
