// Compiled graphs: one ONNX Runtime session per lowered graph, created once and reused.
// A run takes the caller's inputs by name, feeds trainable parameters from their current data,
// and returns the requested outputs as host tensors.
import type { InferenceSession, Tensor as OrtTensor } from "onnxruntime-common";
import { writeFile } from "../platform/host.js";
import { platformOnnxRuntime } from "../platform/onnxruntime.js";
import { createWorkerSession, type RunnableSession } from "../platform/worker-session.js";
import { type DType } from "../ir/dtype.js";
import { type Param, type Value } from "../ir/graph.js";
import { formatShape } from "../ir/shape.js";
import { type Tensor } from "../ir/tensor.js";
import { lowerToOnnx, type LoweredModel } from "./lower.js";
import { defaultExecutionProviders, onnxRuntime, onnxRuntimeKind, type OnnxRuntime } from "./onnxruntime.js";

export interface SessionOptions {
  /**
   * Intra-op threads (default: ORT's choice, all cores). onnxruntime-web has one thread pool for
   * the page: its size is set by the first session created (wasm threads need a cross-origin
   * isolated page; without it wasm runs on one thread).
   */
  threads?: number;
  /** Execution providers in order of preference (default: setDefaultExecutionProviders's, else the CPU / wasm provider). */
  executionProviders?: string[];
  /** Fail at session creation when a node has no kernel on the chosen providers, instead of running it on the CPU. */
  disableCpuFallback?: boolean;
  /**
   * Which provider the lowered ONNX is written for (see LowerOptions.target): "webgpu" avoids ops
   * the WebGPU provider lacks. Default: "webgpu" when executionProviders lists it first, else "cpu".
   */
  lowering?: "cpu" | "webgpu";
  /**
   * With the "webgpu" lowering: fixed sizes of the inputs' symbolic dimensions (e.g.
   * `{ batch: 8, seq: 128 }`). The session is then specific to these shapes (a training step on
   * fixed padded batches is): shape arithmetic is constant, int64 inputs (labels, ids, masks)
   * are fed to the model as int32 (values must fit; run converts them), and no int64 arithmetic
   * is left for the CPU provider: the tuner conformance graphs run with `disableCpuFallback`
   * (test/web-webgpu.test.ts). A run with other sizes fails with an error naming the dimension.
   * Without `dims`, ONNX Runtime runs the int64 nodes (shape arithmetic, integer inputs) on its
   * CPU provider.
   */
  dims?: Readonly<Record<string, number>>;
  /** Graph optimization level (default "all"). */
  optimizationLevel?: "disabled" | "basic" | "extended" | "all";
  /** Prepack weights for faster GEMMs (default true); off saves start-up time and memory. */
  prepacking?: boolean;
  /** Use ORT's CPU memory arena (default true). */
  memoryArena?: boolean;
  /**
   * Plan all of a run's intermediate buffers up front as one block (ORT's `enableMemPattern`).
   * Default false: buffers are then taken from the arena as nodes run and reused as they free.
   * Measured (`npm run bench -- quant`, 12 BERT-base layers, LoRA step batch 8 x 128): the planned
   * block raises peak RSS by ~0.9 GB (3283 vs 2339 MB) for no measurable speed (0.96-0.99x the
   * step time without it; BERT forward and GPT-2 cached generation within noise).
   */
  memoryPattern?: boolean;
  /**
   * Run the session on its own worker thread (onnxruntime-node only): the calling thread stays
   * free while it computes — what a server needs, since onnxruntime-node otherwise runs a session
   * synchronously on the caller's thread. Feeds are copied to the worker on each run (structured
   * clone: ~250 ms for 96 MB measured under load), so it suits runs whose feeds are small next to
   * their compute (an encoder batch), not a decode step that feeds its whole KV cache. Default false.
   */
  worker?: boolean;
  /** Write the lowered model here (for inspection with Netron etc.). */
  saveModelTo?: string;
  /** Write ORT's per-node profile (Chrome trace JSON) with this file prefix. */
  profilePrefix?: string;
  /**
   * Feed frozen weights on each run from their JS buffers instead of handing them to ORT as
   * initializers (see LowerOptions.frozenAsInputs). ORT then keeps no copy: as initializers it
   * holds its own copy of every weight, and with prepacking a packed copy per GEMM that uses it
   * (forward and backward: two per Linear weight). Default false here, for inference sessions
   * whose small-batch GEMMs gain from prepacking; `TrainStep` and the Trainer's evaluation default
   * to true where inputs are read in place (see trainingSessionOptions). Measured (12 BERT-base
   * layers, LoRA step batch 8 x 128, 2 threads, interleaved): peak RSS 1548 vs 2478 MB, step time
   * min 3662 vs 3667 ms (ORT's GEMM kernel time per step 3161 vs 3166 ms: packing B on each call
   * is nothing next to a 1024-row product).
   */
  frozenWeightsAsInputs?: boolean;
}

