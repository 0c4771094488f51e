// WebGPU-compatible graphs. The WebGPU lowering (src/runtime/webgpu-lowering.ts) leaves none of
// the ops ONNX Runtime's WebGPU provider lacks and computes what the plain lowering computes. At
// the feeds' fixed dims (SessionOptions.dims) it also leaves no int64 computation but the indices
// of gathers and scatters, so every tuner conformance graph (test/web-webgpu-graphs.ts) runs on
// onnxruntime-node's WebGPU provider with CPU fallback disabled (session.disable_cpu_ep_fallback;
// SwiftShader's Vulkan driver from Debian's chromium package, no GPU needed) and gives the CPU
// provider's results. A graph that cannot fails the check with the nodes ONNX Runtime would have
// placed on its CPU provider.
// PEFTJS_WEBGPU_PRESETS=all PEFTJS_WEBGPU_ARCHS=all runs every graph on the device (minutes);
// the default runs LoRA on bert-tiny and llama-tiny.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { promisify } from "node:util";
import { Graph, type Value } from "../src/ir/graph.js";
import { add, cast, cumsum, logSoftmax, size, zerosLike } from "../src/ir/ops/index.js";
import { float32 } from "../src/ir/tensor.js";
import { lowerToOnnx } from "../src/runtime/lower.js";
import { ModelProto } from "../src/runtime/onnx-schema.js";
import { compile } from "../src/runtime/session.js";
import { WEBGPU_MISSING_OPS } from "../src/runtime/webgpu-lowering.js";
import { conformanceGraphs } from "./web-webgpu-graphs.js";

const ICD = "/usr/lib/chromium/vk_swiftshader_icd.json";
const DEVICE_PRESETS = ["lora"];
/** Default device run: an encoder and a grouped-query decoder (PEFTJS_WEBGPU_ARCHS to choose; "all" for every one). */
const DEVICE_ARCHS = ["bert-tiny", "llama-tiny"];

/** [opType, attribute name -> int value] of every node of a lowered model. */
function onnxNodes(bytes: Uint8Array): { opType: string; attrs: Record<string, number> }[] {
  const m = ModelProto.decode(bytes) as unknown as { graph: { node: { opType: string; attribute?: { name: string; i?: number | { toNumber(): number } }[] }[] } };
  return m.graph.node.map((n) => ({ opType: n.opType, attrs: Object.fromEntries((n.attribute ?? []).map((a) => [a.name, typeof a.i === "object" ? a.i.toNumber() : Number(a.i ?? 0)])) }));
}

function forbidden(bytes: Uint8Array): string[] {
  return onnxNodes(bytes)
    .filter((n) => (WEBGPU_MISSING_OPS as readonly string[]).includes(n.opType) || (n.opType === "CumSum" && n.attrs.reverse === 1))
    .map((n) => (n.opType === "CumSum" ? "CumSum reverse=1" : n.opType));
}

/** The plain lowering's results and the WebGPU lowering's (at `dims` when given), both on the CPU provider. */
async function runBoth(outputs: Record<string, Value>, feeds: Record<string, ReturnType<typeof float32>>, dims?: Record<string, number>) {
  const results = [];
  for (const lowering of ["cpu", "webgpu"] as const) {
    const c = await compile(outputs, { threads: 1, lowering, ...(lowering === "webgpu" && dims ? { dims } : {}) });
    results.push(await c.run(feeds));
    await c.release();
  }
  return results as unknown as [Record<string, { data: ArrayLike<number | bigint> }>, Record<string, { data: ArrayLike<number | bigint> }>];
}

const maxRel = (a: ArrayLike<number | bigint>, b: ArrayLike<number | bigint>) => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(Number(a[i]!) - Number(b[i]!)) / (1 + Math.abs(Number(a[i]!))));
  return m;
};

