// The model builder: binds parameters by their Hugging Face names from a weight source, applies
// hooks at every named point, and collects missing/mismatched weights to report them together.
import { conv1d, dequantizeLinear, int4Linear, int8Linear, linear, type Int4Weight, type Int8Weight } from "../ir/composites/linear.js";
import { Graph, type Param, type Value } from "../ir/graph.js";
import { transpose } from "../ir/ops/index.js";
import { dequantizeInt4Blockwise, int8Storage, quantizeInt4Blockwise, quantizeInt8, transposeInt8, zeroPoints, type Int4Blockwise, type QuantizeKind } from "../ir/quantize.js";
import { formatShape, sameShape } from "../ir/shape.js";
import { type Tensor } from "../ir/tensor.js";
import { fillNormal } from "../ir/random.js";
import { type ModelHooks } from "./hooks.js";

/** Named weights, e.g. a safetensors checkpoint. */
export interface WeightSource {
  names(): string[];
  has(name: string): boolean;
  get(name: string): Tensor;
  /**
   * Drop the source's data for `name` (a frozen Linear weight the builder has quantized): `get`
   * then answers `replacement()`, computed on each call and not kept. Optional; a source without
   * it keeps its data.
   */
  release?(name: string, replacement: () => Tensor): void;
}

/** A weight source over an in-memory map. */
export function weightMap(tensors: ReadonlyMap<string, Tensor> | Readonly<Record<string, Tensor>>): WeightSource {
  const m = tensors instanceof Map ? tensors : new Map(Object.entries(tensors));
  return { names: () => [...m.keys()], has: (n) => m.has(n), get: (n) => m.get(n)! };
}

export class CheckpointError extends Error {}

/** transformers' initialization by parameter name: norms weights 1, biases 0, the rest N(0, std). */
function defaultInit(name: string): "normal" | "zeros" | "ones" {
  if (name.endsWith(".bias")) return "zeros";
  if (/(LayerNorm|layer_norm|layernorm|ln_\w+|norm)\.weight$/.test(name)) return "ones";
  return "normal";
}

export interface BuildOptions {
  /** Dropout on (training graph) or off. */
  training?: boolean;
  /** Recompute each layer's activations in the backward pass (less memory, more time). */
  gradientCheckpointing?: boolean;
  /** Initialize every weight the checkpoint lacks (a model built from a config, for pretraining). */
  initializeMissing?: boolean;
  /**
   * Masked LM with loss: run the LM head only at labelled positions (the ~15% that are masked),
   * so `logits` is [labelled, vocab]; the loss is the same. Pretraining uses it for speed.
   */
  maskedPositionsOnly?: boolean;
  hooks?: ModelHooks;
  /**
   * Store frozen Linear weights quantized (int8: per-output-channel symmetric; see
   * ir/composites/linear.ts). Embeddings, norms, task heads and trainable tensors stay float32.
   */
  quantize?: QuantizeKind;
}

/** A frozen Linear weight in quantized storage, shared by the graphs built from one model. */
export interface QuantizedStorage {
  /** uint8 [in, out] (symmetric int8 + 128) with zero point 128, one scale per output channel. */
  q: Uint8Array;
  scale: Float32Array;
  shape: readonly [number, number];
  /** The checkpoint's layout of the weight: [out, in] (nn.Linear) or [in, out] (GPT-2 Conv1D). */
  layout: "linear" | "conv1d";
}

/** A frozen Linear weight in 4-bit blockwise storage (MatMulNBits' layout, W as [out, in]). */
export type Int4Storage = Int4Blockwise & { layout: "linear" | "conv1d" };
/** Values per 4-bit block (one scale each): ORT's default for MatMulNBits. */
const INT4_BLOCK = 32;

function transposeFloat(data: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) out[j * rows + i] = data[i * cols + j]!;
  return out;
}

/**
 * A quantized weight as float32 in its checkpoint layout ([out, in] for nn.Linear, [in, out] for
 * a GPT-2 Conv1D): the values the graphs compute with.
 */
