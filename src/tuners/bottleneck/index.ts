// Bottleneck adapters: down-projection -> nonlinearity -> up-projection, added back to the
// sublayer output. Houlsby et al. 2019 ("Parameter-Efficient Transfer Learning for NLP"): after
// attention and after the FFN (AdapterHub's `double_seq_bn`). Pfeiffer et al. 2020 (AdapterFusion):
// after the FFN only, fed with the layer-normed output (`seq_bn`). He et al. 2022 ("Towards a
// Unified View of Parameter-Efficient Transfer Learning"): parallel to the sublayer, fed with its
// input and scaled (`par_bn`). Field names, defaults and weight names follow AdapterHub
// (`<sublayer>.adapters.<name>.adapter_down.0.weight` ...); for pre-LN decoders (no layer norm
// after the residual add) the sequential adapter reads the sublayer output.
import { activation } from "../../ir/composites/activations.js";
import { linear } from "../../ir/composites/linear.js";
import { type Value } from "../../ir/graph.js";
import { add, mul, sigmoid } from "../../ir/ops/index.js";
import { fillNormal, seededRandom } from "../../ir/random.js";
import { type Tensor } from "../../ir/tensor.js";
import { type LinearHook, type SublayerHook } from "../../models/hooks.js";
import { type PretrainedModel } from "../../models/pretrained.js";
import { ModulesToSave, paramsOfModules } from "../modules-to-save.js";
import { AdapterConfigError, field, isBool, isNum, isStr, isStrList, type Adapter, type BaseConfig, type HookContext, type TunerDef } from "../tuner.js";

export const BOTTLENECK_PRESETS = {
  /** Pfeiffer: after the FFN, on the layer-normed output. */
  seq_bn: { mh_adapter: false, output_adapter: true, original_ln_before: true, is_parallel: false, non_linearity: "relu", reduction_factor: 16, scaling: 1, init_weights: "houlsby" },
  /** Houlsby: after attention and after the FFN. */
  double_seq_bn: { mh_adapter: true, output_adapter: true, original_ln_before: false, is_parallel: false, non_linearity: "swish", reduction_factor: 16, scaling: 1, init_weights: "houlsby" },
  /** Parallel (He et al.): next to the FFN, scaled. */
  par_bn: { mh_adapter: false, output_adapter: true, original_ln_before: false, is_parallel: true, non_linearity: "relu", reduction_factor: 2, scaling: 4, init_weights: "mam_adapter" },
} as const;

export interface BottleneckConfig extends BaseConfig {
  peft_type: "BOTTLENECK";
  /** AdapterHub architecture preset the other fields default from. */
  variant: keyof typeof BOTTLENECK_PRESETS;
  /** Adapter after the attention sublayer. */
  mh_adapter: boolean;
  /** Adapter after the feed-forward sublayer. */
  output_adapter: boolean;
  /** Bottleneck size = hidden / reduction_factor. */
  reduction_factor: number;
  non_linearity: string;
  /** Feed the adapter with LayerNorm(sublayer + residual) (Pfeiffer) instead of the sublayer output. */
  original_ln_before: boolean;
  /** Parallel adapter: reads the sublayer's input. */
  is_parallel: boolean;
  scaling: number;
  /** "houlsby": truncated normal(0, 1e-2) (the paper's near-identity init); "bert": normal(0, 0.02); "mam_adapter": zero up-projection (exact identity). */
  init_weights: "houlsby" | "bert" | "mam_adapter";
  /** Layers without adapters. */
  leave_out: number[];
  /** Train the layers' LayerNorm parameters too (as in Houlsby et al.). */
  train_layer_norms: boolean;
  /** UniPELT-style learned gate on the adapter output: sigmoid(W_g x). */
  use_gating: boolean;
}

