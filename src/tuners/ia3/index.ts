// IA3 (Liu et al. 2022, "Few-Shot Parameter-Efficient Fine-Tuning is Better and Cheaper than
// In-Context Learning"): learned vectors rescale activations. For attention projections the
// output is scaled (l [out, 1]); for feed-forward layers the input (l [1, in]); all start at 1.
import { add, mul, reshape, sub } from "../../ir/ops/index.js";
import { type Tensor } from "../../ir/tensor.js";
import { type LinearHook } from "../../models/hooks.js";
import { type PretrainedModel } from "../../models/pretrained.js";
import { DEFAULT_IA3_TARGETS, isTargeted, targetedLinears, type TargetSpec } from "../targets.js";
import { boolean, declareConfig, modules, nullable, type ConfigFields, type DeclaredConfig } from "../config-schema.js";
import { AdapterConfigError, type Adapter, type HookContext, type TunerDef } from "../tuner.js";

/** IA3Config's fields (peft/tuners/ia3/config.py). */
const IA3_FIELDS = {
  target_modules: modules({
    default: ({ model }) => (model ? DEFAULT_IA3_TARGETS[model.config.modelType]?.target : undefined),
    defaultText: "the model type's attention and feed-forward projections (PEFT's TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING)",
    help: "modules whose activations are rescaled",
  }),
  exclude_modules: nullable(modules({ help: "modules left out of target_modules" })),
  feedforward_modules: modules({
    default: ({ model }) => (model ? DEFAULT_IA3_TARGETS[model.config.modelType]?.feedforward : undefined) ?? [],
    defaultText: "the model type's feed-forward projections (PEFT's TRANSFORMERS_MODELS_TO_IA3_FEEDFORWARD_MODULES_MAPPING)",
    help: "which targets are feed-forward layers (their input is scaled instead of their output); a subset of target_modules",
  }),
  fan_in_fan_out: boolean({ default: false, help: "the base weight is stored [in, out] (GPT-2 Conv1D); set from the wrapped layers" }),
  init_ia3_weights: boolean({ default: true, help: "start every scale at 1 (identity); false perturbs them (for tests)" }),
} satisfies ConfigFields;

export type Ia3Config = DeclaredConfig<"IA3", typeof IA3_FIELDS> & TargetSpec;

const IA3_CONFIG = declareConfig<"IA3", typeof IA3_FIELDS, Ia3Config>("IA3", IA3_FIELDS, {
  refine: (c, source) => {
    const { target_modules: target, feedforward_modules: ff } = c;
    if (typeof target !== "string" && typeof ff !== "string" && !ff.every((f) => target.some((t) => f === t || f.endsWith(`.${t}`) || t.endsWith(`.${f}`) || t === f))) {
      throw new AdapterConfigError(`${source}: feedforward_modules ${JSON.stringify(ff)} must be a subset of target_modules ${JSON.stringify(target)}`);
    }
  },
});

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
  ...IA3_CONFIG,
  create: (model, config, name) => new Ia3Adapter(model, IA3_CONFIG.parseConfig({ ...config }, "IA3 config", model), name),
};
