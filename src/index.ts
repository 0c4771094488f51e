// peftjs public API for Node: the shared library (src/library.ts) plus what needs Node today.
export * from "./library.js";
export { setOnnxRuntime, onnxRuntime, onnxRuntimeKind, type OnnxRuntime } from "./runtime/onnxruntime.js";
export { exportForTransformersJs, ExportError, type ExportOptions, type ExportResult } from "./export/transformers-js.js";
