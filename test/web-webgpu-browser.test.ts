// onnxruntime-web's WebGPU provider in a real browser: headless Chromium with WebGPU enabled
// (`--enable-unsafe-webgpu`; without a GPU, Chromium's adapter is SwiftShader, on the CPU: correctness
// only, ~25 s per step). Two LoRA steps on encoder-mini, lowered for WebGPU with fixed input sizes
// (SessionOptions.dims), give onnxruntime-node's losses, and ONNX Runtime's per-node profile (which
// onnxruntime-web prints to the page's console) shows the nodes ran on the WebGPU provider
// ("JsExecutionProvider" in this build), not on its CPU fallback.
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { chromiumSkipReason } from "./browser-support.js";
import { loraStepLosses } from "./web-lora-steps.js";
import { openWebPage, type WebPage } from "./web-page.js";

const MODEL = join(import.meta.dirname, "..", "models", "encoder-mini");
const skip = chromiumSkipReason();

/** Kernel runs per provider (and the op types of those left to the CPU) from the profile in the page log. */
function providers(log: readonly string[]): { byProvider: Record<string, number>; cpuOps: string[] } {
  const text = log.filter((l) => l.startsWith("log: ")).map((l) => l.slice(5)).join("\n");
  const start = text.indexOf("[");
  const end = text.lastIndexOf("]");
  if (start < 0 || end < start) throw new Error(`no ONNX Runtime profile in the page log:\n${log.slice(-20).join("\n")}`);
  const events = JSON.parse(text.slice(start, end + 1)) as { cat?: string; name: string; args?: { provider?: string; op_name?: string } }[];
  const byProvider: Record<string, number> = {};
  const cpuOps: string[] = [];
  for (const e of events) {
    if (e.cat !== "Node" || !e.name.endsWith("_kernel_time")) continue;
    const p = e.args?.provider ?? "unknown";
    byProvider[p] = (byProvider[p] ?? 0) + 1;
    if (p.startsWith("CPU")) cpuOps.push(e.args?.op_name ?? "?");
  }
  return { byProvider, cpuOps };
}

describe("onnxruntime-web's WebGPU provider in headless Chromium", { skip }, () => {
  let web: WebPage;
  before(async () => {
    web = await openWebPage(["--enable-unsafe-webgpu"]);
  });
  after(async () => {
    await web?.close();
  });

  it("2 LoRA steps on encoder-mini run on WebGPU and give onnxruntime-node's losses within 1e-4", async (t) => {
    const steps = 2;
    const seqLen = 16;
    const native = await loraStepLosses(MODEL, { threads: 1, steps, seqLen });
    const session = { executionProviders: ["webgpu"], dims: { batch: 8, seq: seqLen }, profilePrefix: "peftjs-webgpu" };
    const r = await web.page.evaluate(
      ([url, opts]) => (globalThis as unknown as { peftjsTest: { loraSteps(u: string, o: unknown): Promise<{ losses: number[]; ms: number }> } }).peftjsTest.loraSteps(url, opts),
      [`${web.url}/models/encoder-mini/`, { threads: 2, steps, seqLen, session }] as const,
    ).catch((e: Error) => assert.fail(`${e.message}\npage log:\n${web.log.slice(-30).join("\n")}`));
    const diffs = native.map((l, i) => Math.abs(l - r.losses[i]!));
    const { byProvider, cpuOps } = providers(web.log);
    const total = Object.values(byProvider).reduce((a, b) => a + b, 0);
    const onGpu = byProvider.JsExecutionProvider ?? 0;
    t.diagnostic(`max |node native - chromium webgpu| over ${steps} steps: ${Math.max(...diffs).toExponential(2)}; ${onGpu} of ${total} kernel runs on WebGPU, on the CPU fallback: ${cpuOps.join(", ") || "none"}; ${r.ms.toFixed(0)} ms`);
    assert.ok(Math.max(...diffs) <= 1e-4, `per-step differences ${diffs.map((d) => d.toExponential(2)).join(", ")}\nnode    ${native.join(", ")}\nbrowser ${r.losses.join(", ")}`);
    // Measured: 881 of 883 nodes per step on WebGPU; a scalar Max and the loss gradient's
    // ScatterElements ([8, 2]) have no kernel in onnxruntime-web 1.30's WebGPU build.
    assert.ok(onGpu >= 0.99 * total, `only ${onGpu} of ${total} kernel runs on WebGPU: ${JSON.stringify(byProvider)}`);
  });

  it("selectBackend refuses the fallback (software) adapter unless allowed, then sessions run on WebGPU by default", async () => {
    type Result = { choice?: { backend: string; adapter?: string; reason: string }; y?: number[]; error?: string };
    const call = (opts: unknown, profile = false) =>
      web.page.evaluate(([o, p]) => (globalThis as unknown as { peftjsTest: { backend(o: unknown, p: boolean): Promise<Result> } }).peftjsTest.backend(o, p), [opts, profile] as const);
    const auto = await call({});
    assert.equal(auto.choice?.backend, "wasm");
    assert.match(auto.choice!.reason, /the only WebGPU adapter \(google swiftshader\) is a fallback \(software\) adapter/);
    assert.deepEqual(auto.y, [1, 2, 3, 4]);
    assert.match((await call({ prefer: "webgpu" })).error ?? "", /selectBackend: WebGPU was asked for, but the only WebGPU adapter .* is a fallback/);
    assert.match((await call({ prefer: "gpu" })).error ?? "", /prefer must be "auto", "webgpu" or "wasm", got "gpu"/);
    const seen = web.log.length;
    const allowed = await call({ allowFallbackAdapter: true }, true);
    try {
      assert.equal(allowed.choice?.backend, "webgpu", JSON.stringify(allowed));
      assert.deepEqual(allowed.y, [1, 2, 3, 4]);
      const { byProvider } = providers(web.log.slice(seen));
      assert.ok((byProvider.JsExecutionProvider ?? 0) > 0 && !byProvider.CPUExecutionProvider, `a session naming no provider ran on ${JSON.stringify(byProvider)}`);
    } finally {
      assert.equal((await call({ prefer: "wasm" })).choice?.backend, "wasm");
    }
  });
});
