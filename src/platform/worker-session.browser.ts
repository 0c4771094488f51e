// A browser build has no worker_threads: a page that wants ONNX Runtime off its main thread runs
// the whole library in a Web Worker (as `peftjs studio` does). Resolved in place of
// ./worker-session.ts by the browser build (see ./esbuild-plugin.ts).
import type { InferenceSession } from "onnxruntime-common";
import { type RunnableSession } from "./worker-session.js";

export type { RunnableSession } from "./worker-session.js";

export function createWorkerSession(_bytes: Uint8Array, _options: InferenceSession.SessionOptions): Promise<RunnableSession> {
  return Promise.reject(new Error("sessions on a worker thread (SessionOptions.worker) are for Node; in a browser, run peftjs itself in a Web Worker"));
}
