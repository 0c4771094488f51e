// LoRA configuration: PEFT's LoraConfig fields and defaults (peft/tuners/lora/config.py).
import { DEFAULT_LORA_TARGETS, type TargetSpec } from "../targets.js";
import { AdapterConfigError, alwaysInert, field, inertWhenUnset, isBool, isInt, isNum, isStrList, isStrOrList, type BaseConfig, type InertField } from "../tuner.js";

/**
 * LoraConfig fields (peft/tuners/lora/config.py, 0.14 through current) that peftjs reads but does
 * not implement: accepted where they change nothing about the saved adapter's computation.
 */
export const LORA_INERT_FIELDS: Readonly<Record<string, InertField>> = {
  // Initialization only: a saved adapter's weights are in the file.
  loftq_config: alwaysInert("initialization only"),
  eva_config: alwaysInert("initialization only"),
  corda_config: alwaysInert("initialization only"),
  lora_ga_config: alwaysInert("initialization only"),
  // Only read for Megatron-parallel layers.
  megatron_config: alwaysInert("Megatron layers only"),
  megatron_core: alwaysInert("Megatron layers only"),
  qalora_group_size: alwaysInert("read only with use_qalora"),
  use_qalora: { test: (v) => v === false, means: "only false is supported" },
  layer_replication: inertWhenUnset(),
  target_parameters: inertWhenUnset(),
  trainable_token_indices: inertWhenUnset(),
  alora_invocation_tokens: inertWhenUnset(),
  arrow_config: inertWhenUnset(),
  ensure_weight_tying: { test: (v) => v === false, means: "only false is supported" },
};

export interface LoraConfig extends BaseConfig, TargetSpec {
  peft_type: "LORA";
  /** Rank of the update BA. */
  r: number;
  /** Scaling numerator: the update is scaled by lora_alpha / r (or / sqrt(r) with use_rslora). */
  lora_alpha: number;
  /** Dropout on the LoRA branch's input. */
  lora_dropout: number;
  /** The base weight is stored [in, out] (GPT-2 Conv1D); set automatically for such layers. */
  fan_in_fan_out: boolean;
  /** A trainable bias on lora_B (PEFT 0.14+), scaled with the update; zero at init. */
  lora_bias: boolean;
  /** Which biases train: none, all biases of the model, or those of the adapted layers. */
  bias: "none" | "all" | "lora_only";
  /** Rank-stabilized scaling alpha / sqrt(r) (Kalajdzievski 2023). */
  use_rslora: boolean;
  /** Weight-decomposed LoRA (Liu et al. 2024): a trainable magnitude per output unit. */
  use_dora: boolean;
  /** true: A kaiming-uniform, B zero (identity at init); "gaussian": A ~ N(0, 1/r); false: random B too. */
  init_lora_weights: boolean | "gaussian";
  /** Per-module rank / alpha overrides, keyed by regex on the module path. */
  rank_pattern: Record<string, number>;
  alpha_pattern: Record<string, number>;
  /** peftjs extension (UniPELT-style, Mao et al. 2022): the update is scaled by sigmoid(W_g x). Not read by PEFT. */
  use_gating: boolean;
}

export function parseLoraConfig(json: Readonly<Record<string, unknown>>, source: string, modelType?: string): LoraConfig {
  const r = field(json, "r", 8, isInt(1), "a positive integer", source);
  const bias = field(json, "bias", "none" as const, (v) => v === "none" || v === "all" || v === "lora_only", '"none", "all" or "lora_only"', source);
  const init = field<boolean | "gaussian">(json, "init_lora_weights", true, (v) => typeof v === "boolean" || v === "gaussian", 'true, false or "gaussian"', source);
  const targets = field<string | string[] | null>(json, "target_modules", null, isStrOrList, "a regex string or a list of module names", source) ?? (modelType ? DEFAULT_LORA_TARGETS[modelType] : undefined);
  if (!targets) throw new AdapterConfigError(`${source}: target_modules is required (no default for model type ${modelType})`);
  const cfg: LoraConfig = {
    peft_type: "LORA",
    r,
    lora_alpha: field(json, "lora_alpha", 8, isNum(0), "a number", source),
    lora_dropout: field(json, "lora_dropout", 0, isNum(0, 0.999), "a number in [0, 1)", source),
    fan_in_fan_out: field(json, "fan_in_fan_out", false, isBool, "a boolean", source),
    bias,
    use_rslora: field(json, "use_rslora", false, isBool, "a boolean", source),
    use_dora: field(json, "use_dora", false, isBool, "a boolean", source),
    init_lora_weights: init,
    rank_pattern: field(json, "rank_pattern", {}, (v) => typeof v === "object" && Object.values(v as object).every((x) => Number.isInteger(x) && x > 0), "an object of positive integers", source),
    alpha_pattern: field(json, "alpha_pattern", {}, (v) => typeof v === "object" && Object.values(v as object).every((x) => typeof x === "number"), "an object of numbers", source),
    use_gating: field(json, "use_gating", false, isBool, "a boolean", source),
    lora_bias: field(json, "lora_bias", false, isBool, "a boolean", source),
    target_modules: targets,
    exclude_modules: field(json, "exclude_modules", null, isStrOrList, "a regex string or a list", source),
    layers_to_transform: field(json, "layers_to_transform", null, (v) => Number.isInteger(v) || (Array.isArray(v) && v.every(Number.isInteger)), "an integer or list of integers", source),
    layers_pattern: field(json, "layers_pattern", null, isStrOrList, "a string or a list", source),
    modules_to_save: field<string[] | null>(json, "modules_to_save", null, isStrList, "a list of module names", source),
    base_model_name_or_path: (json.base_model_name_or_path as string | undefined) ?? null,
    task_type: (json.task_type as string | undefined) ?? null,
    inference_mode: (json.inference_mode as boolean | undefined) ?? false,
  };
  // PEFT's LoraConfig.__post_init__ rules for lora_bias.
  if (cfg.lora_bias && cfg.use_dora) throw new AdapterConfigError(`${source}: lora_bias is not supported with use_dora (as in PEFT)`);
  if (cfg.lora_bias && cfg.init_lora_weights === "gaussian") throw new AdapterConfigError(`${source}: lora_bias needs init_lora_weights true or false (as in PEFT), got "gaussian"`);
  return cfg;
}

/** adapter_config.json as PEFT writes it (fields PEFT reads; unset optional fields as null). */
export function loraConfigToJSON(c: LoraConfig): Record<string, unknown> {
  return {
    peft_type: "LORA",
    task_type: c.task_type ?? null,
    base_model_name_or_path: c.base_model_name_or_path ?? null,
    inference_mode: c.inference_mode ?? true,
    r: c.r,
    lora_alpha: c.lora_alpha,
    lora_dropout: c.lora_dropout,
    target_modules: c.target_modules,
    exclude_modules: c.exclude_modules ?? null,
    fan_in_fan_out: c.fan_in_fan_out,
    bias: c.bias,
    use_rslora: c.use_rslora,
    use_dora: c.use_dora,
    lora_bias: c.lora_bias,
    init_lora_weights: c.init_lora_weights,
    layers_to_transform: c.layers_to_transform ?? null,
    layers_pattern: c.layers_pattern ?? null,
    rank_pattern: c.rank_pattern,
    alpha_pattern: c.alpha_pattern,
    modules_to_save: c.modules_to_save ?? null,
    revision: null,
    // Written only when used, so PEFT can read every other LoRA config.
    ...(c.use_gating ? { use_gating: true } : {}),
  };
}
