// The bottleneck adapter's config: AdapterHub's BnConfig fields with AdapterHub's defaults
// (adapters v1.1, src/adapters/configuration/adapter_config.py BnConfig, SeqBnConfig,
// DoubleSeqBnConfig, ParBnConfig), the options peftjs does not compute refused by name, and two
// peftjs extensions under their own names (train_layer_norms, use_gating).
import { AdapterConfigError, field, isBool, isNum, isStr, type BaseConfig, type InertField } from "../tuner.js";

/** Fields every preset sets, as AdapterHub's config classes set them (BnConfig's defaults for the rest). */
interface Preset {
  mh_adapter: boolean;
  output_adapter: boolean;
  original_ln_before: boolean;
  is_parallel: boolean;
  non_linearity: string;
  reduction_factor: number;
  scaling: number;
  init_weights: InitWeights;
}

/**
 * AdapterHub's config classes by their registry names (adapter_config.py ADAPTER_CONFIG_MAP):
 * seq_bn = pfeiffer (Pfeiffer et al. 2020), double_seq_bn = houlsby (Houlsby et al. 2019),
 * par_bn = parallel (He et al. 2022). init_weights is BnConfig's "bert" for the first two and
 * ParBnConfig's "mam_adapter".
 */
export const BOTTLENECK_PRESETS = {
  seq_bn: { mh_adapter: false, output_adapter: true, original_ln_before: true, is_parallel: false, non_linearity: "relu", reduction_factor: 16, scaling: 1, init_weights: "bert" },
  double_seq_bn: { mh_adapter: true, output_adapter: true, original_ln_before: false, is_parallel: false, non_linearity: "swish", reduction_factor: 16, scaling: 1, init_weights: "bert" },
  par_bn: { mh_adapter: false, output_adapter: true, original_ln_before: false, is_parallel: true, non_linearity: "relu", reduction_factor: 2, scaling: 4, init_weights: "mam_adapter" },
} as const satisfies Record<string, Preset>;

export type BottleneckVariant = keyof typeof BOTTLENECK_PRESETS;
/** AdapterHub's other names for the same classes. */
export const VARIANT_ALIASES: Readonly<Record<string, BottleneckVariant>> = { pfeiffer: "seq_bn", houlsby: "double_seq_bn", parallel: "par_bn", scaled_parallel: "par_bn" };

export type InitWeights = "bert" | "houlsby" | "mam_adapter";

/**
 * Activations the adapter computes, by AdapterHub's names (modeling.py Activation_Function_Class:
 * "leakyrelu" is torch's leaky_relu, the others transformers' ACT2FN, lower-cased).
 */
export const BOTTLENECK_ACTIVATIONS = ["relu", "gelu", "gelu_new", "gelu_fast", "gelu_pytorch_tanh", "silu", "swish", "tanh", "sigmoid", "leakyrelu", "leaky_relu", "linear"] as const;

export interface BottleneckConfig extends BaseConfig {
  peft_type: "BOTTLENECK";
  /** AdapterHub config class the other fields default from (seq_bn, double_seq_bn, par_bn). */
  variant: BottleneckVariant;
  /** Adapter after the attention sublayer. */
  mh_adapter: boolean;
  /** Adapter after the feed-forward sublayer. */
  output_adapter: boolean;
  /** Bottleneck size = floor(hidden / reduction_factor); a map gives it per layer ("default" for the others). */
  reduction_factor: number | Readonly<Record<string, number>>;
  non_linearity: string;
  /** Add the residual (and apply the model's post-LN) before the adapter: the adapter reads LN(sublayer + residual). */
  original_ln_before: boolean;
  /** Add the residual and apply the model's post-LN after the adapter (false: the adapter's output is the block's output). */
  original_ln_after: boolean;
  /** The adapter's own residual: the sublayer output (true), the sum before the model's LN ("post_add"), or the adapter's input (false). */
  residual_before_ln: boolean | "post_add";
  /** Add the adapter's residual before its ln_after LayerNorm instead of after. */
  adapter_residual_before_ln: boolean;
  /** A trained LayerNorm on the adapter's input. */
  ln_before: boolean;
  /** A trained LayerNorm on the adapter's output. */
  ln_after: boolean;
  /** Parallel adapter: reads the sublayer's input, its output added to the sublayer's. */
  is_parallel: boolean;
  scaling: number;
  /** "bert": N(0, 0.02), zero biases; "houlsby": truncated N(0, 1e-2) in ±2e-2; "mam_adapter": Kaiming-uniform down, zero up (exact identity). */
  init_weights: InitWeights;
  /** Layers without adapters. */
  leave_out: number[];
  /** peftjs extension (not in AdapterHub): also train copies of the model's LayerNorms, as in Houlsby et al. */
  train_layer_norms: boolean;
  /** peftjs extension (UniPELT-style, per token): the adapter output times sigmoid(W_g x). AdapterHub's gate averages over the sequence; its files with use_gating are refused. */
  use_gating: boolean;
}