export function dequantizeStorage(stored: QuantizedStorage | Int4Storage): Tensor<"float32"> {
  if ("packed" in stored) {
    const outIn = dequantizeInt4Blockwise(stored);
    if (stored.layout === "linear") return outIn;
    const [n, k] = stored.shape;
    return { dtype: "float32", shape: [k, n], data: transposeFloat(outIn.data, n, k) };
  }
  const [inF, outF] = stored.shape;
  const out = new Float32Array(inF * outF);
  // Stored [in, out]; an nn.Linear weight is [out, in], a Conv1D one [in, out].
  const linearLayout = stored.layout === "linear";
  for (let i = 0; i < inF; i++) for (let o = 0; o < outF; o++) out[linearLayout ? o * inF + i : i * outF + o] = (stored.q[i * outF + o]! - 128) * stored.scale[o]!;
  return { dtype: "float32", shape: linearLayout ? [outF, inF] : [inF, outF], data: out };
}

/** The checkpoint shape of a quantized weight. */
function storedShape(stored: QuantizedStorage | Int4Storage): [number, number] {
  const [a, b] = stored.shape;
  // int8 is stored [in, out], int4 [out, in].
  const [outF, inF] = "packed" in stored ? [a, b] : [b, a];
  return stored.layout === "linear" ? [outF, inF] : [inF, outF];
}

/** LM-head transforms are heads too: they stay float32 under quantization. */
const HEAD_PATH = /(^|\.)(lm_head|cls|vocab_transform|vocab_projector)(\.|$)/;

export class ModelBuilder {
  readonly graph = new Graph();
  readonly training: boolean;
  readonly checkpointing: boolean;
  readonly initializeMissing: boolean;
  readonly maskedPositionsOnly: boolean;
  readonly hooks: ModelHooks;
  readonly quantize: QuantizeKind | undefined;
  private readonly missing: string[] = [];
  private readonly mismatched: string[] = [];
  private readonly used = new Set<string>();
  /** Parameters created fresh because the checkpoint lacks them (new task heads). */
  readonly newlyInitialized: string[] = [];
  /** Standard deviation for fresh weights (config `initializer_range`). */
  initStd = 0.02;

  constructor(
    readonly weights: WeightSource,
    readonly source: string,
    opts: BuildOptions = {},
    /** Freshly initialized head weights, shared by the graphs built from one model. */
    private readonly fresh: Map<string, Tensor> = new Map(),
    /** Quantized frozen weights by parameter name, shared by the graphs built from one model. */
    private readonly quantized: Map<string, QuantizedStorage> = new Map(),
    private readonly quantized4: Map<string, Int4Storage> = new Map(),
  ) {
    this.training = opts.training ?? false;
    this.checkpointing = opts.gradientCheckpointing ?? false;
    this.initializeMissing = opts.initializeMissing ?? false;
    this.maskedPositionsOnly = opts.maskedPositionsOnly ?? false;
    this.hooks = opts.hooks ?? {};
    this.quantize = opts.quantize;
  }

  /**
   * A frozen parameter by its HF name; its shape must match `shape`. `aliases` are other names
   * the checkpoint may use (e.g. without the `bert.` prefix of a base-model checkpoint). When
   * `init` is given, a missing weight is initialized (a new task head) instead of reported.
   */
  param(name: string, shape: readonly number[], opts: { aliases?: readonly string[]; init?: "normal" | "zeros" | "ones" } = {}): Value {
    // In order of preference, for the name and then each alias: a value already bound to it
    // (tied weights share one parameter), a trained copy a hook supplies, the checkpoint's tensor.
    let key: string | undefined;
    for (const candidate of [name, ...(opts.aliases ?? [])]) {
      const bound = this.bound.get(candidate);
      if (bound) return this.remember(name, bound);
      const supplied = this.hooks.parameter?.(candidate, this.graph);
      if (supplied) {
        if (!sameShape(supplied.shape, shape)) {
          throw new CheckpointError(`${this.source}: replacement for "${candidate}" has shape ${formatShape(supplied.shape)}, expected ${formatShape(shape)}`);
        }
        if (this.weights.has(candidate)) this.used.add(candidate);
        return this.remember(candidate, this.remember(name, supplied));
      }
      key = [candidate, ...this.prefixAliases(candidate)].find((k) => this.weights.has(k));
      if (key !== undefined) break;
    }
    if (key !== undefined && opts.init && !sameShape(this.weights.get(key).shape, shape)) {
      // A task head sized for another label set: a new head, as transformers' ignore_mismatched_sizes.
      this.used.add(key);
      key = undefined;
    }
    if (key === undefined) {
      const n = shape.reduce((a, b) => a * b, 1);
      const init = opts.init ?? (this.initializeMissing ? defaultInit(name) : undefined);
      if (init) {
        this.newlyInitialized.push(name);
        // New heads are created once per model and reused by every graph built from it.
        let t = this.fresh.get(name);
        if (!t) {
          const data = new Float32Array(n);
          if (init === "ones") data.fill(1);
          if (init === "normal") fillNormal(data, this.initStd, this.newlyInitialized.length * 7919);
          this.fresh.set(name, (t = { dtype: "float32", shape, data }));
        }
        return this.remember(name, this.graph.param(name, t));
      }
      this.missing.push(name);
      return this.graph.param(name, { dtype: "float32", shape, data: new Float32Array(n) });
    }
    this.used.add(key);
    this.keys.set(name, key);
    // Quantized by an earlier build: the source no longer holds its float32 data; a stand-in.
    const stored = this.quantize === "int4" ? this.quantized4.get(name) : this.quantize ? this.quantized.get(name) : undefined;
    // Its graph Param is deferred: only a graph that uses the float weight itself (a hook given
    // it) makes lowering read it, dequantized.
    const t = stored ? { dtype: "float32" as const, shape: storedShape(stored), data: () => dequantizeStorage(stored).data } : this.weights.get(key);
    if (!sameShape(t.shape, shape)) {
      this.mismatched.push(`${key}: checkpoint has ${formatShape(t.shape)}, config implies ${formatShape(shape)}`);
    }
    return this.remember(name, this.graph.param(name, t));
  }

