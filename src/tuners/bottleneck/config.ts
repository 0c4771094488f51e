// The bottleneck adapter's config: AdapterHub's BnConfig fields with AdapterHub's defaults
// (adapters v1.1, src/adapters/configuration/adapter_config.py BnConfig, SeqBnConfig,
// DoubleSeqBnConfig, ParBnConfig), the options peftjs does not compute refused by name, and two
// peftjs extensions under their own names (train_layer_norms, use_gating).
import { z } from "zod";
import { boolean, custom, declareConfig, number, oneOf, type ConfigFields, type DeclaredConfig, type DefaultContext, type FieldSpec } from "../config-schema.js";
import { AdapterConfigError, type InertField } from "../tuner.js";

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

/** The variant's value for a field (AdapterHub's config class defaults). */
const preset = <K extends keyof Preset>(key: K) => (ctx: DefaultContext): Preset[K] => BOTTLENECK_PRESETS[ctx.config.variant as BottleneckVariant][key];
const VARIANT_NAMES = [...Object.keys(BOTTLENECK_PRESETS), ...Object.keys(VARIANT_ALIASES)];
const isReductionFactor = z.union([z.number().min(1e-6), z.record(z.string().regex(/^(default|\d+)$/), z.number().min(1e-6))]);

/** BnConfig's fields (AdapterHub's names), the variant they default from, and peftjs's two extensions. */
export const BOTTLENECK_FIELDS = {
  variant: {
    schema: z.enum(VARIANT_NAMES as [string, ...string[]]),
    expected: `one of ${VARIANT_NAMES.join(", ")}`,
    default: ({ json }: DefaultContext): BottleneckVariant => (json.is_parallel === true ? "par_bn" : json.mh_adapter === true && json.output_adapter !== false ? "double_seq_bn" : "seq_bn"),
    defaultText: "par_bn if is_parallel, double_seq_bn if mh_adapter, else seq_bn",
    help: "AdapterHub config class the other fields default from: seq_bn (pfeiffer), double_seq_bn (houlsby), par_bn (parallel)",
    parse: (v: unknown, source: string): BottleneckVariant => {
      const named = typeof v === "string" ? (VARIANT_ALIASES[v] ?? v) : v;
      if (typeof named !== "string" || !(named in BOTTLENECK_PRESETS)) throw new AdapterConfigError(`${source}: field "variant" must be one of ${VARIANT_NAMES.join(", ")}, got ${JSON.stringify(v)}`);
      return named as BottleneckVariant;
    },
  } satisfies FieldSpec<BottleneckVariant>,
  mh_adapter: boolean({ default: preset("mh_adapter"), defaultText: "the variant's", help: "an adapter after the attention sublayer" }),
  output_adapter: boolean({ default: preset("output_adapter"), defaultText: "the variant's", help: "an adapter after the feed-forward sublayer" }),
  reduction_factor: custom<number | Readonly<Record<string, number>>>(isReductionFactor, 'a positive number or a map of layer index (or "default") to one', {
    default: preset("reduction_factor"),
    defaultText: "the variant's (16, par_bn 2)",
    help: 'bottleneck size = floor(hidden / reduction_factor); a map gives it per layer ("default" for the others)',
  }),
  non_linearity: {
    schema: z.string(),
    expected: `one of ${BOTTLENECK_ACTIVATIONS.join(", ")}`,
    help: "the bottleneck's activation (AdapterHub's names, any case)",
    default: preset("non_linearity"),
    defaultText: "the variant's (relu, double_seq_bn swish)",
    parse: (v: unknown, source: string): string => {
      if (typeof v !== "string" || !(BOTTLENECK_ACTIVATIONS as readonly string[]).includes(v.toLowerCase())) throw new AdapterConfigError(`${source}: field "non_linearity" must be one of ${BOTTLENECK_ACTIVATIONS.join(", ")}, got ${JSON.stringify(v)}`);
      return v.toLowerCase();
    },
  } satisfies FieldSpec<string>,
  original_ln_before: boolean({ default: preset("original_ln_before"), defaultText: "the variant's", help: "add the residual (and apply the model's post-LN) before the adapter: the adapter reads LN(sublayer + residual)" }),
  original_ln_after: boolean({ default: true, help: "add the residual and apply the model's post-LN after the adapter (false: the adapter's output is the block's output)" }),
  residual_before_ln: oneOf([true, false, "post_add"], { default: true, help: 'the adapter\'s own residual: the sublayer output (true), the sum before the model\'s LN ("post_add"), or the adapter\'s input (false)' }),
  adapter_residual_before_ln: boolean({ default: false, help: "add the adapter's residual before its ln_after LayerNorm instead of after" }),
  ln_before: boolean({ default: false, help: "a trained LayerNorm on the adapter's input" }),
  ln_after: boolean({ default: false, help: "a trained LayerNorm on the adapter's output" }),
  is_parallel: boolean({ default: preset("is_parallel"), defaultText: "the variant's", help: "parallel adapter: reads the sublayer's input, its output added to the sublayer's" }),
  scaling: {
    ...number({ default: preset("scaling"), defaultText: "the variant's (1, par_bn 4)", help: "the adapter's output is multiplied by this" }),
    parse: (v: unknown, source: string): number => {
      if (typeof v === "string") throw new AdapterConfigError(`${source}: bottleneck config field "scaling" = ${JSON.stringify(v)} (a learned scale) is not implemented; give a number`);
      if (typeof v !== "number" || !Number.isFinite(v)) throw new AdapterConfigError(`${source}: field "scaling" must be a number, got ${JSON.stringify(v)}`);
      return v;
    },
  } satisfies FieldSpec<number>,
  init_weights: oneOf(["bert", "houlsby", "mam_adapter"], { default: preset("init_weights"), defaultText: "the variant's (bert, par_bn mam_adapter)", help: '"bert": N(0, 0.02), zero biases; "houlsby": truncated N(0, 1e-2) in ±2e-2; "mam_adapter": Kaiming-uniform down, zero up (exact identity)' }),
  leave_out: custom<number[]>(z.array(z.int()), "a list of layer indices", { default: [], help: "layers without adapters" }),
  train_layer_norms: boolean({ default: false, help: "peftjs extension (not in AdapterHub): also train copies of the model's LayerNorms, as in Houlsby et al." }),
  use_gating: boolean({ default: false, help: "peftjs extension (UniPELT-style, per token): the adapter output times sigmoid(W_g x); AdapterHub's gate averages over the sequence, and its files with use_gating are refused" }),
} satisfies ConfigFields;

