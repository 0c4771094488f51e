// The browser half of `peftjs export`: the exported folder, served on 127.0.0.1 with transformers.js's
// browser build and onnxruntime-web's wasm from node_modules (every other request is refused), runs in
// headless Chromium and gives the labels and probabilities transformers.js gives in Node.
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { rm } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, describe, it } from "node:test";
import { env, pipeline } from "@huggingface/transformers";
import { exportForTransformersJs } from "../src/export/transformers-js.js";
import { loadModel } from "../src/models/pretrained.js";
import { PeftModel } from "../src/peft/peft-model.js";
import { chromiumSkipReason, launchChromium, serveStatic } from "./browser-support.js";
import { randomF32 } from "./helpers.js";

env.allowRemoteModels = false;
const MODEL = join(import.meta.dirname, "..", "models", "encoder-mini");
const dir = mkdtempSync(join(tmpdir(), "peftjs-export-browser-"));
after(() => rm(dir, { recursive: true, force: true }));

// transformers.js's self-contained browser bundle, and the onnxruntime-web build it embeds (its own
// nested copy: the wasm must be the same version as the JavaScript that loads it).
const TJS_DIST = dirname(createRequire(import.meta.url).resolve("@huggingface/transformers"));
const ORT_DIST = [join(TJS_DIST, "..", "node_modules", "onnxruntime-web", "dist"), join(import.meta.dirname, "..", "node_modules", "onnxruntime-web", "dist")].find((d) => existsSync(d))!;

const TEXTS = ["the cat sat on the mat", "win a free prize now", "the president spoke of the union", "call me Ishmael"];
type Scores = { label: string; score: number }[][];

// Runs in the page: transformers.js from /tjs/, models from /models/, wasm from /ort/, nothing remote.
const PAGE = `<!doctype html><meta charset="utf-8"><script type="module">
import { env, pipeline } from "/tjs/transformers.js";
env.allowRemoteModels = false;
env.allowLocalModels = true;
env.localModelPath = "/models/";
env.useBrowserCache = false;
env.useWasmCache = false;
env.backends.onnx.wasm.wasmPaths = { mjs: "/ort/ort-wasm-simd-threaded.asyncify.mjs", wasm: "/ort/ort-wasm-simd-threaded.asyncify.wasm" };
env.backends.onnx.wasm.numThreads = 1;
try {
  const texts = ${JSON.stringify(TEXTS)};
  const out = {};
  for (const dtype of ["fp32", "q8"]) {
    const clf = await pipeline("text-classification", "cls", { dtype, device: "wasm" });
    out[dtype] = await clf(texts, { top_k: null });
    await clf.dispose();
  }
  window.__result = out;
} catch (e) {
  window.__error = String(e && e.stack || e);
}
</script>`;

describe("export for transformers.js: in a browser", { skip: chromiumSkipReason() }, () => {
  it("encoder-mini + LoRA served on 127.0.0.1 runs in headless Chromium (wasm) with the labels and probabilities of Node; nothing is fetched elsewhere", async (t) => {
    const base = await loadModel(MODEL, { task: "sequence-classification" });
    (base.config as { numLabels: number }).numLabels = 3;
    const peft = PeftModel.create(base, { peft_type: "LORA", task_type: "SEQ_CLS", r: 4, lora_alpha: 8, target_modules: ["query", "value"] });
    let seed = 500;
    for (const [key, t] of peft.adapters.get("default")!.tensors) if (key.includes("lora_B") || key.includes("classifier")) (t.data as Float32Array).set(randomF32(t.shape, seed++, -0.3, 0.3).data);
    peft.labels.set("default", ["neg", "neu", "pos"]);
    const models = join(dir, "models");
    await exportForTransformersJs(peft, join(models, "cls"), { quantize: "int8" });
    await peft.releaseSessions();

    const node: Record<string, Scores> = {};
    for (const dtype of ["fp32", "q8"] as const) {
      const clf = await pipeline("text-classification", join(models, "cls"), { local_files_only: true, dtype });
      node[dtype] = (await clf(TEXTS, { top_k: null })) as unknown as Scores;
      await clf.dispose();
    }

    const page = join(dir, "page");
    await rm(page, { recursive: true, force: true });
    mkdirSync(page);
    writeFileSync(join(page, "index.html"), PAGE);
    const { url, server } = await serveStatic({ "/tjs/": TJS_DIST, "/ort/": ORT_DIST, "/models/": models, "/": page });
    const browser = await launchChromium();
    const elsewhere: string[] = [];
    try {
      const tab = await browser.newPage();
      await tab.route("**/*", (route) => {
        const u = route.request().url();
        if (u.startsWith(`${url}/`)) return route.continue();
        elsewhere.push(u);
        return route.abort();
      });
      await tab.goto(`${url}/index.html`);
      await tab.waitForFunction("window.__result || window.__error", undefined, { timeout: 120_000 });
      const error = (await tab.evaluate("window.__error")) as string | undefined;
      assert.equal(error, undefined, `in the page: ${error}`);
      const web = (await tab.evaluate("window.__result")) as Record<string, Scores>;
      // int8: onnxruntime-web's wasm int8 kernels are not the native ones (6e-4 apart when written).
      for (const [dtype, tolerance] of [["fp32", 1e-5], ["q8", 5e-3]] as const) {
        let worst = 0;
        web[dtype]!.forEach((row, i) => {
          const want = node[dtype]![i]!;
          assert.equal(row[0]!.label, want[0]!.label, `${dtype} text ${i}: top label`);
          for (const { label, score } of row) {
            const ref = want.find((x) => x.label === label)!.score;
            worst = Math.max(worst, Math.abs(score - ref));
            assert.ok(Math.abs(score - ref) < tolerance, `${dtype} text ${i} ${label}: browser ${score} vs Node ${ref}`);
          }
        });
        t.diagnostic(`${dtype}: largest probability difference browser vs Node ${worst.toExponential(2)}`);
      }
      // Not a constant answer: the texts do not all get the same probabilities.
      assert.notEqual(web.fp32![0]![0]!.score, web.fp32![1]![0]!.score);
    } finally {
      await browser.close();
      server.close();
    }
    assert.deepEqual(elsewhere, [], "requests outside 127.0.0.1");
  });
});
