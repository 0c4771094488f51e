// What the studio's worker uses of the peftjs core, in one place. The browser build resolves the
// core's platform modules (files, ONNX Runtime) to their browser implementations.
export { loadModel, type PretrainedModel } from "../src/models/pretrained.js";
export { type Task } from "../src/models/task.js";
export { Generator } from "../src/models/generate.js";
export { PeftModel } from "../src/peft/peft-model.js";
export { methodConfig } from "../src/cli/methods.js";
export { Trainer } from "../src/train/trainer.js";
export { collate, parseRecords, splitExamples, TASK_FIELDS, type DataRecord, type DataTask, type Example } from "../src/train/data.js";
export { detectTask, taskExamples } from "../src/train/data-task.js";
export { bestWindows, decodePredictions, PREDICTION_TASKS } from "../src/train/predict.js";
export { type Tensor } from "../src/ir/tensor.js";
export { writeStoredZip } from "../src/io/stored-zip.js";
export { mountFiles, mountUrl, usesOpfs } from "../src/platform/browser.js";
import { platform } from "../src/platform/host.js";
import { platformOnnxRuntime } from "../src/platform/onnxruntime.js";

export const fs = platform.fs;

/** The backend the worker trains on, for the page's header. */
export function runtimeInfo(): { backend: string; threads: number } {
  const wasm = (platformOnnxRuntime.env as { wasm?: { numThreads?: number } }).wasm;
  return { backend: "onnxruntime-web (wasm)", threads: wasm?.numThreads || 1 };
}
