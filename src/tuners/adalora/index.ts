// AdaLoRA (Zhang et al. 2023, "Adaptive Budget Allocation for Parameter-Efficient
// Fine-Tuning"): LoRA in SVD form, ΔW = P Λ Q (lora_B, lora_E, lora_A), starting at init_r per
// module and pruned during training to an average of target_r: singular values with the lowest
// smoothed importance (|w · ∂L/∂w| times its uncertainty, over the whole triplet) are masked,
// following a cubic budget schedule. An orthogonality penalty keeps P and Q near-orthogonal.
// Saved as PEFT does: `lora_A` [r, in], `lora_B` [out, r], `lora_E` [r, 1] (no `.weight`).
import { linear } from "../../ir/composites/linear.js";
import { type Value } from "../../ir/graph.js";
import { add, dropout, matmul, mul, reduceSum, sqrt, sub, transpose } from "../../ir/ops/index.js";
import { fillNormal } from "../../ir/random.js";
import { type Tensor } from "../../ir/tensor.js";
import { type LinearHook } from "../../models/hooks.js";
import { type PretrainedModel } from "../../models/pretrained.js";
import { targetedLinears, type TargetSpec } from "../targets.js";
import { z } from "zod";
import { custom, declareConfig, integer, nullable, number, type ConfigFields, type DeclaredConfig } from "../config-schema.js";
import { AdapterConfigError, type Adapter, type BaseConfig, type HookContext, type TunerDef } from "../tuner.js";

/**
 * The LoraConfig fields AdaLoRA shares (PEFT's AdaLoraConfig extends LoraConfig). The registry
 * hands LoRA's row to adaloraTuner, so this folder imports no other method's.
 */
export interface LoraFields extends BaseConfig, TargetSpec {
  peft_type: string;
  r: number;
  lora_alpha: number;
  lora_dropout: number;
  fan_in_fan_out: boolean;
  bias: string;
  lora_bias: boolean;
  use_rslora: boolean;
  use_dora: boolean;
  use_gating: boolean;
  init_lora_weights: boolean | "gaussian";
  rank_pattern: unknown;
}

/** AdaLoraConfig's own fields (peft/tuners/adalora/config.py); the rest are LoraConfig's, from LoRA's row. */
const ADALORA_FIELDS = {
  target_r: integer({ min: 1, default: 8, help: "average rank per module at the end of training" }),
  init_r: integer({ min: 1, default: 12, help: "rank per module at the start" }),
  tinit: integer({ min: 0, default: 0, help: "steps before pruning starts" }),
  tfinal: integer({ min: 0, default: 0, help: "steps at the end with the final budget fixed" }),
  deltaT: integer({ min: 1, default: 1, help: "reallocate ranks every deltaT steps" }),
  beta1: number({ gt: 0, lt: 1, default: 0.85, help: "EMA coefficient of the importance" }),
  beta2: number({ gt: 0, lt: 1, default: 0.85, help: "EMA coefficient of the importance's uncertainty" }),
  orth_reg_weight: number({ min: 0, default: 0.5, help: "weight of the orthogonality penalty on P and Q" }),
  total_step: nullable(integer({ min: 1, help: "total training steps (the budget schedule needs them)" })),
  rank_pattern: nullable(custom<Record<string, boolean[]>>(z.record(z.string(), z.array(z.boolean())), "an object of boolean lists", { help: "kept singular values per module (`<module>.lora_E` -> booleans), once ranks are allocated" })),
} satisfies ConfigFields;

export type AdaLoraConfig = Omit<LoraFields, "peft_type" | "rank_pattern"> & DeclaredConfig<"ADALORA", typeof ADALORA_FIELDS>;