export function parseBottleneckConfig(json: Readonly<Record<string, unknown>>, source: string): BottleneckConfig {
  // AdapterHub nests the fields under "config" and names the preset "architecture"/"variant".
  const c = (typeof json.config === "object" && json.config !== null ? { ...json, ...(json.config as object) } : json) as Record<string, unknown>;
  const variant = field(c, "variant", "double_seq_bn" as keyof typeof BOTTLENECK_PRESETS, (v) => typeof v === "string" && v in BOTTLENECK_PRESETS, `one of ${Object.keys(BOTTLENECK_PRESETS).join(", ")}`, source);
  const p = BOTTLENECK_PRESETS[variant];
  const cfg: BottleneckConfig = {
    peft_type: "BOTTLENECK",
    variant,
    mh_adapter: field(c, "mh_adapter", p.mh_adapter as boolean, isBool, "a boolean", source),
    output_adapter: field(c, "output_adapter", p.output_adapter as boolean, isBool, "a boolean", source),
    reduction_factor: field(c, "reduction_factor", p.reduction_factor as number, isNum(1e-6), "a positive number", source),
    non_linearity: field(c, "non_linearity", p.non_linearity as string, isStr, "an activation name", source),
    original_ln_before: field(c, "original_ln_before", p.original_ln_before as boolean, isBool, "a boolean", source),
    is_parallel: field(c, "is_parallel", p.is_parallel as boolean, isBool, "a boolean", source),
    scaling: field(c, "scaling", p.scaling as number, isNum(), "a number", source),
    init_weights: field(c, "init_weights", p.init_weights as BottleneckConfig["init_weights"], (v) => v === "houlsby" || v === "bert" || v === "mam_adapter", '"houlsby", "bert" or "mam_adapter"', source),
    leave_out: field(c, "leave_out", [] as number[], (v) => Array.isArray(v) && v.every(Number.isInteger), "a list of layer indices", source),
    train_layer_norms: field(c, "train_layer_norms", variant === "double_seq_bn", isBool, "a boolean", source),
    use_gating: field(c, "use_gating", false, isBool, "a boolean", source),
    modules_to_save: field<string[] | null>(c, "modules_to_save", null, isStrList, "a list of module names", source),
    base_model_name_or_path: (c.base_model_name_or_path as string | undefined) ?? null,
    task_type: (c.task_type as string | undefined) ?? null,
    inference_mode: false,
  };
  if (!cfg.mh_adapter && !cfg.output_adapter) throw new AdapterConfigError(`${source}: neither mh_adapter nor output_adapter is set; the adapter would do nothing`);
  return cfg;
}

interface Site {
  path: string;
  hidden: number;
  bottleneck: number;
}

export class BottleneckAdapter implements Adapter<BottleneckConfig> {
  readonly tensors = new Map<string, Tensor>();
  readonly sites = new Map<string, Site>();
  private readonly extra: ModulesToSave;

  constructor(model: PretrainedModel, readonly config: BottleneckConfig, readonly name: string) {
    const rand = seededRandom(5);
    for (const s of model.modules().sublayers) {
      if (config.leave_out.includes(s.layer)) continue;
      if (s.kind === "attention" ? !config.mh_adapter : !config.output_adapter) continue;
      const bottleneck = Math.max(1, Math.floor(s.hidden / config.reduction_factor));
      this.sites.set(s.path, { path: s.path, hidden: s.hidden, bottleneck });
      const t = (shape: number[], init: "down" | "up" | "bias"): Tensor => {
        const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
        if (init !== "bias") {
          if (config.init_weights === "bert") fillNormal(data, 0.02, Math.floor(rand() * 1e9));
          else if (config.init_weights === "houlsby") for (let i = 0; i < data.length; i++) data[i] = truncatedNormal(rand, 1e-2);
          else if (init === "down") data.forEach((_, i) => (data[i] = (rand() * 2 - 1) / Math.sqrt(shape[1]!)));
        }
        return { dtype: "float32", shape, data };
      };
      this.tensors.set(this.key(s.path, "adapter_down.0.weight"), t([bottleneck, s.hidden], "down"));
      this.tensors.set(this.key(s.path, "adapter_down.0.bias"), t([bottleneck], "bias"));
      this.tensors.set(this.key(s.path, "adapter_up.weight"), t([s.hidden, bottleneck], "up"));
      this.tensors.set(this.key(s.path, "adapter_up.bias"), t([s.hidden], "bias"));
      if (config.use_gating) {
        this.tensors.set(this.key(s.path, "gate.weight"), t([1, s.hidden], "up"));
        this.tensors.set(this.key(s.path, "gate.bias"), t([1], "bias"));
      }
    }
    if (this.sites.size === 0) throw new AdapterConfigError(`bottleneck adapter "${name}": no sublayer left to adapt (leave_out ${JSON.stringify(config.leave_out)})`);
    const norms = config.train_layer_norms ? paramsOfModules(model, ["LayerNorm", "layer_norm", "ln_1", "ln_2", "ln_f", "sa_layer_norm", "output_layer_norm", "input_layernorm", "post_attention_layernorm", "norm"]) : [];
    const heads = new Set(paramsOfModules(model, config.modules_to_save ?? []));
    this.extra = new ModulesToSave(model, [], norms.filter((n) => !heads.has(n)));
    for (const [k, t] of this.extra.tensors) this.tensors.set(k, t);
  }

