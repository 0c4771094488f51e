// The browser bundle in headless Chromium (cross-origin isolated, wasm threads): the same 10 LoRA
// steps on encoder-mini as in Node give the same losses (within 1e-4 of onnxruntime-node), the
// writable store is OPFS, and an adapter comes out as PEFT's files for a download.
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { chromiumSkipReason } from "./browser-support.js";
import { loraStepLosses } from "./web-lora-steps.js";
import { openWebPage, type WebPage } from "./web-page.js";

const MODEL = join(import.meta.dirname, "..", "models", "encoder-mini");
const skip = chromiumSkipReason();

describe("peftjs in headless Chromium", { skip }, () => {
  let web: WebPage;
  before(async () => {
    web = await openWebPage();
  });
  after(async () => {
    await web?.close();
  });

  it("10 LoRA steps on encoder-mini (wasm, 2 threads) give onnxruntime-node's losses within 1e-4", async (t) => {
    const native = await loraStepLosses(MODEL, { threads: 1 });
    const r = await web.page.evaluate(
      ([url]) => (globalThis as unknown as { peftjsTest: { loraSteps(u: string, o: { threads: number }): Promise<{ losses: number[]; ms: number; crossOriginIsolated: boolean; numThreads: number }> } }).peftjsTest.loraSteps(url!, { threads: 2 }),
      [`${web.url}/models/encoder-mini/`],
    ).catch((e: Error) => assert.fail(`${e.message}\npage log:\n${web.log.join("\n")}`));
    assert.equal(r.crossOriginIsolated, true, "the page is cross-origin isolated (wasm threads)");
    assert.equal(r.numThreads, 2);
    assert.equal(r.losses.length, 10);
    const diffs = native.map((l, i) => Math.abs(l - r.losses[i]!));
    t.diagnostic(`max |node native - chromium wasm| over 10 steps: ${Math.max(...diffs).toExponential(2)}; browser ${r.ms.toFixed(0)} ms in all`);
    assert.ok(Math.max(...diffs) <= 1e-4, `per-step differences ${diffs.map((d) => d.toExponential(2)).join(", ")}\nnode    ${native.join(", ")}\nbrowser ${r.losses.join(", ")}`);
  });

  it("selectBackend keeps wasm when the browser yields no WebGPU adapter", async () => {
    const r = await web.page.evaluate(() => (globalThis as unknown as { peftjsTest: { backend(o: unknown, p: boolean): Promise<{ choice?: { backend: string; reason: string }; y?: number[] }> } }).peftjsTest.backend({}, false));
    assert.equal(r.choice?.backend, "wasm");
    assert.match(r.choice!.reason, /requestAdapter\(\) found no adapter|no navigator\.gpu/);
    assert.deepEqual(r.y, [1, 2, 3, 4]);
  });

  it("files go to the Origin Private File System; an adapter downloads as PEFT's files", async () => {
    const r = await web.page.evaluate(
      ([url]) => (globalThis as unknown as { peftjsTest: { storeAndAdapter(u: string): Promise<{ opfs: boolean; listing: string[]; text: string; adapter: Record<string, number> }> } }).peftjsTest.storeAndAdapter(url!),
      [`${web.url}/models/encoder-mini/`],
    ).catch((e: Error) => assert.fail(`${e.message}\npage log:\n${web.log.join("\n")}`));
    assert.equal(r.opfs, true);
    assert.deepEqual(r.listing, ["x.txt"]);
    assert.equal(r.text, "hello");
    assert.deepEqual(Object.keys(r.adapter).sort(), ["adapter_config.json", "adapter_model.safetensors"]);
    assert.ok(r.adapter["adapter_model.safetensors"]! > 1000);
  });

  it("the studio's path: CSV bytes -> task -> examples -> Trainer with checkpoints and report.html in OPFS", async () => {
    const r = await web.page.evaluate(
      ([url]) => (globalThis as unknown as { peftjsTest: { trainer(u: string): Promise<{ task: string; labels?: string[]; steps: number; logged: number; files: string[]; reportHasChart: boolean }> } }).peftjsTest.trainer(url!),
      [`${web.url}/models/encoder-mini/`],
    ).catch((e: Error) => assert.fail(`${e.message}\npage log:\n${web.log.join("\n")}`));
    assert.equal(r.task, "sequence-classification");
    assert.deepEqual(r.labels, ["neg", "pos"]);
    assert.equal(r.steps, 4);
    assert.ok(r.logged >= 2, `${r.logged} log entries`);
    for (const f of ["adapter", "metrics.jsonl", "report.html"]) assert.ok(r.files.includes(f), `${f} in ${r.files.join(", ")}`);
    assert.ok(r.reportHasChart, "report.html inlines Chart.js");
  });
});
