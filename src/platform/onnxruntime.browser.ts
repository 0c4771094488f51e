// The ONNX Runtime of a browser build: onnxruntime-web (wasm; WebGPU where the page asks for it).
// Resolved in place of ./onnxruntime.ts by the browser build (see ./esbuild-plugin.ts).
import * as ort from "onnxruntime-web";
import { type OnnxRuntime } from "./onnxruntime.js";

export type { OnnxRuntime } from "./onnxruntime.js";

export const platformOnnxRuntime: OnnxRuntime = ort;