describe("WebGPU lowering", () => {
  it("LogSoftmax, reverse CumSum (inclusive and exclusive), ConstantOfShape and Size are rewritten with the same values", async () => {
    const g = new Graph();
    const x = g.input("x", "float32", ["rows", 5]);
    const outputs = {
      lsm: logSoftmax(x, -1),
      rev: cumsum(x, 1, { reverse: true }),
      revExcl: cumsum(x, 0, { reverse: true, exclusive: true }),
      count: cast(size(x), "float32"),
      countInt: size(x),
      zeros: add(zerosLike(x), x),
    };
    const lowered = lowerToOnnx(outputs, { target: "webgpu" });
    assert.deepEqual(forbidden(lowered.bytes), []);
    assert.ok(forbidden(lowerToOnnx(outputs).bytes).includes("LogSoftmax"), "the plain lowering has them (the check can fail)");
    const feeds = { x: float32([3, 5], [0.5, -2, 3, 1, 0, 4, -1, 2, 2, 7, -3, 0.25, 9, -8, 1]) };
    const [cpu, webgpu] = await runBoth(outputs, feeds);
    for (const k of Object.keys(outputs)) assert.ok(maxRel(cpu[k]!.data, webgpu[k]!.data) < 1e-6, k);
  });

  it("no conformance graph lowered for WebGPU contains an op the WebGPU provider lacks, nor at fixed dims any Shape; a sample computes the same", async (t) => {
    const seen = new Set<string>();
    let graphs = 0;
    for await (const g of conformanceGraphs()) {
      if ("skipped" in g) {
        t.diagnostic(`${g.name}: ${g.skipped}`);
        continue;
      }
      graphs++;
      const plain = lowerToOnnx(g.outputs);
      for (const op of forbidden(plain.bytes)) seen.add(op);
      assert.deepEqual(forbidden(lowerToOnnx(g.outputs, { target: "webgpu" }).bytes), [], g.name);
      const fixed = lowerToOnnx(g.outputs, { target: "webgpu", dims: g.dims });
      assert.deepEqual(forbidden(fixed.bytes), [], `${g.name} at ${JSON.stringify(g.dims)}`);
      assert.deepEqual(onnxNodes(fixed.bytes).filter((n) => n.opType === "Shape").length, 0, `${g.name}: Shape at fixed dims`);
      assert.deepEqual(fixed.int32Inputs, fixed.inputs.filter((v) => v.dtype === "int64").map((v) => (v.source as { name: string }).name), g.name);
      if (!g.name.startsWith("lora on") && !g.name.startsWith("prefix on")) continue;
      for (const dims of [undefined, g.dims]) {
        const [cpu, webgpu] = await runBoth(g.outputs, g.feeds as never, dims);
        for (const k of Object.keys(cpu)) assert.ok(maxRel(cpu[k]!.data, webgpu[k]!.data) < 1e-5, `${g.name}${dims ? " at fixed dims" : ""}: ${k}`);
      }
    }
    assert.ok(graphs >= 90, `${graphs} graphs`);
    t.diagnostic(`${graphs} graphs; the plain lowering of them uses ${[...seen].sort().join(", ")}`);
    assert.ok(seen.has("LogSoftmax") && seen.has("Size") && seen.has("ConstantOfShape"));
  });
});

describe("conformance graphs on onnxruntime-node's WebGPU provider (SwiftShader Vulkan)", { skip: existsSync(ICD) ? false : `no ${ICD} (Debian's chromium package)` }, () => {
  it("run with CPU fallback disabled and give the CPU provider's results", { timeout: 1_800_000 }, async (t) => {
    const presets = process.env.PEFTJS_WEBGPU_PRESETS === "all" ? undefined : (process.env.PEFTJS_WEBGPU_PRESETS ?? DEVICE_PRESETS.join(","));
    const env: Record<string, string | undefined> = { ...process.env, LD_LIBRARY_PATH: "/usr/lib/chromium", VK_ICD_FILENAMES: ICD, ...(presets ? { PEFTJS_WEBGPU_PRESETS: presets } : { PEFTJS_WEBGPU_PRESETS: "" }) };
    if (!presets) delete env.PEFTJS_WEBGPU_PRESETS;
    const archs = process.env.PEFTJS_WEBGPU_ARCHS ?? DEVICE_ARCHS.join(",");
    if (archs === "all") delete env.PEFTJS_WEBGPU_ARCHS;
    else env.PEFTJS_WEBGPU_ARCHS = archs;
    const { stdout, stderr } = await promisify(execFile)(process.execPath, ["--import", "tsx", join(import.meta.dirname, "web-webgpu-run.ts")], { env, maxBuffer: 1 << 30 });
    const results = stdout.trim().split("\n").map((l) => JSON.parse(l) as { name: string; skipped?: string; maxDiff: number; error?: string; logId?: string });
    const lines = stderr.split("\n");
    const blocked: string[] = [];
    let ran = 0;
    let worst = 0;
    let worstName = "";
    for (const r of results) {
      if (r.skipped) continue;
      if (r.error) {
        // The nodes ONNX Runtime placed on its CPU provider when fallback was allowed.
        const log = lines.filter((l) => l.includes(`onnxruntime:${r.logId},`)).join("\n");
        const cpuBlock = /Node\(s\) placed on \[CPUExecutionProvider\][^\n]*\n((?:[^\n]*VerifyEachNodeIsAssignedToAnEp\] {3}[^\n]*\n)*)/.exec(log)?.[1] ?? "";
        const nodes = [...cpuBlock.matchAll(/\] {3}(\w+ \([^)]+\))/g)].map((m) => m[1]);
        blocked.push(`${r.name}: ${r.error}${nodes.length ? `; on the CPU: ${nodes.join(", ")}` : ""}`);
        continue;
      }
      ran++;
      // Float32 on a different device (reduction orders, exp/erf approximations): 1e-3 of (1 + |x|).
      assert.ok(r.maxDiff < 1e-3, `${r.name}: WebGPU differs from CPU by ${r.maxDiff}`);
      if (r.maxDiff >= worst) [worst, worstName] = [r.maxDiff, r.name];
    }
    assert.deepEqual(blocked, [], "graphs that do not run on WebGPU with CPU fallback disabled");
    assert.ok(ran > 0);
    t.diagnostic(`${ran} graphs on WebGPU with CPU fallback disabled, outputs within ${worst.toExponential(2)} of the CPU provider's (relative to 1 + |x|; ${worstName})`);
  });
});
