// A compiled training step: forward, loss and the backward pass to the trainable parameters,
// in one ONNX Runtime session run.
import { gradients } from "../autodiff/gradients.js";
import { type Param, type Value } from "../ir/graph.js";
import { type Tensor } from "../ir/tensor.js";
import { compile, type CompiledGraph, type SessionOptions } from "../runtime/session.js";

export interface TrainStepOptions {
  /** Parameters to differentiate (default: every trainable parameter of the loss's graph). */
  params?: readonly Param[];
  /** Graph inputs whose gradients are also returned (by input name). */
  inputGradients?: readonly Value[];
  /** Extra values to return (e.g. logits for metrics). */
  outputs?: Readonly<Record<string, Value>>;
  session?: SessionOptions;
}

export interface StepResult {
  loss: number;
  /** Gradient per trainable parameter name (and per input name for `inputGradients`). */
  grads: Map<string, Tensor>;
  outputs: Record<string, Tensor>;
}

const GRAD_PREFIX = "grad:";

export class TrainStep {
  private constructor(
    readonly compiled: CompiledGraph,
    readonly params: readonly Param[],
    private readonly gradNames: readonly string[],
    private readonly extraNames: readonly string[],
  ) {}

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
    const compiled = await compile(outputs, opts.session);
    return new TrainStep(compiled, params, names, Object.keys(opts.outputs ?? {}));
  }

  async run(feeds: Readonly<Record<string, Tensor>>): Promise<StepResult> {
    const out = await this.compiled.run(feeds);
    const grads = new Map<string, Tensor>();
    for (const n of this.gradNames) grads.set(n, out[GRAD_PREFIX + n]!);
    const outputs: Record<string, Tensor> = {};
    for (const n of this.extraNames) outputs[n] = out[n]!;
    const loss = Number(out.loss!.data[0]);
    if (!Number.isFinite(loss)) throw new RangeError(`training step produced a non-finite loss (${loss})`);
    return { loss, grads, outputs };
  }

  release(): Promise<void> {
    return this.compiled.release();
  }
}
