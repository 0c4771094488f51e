// WebGPU-compatible graphs. The WebGPU lowering (src/runtime/webgpu-lowering.ts) leaves none of
// the ops ONNX Runtime's WebGPU provider lacks and computes what the plain lowering computes; the
// tuner conformance graphs (test/web-webgpu-graphs.ts) run on onnxruntime-node's WebGPU provider
// (SwiftShader's Vulkan driver from Debian's chromium package; no GPU needed) with the CPU
// provider's results, and the only nodes ONNX Runtime places on its CPU provider are int64 ones
// (shape arithmetic, integer inputs), for which the WebGPU provider has no kernels at all.
// PEFTJS_WEBGPU_PRESETS=all PEFTJS_WEBGPU_ARCHS=all runs every graph on the device (many minutes);
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

async function runBoth(outputs: Record<string, Value>, feeds: Record<string, ReturnType<typeof float32>>) {
  const results = [];
  for (const lowering of ["cpu", "webgpu"] as const) {
    const c = await compile(outputs, { threads: 1, lowering });
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

  it("no conformance graph lowered for WebGPU contains an op the WebGPU provider lacks; a sample computes the same", async (t) => {
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
      if (!g.name.startsWith("lora on") && !g.name.startsWith("prefix on")) continue;
      const [cpu, webgpu] = await runBoth(g.outputs, g.feeds as never);
      for (const k of Object.keys(cpu)) assert.ok(maxRel(cpu[k]!.data, webgpu[k]!.data) < 1e-5, `${g.name}: ${k}`);
    }
    assert.ok(graphs >= 90, `${graphs} graphs`);
    t.diagnostic(`${graphs} graphs; the plain lowering of them uses ${[...seen].sort().join(", ")}`);
    assert.ok(seen.has("LogSoftmax") && seen.has("Size") && seen.has("ConstantOfShape"));
  });
});

describe("conformance graphs on onnxruntime-node's WebGPU provider (SwiftShader Vulkan)", { skip: existsSync(ICD) ? false : `no ${ICD} (Debian's chromium package)` }, () => {
  it("run with the CPU provider's results; only int64 nodes are left to the CPU provider", { timeout: 900_000 }, async (t) => {
    const presets = process.env.PEFTJS_WEBGPU_PRESETS === "all" ? undefined : (process.env.PEFTJS_WEBGPU_PRESETS ?? DEVICE_PRESETS.join(","));
    const env: Record<string, string | undefined> = { ...process.env, LD_LIBRARY_PATH: "/usr/lib/chromium", VK_ICD_FILENAMES: ICD, ...(presets ? { PEFTJS_WEBGPU_PRESETS: presets } : { PEFTJS_WEBGPU_PRESETS: "" }) };
    if (!presets) delete env.PEFTJS_WEBGPU_PRESETS;
    const archs = process.env.PEFTJS_WEBGPU_ARCHS ?? DEVICE_ARCHS.join(",");
    if (archs === "all") delete env.PEFTJS_WEBGPU_ARCHS;
    else env.PEFTJS_WEBGPU_ARCHS = archs;
    const { stdout, stderr } = await promisify(execFile)(process.execPath, ["--import", "tsx", join(import.meta.dirname, "web-webgpu-run.ts")], { env, maxBuffer: 1 << 30 });
    const results = stdout.trim().split("\n").map((l) => JSON.parse(l) as { name: string; logId: string; skipped?: string; maxDiff: number; error?: string; int64Nodes: number[] });
    const lines = stderr.split("\n");
    const cpuOps = new Map<string, number>();
    const ortMade = new Map<string, number>();
    let ran = 0;
    let worst = 0;
    const unlogged: string[] = [];
    for (const r of results) {
      if (r.skipped) continue;
      ran++;
      assert.equal(r.error, undefined, `${r.name}: ${r.error}`);
      // Float32 on a different device (reduction orders, exp/erf approximations): 1e-3 of (1 + |x|).
      assert.ok(r.maxDiff < 1e-3, `${r.name}: WebGPU differs from CPU by ${r.maxDiff}`);
      worst = Math.max(worst, r.maxDiff);
      const log = lines.filter((l) => l.includes(`onnxruntime:${r.logId},`)).join("\n");
      if (!log) {
        // Seen once in a long run under load: a session's tagged lines absent from the child's stderr.
        unlogged.push(r.name);
        continue;
      }
      const onGpu = /Node\(s\) placed on \[WebGpuExecutionProvider\]\. Number of nodes: (\d+)/.exec(log);
      assert.ok(onGpu && Number(onGpu[1]) > 0, `${r.name}: the WebGPU provider did not load or took no node`);
      const cpuBlock = /Node\(s\) placed on \[CPUExecutionProvider\][^\n]*\n((?:[^\n]*VerifyEachNodeIsAssignedToAnEp\] {3}[^\n]*\n)*)/.exec(log)?.[1] ?? "";
      const int64 = new Set(r.int64Nodes);
      for (const m of cpuBlock.matchAll(/\] {3}(\w+) \(([^)]+)\)/g)) {
        const [, opType, nodeName] = m as unknown as [string, string, string];
        assert.ok(!(WEBGPU_MISSING_OPS as readonly string[]).includes(opType), `${r.name}: ${opType} on the CPU`);
        // Lowered nodes are named <op>_<IR node id>[_<n>]; other names are nodes ONNX Runtime's own
        // graph optimizations made (counted apart: their dtypes are not in the log).
        const ours = /^[A-Za-z]+_(\d+)(?:_\d+)?$/.exec(nodeName);
        if (!ours) {
          ortMade.set(opType, (ortMade.get(opType) ?? 0) + 1);
          continue;
        }
        assert.ok(int64.has(Number(ours[1])), `${r.name}: ${nodeName} (IR node ${ours[1]}, no int64 value) was placed on the CPU provider`);
        cpuOps.set(opType, (cpuOps.get(opType) ?? 0) + 1);
      }
    }
    assert.ok(ran > 0);
    assert.ok(unlogged.length < ran, `no graph's node placements were logged (${unlogged.join(", ")})`);
    if (unlogged.length) t.diagnostic(`placements not logged, so not checked, for: ${unlogged.join(", ")}`);
    t.diagnostic(`${ran} graphs on WebGPU, outputs within ${worst.toExponential(2)} of the CPU provider's (relative to 1 + |x|); int64 nodes ONNX Runtime kept on its CPU provider: ${[...cpuOps].map(([k, v]) => `${k} ${v}`).join(", ")}; nodes its optimizations made, on the CPU: ${[...ortMade].map(([k, v]) => `${k} ${v}`).join(", ") || "none"}`);
  });
});
