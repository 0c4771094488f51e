// An ONNX Runtime session on its own thread. onnxruntime-node runs a session synchronously on the
// calling thread (its `run` is a setImmediate around a blocking call), so a server that runs
// sessions on its main thread stops answering — health checks, metrics, new requests, SIGTERM —
// for the whole of every batch. Here the session lives in a worker_threads Worker: the main
// thread posts feeds and awaits outputs and keeps serving meanwhile.
//
// The worker's code is a small CommonJS string (not a module file) so that it runs the same
// whether peftjs was started from TypeScript through tsx or from compiled JavaScript: the worker
// gets none of the process's flags (no loader, no --input-type=module) and requires the very
// onnxruntime-node this process resolved.
// A browser build resolves this file to ./worker-session.browser.ts.
import { createRequire } from "node:module";
import { Worker } from "node:worker_threads";
import type { InferenceSession, Tensor as OrtTensor } from "onnxruntime-common";

/** What CompiledGraph needs of a session; ONNX Runtime's InferenceSession is one. */
export interface RunnableSession {
  run(feeds: Record<string, OrtTensor>): Promise<Record<string, Pick<OrtTensor, "type" | "dims" | "data">>>;
  release(): Promise<void>;
  endProfiling(): void;
}

/** A tensor as it crosses threads (structured clone keeps typed arrays, BigInt64Array included). */
interface PlainTensor {
  type: OrtTensor.Type;
  dims: readonly number[];
  data: OrtTensor.DataType;
}

type Reply = { id: number; ok: true; outputs?: Record<string, PlainTensor> } | { id: number; ok: false; message: string };

const WORKER_SOURCE = `
const { parentPort, workerData } = require("node:worker_threads");
const ort = require(workerData.ortPath);
let session;
parentPort.on("message", async (m) => {
  try {
    if (m.op === "create") {
      session = await ort.InferenceSession.create(m.bytes, m.options);
      parentPort.postMessage({ id: m.id, ok: true });
    } else if (m.op === "run") {
      const feeds = {};
      for (const [k, t] of Object.entries(m.feeds)) feeds[k] = new ort.Tensor(t.type, t.data, t.dims);
      const out = await session.run(feeds);
      const outputs = {};
      const transfer = [];
      for (const [k, t] of Object.entries(out)) {
        outputs[k] = { type: t.type, dims: t.dims, data: t.data };
        if (t.data && t.data.buffer && !transfer.includes(t.data.buffer)) transfer.push(t.data.buffer);
      }
      parentPort.postMessage({ id: m.id, ok: true, outputs }, transfer);
    } else if (m.op === "endProfiling") {
      session.endProfiling();
      parentPort.postMessage({ id: m.id, ok: true });
    } else if (m.op === "release") {
      await session.release();
      parentPort.postMessage({ id: m.id, ok: true });
    }
  } catch (e) {
    parentPort.postMessage({ id: m.id, ok: false, message: e && e.message ? e.message : String(e) });
  }
});
`;

/** The session proxy: one worker, requests answered in order, every pending one failed if the worker dies. */
class WorkerSession implements RunnableSession {
  private nextId = 0;
  private readonly pending = new Map<number, { resolve: (r: Reply & { ok: true }) => void; reject: (e: Error) => void }>();
  private dead: Error | undefined;

  constructor(private readonly worker: Worker) {
    // The worker keeps the process alive only while a request waits on it: an idle session that
    // was never released does not hold a finished program open, and an awaited run is not cut short.
    worker.unref();
    worker.on("message", (r: Reply) => {
      const p = this.pending.get(r.id);
      if (!p) return;
      this.pending.delete(r.id);
      if (this.pending.size === 0) worker.unref();
      if (r.ok) p.resolve(r);
      else p.reject(new Error(r.message));
    });
    const fail = (e: Error) => {
      this.dead ??= e;
      for (const p of this.pending.values()) p.reject(this.dead);
      this.pending.clear();
    };
    worker.on("error", (e) => fail(new Error(`the ONNX Runtime worker thread failed: ${e.message}`, { cause: e })));
    worker.on("exit", (code) => fail(new Error(`the ONNX Runtime worker thread exited (code ${code})`)));
  }

  request(message: Record<string, unknown>): Promise<Reply & { ok: true }> {
    if (this.dead) return Promise.reject(this.dead);
    const id = this.nextId++;
    if (this.pending.size === 0) this.worker.ref();
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ ...message, id });
    });
  }

  async run(feeds: Record<string, OrtTensor>): Promise<Record<string, PlainTensor>> {
    const plain: Record<string, PlainTensor> = {};
    for (const [k, t] of Object.entries(feeds)) {
      // Structured clone copies a typed array's whole buffer: a view into a larger one (a slice of
      // a slot table, say) is copied down to its own elements first.
      const d = t.data as Exclude<OrtTensor.DataType, string[]>;
      const data = ArrayBuffer.isView(d) && d.byteLength !== d.buffer.byteLength ? d.slice() : t.data;
      plain[k] = { type: t.type, dims: t.dims, data };
    }
    return (await this.request({ op: "run", feeds: plain })).outputs!;
  }

  endProfiling(): void {
    void this.request({ op: "endProfiling" }).catch(() => {});
  }

  async release(): Promise<void> {
    if (!this.dead) await this.request({ op: "release" });
    this.dead ??= new Error("the session was released");
    await this.worker.terminate();
  }
}

/**
 * Create an onnxruntime-node session on a new worker thread. The model bytes and the options'
 * external data are copied to the worker once (ONNX Runtime keeps its own copy either way); each
 * run copies the feeds there and moves the outputs back.
 */
export async function createWorkerSession(bytes: Uint8Array, options: InferenceSession.SessionOptions): Promise<RunnableSession> {
  const ortPath = createRequire(import.meta.url).resolve("onnxruntime-node");
  const session = new WorkerSession(new Worker(WORKER_SOURCE, { eval: true, workerData: { ortPath }, execArgv: [] }));
  try {
    await session.request({ op: "create", bytes, options });
  } catch (e) {
    await session.release().catch(() => {});
    throw e;
  }
  return session;
}