  private key(path: string, leaf: string): string {
    return `${path}.adapter.${leaf}`;
  }

  get trainsBaseParams(): readonly string[] {
    return [];
  }

  hooks(ctx: HookContext) {
    const { config } = this;
    const block = (path: string, x: Value): Value => {
      const p = (leaf: string) => ctx.bind(this.key(path, leaf));
      let out = linear(activation(config.non_linearity, linear(x, p("adapter_down.0.weight"), p("adapter_down.0.bias"))), p("adapter_up.weight"), p("adapter_up.bias"));
      if (config.scaling !== 1) out = mul(out, config.scaling);
      if (config.use_gating) out = mul(out, sigmoid(linear(x, p("gate.weight"), p("gate.bias"))));
      return ctx.rowGate ? mul(out, ctx.rowGate(out)) : out;
    };
    return {
      parameter: (n: string) => this.extra.parameter(n, ctx),
      linear: (h: LinearHook) => this.extra.linear(h, ctx),
      sublayerOutput: (h: SublayerHook) => {
        if (!this.sites.has(h.path)) return undefined;
        if (config.is_parallel) return add(h.y, block(h.path, h.residual));
        const input = config.original_ln_before && h.norm ? h.norm(add(h.y, h.residual)) : h.y;
        return add(h.y, block(h.path, input));
      },
    };
  }

  /** AdapterHub's keys carry the adapter's name: ours when saving, the file's when loading. */
  private fileName: string | undefined;

  stateKeys(): Map<string, string> {
    const keys = new Map<string, string>();
    const inFile = `.adapters.${this.fileName ?? this.name}.`;
    for (const k of this.tensors.keys()) if (k.includes(".adapter.")) keys.set(k.replace(".adapter.", inFile), k);
    for (const [k, v] of this.extra.loadKeys()) keys.set(k, v);
    return keys;
  }

  beforeLoad(file: ReadonlyMap<string, Tensor>): void {
    this.fileName = [...file.keys()].map((k) => /\.adapters\.([^.]+)\./.exec(k)?.[1]).find(Boolean);
  }
}

/** N(0, std) truncated to [-2 std, 2 std] (rejection sampling), like torch's trunc_normal_. */
function truncatedNormal(rand: () => number, std: number): number {
  for (;;) {
    const z = Math.sqrt(-2 * Math.log(Math.max(rand(), 1e-12))) * Math.cos(2 * Math.PI * rand());
    if (Math.abs(z) <= 2) return z * std;
  }
}

export const BOTTLENECK: TunerDef<BottleneckConfig> = {
  peftType: "BOTTLENECK",
  parseConfig: (json, source) => parseBottleneckConfig(json, source),
  // AdapterHub's layout: the method's fields under "config", with our peft_type beside them.
  toJSON: (c) => ({
    peft_type: "BOTTLENECK",
    config: {
      architecture: "bottleneck", variant: c.variant, mh_adapter: c.mh_adapter, output_adapter: c.output_adapter, reduction_factor: c.reduction_factor, non_linearity: c.non_linearity,
      original_ln_before: c.original_ln_before, original_ln_after: true, residual_before_ln: true, is_parallel: c.is_parallel, scaling: c.scaling, init_weights: c.init_weights,
      leave_out: c.leave_out, train_layer_norms: c.train_layer_norms, use_gating: c.use_gating,
    },
    task_type: c.task_type ?? null,
    base_model_name_or_path: c.base_model_name_or_path ?? null,
    modules_to_save: c.modules_to_save ?? null,
  }),
  create: (model, config, name) => new BottleneckAdapter(model, parseBottleneckConfig({ ...config }, "bottleneck config"), name),
};