export type BottleneckConfig = DeclaredConfig<"BOTTLENECK", typeof BOTTLENECK_FIELDS>;

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

/** The bottleneck row's config functions: AdapterHub's nesting under "config" flattened, BnConfig fields peftjs does not compute refused by name, and AdapterHub's rules across fields. */
export const BOTTLENECK_CONFIG = declareConfig("BOTTLENECK", BOTTLENECK_FIELDS, {
  // AdapterHub nests the fields under "config"; peftjs files have them there too.
  prepare: (json, source) => {
    const c = (typeof json.config === "object" && json.config !== null ? { ...json, ...(json.config as object) } : json) as Record<string, unknown>;
    for (const [k, inert] of Object.entries(BOTTLENECK_INERT)) {
      if (c[k] !== undefined && !inert.test(c[k])) throw new AdapterConfigError(`${source}: bottleneck config field "${k}" = ${JSON.stringify(c[k])} changes what the adapter computes, and peftjs does not implement it (${inert.means})`);
    }
    return c;
  },
  refine: (cfg, source) => {
    if (!cfg.mh_adapter && !cfg.output_adapter) throw new AdapterConfigError(`${source}: neither mh_adapter nor output_adapter is set; the adapter would do nothing`);
    // AdapterHub's Adapter.pre_forward sets the "post_add" residual only inside `if original_ln_before`.
    if (cfg.residual_before_ln === "post_add" && !cfg.original_ln_before && !cfg.is_parallel) throw new AdapterConfigError(`${source}: residual_before_ln "post_add" needs original_ln_before true (AdapterHub has no residual to take otherwise)`);
    return { ...cfg, inference_mode: false };
  },
  // AdapterHub's layout: the method's fields under "config" (with BnConfig's other fields at their defaults), our peft_type beside them.
  layout: (own, c) => ({ peft_type: "BOTTLENECK", config: { ...BOTTLENECK_INERT_DEFAULTS, ...own }, task_type: c.task_type ?? null, base_model_name_or_path: c.base_model_name_or_path ?? null, modules_to_save: c.modules_to_save ?? null }),
});

export const parseBottleneckConfig = (json: Readonly<Record<string, unknown>>, source: string): BottleneckConfig => BOTTLENECK_CONFIG.parseConfig(json, source);

/** The config under AdapterHub's field names, floats marked for writing as floats (see adapterhub-format). */
export function bottleneckFields(c: BottleneckConfig): Record<string, unknown> {
  return {
    mh_adapter: c.mh_adapter, output_adapter: c.output_adapter, reduction_factor: c.reduction_factor, non_linearity: c.non_linearity,
    original_ln_before: c.original_ln_before, original_ln_after: c.original_ln_after, residual_before_ln: c.residual_before_ln,
    adapter_residual_before_ln: c.adapter_residual_before_ln, ln_before: c.ln_before, ln_after: c.ln_after,
    init_weights: c.init_weights, is_parallel: c.is_parallel, scaling: c.scaling, use_gating: c.use_gating, leave_out: c.leave_out,
  };
}
