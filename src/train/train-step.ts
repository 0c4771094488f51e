// A compiled training step: forward, loss and the backward pass to the trainable parameters,
// in one ONNX Runtime session run.
import { gradients } from "../autodiff/gradients.js";
import { type Param, type Value } from "../ir/graph.js";
import { DROPOUT_KEY } from "../ir/ops/index.js";
import { type Tensor } from "../ir/tensor.js";
import { compile, trainingSessionOptions, type CompiledGraph, type SessionOptions } from "../runtime/session.js";

export interface TrainStepOptions {
  /** Parameters to differentiate (default: every trainable parameter of the loss's graph). */
  params?: readonly Param[];
  /** Graph inputs whose gradients are also returned (by input name). */
  inputGradients?: readonly Value[];
  /** Extra values to return (e.g. logits for metrics). */
  outputs?: Readonly<Record<string, Value>>;
  /**
   * ONNX Runtime session options, completed by `trainingSessionOptions`: frozen weights are fed
   * in place where the runtime allows, since a training step's GEMMs have batch x seq rows and
   * ORT's own and prepacked copies of the weights would cost memory and buy no time
   * (SessionOptions.frozenWeightsAsInputs has the numbers).
   */
  session?: SessionOptions;
  /**
   * Seed of the dropout keys this step draws itself, run after run, when the caller feeds none
   * (the Trainer feeds {@link dropoutKey} of its seed, step and micro-batch instead).
   */
  seed?: number;
}

export interface StepResult {
  loss: number;
  /** Gradient per trainable parameter name (and per input name for `inputGradients`). */
  grads: Map<string, Tensor>;
  outputs: Record<string, Tensor>;
}

const GRAD_PREFIX = "grad:";

/** A training step's loss was NaN or infinite (the parameters or the data went bad). */
export class NonFiniteLossError extends RangeError {
  constructor(readonly loss: number) {
    super(`training step produced a non-finite loss (${loss})`);
  }
}

/**
 * The dropout key of micro-batch `micro` of optimizer step `step` in a run seeded `seed`: an
 * int32 scalar for the graph input {@link DROPOUT_KEY}. Dropout masks are a pure function of it,
 * so a resumed run that feeds the same (seed, step, micro) draws the same masks.
 */
export function dropoutKey(seed: number, step: number, micro = 0): Tensor {
  let h = Math.imul(seed | 0, 0x9e3779b1) ^ Math.imul(step | 0, 0x85ebca77) ^ Math.imul(micro | 0, 0xc2b2ae3d);
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d);
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b);
  return { dtype: "int32", shape: [], data: Int32Array.of(h ^ (h >>> 16)) };
}

export class TrainStep {
  private constructor(
    readonly compiled: CompiledGraph,
    readonly params: readonly Param[],
    private readonly gradNames: readonly string[],
    private readonly extraNames: readonly string[],
    private readonly seed: number,
  ) {}

  /** Runs so far: the counter behind the dropout keys this step draws itself. */
  private runs = 0;

  /**
   * Compile forward + backward of a scalar `loss`.
   *
   * @example
   *   const step = await TrainStep.create(loss);
   *   const opt = new AdamW(step.params, { lr: 1e-3 });
   *   const { loss: l, grads } = await step.run({ x, labels });
   *   opt.step(grads);
   */
  static async create(loss: Value, opts: TrainStepOptions = {}): Promise<TrainStep> {
    const params = opts.params ?? [...loss.graph.params.values()].filter((p) => p.trainable);
    for (const p of params) if (!p.trainable) throw new Error(`TrainStep: parameter "${p.name}" is frozen; mark it trainable to train it`);
    const inputs = opts.inputGradients ?? [];
    const wrt = [...params.map((p) => p.value), ...inputs];
    const names = [...params.map((p) => p.name), ...inputs.map((v) => (v.source.kind === "input" ? v.source.name : `value${v.id}`))];
    const grads = gradients(loss, wrt);
    const outputs: Record<string, Value> = { loss };
    grads.forEach((g, i) => (outputs[GRAD_PREFIX + names[i]!] = g));
    for (const [k, v] of Object.entries(opts.outputs ?? {})) outputs[k] = v;
    const compiled = await compile(outputs, trainingSessionOptions(opts.session));
    return new TrainStep(compiled, params, names, Object.keys(opts.outputs ?? {}), opts.seed ?? 0);
  }

  async run(feeds: Readonly<Record<string, Tensor>>): Promise<StepResult> {
    const needsKey = feeds[DROPOUT_KEY] === undefined && this.compiled.inputNames.includes(DROPOUT_KEY);
    const out = await this.compiled.run(needsKey ? { ...feeds, [DROPOUT_KEY]: dropoutKey(this.seed, this.runs) } : feeds);
    this.runs++;
    const grads = new Map<string, Tensor>();
    for (const n of this.gradNames) grads.set(n, out[GRAD_PREFIX + n]!);
    const outputs: Record<string, Tensor> = {};
    for (const n of this.extraNames) outputs[n] = out[n]!;
    const loss = Number(out.loss!.data[0]);
    if (!Number.isFinite(loss)) throw new NonFiniteLossError(loss);
    return { loss, grads, outputs };
  }

  release(): Promise<void> {
    return this.compiled.release();
  }
}