  /** The checkpoint key each parameter name was bound to. */
  private readonly keys = new Map<string, string>();

  /**
   * After quantizing: the Param and the weight source stop holding the float32 data (again for
   * a Param bound before another build quantized its weight; the source ignores a repeat).
   */
  private release(p: Param, stored: QuantizedStorage | Int4Storage): void {
    p.defer(() => dequantizeStorage(stored).data);
    const key = this.keys.get(p.name);
    if (key !== undefined) this.weights.release?.(key, () => dequantizeStorage(stored));
  }

  private readonly bound = new Map<string, Value>();
  private remember(name: string, v: Value): Value {
    this.bound.set(name, v);
    return v;
  }

  private modelPrefix = "";
  private taskPrefix = "";

  /**
   * Declare the base-model prefix (e.g. "bert."): task models name parameters with it, base
   * models without, and either kind of checkpoint loads into either (as in transformers).
   */
  usePrefix(modelPrefix: string, isBaseModel: boolean): string {
    this.modelPrefix = modelPrefix;
    this.taskPrefix = isBaseModel ? "" : modelPrefix;
    return this.taskPrefix;
  }

  private prefixAliases(name: string): string[] {
    if (!this.modelPrefix) return [];
    if (this.taskPrefix) return name.startsWith(this.taskPrefix) ? [name.slice(this.taskPrefix.length)] : [];
    return [this.modelPrefix + name];
  }

  /** Whether the checkpoint has this weight (for optional biases and heads). */
  has(name: string): boolean {
    return this.weights.has(name);
  }

  /** An nn.Linear at `path` ([out, in] weight, optional bias), through the linear hook. */
  linear(path: string, x: Value, outFeatures: number, inFeatures: number, opts: { bias?: boolean; head?: boolean } = {}): Value {
    const init = (kind: "normal" | "zeros") => (opts.head ? { init: kind } : {});
    const floatWeight = this.param(`${path}.weight`, [outFeatures, inFeatures], init("normal"));
    const b = (opts.bias ?? true) ? this.param(`${path}.bias`, [outFeatures], init("zeros")) : undefined;
    const q = opts.head ? undefined : this.quantizedWeight(path, floatWeight, "linear");
    // Hooks that read the weight itself (DoRA's norm) get it dequantized, one layer at a time.
    const weight = q?.int8 ? transpose(dequantizeLinear(q.int8.q, q.int8.scale, 1, q.int8.zeroPoint), [1, 0]) : floatWeight;
    const base = (t: Value) => (q?.int8 ? int8Linear(t, q.int8, b) : q?.int4 ? int4Linear(t, q.int4, b) : linear(t, weight, b));
    return this.hooks.linear?.({ path, x, weight, bias: b, layout: "linear", base }) ?? base(x);
  }