/** AdaLoRA's declaration: LoraConfig's fields (from LoRA's row) and its own, and PEFT's AdaLoraConfig rules. */
function adaloraConfig(lora: TunerDef<LoraFields>) {
  if (!lora.fields?.r) throw new Error("AdaLoRA's row is built on LoRA's declared fields");
  const { r, rank_pattern: _, ...shared } = lora.fields;
  void _;
  const fields = {
    // `r` is LoraConfig's field, unused by AdaLoRA: PEFT writes its default 8 (any other value makes AdaLoraConfig warn).
    r: { ...r, help: "LoraConfig's rank, unused by AdaLoRA (init_r is its starting rank); written as LoraConfig's default 8", write: () => 8 },
    ...shared,
    ...ADALORA_FIELDS,
  } satisfies ConfigFields;
  return declareConfig<"ADALORA", typeof fields, AdaLoraConfig>("ADALORA", fields, {
    refine: (cfg, source) => {
      // Fields AdaLoRA shares with LoraConfig that peftjs's AdaLoRA does not implement (PEFT's AdaLoraConfig rejects use_dora itself).
      for (const [k, off] of [["bias", "none"], ["lora_bias", false], ["use_dora", false], ["use_rslora", false], ["use_gating", false]] as const) {
        if (cfg[k] !== off) throw new AdapterConfigError(`${source}: AdaLoRA with ${k} = ${JSON.stringify(cfg[k])} is not implemented in peftjs`);
      }
      if (cfg.target_r > cfg.init_r) throw new AdapterConfigError(`${source}: target_r ${cfg.target_r} exceeds init_r ${cfg.init_r}`);
      if (cfg.total_step !== null && cfg.tinit >= cfg.total_step - cfg.tfinal) throw new AdapterConfigError(`${source}: tinit ${cfg.tinit} leaves no budgeting phase before total_step - tfinal = ${cfg.total_step - cfg.tfinal}`);
      return { ...cfg, r: cfg.init_r };
    },
  });
}

interface Layer {
  path: string;
  r: number;
  inFeatures: number;
  outFeatures: number;
  layout: "linear" | "conv1d";
}

export class AdaLoraAdapter implements Adapter<AdaLoraConfig> {
  readonly tensors = new Map<string, Tensor>();
  readonly layers = new Map<string, Layer>();
  private readonly ema = new Map<string, { ipt: Float64Array; unc: Float64Array }>();
  /** Current budget (kept singular values over all modules). */
  budget: number;
  private readonly initBudget: number;

  constructor(model: PretrainedModel, readonly config: AdaLoraConfig, readonly name: string) {
    let seed = 101;
    for (const l of targetedLinears(config, model.modules(), "AdaLoRA", `AdaLoRA adapter "${name}"`)) {
      const pattern = config.rank_pattern && Object.entries(config.rank_pattern).find(([k]) => k === `${l.path}.lora_E` || k.endsWith(`.${l.path}.lora_E`))?.[1];
      const r = pattern ? pattern.filter(Boolean).length : config.init_r;
      if (r === 0) continue; // every triplet of this module was pruned
      if (r > Math.min(l.inFeatures, l.outFeatures)) throw new AdapterConfigError(`AdaLoRA adapter "${name}": init_r ${r} is larger than layer ${l.path} allows (in ${l.inFeatures}, out ${l.outFeatures})`);
      this.layers.set(l.path, { path: l.path, r, inFeatures: l.inFeatures, outFeatures: l.outFeatures, layout: l.layout });
      const t = (shape: number[], std: number): Tensor => {
        const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
        if (std) fillNormal(data, std, seed++);
        return { dtype: "float32", shape, data };
      };
      this.tensors.set(this.key(l.path, "A"), t([r, l.inFeatures], 0.02));
      this.tensors.set(this.key(l.path, "B"), t([l.outFeatures, r], 0.02));
      this.tensors.set(this.key(l.path, "E"), t([r, 1], 0));
    }
    // PEFT sets fan_in_fan_out from the wrapped layer type (adalora/model.py _create_new_module: Conv1D -> True) and saves it.
    const layouts = new Set([...this.layers.values()].map((l) => l.layout));
    if (layouts.size === 1) config.fan_in_fan_out = layouts.has("conv1d");
    this.initBudget = this.budget = [...this.layers.values()].reduce((a, l) => a + l.r, 0);
  }

  /**
   * PEFT's keys below base_model.model. (adalora/layer.py): `lora_A` [r, in], `lora_B` [out, r],
   * `lora_E` [r, 1], without `.weight` (bare nn.Parameters), so the default state-dict rule applies.
   */
  private key(path: string, which: "A" | "B" | "E"): string {
    return `${path}.lora_${which}`;
  }

  private scaling(layer: Layer): number {
    return (this.config.lora_alpha > 0 ? this.config.lora_alpha : layer.r) / (layer.r + 1e-5);
  }

