// The ONNX Runtime the core runs on, chosen when modules are resolved: onnxruntime-node here;
// a browser build resolves this file to ./onnxruntime.browser.ts (onnxruntime-web). Both
// implement onnxruntime-common's API, which is all the core uses.
import ort from "onnxruntime-node";
import type * as OrtApi from "onnxruntime-common";

/** onnxruntime-common's API, implemented by onnxruntime-node and onnxruntime-web. */
export type OnnxRuntime = typeof OrtApi;

export const platformOnnxRuntime: OnnxRuntime = ort;