/** The config fields AdapterHub's BnConfig writes, in its order, besides those above; accepted only at values that change nothing. */
export const BOTTLENECK_INERT: Readonly<Record<string, InertField>> = {
  architecture: { test: (v) => v === "bottleneck" || v === null, means: 'AdapterHub\'s "bottleneck" architecture' },
  phm_layer: { test: (v) => v === false, means: "phm_layer (Compacter's PHM layers) is not implemented; only false" },
  inv_adapter: { test: (v) => v === null, means: "invertible adapters (seq_bn_inv, double_seq_bn_inv) are not implemented; only null" },
  inv_adapter_reduction_factor: { test: (v) => v === null, means: "invertible adapters are not implemented; only null" },
  cross_adapter: { test: (v) => v === false, means: "cross-attention adapters (encoder-decoder models) are not implemented; only false" },
  dropout: { test: (v) => v === 0, means: "adapter dropout is not implemented; only 0.0" },
  stochastic_depth: { test: (v) => v === 0 || v === null, means: "stochastic depth (AdapterPlus) is not implemented; only 0.0" },
  // Read only when phm_layer is true (modeling.py PHMLayer), which is refused above.
  ...Object.fromEntries(["phm_dim", "factorized_phm_W", "shared_W_phm", "shared_phm_rule", "factorized_phm_rule", "phm_c_init", "phm_init_range", "learn_phm", "hypercomplex_nonlinearity", "phm_rank", "phm_bias"].map((k) => [k, { test: () => true, means: "used only with phm_layer" } satisfies InertField])),
};

/** BnConfig fields with the defaults AdapterHub's to_dict() writes for them (for the file we save). */
export const BOTTLENECK_INERT_DEFAULTS: Readonly<Record<string, unknown>> = {
  architecture: "bottleneck", cross_adapter: false, dropout: 0.0, factorized_phm_W: true, factorized_phm_rule: false, hypercomplex_nonlinearity: "glorot-uniform",
  inv_adapter: null, inv_adapter_reduction_factor: null, learn_phm: true, phm_bias: true, phm_c_init: "normal", phm_dim: 4, phm_init_range: 0.0001, phm_layer: false,
  phm_rank: 1, shared_W_phm: false, shared_phm_rule: true, stochastic_depth: 0.0,
};

/** The bottleneck size at a layer (AdapterHub: int(hidden_size // reduction_factor), at least 1; bottleneck.py BottleneckLayer.add_adapter, modeling.py Adapter). */
export function bottleneckSize(config: Pick<BottleneckConfig, "reduction_factor">, layer: number, hidden: number, source = "bottleneck config"): number {
  let rf = config.reduction_factor;
  if (typeof rf !== "number") {
    const at = rf[String(layer)] ?? rf.default;
    if (at === undefined) throw new AdapterConfigError(`${source}: reduction_factor has no entry for layer ${layer} and no "default"`);
    rf = at;
  }
  return Math.max(1, Math.floor(hidden / rf));
}

const isReduction = (v: unknown) => isNum(1e-6)(v) || (typeof v === "object" && v !== null && !Array.isArray(v) && Object.entries(v).every(([k, x]) => (k === "default" || /^\d+$/.test(k)) && isNum(1e-6)(x)));