const ORT_DTYPES: Partial<Record<DType, OrtTensor.Type>> = {
  float32: "float32",
  float64: "float64",
  float16: "float16",
  int64: "int64",
  int32: "int32",
  int8: "int8",
  uint8: "uint8",
  bool: "bool",
};

function toOrt(rt: OnnxRuntime, t: Tensor, what: string): OrtTensor {
  const type = ORT_DTYPES[t.dtype];
  if (!type) throw new TypeError(`${what}: dtype ${t.dtype} cannot be fed to ONNX Runtime; convert it to float32 first`);
  return new rt.Tensor(type, t.data as OrtTensor.DataType, t.shape as number[]);
}

function fromOrt(t: Pick<OrtTensor, "type" | "dims" | "data">): Tensor {
  const dtype = (Object.keys(ORT_DTYPES) as DType[]).find((d) => ORT_DTYPES[d] === t.type);
  if (!dtype) throw new TypeError(`ONNX Runtime returned unsupported dtype ${t.type}`);
  let data = t.data as Tensor["data"];
  if (dtype === "bool" && !(data instanceof Uint8Array)) data = Uint8Array.from(data as unknown as ArrayLike<number>);
  return { dtype, shape: [...t.dims], data };
}

/** An int64 input as int32 (the WebGPU lowering's integer inputs); every value must fit. */
function toInt32(t: Tensor, name: string): Tensor {
  const src = t.data as BigInt64Array;
  const data = new Int32Array(src.length);
  for (let i = 0; i < src.length; i++) {
    const x = src[i]!;
    if (x < -2147483648n || x > 2147483647n) throw new RangeError(`input "${name}": element ${i} is ${x}, which does not fit in int32 (the WebGPU lowering feeds int64 inputs as int32)`);
    data[i] = Number(x);
  }
  return { dtype: "int32", shape: t.shape, data };
}

/** The providers a session with `opts` asks for: its own, else the default set (undefined: the runtime's). */
function providersOf(opts: SessionOptions): readonly string[] | undefined {
  return opts.executionProviders ?? defaultExecutionProviders();
}

/** A graph compiled to an ONNX Runtime session. */
export class CompiledGraph {
  private constructor(
    private readonly session: RunnableSession,
    private readonly model: LoweredModel,
    /** The runtime the session was created with (its Tensor class makes the feeds). */
    private readonly runtime: OnnxRuntime,
    /** Seconds spent creating the session (lowering excluded). */
    readonly createSeconds: number,
  ) {}

  /**
   * Compile the computation of `outputs` (name -> value).
   *
   * @example
   *   const g = new Graph();
   *   const x = g.input("x", "float32", ["batch", 3]);
   *   const step = await CompiledGraph.create({ y: relu(x) });
   *   const { y } = await step.run({ x: float32([1, 3], [-1, 0, 2]) });
   */
  static async create(outputs: Readonly<Record<string, Value>>, opts: SessionOptions = {}): Promise<CompiledGraph> {
    const eps = providersOf(opts);
    const target = opts.lowering ?? (eps?.[0] === "webgpu" ? "webgpu" : "cpu");
    const model = lowerToOnnx(outputs, { frozenAsInputs: opts.frozenWeightsAsInputs, target, ...(opts.dims ? { dims: opts.dims } : {}) });
    if (opts.saveModelTo) await writeFile(opts.saveModelTo, model.bytes);
    const rt = onnxRuntime();
    const web = onnxRuntimeKind(rt) === "web";
    const sessionOptions: InferenceSession.SessionOptions = {
      graphOptimizationLevel: opts.optimizationLevel ?? "all",
      enableCpuMemArena: opts.memoryArena ?? true,
      enableMemPattern: opts.memoryPattern ?? false,
      externalData: model.externalData,
      extra: { session: { disable_prepacking: opts.prepacking === false ? "1" : "0", ...(opts.disableCpuFallback ? { disable_cpu_ep_fallback: "1" } : {}) } },
    };
    if (eps) sessionOptions.executionProviders = [...eps];
    else if (web) sessionOptions.executionProviders = ["wasm"];
    if (opts.profilePrefix) {
      sessionOptions.enableProfiling = true;
      sessionOptions.profileFilePrefix = opts.profilePrefix;
    }
    if (opts.threads !== undefined) {
      sessionOptions.intraOpNumThreads = opts.threads;
      sessionOptions.interOpNumThreads = 1;
      if (web && opts.threads > 0) rt.env.wasm.numThreads = opts.threads; // read once, when wasm starts
    }
    const t0 = performance.now();
    if (opts.worker && (web || rt !== platformOnnxRuntime)) throw new Error("SessionOptions.worker runs sessions on onnxruntime-node, and this one would use another runtime (setOnnxRuntime / a browser build)");
    let session: RunnableSession;
    try {
      session = opts.worker ? await createWorkerSession(model.bytes, sessionOptions) : await rt.InferenceSession.create(model.bytes, sessionOptions);
    } catch (e) {
      throw new Error(`ONNX Runtime rejected the lowered graph (${model.nodeCount} nodes; outputs ${model.outputs.join(", ")}): ${(e as Error).message}`, { cause: e });
    }
    return new CompiledGraph(session, model, rt, (performance.now() - t0) / 1000);
  }

