// Which ONNX Runtime runs compiled graphs: the platform's (onnxruntime-node in Node,
// onnxruntime-web in a browser build) unless a caller installs another implementation of
// onnxruntime-common's API, e.g. onnxruntime-web inside Node to compare the two.
import { platformOnnxRuntime, type OnnxRuntime } from "../platform/onnxruntime.js";

export type { OnnxRuntime } from "../platform/onnxruntime.js";

let active: OnnxRuntime = platformOnnxRuntime;
let providers: readonly string[] | undefined;

/** The ONNX Runtime that new sessions are created with. */
export function onnxRuntime(): OnnxRuntime {
  return active;
}

/**
 * Create later sessions with `runtime` (sessions already created keep theirs); "platform"
 * restores the default.
 *
 * @example
 *   setOnnxRuntime(await import("onnxruntime-web")); // wasm kernels, also in Node
 */
export function setOnnxRuntime(runtime: OnnxRuntime | "platform"): void {
  active = runtime === "platform" ? platformOnnxRuntime : runtime;
}

/** "web" for onnxruntime-web (wasm / WebGPU), "native" for onnxruntime-node. */
export function onnxRuntimeKind(runtime: OnnxRuntime = active): "web" | "native" {
  return (runtime.env.versions as { web?: string }).web !== undefined ? "web" : "native";
}

/**
 * Execution providers that sessions use when their options name none (undefined: the runtime's
 * own default, the CPU provider or wasm). The browser build's `selectBackend` sets ["webgpu", "wasm"]
 * when the page has a WebGPU adapter.
 */
export function setDefaultExecutionProviders(eps: readonly string[] | undefined): void {
  providers = eps ? [...eps] : undefined;
}

/** The providers set by `setDefaultExecutionProviders`, if any. */
export function defaultExecutionProviders(): readonly string[] | undefined {
  return providers;
}
