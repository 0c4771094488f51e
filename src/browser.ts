// peftjs in the browser: the same library as in Node (models, tuners, PeftModel, Trainer, data,
// report), on onnxruntime-web, with files from the user (File/Blob), URLs (fetch) and the Origin
// Private File System (OPFS) instead of node:fs. Built by `npm run build:web` into
// dist/web/peftjs.js (ESM) + dist/web/*.d.ts, with ONNX Runtime's wasm files beside it.
//
// CONTRACT (for the studio's Web Worker and other browser code)
// - Import this file ("../src/browser.ts") and bundle it with esbuild using the plugin and
//   condition of src/platform/esbuild-plugin.ts (`peftjsBrowser()`,
//   `conditions: ["onnxruntime-web-use-extern-wasm"]`), or import the built dist/web/peftjs.js.
//   Copy ONNX Runtime's files (WASM_FILES below, from node_modules/onnxruntime-web/dist/) beside
//   the bundle, or call configureWasm({ wasmPaths }) with the folder that holds them, before the
//   first session. Serve the page cross-origin isolated (COOP same-origin + COEP require-corp) so
//   wasm threads work; otherwise wasm runs on one thread.
// - Files: one `/`-rooted tree. mountFiles(prefix, files) makes dropped/picked File objects (or a
//   { relativePath: Blob } record) readable at prefix; mountUrl(prefix, baseUrl, names?) does the
//   same for a folder served over HTTP (e.g. the shipped models/encoder-mini). Every other path is
//   OPFS (persistent; in-memory when the page has no OPFS): use it for Trainer's outputDir
//   (metrics.jsonl, checkpoints for resume after a reload, the adapter, report.html) and the
//   hub cache. readFile / writeFile / readdir / rm / mkdir / stat read and write it.
// - Models: loadModel(dir, opts) exactly as in Node (config.json, *.safetensors, tokenizer.json in
//   dir); PretrainedModel.
// - Methods: TUNERS (the registry: one entry per peft_type), fieldDocs(peftType) (each setting's
//   name, expected value, default, help), PRESETS / presetConfig(preset, settings) (the CLI's
//   --method names), tunerFor(peftType).
// - Adapters: PeftModel.create(model, config) / PeftModel.load(model, dir); adapterFiles(peft)
//   returns { "adapter_config.json", "adapter_model.safetensors", "labels.json"? } as bytes for a
//   download, identical to what peft.save(dir) writes in Node.
// - Data: parseRecords(bytes, fileName) (CSV / TSV / JSONL / JSON, the CLI's formats and errors:
//   DataError), detectTask(records, opts) and taskExamples(task, records, tokenizer, opts) (the
//   CLI's task detection), splitExamples.
// - Training: new Trainer(peft, train, validation, { outputDir: "/runs/x", maxSteps, lr, seed,
//   onLog, resume, ... }).train() runs the whole loop (onLog gets every logged step and eval;
//   resume continues from the last checkpoint in outputDir); TrainStep for a bare step API.
// - Report: renderReport(data) returns report.html's content (the CLI's report; Trainer writes it
//   to outputDir/report.html too).
// - Runtime: configureWasm({ threads, wasmPaths }) before the first session; selectBackend() makes
//   later sessions run on WebGPU when the page has a hardware adapter (else wasm); onnxRuntime() is
//   the onnxruntime-web module in use.
//
// @example (in a module Web Worker)
//   import { configureWasm, mountUrl, loadModel, PeftModel, parseRecords, detectTask, taskExamples, splitExamples, Trainer, adapterFiles } from "peftjs/web";
//   configureWasm({ threads: 2 });
//   mountUrl("/models/encoder-mini", new URL("/models/encoder-mini/", location.href).href);
//   const model = await loadModel("/models/encoder-mini");
//   const peft = PeftModel.create(model, { peft_type: "LORA", r: 8, target_modules: ["query", "value"] });
//   const records = parseRecords(new Uint8Array(await file.arrayBuffer()), file.name);
//   ...
//   const files = await adapterFiles(peft); // -> Blob downloads

import { join, platform, readdir, readFile, rm } from "./platform/host.js";
import { onnxRuntime, setDefaultExecutionProviders } from "./runtime/onnxruntime.js";
import { type PeftModel } from "./peft/peft-model.js";

// The shared library API (src/library.ts); exporting for transformers.js is Node-only for now.
export * from "./library.js";
export { mountFiles, mountUrl, unmount, usesOpfs } from "./platform/browser.js";
export { platform, readFile, writeFile, appendFile, stat, readdir, mkdir, rm, rename, join, dirname, basename } from "./platform/host.js";
export { onnxRuntime, setOnnxRuntime, onnxRuntimeKind, setDefaultExecutionProviders, defaultExecutionProviders } from "./runtime/onnxruntime.js";
export { PRESETS, presetConfig, fieldDocs, presetsOf, type FieldDoc, type PresetName } from "./tuners/registry.js";
export { Trainer, TrainingDivergedError, TrainingStepError, OutputExistsError, type TrainerOptions, type TrainResult, type LogEntry } from "./train/trainer.js";
export { parseRecords, decodeDataFile, splitExamples, DataError, DATA_EXTENSIONS, type DataRecord, type Example, type DataOptions } from "./train/data.js";
export { detectTask, taskExamples, DataTaskError } from "./train/data-task.js";
export { renderReport, type ReportData } from "./train/report.js";

