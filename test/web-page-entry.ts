// The page script of test/web-browser.test.ts and bench/web.ts, bundled with the browser build's
// plugin: the library through src/browser.ts, run in headless Chromium.
import {
  adapterFiles, compile, configureWasm, detectTask, float32, Graph, loadModel, matmul, mkdir, mountUrl, onnxRuntime, parseRecords, PeftModel, readdir, readFile, rename, rm, selectBackend,
  taskExamples, Trainer, usesOpfs, writeFile,
} from "../src/browser.js";
import { type SessionOptions } from "../src/runtime/session.js";
import { loraStepLosses, PARITY_TEXTS, timeLoraSteps } from "./web-lora-steps.js";

const started = { threads: 0 };

const api = {
  /** selectBackend's choice (or its error's message), then y = x @ w run on a session that names no provider. */
  async backend(opts: Parameters<typeof selectBackend>[0], profile: boolean) {
    let choice;
    try {
      choice = await selectBackend(opts);
    } catch (e) {
      return { error: (e as Error).message };
    }
    const g = new Graph();
    const x = g.input("x", "float32", [2, 2]);
    const w = g.param("w", float32([2, 2], [1, 2, 3, 4]));
    const session = await compile({ y: matmul(x, w) }, profile ? { profilePrefix: "peftjs-backend" } : {});
    const { y } = await session.run({ x: float32([2, 2], [1, 0, 0, 1]) });
    await session.release();
    return { choice, y: Array.from(y!.data as Float32Array) };
  },
  /** The parity workload (test/web-lora-steps.ts) on a model served at `modelUrl`. */
  async loraSteps(modelUrl: string, opts: { threads: number; steps?: number; batch?: number; seqLen?: number; session?: SessionOptions }) {
    if (!started.threads) {
      configureWasm({ threads: opts.threads });
      started.threads = opts.threads;
    }
    mountUrl("/models/under-test", modelUrl);
    const t0 = performance.now();
    const losses = await loraStepLosses("/models/under-test", opts);
    return { losses, ms: performance.now() - t0, crossOriginIsolated: (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated ?? false, numThreads: onnxRuntime().env.wasm.numThreads };
  },
  /** Timed LoRA steps (bench/web.ts): per-step milliseconds after the warm-up (see timeLoraSteps). */
  async timedSteps(model: { url: string } | { config: Record<string, unknown>; name: string }, opts: { threads: number; steps: number; warmup?: number; warmupSeconds?: number; batch: number; seqLen: number }) {
    if (!started.threads) {
      configureWasm({ threads: opts.threads });
      started.threads = opts.threads;
    }
    if ("url" in model) mountUrl("/models/under-test", model.url);
    return { ms: await timeLoraSteps("url" in model ? "/models/under-test" : model, opts), numThreads: onnxRuntime().env.wasm.numThreads };
  },
  /** Files in the writable store (OPFS) and an adapter's download bytes. */
  async storeAndAdapter(modelUrl: string) {
    await rm("/peftjs-test", { recursive: true, force: true });
    await mkdir("/peftjs-test/a", { recursive: true });
    await writeFile("/peftjs-test/a/x.txt", "hello");
    await rename("/peftjs-test/a", "/peftjs-test/b");
    const listing = await readdir("/peftjs-test/b");
    const text = await readFile("/peftjs-test/b/x.txt", "utf8");
    await rm("/peftjs-test", { recursive: true });
    mountUrl("/models/under-test", modelUrl);
    const base = await loadModel("/models/under-test", { task: "sequence-classification" });
    const peft = PeftModel.create(base, { peft_type: "LORA", r: 4, target_modules: ["query", "value"] });
    const files = await adapterFiles(peft);
    return { opfs: await usesOpfs(), listing, text, adapter: Object.fromEntries(Object.entries(files).map(([k, v]) => [k, v.byteLength])) };
  },
  /** The studio's path: a CSV's bytes -> task -> examples -> Trainer writing to OPFS (checkpoints, report). */
  async trainer(modelUrl: string) {
    const csv = `text,label\n${PARITY_TEXTS.map((t, i) => `"${t}",${i % 2 ? "neg" : "pos"}`).join("\n")}\n`;
    const records = parseRecords(new TextEncoder().encode(csv), "data.csv");
    const { task } = detectTask(records, { source: "data.csv" });
    mountUrl("/models/under-test", modelUrl);
    const base = await loadModel("/models/under-test", { task });
    const { examples, labels } = taskExamples(task, records, base.tokenizer!, { maxLength: 32, source: "data.csv" });
    const peft = PeftModel.create(base, { peft_type: "LORA", r: 4, target_modules: ["query", "value"] });
    if (labels) peft.labels.set("default", labels);
    await rm("/runs/t", { recursive: true, force: true });
    const logged: unknown[] = [];
    const result = await new Trainer(peft, examples, examples.slice(0, 4), { outputDir: "/runs/t", maxSteps: 4, batchSize: 4, saveEvery: 2, evalEvery: 2, onLog: (e) => logged.push(e), print: () => {} }).train();
    const files = await readdir("/runs/t");
    const report = await readFile("/runs/t/report.html", "utf8");
    return { task, labels, steps: result.steps, logged: logged.length, files, reportHasChart: report.includes("new Chart(") && report.length > 100_000 };
  },
};

(globalThis as { peftjsTest?: typeof api }).peftjsTest = api;