  hooks(ctx: HookContext) {
    return {
      linear: (h: LinearHook) => {
        const layer = this.layers.get(h.path);
        if (!layer) return undefined;
        const [A, B, E] = (["A", "B", "E"] as const).map((w) => ctx.bind(this.key(h.path, w))) as [Value, Value, Value];
        let delta = mul(linear(linear(dropout(h.x, this.config.lora_dropout, ctx.training), mul(A, E)), B), this.scaling(layer));
        if (ctx.rowGate) delta = mul(delta, ctx.rowGate(delta));
        // Orthogonality penalty: the mean over all matrices of ||A A^T - I||_F and ||B^T B - I||_F.
        if (ctx.training && this.config.orth_reg_weight > 0) {
          const eye = ctx.graph.constant({ dtype: "float32", shape: [layer.r, layer.r], data: Float32Array.from({ length: layer.r * layer.r }, (_, i) => (i % (layer.r + 1) === 0 ? 1 : 0)) });
          const fro = (m: Value) => sqrt(reduceSum(mul(sub(m, eye), sub(m, eye)), [0, 1], false));
          const term = add(fro(matmul(A, transpose(A, [1, 0]))), fro(matmul(transpose(B, [1, 0]), B)));
          ctx.addLoss(mul(term, this.config.orth_reg_weight / (2 * this.layers.size)));
        }
        return add(h.base(h.x), delta);
      },
    };
  }

  /** Importance-driven budget allocation after a training step (the paper's Algorithm 1). */
  afterStep(step: number, grads: ReadonlyMap<string, Tensor>): void {
    const { total_step: total, tinit, tfinal, deltaT, beta1, beta2, target_r } = this.config;
    if (total === null) throw new AdapterConfigError(`AdaLoRA adapter "${this.name}": set total_step to use rank allocation`);
    if (step < total - tfinal) {
      for (const [key, t] of this.tensors) {
        if (!/\.lora_[ABE]$/.test(key)) continue;
        const g = grads.get(key);
        if (!g) throw new AdapterConfigError(`AdaLoRA: no gradient for "${key}" (pass the step's gradients)`);
        let s = this.ema.get(key);
        if (!s) this.ema.set(key, (s = { ipt: new Float64Array(t.data.length), unc: new Float64Array(t.data.length) }));
        const w = t.data as Float32Array;
        const gd = g.data as Float32Array;
        for (let i = 0; i < w.length; i++) {
          const ipt = Math.abs(w[i]! * gd[i]!);
          s.ipt[i] = beta1 * s.ipt[i]! + (1 - beta1) * ipt;
          s.unc[i] = beta2 * s.unc[i]! + (1 - beta2) * Math.abs(ipt - s.ipt[i]!);
        }
      }
    }
    const targetBudget = target_r * this.layers.size;
    let mask = false;
    if (step <= tinit) this.budget = this.initBudget;
    else if (step > total - tfinal) {
      this.budget = targetBudget;
      mask = true;
    } else {
      const c = 1 - (step - tinit) / (total - tfinal - tinit);
      this.budget = Math.floor((this.initBudget - targetBudget) * c ** 3 + targetBudget);
      mask = step % deltaT === 0;
    }
    if (mask) this.maskToBudget();
  }

  /** The importance averages (float64, as kept), so a resumed run allocates ranks as the uninterrupted one. */
  trainingState(): Map<string, Tensor> {
    const out = new Map<string, Tensor>();
    for (const [key, s] of this.ema) {
      const shape = this.tensors.get(key)!.shape;
      out.set(`${key}.ipt`, { dtype: "float64", shape, data: s.ipt });
      out.set(`${key}.unc`, { dtype: "float64", shape, data: s.unc });
    }
    return out;
  }

  loadTrainingState(state: ReadonlyMap<string, Tensor>, source: string): void {
    this.ema.clear();
    for (const [name, t] of state) {
      const m = /^(.*)\.(ipt|unc)$/.exec(name);
      const own = m && this.tensors.get(m[1]!);
      if (!m || !own || t.dtype !== "float64" || t.data.length !== own.data.length) throw new AdapterConfigError(`${source}: AdaLoRA state "${name}" does not fit adapter "${this.name}"`);
      let s = this.ema.get(m[1]!);
      if (!s) this.ema.set(m[1]!, (s = { ipt: new Float64Array(own.data.length), unc: new Float64Array(own.data.length) }));
      s[m[2] as "ipt" | "unc"].set(t.data as Float64Array);
    }
  }

