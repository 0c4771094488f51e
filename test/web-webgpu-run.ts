// Child process of test/web-webgpu.test.ts (ONNX Runtime logs node placements on the native
// stderr, which only a parent can read): every conformance graph is compiled for onnxruntime-node's
// WebGPU provider with CPU fallback disabled (the "webgpu" lowering at the feeds' fixed dims,
// int64 inputs fed as int32 by CompiledGraph.run) and its outputs compared with the CPU
// provider's. A graph whose session cannot be created that way is lowered again and created with
// fallback allowed and verbose logging, so that the parent can name the nodes placed on the CPU.
// stdout: one JSON line per graph (name, max relative difference, the error with fallback
// disabled, and then the log id of the diagnostic session); stderr: ONNX Runtime's verbose log of
// the diagnostic sessions, each line tagged with its session's log id.
// Needs a Vulkan driver: LD_LIBRARY_PATH=/usr/lib/chromium VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json
import ort from "onnxruntime-node";
import { lowerToOnnx } from "../src/runtime/lower.js";
import { compile } from "../src/runtime/session.js";
import { conformanceGraphs } from "./web-webgpu-graphs.js";

// PEFTJS_WEBGPU_PRESETS: comma-separated presets to run (default: all of them).
const presets = process.env.PEFTJS_WEBGPU_PRESETS?.split(",");
const archs = process.env.PEFTJS_WEBGPU_ARCHS?.split(","); // likewise for architectures
let diagnostics = 0;
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
  let maxDiff = 0;
  let error: string | undefined;
  let logId: string | undefined;
  try {
    const gpu = await compile(g.outputs, { executionProviders: ["webgpu"], disableCpuFallback: true, dims: g.dims });
    try {
      const out = await gpu.run(feeds);
      for (const [k, t] of Object.entries(expected)) {
        const a = t.data;
        const b = out[k]!.data;
        if (out[k]!.dtype !== t.dtype || a.length !== b.length) throw new Error(`output ${k}: ${out[k]!.dtype}[${out[k]!.shape}] on WebGPU, ${t.dtype}[${t.shape}] on the CPU`);
        for (let i = 0; i < a.length; i++) maxDiff = Math.max(maxDiff, Math.abs(Number(a[i]!) - Number(b[i]!)) / (1 + Math.abs(Number(a[i]!))));
      }
    } finally {
      await gpu.release();
    }
  } catch (e) {
    error = (e as Error).message;
    // Which nodes ONNX Runtime puts on its CPU provider when it may: the parent reads the log.
    const model = lowerToOnnx(g.outputs, { target: "webgpu", dims: g.dims });
    logId = `peftjs-graph-${diagnostics++}`;
    try {
      const s = await ort.InferenceSession.create(model.bytes, { externalData: model.externalData, executionProviders: ["webgpu"], logSeverityLevel: 0, logVerbosityLevel: 0, logId });
      await s.release();
    } catch (e2) {
      error += ` (with fallback allowed too: ${(e2 as Error).message})`;
    }
  }
  console.log(JSON.stringify({ name: g.name, maxDiff, error, logId }));
}
