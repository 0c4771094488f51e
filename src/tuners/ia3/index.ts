// IA3 (Liu et al. 2022, "Few-Shot Parameter-Efficient Fine-Tuning is Better and Cheaper than
// In-Context Learning"): learned vectors rescale activations. For attention projections the
// output is scaled (l [out, 1]); for feed-forward layers the input (l [1, in]); all start at 1.
import { add, mul, reshape, sub } from "../../ir/ops/index.js";
import { type Tensor } from "../../ir/tensor.js";
import { type LinearHook } from "../../models/hooks.js";
import { type PretrainedModel } from "../../models/pretrained.js";
import { DEFAULT_IA3_TARGETS, isTargeted, targetedLinears, type TargetSpec } from "../targets.js";
import { AdapterConfigError, field, isBool, isStrList, isStrOrList, type Adapter, type BaseConfig, type HookContext, type TunerDef } from "../tuner.js";

export interface Ia3Config extends BaseConfig, TargetSpec {
  peft_type: "IA3";
  /** Which targets are feed-forward layers (their input is scaled instead of their output). */
  feedforward_modules: string | string[];
  fan_in_fan_out: boolean;
  init_ia3_weights: boolean;
}

export function parseIa3Config(json: Readonly<Record<string, unknown>>, source: string, modelType?: string): Ia3Config {
  const defaults = modelType ? DEFAULT_IA3_TARGETS[modelType] : undefined;
  const target = field<string | string[] | null>(json, "target_modules", null, isStrOrList, "a regex string or a list", source) ?? defaults?.target;
  const ff = field<string | string[] | null>(json, "feedforward_modules", null, isStrOrList, "a regex string or a list", source) ?? defaults?.feedforward ?? [];
  if (!target) throw new AdapterConfigError(`${source}: target_modules is required (no default for model type ${modelType})`);
  if (typeof target !== "string" && typeof ff !== "string" && !ff.every((f) => target.some((t) => f === t || f.endsWith(`.${t}`) || t.endsWith(`.${f}`) || t === f))) {
    throw new AdapterConfigError(`${source}: feedforward_modules ${JSON.stringify(ff)} must be a subset of target_modules ${JSON.stringify(target)}`);
  }
  return {
    peft_type: "IA3",
    target_modules: target,
    feedforward_modules: ff,
    exclude_modules: field(json, "exclude_modules", null, isStrOrList, "a regex string or a list", source),
    fan_in_fan_out: field(json, "fan_in_fan_out", false, isBool, "a boolean", source),
    init_ia3_weights: field(json, "init_ia3_weights", true, isBool, "a boolean", source),
    modules_to_save: field<string[] | null>(json, "modules_to_save", null, isStrList, "a list of module names", source),
    base_model_name_or_path: (json.base_model_name_or_path as string | undefined) ?? null,
    task_type: (json.task_type as string | undefined) ?? null,
    inference_mode: (json.inference_mode as boolean | undefined) ?? false,
  };
}

interface Ia3Layer {
  path: string;
  feedforward: boolean;
  layout: "linear" | "conv1d";
  inFeatures: number;
  outFeatures: number;
}

export class Ia3Adapter implements Adapter<Ia3Config> {
  readonly tensors = new Map<string, Tensor>();
  readonly layers = new Map<string, Ia3Layer>();

  constructor(model: PretrainedModel, readonly config: Ia3Config, readonly name: string) {
    for (const l of targetedLinears(config, model.modules(), "IA3", `IA3 adapter "${name}"`)) {
      const feedforward = isTargeted({ target_modules: config.feedforward_modules }, l.path);
      this.layers.set(l.path, { path: l.path, feedforward, layout: l.layout, inFeatures: l.inFeatures, outFeatures: l.outFeatures });
      const shape = feedforward ? [1, l.inFeatures] : [l.outFeatures, 1];
      const data = new Float32Array(shape[0]! * shape[1]!).fill(1);
      if (!config.init_ia3_weights) data.forEach((_, i) => (data[i] = 1 + 0.1 * Math.sin(i + 1)));
      this.tensors.set(this.key(l.path), { dtype: "float32", shape, data });
    }
    // As for LoRA, PEFT sets fan_in_fan_out from the wrapped layer type (ia3/model.py _create_new_module) and saves it.
    const layouts = new Set([...this.layers.values()].map((l) => l.layout));
    if (layouts.size === 1) config.fan_in_fan_out = layouts.has("conv1d");
  }

  /** PEFT's key below base_model.model. (ia3/layer.py: `ia3_l`), so the default state-dict rule applies. */
  private key(path: string): string {
    return `${path}.ia3_l`;
  }

  hooks(ctx: HookContext) {
    return {
      linear: (h: LinearHook) => {
        const layer = this.layers.get(h.path);
        if (!layer) return undefined;
        let l = reshape(ctx.bind(this.key(h.path)), [-1]);
        // Rows not using this adapter get a scale of exactly 1.
        if (ctx.rowGate) l = add(mul(sub(l, 1), ctx.rowGate(h.x)), 1);
        return layer.feedforward ? h.base(mul(h.x, l)) : mul(h.base(h.x), l);
      },
    };
  }

  /** Scaling folds into the weight: output scaling scales rows (and the bias), input scaling columns. */
  mergedWeights(weight: (name: string) => Tensor): Map<string, Tensor> {
    const out = new Map<string, Tensor>();
    for (const layer of this.layers.values()) {
      const l = this.tensors.get(this.key(layer.path))!.data as Float32Array;
      const W = weight(`${layer.path}.weight`);
      const merged = Float32Array.from(W.data as Float32Array);
      const { inFeatures: I, outFeatures: O } = layer;
      for (let o = 0; o < O; o++) {
        for (let i = 0; i < I; i++) {
          const at = layer.layout === "linear" ? o * I + i : i * O + o;
          merged[at]! *= layer.feedforward ? l[i]! : l[o]!;
        }
      }
      out.set(`${layer.path}.weight`, { dtype: "float32", shape: W.shape, data: merged });
      if (!layer.feedforward) {
        let bias: Tensor | undefined;
        try {
          bias = weight(`${layer.path}.bias`);
        } catch {
          bias = undefined;
        }
        if (bias) out.set(`${layer.path}.bias`, { dtype: "float32", shape: bias.shape, data: Float32Array.from(bias.data as Float32Array, (b, o) => b * l[o]!) });
      }
    }
    return out;
  }
}

export const IA3: TunerDef<Ia3Config> = {
  peftType: "IA3",
  parseConfig: (json, source, model) => parseIa3Config(json, source, model?.config.modelType),
  toJSON: (c) => ({
    peft_type: "IA3", task_type: c.task_type ?? null, base_model_name_or_path: c.base_model_name_or_path ?? null, inference_mode: c.inference_mode ?? false,
    target_modules: c.target_modules, exclude_modules: c.exclude_modules ?? null, feedforward_modules: c.feedforward_modules, fan_in_fan_out: c.fan_in_fan_out,
    modules_to_save: c.modules_to_save ?? null, init_ia3_weights: c.init_ia3_weights, revision: null,
  }),
  create: (model, config, name) => new Ia3Adapter(model, parseIa3Config({ ...config }, "IA3 config", model.config.modelType), name),
};