  /** Zero the singular values whose triplets score lowest, keeping `budget` of them. */
  private maskToBudget(): void {
    const score = (key: string, i: number) => this.ema.get(key)!.ipt[i]! * this.ema.get(key)!.unc[i]!;
    const triplets: { path: string; k: number; s: number }[] = [];
    for (const l of this.layers.values()) {
      const [A, B, E] = [this.key(l.path, "A"), this.key(l.path, "B"), this.key(l.path, "E")];
      if (!this.ema.has(A)) return; // no statistics yet
      for (let k = 0; k < l.r; k++) {
        let a = 0;
        for (let i = 0; i < l.inFeatures; i++) a += score(A, k * l.inFeatures + i);
        let b = 0;
        for (let o = 0; o < l.outFeatures; o++) b += score(B, o * l.r + k);
        triplets.push({ path: l.path, k, s: score(E, k) + a / l.inFeatures + b / l.outFeatures });
      }
    }
    const cut = this.initBudget - this.budget;
    if (cut <= 0) return;
    const threshold = [...triplets].sort((x, y) => x.s - y.s)[cut - 1]!.s;
    const pattern: Record<string, boolean[]> = {};
    for (const l of this.layers.values()) pattern[`${l.path}.lora_E`] = new Array<boolean>(l.r).fill(true);
    for (const t of triplets) {
      if (t.s <= threshold) {
        (this.tensors.get(this.key(t.path, "E"))!.data as Float32Array)[t.k] = 0;
        pattern[`${t.path}.lora_E`]![t.k] = false;
      }
    }
    this.config.rank_pattern = pattern;
  }

  /** With a rank pattern, only the kept singular triplets are saved (PEFT's resize_state_dict_by_rank_pattern). */
  savedTensor(peftKey: string): Tensor | undefined {
    const m = /^base_model\.model\.(.*)\.lora_([ABE])$/.exec(peftKey);
    const l = m && this.layers.get(m[1]!);
    if (!l) return undefined;
    const keep = this.config.rank_pattern?.[`${l.path}.lora_E`];
    const rows = keep ? keep.flatMap((k, i) => (k ? [i] : [])) : [...Array(l.r).keys()];
    const n = rows.length;
    const T = (w: "A" | "B" | "E") => this.tensors.get(this.key(l.path, w))!.data as Float32Array;
    switch (m[2]) {
      case "A":
        return { dtype: "float32", shape: [n, l.inFeatures], data: Float32Array.from(rows.flatMap((k) => Array.from(T("A").subarray(k * l.inFeatures, (k + 1) * l.inFeatures)))) };
      case "B":
        return { dtype: "float32", shape: [l.outFeatures, n], data: Float32Array.from({ length: l.outFeatures * n }, (_, i) => T("B")[Math.floor(i / n) * l.r + rows[i % n]!]!) };
      default: {
        // A loader sets the rank to the kept count (PEFT: ranknum = r), which changes the scaling
        // alpha / r; E absorbs the difference so the reloaded adapter computes the same update.
        const rescale = (n + 1e-5) / (l.r + 1e-5);
        return { dtype: "float32", shape: [n, 1], data: Float32Array.from(rows, (k) => T("E")[k]! * rescale) };
      }
    }
  }

  mergedWeights(weight: (name: string) => Tensor): Map<string, Tensor> {
    const out = new Map<string, Tensor>();
    for (const l of this.layers.values()) {
      const W = weight(`${l.path}.weight`);
      const A = this.tensors.get(this.key(l.path, "A"))!.data as Float32Array;
      const B = this.tensors.get(this.key(l.path, "B"))!.data as Float32Array;
      const E = this.tensors.get(this.key(l.path, "E"))!.data as Float32Array;
      const merged = Float32Array.from(W.data as Float32Array);
      const s = this.scaling(l);
      for (let o = 0; o < l.outFeatures; o++) {
        for (let i = 0; i < l.inFeatures; i++) {
          let d = 0;
          for (let k = 0; k < l.r; k++) d += B[o * l.r + k]! * E[k]! * A[k * l.inFeatures + i]!;
          merged[l.layout === "linear" ? o * l.inFeatures + i : i * l.outFeatures + o]! += s * d;
        }
      }
      out.set(`${l.path}.weight`, { dtype: "float32", shape: W.shape, data: merged });
    }
    return out;
  }
}

/** AdaLoRA's registry row, built on LoRA's (its shared fields and the inert ones). */
export function adaloraTuner(lora: TunerDef<LoraFields>): TunerDef<AdaLoraConfig> {
  const config = adaloraConfig(lora);
  return {
    peftType: "ADALORA",
    inertFields: lora.inertFields,
    ...config,
    create: (model, c, name) => new AdaLoraAdapter(model, config.parseConfig({ ...c }, "AdaLoRA config", model), name),
  };
}