export function parseBottleneckConfig(json: Readonly<Record<string, unknown>>, source: string): BottleneckConfig {
  // AdapterHub nests the fields under "config"; peftjs files have them there too.
  const c = (typeof json.config === "object" && json.config !== null ? { ...json, ...(json.config as object) } : json) as Record<string, unknown>;
  for (const [k, inert] of Object.entries(BOTTLENECK_INERT)) {
    if (c[k] !== undefined && !inert.test(c[k])) throw new AdapterConfigError(`${source}: bottleneck config field "${k}" = ${JSON.stringify(c[k])} changes what the adapter computes, and peftjs does not implement it (${inert.means})`);
  }
  const named = typeof c.variant === "string" ? (VARIANT_ALIASES[c.variant] ?? c.variant) : c.variant;
  const variant = field({ variant: named }, "variant", (c.is_parallel === true ? "par_bn" : c.mh_adapter === true && c.output_adapter !== false ? "double_seq_bn" : "seq_bn") as BottleneckVariant, (v) => typeof v === "string" && v in BOTTLENECK_PRESETS, `one of ${[...Object.keys(BOTTLENECK_PRESETS), ...Object.keys(VARIANT_ALIASES)].join(", ")}`, source);
  const p: Preset = BOTTLENECK_PRESETS[variant];
  if (typeof c.scaling === "string") throw new AdapterConfigError(`${source}: bottleneck config field "scaling" = ${JSON.stringify(c.scaling)} (a learned scale) is not implemented; give a number`);
  const cfg: BottleneckConfig = {
    peft_type: "BOTTLENECK",
    variant,
    mh_adapter: field(c, "mh_adapter", p.mh_adapter, isBool, "a boolean", source),
    output_adapter: field(c, "output_adapter", p.output_adapter, isBool, "a boolean", source),
    reduction_factor: field<BottleneckConfig["reduction_factor"]>(c, "reduction_factor", p.reduction_factor, isReduction, 'a positive number or a map of layer index (or "default") to one', source),
    non_linearity: field(c, "non_linearity", p.non_linearity, (v) => isStr(v) && (BOTTLENECK_ACTIVATIONS as readonly string[]).includes(v.toLowerCase()), `one of ${BOTTLENECK_ACTIVATIONS.join(", ")}`, source).toLowerCase(),
    original_ln_before: field(c, "original_ln_before", p.original_ln_before, isBool, "a boolean", source),
    original_ln_after: field(c, "original_ln_after", true, isBool, "a boolean", source),
    residual_before_ln: field<boolean | "post_add">(c, "residual_before_ln", true, (v) => isBool(v) || v === "post_add", 'true, false or "post_add"', source),
    adapter_residual_before_ln: field(c, "adapter_residual_before_ln", false, isBool, "a boolean", source),
    ln_before: field(c, "ln_before", false, isBool, "a boolean", source),
    ln_after: field(c, "ln_after", false, isBool, "a boolean", source),
    is_parallel: field(c, "is_parallel", p.is_parallel, isBool, "a boolean", source),
    scaling: field(c, "scaling", p.scaling, isNum(), "a number", source),
    init_weights: field(c, "init_weights", p.init_weights, (v) => v === "houlsby" || v === "bert" || v === "mam_adapter", '"bert", "houlsby" or "mam_adapter"', source),
    leave_out: field(c, "leave_out", [] as number[], (v) => Array.isArray(v) && v.every(Number.isInteger), "a list of layer indices", source),
    train_layer_norms: field(c, "train_layer_norms", false, isBool, "a boolean", source),
    use_gating: field(c, "use_gating", false, isBool, "a boolean", source),
    modules_to_save: field<string[] | null>(c, "modules_to_save", null, (v) => Array.isArray(v) && v.every((x) => typeof x === "string"), "a list of module names", source),
    base_model_name_or_path: (c.base_model_name_or_path as string | undefined) ?? null,
    task_type: (c.task_type as string | undefined) ?? null,
    inference_mode: false,
  };
  if (!cfg.mh_adapter && !cfg.output_adapter) throw new AdapterConfigError(`${source}: neither mh_adapter nor output_adapter is set; the adapter would do nothing`);
  // AdapterHub's Adapter.pre_forward sets the "post_add" residual only inside `if original_ln_before`.
  if (cfg.residual_before_ln === "post_add" && !cfg.original_ln_before && !cfg.is_parallel) throw new AdapterConfigError(`${source}: residual_before_ln "post_add" needs original_ln_before true (AdapterHub has no residual to take otherwise)`);
  return cfg;
}

/** The config under AdapterHub's field names, floats marked for writing as floats (see adapterhub-format). */
export function bottleneckFields(c: BottleneckConfig): Record<string, unknown> {
  return {
    mh_adapter: c.mh_adapter, output_adapter: c.output_adapter, reduction_factor: c.reduction_factor, non_linearity: c.non_linearity,
    original_ln_before: c.original_ln_before, original_ln_after: c.original_ln_after, residual_before_ln: c.residual_before_ln,
    adapter_residual_before_ln: c.adapter_residual_before_ln, ln_before: c.ln_before, ln_after: c.ln_after,
    init_weights: c.init_weights, is_parallel: c.is_parallel, scaling: c.scaling, use_gating: c.use_gating, leave_out: c.leave_out,
  };
}