  /** Names of the inputs the caller must feed. */
  get inputNames(): string[] {
    return this.model.inputs.map((v) => (v.source as { name: string }).name);
  }

  /** Trainable parameters fed automatically from their current data on every run. */
  get trainableParams(): readonly Param[] {
    return this.model.trainable.filter((p) => p.trainable);
  }

  /** ONNX nodes per op type in the lowered graph (before ORT's own optimizations). */
  get opCounts(): Readonly<Record<string, number>> {
    return this.model.opCounts;
  }

  get outputNames(): readonly string[] {
    return this.model.outputs;
  }

  /** Run once. Inputs are checked against their declared dtypes and shapes. */
  async run(feeds: Readonly<Record<string, Tensor>>): Promise<Record<string, Tensor>> {
    const ortFeeds: Record<string, OrtTensor> = {};
    const symbols = new Map<string, [number, string]>();
    const fixed = this.model.dims;
    const int32 = new Set(this.model.int32Inputs);
    for (const v of this.model.inputs) {
      const name = (v.source as { name: string }).name;
      const t = feeds[name];
      if (!t) throw new Error(`missing input "${name}" (${v.dtype}${formatShape(v.shape)}); inputs are: ${this.inputNames.join(", ")}`);
      if (t.dtype !== v.dtype) throw new TypeError(`input "${name}": expected dtype ${v.dtype}, got ${t.dtype}`);
      if (t.shape.length !== v.rank) throw new RangeError(`input "${name}": expected shape ${formatShape(v.shape)}, got ${formatShape(t.shape)}`);
      v.shape.forEach((d, i) => {
        const actual = t.shape[i]!;
        if (typeof d === "number") {
          if (d !== actual) throw new RangeError(`input "${name}": expected shape ${formatShape(v.shape)}, got ${formatShape(t.shape)}`);
        } else {
          if (fixed?.[d] !== undefined && fixed[d] !== actual) {
            throw new RangeError(`input "${name}": dimension "${d}" is ${actual}, but this session was compiled for ${d} = ${fixed[d]} (SessionOptions.dims); compile one per shape`);
          }
          const prev = symbols.get(d);
          if (prev && prev[0] !== actual) throw new RangeError(`input "${name}": dimension "${d}" is ${actual} here but ${prev[0]} in input "${prev[1]}"`);
          symbols.set(d, [actual, name]);
        }
      });
      ortFeeds[name] = toOrt(this.runtime, int32.has(name) ? toInt32(t, name) : t, `input "${name}"`);
    }
    for (const p of this.model.trainable) ortFeeds[p.name] = toOrt(this.runtime, p.tensor, `parameter "${p.name}"`);
    const out = await this.session.run(ortFeeds);
    const result: Record<string, Tensor> = {};
    for (const name of this.model.outputs) result[name] = fromOrt(out[name]!);
    return result;
  }

  /** Stop profiling and flush the profile file (when `profilePrefix` was set). */
  endProfiling(): void {
    this.session.endProfiling();
  }

  /** Free the native session. */
  async release(): Promise<void> {
    await this.session.release();
  }
}

/**
 * `opts` for a session that runs training-sized batches (a training step, an evaluation pass):
 * unless the caller chose, frozen weights are fed from their JS buffers where the runtime reads
 * run inputs in place, which onnxruntime-node's CPU provider does. onnxruntime-web copies every
 * input into its wasm heap (or GPU memory) on each run, a worker session clones its feeds, and
 * other providers upload them: there the weights stay initializers, copied once.
 */
export function trainingSessionOptions(opts: SessionOptions = {}): SessionOptions {
  if (opts.frozenWeightsAsInputs !== undefined) return opts;
  const cpu = (providersOf(opts)?.[0] ?? "cpu") === "cpu";
  return { ...opts, frozenWeightsAsInputs: cpu && !opts.worker && onnxRuntimeKind() === "native" };
}

/** Shorthand for `CompiledGraph.create`. */
export function compile(outputs: Readonly<Record<string, Value>>, opts?: SessionOptions): Promise<CompiledGraph> {
  return CompiledGraph.create(outputs, opts);
}