/** ONNX Runtime Web's files that must sit beside the bundle (or under `wasmPaths`). */
export const WASM_FILES = ["ort-wasm-simd-threaded.jsep.mjs", "ort-wasm-simd-threaded.jsep.wasm"] as const;

/**
 * Settings of onnxruntime-web's wasm backend; call before the first session (ONNX Runtime reads
 * them once, when it starts).
 */
export function configureWasm(opts: { threads?: number; wasmPaths?: string; proxy?: boolean }): void {
  const env = onnxRuntime().env;
  if (opts.threads !== undefined) env.wasm.numThreads = opts.threads;
  if (opts.wasmPaths !== undefined) env.wasm.wasmPaths = opts.wasmPaths;
  if (opts.proxy !== undefined) env.wasm.proxy = opts.proxy;
}

/** What `selectBackend` chose, and why. */
export interface BackendChoice {
  backend: "webgpu" | "wasm";
  /** The WebGPU adapter's vendor and architecture, when the page has one. */
  adapter?: string;
  reason: string;
}

interface GpuAdapterLike {
  info?: { vendor?: string; architecture?: string; isFallbackAdapter?: boolean };
  isFallbackAdapter?: boolean;
}

/**
 * Choose the execution provider of the sessions created afterwards (those whose options name none):
 * WebGPU (["webgpu", "wasm"]: nodes without a WebGPU kernel run on wasm) when `navigator.gpu` yields
 * an adapter, else wasm. A fallback adapter — software rendering such as SwiftShader, which Chromium
 * offers without a GPU and which runs on the CPU (an encoder-mini LoRA step at batch 8 x 16 takes
 * ~25 s there, well under a second on wasm) — is refused unless `allowFallbackAdapter`. `prefer:
 * "wasm"` chooses wasm outright; `prefer: "webgpu"` fails when no acceptable adapter exists.
 * (onnxruntime-web then requests its own adapter, with the same default options; its
 * `env.webgpu.adapter` is read-only once its WebGPU backend has started.)
 *
 * @example
 *   const { backend, reason } = await selectBackend(); // before building sessions
 */
export async function selectBackend(opts: { prefer?: "auto" | "webgpu" | "wasm"; allowFallbackAdapter?: boolean } = {}): Promise<BackendChoice> {
  const prefer = opts.prefer ?? "auto";
  if (!["auto", "webgpu", "wasm"].includes(prefer)) throw new RangeError(`selectBackend: prefer must be "auto", "webgpu" or "wasm", got ${JSON.stringify(prefer)}`);
  const wasm = (reason: string): BackendChoice => {
    if (prefer === "webgpu") throw new Error(`selectBackend: WebGPU was asked for, but ${reason}`);
    setDefaultExecutionProviders(["wasm"]);
    return { backend: "wasm", reason };
  };
  if (prefer === "wasm") return wasm("wasm was asked for");
  const gpu = (globalThis as { navigator?: { gpu?: { requestAdapter(): Promise<GpuAdapterLike | null> } } }).navigator?.gpu;
  if (!gpu) return wasm("this browser has no navigator.gpu (WebGPU)");
  let adapter: GpuAdapterLike | null;
  try {
    adapter = await gpu.requestAdapter();
  } catch (e) {
    return wasm(`navigator.gpu.requestAdapter() failed: ${(e as Error).message}`);
  }
  if (!adapter) return wasm("navigator.gpu.requestAdapter() found no adapter");
  const name = [adapter.info?.vendor, adapter.info?.architecture].filter(Boolean).join(" ") || "unnamed adapter";
  const fallback = adapter.info?.isFallbackAdapter ?? adapter.isFallbackAdapter ?? false;
  if (fallback && !opts.allowFallbackAdapter) return { ...wasm(`the only WebGPU adapter (${name}) is a fallback (software) adapter`), adapter: name };
  setDefaultExecutionProviders(["webgpu", "wasm"]);
  return { backend: "webgpu", adapter: name, reason: fallback ? `fallback adapter ${name} allowed` : `WebGPU adapter ${name}` };
}

/**
 * The files `peft.save(dir)` writes for adapter `name`, as bytes (for a download):
 * adapter_config.json, adapter_model.safetensors and labels.json when the head has class names.
 * Written through a scratch folder of the writable store, which is removed afterwards.
 */
export async function adapterFiles(peft: PeftModel, name = "default"): Promise<Record<string, Uint8Array>> {
  const dir = join(platform.host.tempDir(), `peftjs-adapter-${platform.host.randomHex(6)}`);
  try {
    await peft.save(dir, { adapters: [name] });
    const target = name === "default" ? dir : join(dir, name);
    const out: Record<string, Uint8Array> = {};
    for (const f of await readdir(target)) out[f] = await readFile(join(target, f));
    return out;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
