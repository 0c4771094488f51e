// Optimizers that update trainable parameters in place between compiled steps.
import { type Param } from "../ir/graph.js";
import { type Tensor } from "../ir/tensor.js";

type FloatArray = Float32Array | Float64Array;

export interface AdamWOptions {
  lr?: number;
  betas?: [number, number];
  eps?: number;
  /** Decoupled weight decay (Loshchilov & Hutter 2019), applied as p -= lr * wd * p. */
  weightDecay?: number;
}

function floatData(p: Param): FloatArray {
  if (!(p.data instanceof Float32Array || p.data instanceof Float64Array)) throw new TypeError(`optimizer: parameter "${p.name}" is ${p.dtype}; only float32/float64 parameters can be trained`);
  return p.data;
}

function gradFor(grads: ReadonlyMap<string, Tensor> | Readonly<Record<string, Tensor>>, p: Param): FloatArray {
  const g = grads instanceof Map ? grads.get(p.name) : (grads as Record<string, Tensor>)[p.name];
  if (!g) throw new Error(`optimizer: no gradient for parameter "${p.name}"`);
  if (g.data.length !== p.data.length) throw new RangeError(`optimizer: gradient of "${p.name}" has ${g.data.length} elements, parameter has ${p.data.length}`);
  return g.data as FloatArray;
}

/**
 * AdamW with bias correction, matching torch.optim.AdamW.
 *
 * @example
 *   const opt = new AdamW(step.trainableParams, { lr: 1e-3 });
 *   const out = await step.run(batch);
 *   opt.step(gradsByParamName(out));
 */
/** Parameters sharing optimizer settings, e.g. a head trained at 10x the adapters' rate. */
export interface ParamGroup {
  params: readonly Param[];
  /** Multiplies the optimizer's (scheduled) learning rate for this group (default 1). */
  lrScale?: number;
  weightDecay?: number;
}

/**
 * AdamW with bias correction, matching torch.optim.AdamW; float32 moments like torch.
 *
 * @example
 *   const opt = new AdamW(step.params, { lr: 1e-3 });
 *   const { grads } = await step.run(batch);
 *   opt.step(grads);
 */
export class AdamW {
  private readonly m = new Map<Param, Float32Array>();
  private readonly v = new Map<Param, Float32Array>();
  private readonly groups: Required<ParamGroup>[];
  private t = 0;
  lr: number;
  readonly betas: [number, number];
  readonly eps: number;

  constructor(params: readonly Param[] | readonly ParamGroup[], opts: AdamWOptions = {}) {
    this.lr = opts.lr ?? 1e-3;
    this.betas = opts.betas ?? [0.9, 0.999];
    this.eps = opts.eps ?? 1e-8;
    const wd = opts.weightDecay ?? 0.01;
    const groups = params.length && "params" in (params[0] as object) ? (params as readonly ParamGroup[]) : [{ params: params as readonly Param[] }];
    this.groups = groups.map((g) => ({ params: g.params, lrScale: g.lrScale ?? 1, weightDecay: g.weightDecay ?? wd }));
    for (const p of this.params) {
      floatData(p);
      this.m.set(p, new Float32Array(p.data.length));
      this.v.set(p, new Float32Array(p.data.length));
    }
  }

  get params(): Param[] {
    return this.groups.flatMap((g) => g.params);
  }

  /** Number of steps taken. */
  get steps(): number {
    return this.t;
  }

  step(grads: ReadonlyMap<string, Tensor> | Readonly<Record<string, Tensor>>): void {
    this.t++;
    const [b1, b2] = this.betas;
    const c1 = 1 - Math.pow(b1, this.t);
    const c2 = 1 - Math.pow(b2, this.t);
    for (const group of this.groups) {
      const lr = this.lr * group.lrScale;
      for (const p of group.params) {
        const w = floatData(p);
        const g = gradFor(grads, p);
        const m = this.m.get(p)!;
        const v = this.v.get(p)!;
        for (let i = 0; i < w.length; i++) {
          const gi = g[i]!;
          m[i] = b1 * m[i]! + (1 - b1) * gi;
          v[i] = b2 * v[i]! + (1 - b2) * gi * gi;
          w[i] = w[i]! * (1 - lr * group.weightDecay) - (lr * (m[i]! / c1)) / (Math.sqrt(v[i]! / c2) + this.eps);
        }
      }
    }
  }

  /** The optimizer's state (moments by parameter name and the step count), for checkpoints. */
  state(): { step: number; moments: Map<string, Tensor> } {
    const moments = new Map<string, Tensor>();
    for (const p of this.params) {
      moments.set(`m:${p.name}`, { dtype: "float32", shape: p.shape, data: this.m.get(p)! });
      moments.set(`v:${p.name}`, { dtype: "float32", shape: p.shape, data: this.v.get(p)! });
    }
    return { step: this.t, moments };
  }

  loadState(state: { step: number; moments: ReadonlyMap<string, Tensor> }, source: string): void {
    for (const p of this.params) {
      for (const [k, store] of [["m", this.m], ["v", this.v]] as const) {
        const t = state.moments.get(`${k}:${p.name}`);
        if (!t || t.data.length !== p.data.length) throw new RangeError(`${source}: optimizer state for "${p.name}" is missing or has the wrong size`);
        store.get(p)!.set(t.data as Float32Array);
      }
    }
    this.t = state.step;
  }
}

/** Plain SGD with optional momentum (torch.optim.SGD semantics). */
export class SGD {
  private readonly buf = new Map<Param, Float64Array>();
  constructor(
    readonly params: readonly Param[],
    public lr = 1e-2,
    readonly momentum = 0,
  ) {
    for (const p of params) floatData(p);
  }

  step(grads: ReadonlyMap<string, Tensor> | Readonly<Record<string, Tensor>>): void {
    for (const p of this.params) {
      const w = floatData(p);
      const g = gradFor(grads, p);
      let b = this.buf.get(p);
      if (this.momentum && !b) this.buf.set(p, (b = Float64Array.from(g)));
      else if (b) for (let i = 0; i < g.length; i++) b[i] = this.momentum * b[i]! + g[i]!;
      const d = b ?? g;
      for (let i = 0; i < w.length; i++) w[i] = w[i]! - this.lr * d[i]!;
    }
  }
}