  /** A GPT-2 Conv1D at `path` ([in, out] weight and bias), through the linear hook. */
  conv1d(path: string, x: Value, inFeatures: number, outFeatures: number): Value {
    const floatWeight = this.param(`${path}.weight`, [inFeatures, outFeatures]);
    const b = this.param(`${path}.bias`, [outFeatures]);
    const q = this.quantizedWeight(path, floatWeight, "conv1d");
    const weight = q?.int8 ? dequantizeLinear(q.int8.q, q.int8.scale, 1, q.int8.zeroPoint) : floatWeight;
    const base = (t: Value) => (q?.int8 ? int8Linear(t, q.int8, b) : q?.int4 ? int4Linear(t, q.int4, b) : conv1d(t, weight, b));
    return this.hooks.linear?.({ path, x, weight, bias: b, layout: "conv1d", base }) ?? base(x);
  }

  /**
   * The int8 form of a frozen checkpoint weight when quantizing (quantized once per model and
   * cached); undefined for trainable or hook-supplied weights, heads, and without `quantize`.
   */
  private quantizedWeight(path: string, weight: Value, layout: "linear" | "conv1d"): { int8?: Int8Weight; int4?: Int4Weight } | undefined {
    const s = weight.source;
    if (!this.quantize || s.kind !== "param" || s.param.trainable || s.param.dtype !== "float32" || HEAD_PATH.test(path)) return undefined;
    const name = s.param.name;
    if (this.fresh.has(name) || this.missing.includes(name)) return undefined;
    const g = this.graph;
    if (this.quantize === "int4") {
      let stored = this.quantized4.get(name);
      if (!stored) {
        // MatMulNBits takes W as [out, in] in blocks along in.
        const t = s.param.tensor;
        const outIn = layout === "linear" ? t : { dtype: "float32" as const, shape: [t.shape[1]!, t.shape[0]!], data: transposeFloat(t.data as Float32Array, t.shape[0]!, t.shape[1]!) };
        this.quantized4.set(name, (stored = { ...quantizeInt4Blockwise(outIn, INT4_BLOCK), layout }));
      }
      this.release(s.param, stored);
      const [n, k] = stored.shape;
      const blocks = Math.ceil(k / stored.blockSize);
      return {
        int4: {
          packed: g.param(`${name}.int4`, { dtype: "uint8", shape: [n, blocks, stored.blockSize / 2], data: stored.packed }),
          scales: g.param(`${name}.int4_scales`, { dtype: "float32", shape: [n * blocks], data: stored.scales }),
          inFeatures: k,
          blockSize: stored.blockSize,
        },
      };
    }
    let stored = this.quantized.get(name);
    if (!stored) {
      // MatMulInteger's B is [in, out]: channel axis 0 of an nn.Linear weight, 1 of a Conv1D's.
      const int8 = quantizeInt8(s.param.tensor, layout === "linear" ? 0 : 1);
      const inOut = layout === "linear" ? transposeInt8(int8) : int8;
      stored = { q: int8Storage(inOut.q), scale: inOut.scale, shape: inOut.shape as [number, number], layout };
      this.quantized.set(name, stored);
    }
    this.release(s.param, stored);
    const [inF, outF] = stored.shape;
    return {
      int8: {
        q: g.param(`${name}.int8`, { dtype: "uint8", shape: [inF, outF], data: stored.q }),
        scale: g.param(`${name}.scale`, { dtype: "float32", shape: [outF], data: stored.scale }),
        zeroPoint: g.param(`${name}.zero_point`, { dtype: "uint8", shape: [outF], data: zeroPoints(outF) }),
      },
    };
  }

  /**
   * Report problems found while binding weights. Missing and mismatched weights are errors;
   * `unexpected` lists checkpoint tensors the architecture did not use.
   */
  finish(ignoreUnexpected: (name: string) => boolean = () => false): { unexpected: string[] } {
    if (this.missing.length || this.mismatched.length) {
      const parts = [];
      if (this.missing.length) parts.push(`missing weights: ${this.missing.slice(0, 10).join(", ")}${this.missing.length > 10 ? ` (+${this.missing.length - 10} more)` : ""}`);
      if (this.mismatched.length) parts.push(`shape mismatches: ${this.mismatched.slice(0, 10).join("; ")}`);
      throw new CheckpointError(`${this.source}: the checkpoint does not match its config: ${parts.join("; ")}`);
    }
    return { unexpected: this.weights.names().filter((n) => !this.used.has(n) && !ignoreUnexpected(n)) };
  }
}
