// LoRA configuration: PEFT's LoraConfig fields and defaults (peft/tuners/lora/config.py).
import { z } from "zod";
import { boolean, custom, declareConfig, integer, modules, nullable, number, oneOf, pattern, type ConfigFields, type DeclaredConfig } from "../config-schema.js";
import { DEFAULT_LORA_TARGETS, type TargetSpec } from "../targets.js";
import { AdapterConfigError, alwaysInert, inertWhenUnset, type InertField } from "../tuner.js";

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

/** LoraConfig's fields (peft/tuners/lora/config.py), in the order PEFT writes them, and peftjs's use_gating. */
export const LORA_FIELDS = {
  r: integer({ min: 1, default: 8, help: "rank of the update BA" }),
  lora_alpha: number({ min: 0, default: 8, help: "scaling numerator: the update is scaled by lora_alpha / r (or / sqrt(r) with use_rslora)" }),
  lora_dropout: number({ min: 0, lt: 1, default: 0, help: "dropout on the LoRA branch's input" }),
  target_modules: modules({
    default: ({ model }) => (model ? DEFAULT_LORA_TARGETS[model.config.modelType] : undefined),
    defaultText: "the model type's attention projections (PEFT's TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING)",
    help: 'modules to adapt: a regex on the whole module path, a list of name suffixes, or "all-linear"',
  }),
  exclude_modules: nullable(modules({ help: "modules left out of target_modules" })),
  fan_in_fan_out: boolean({ default: false, help: "the base weight is stored [in, out] (GPT-2 Conv1D); set from the wrapped layers" }),
  bias: oneOf(["none", "all", "lora_only"], { default: "none", help: "which biases train: none, every bias of the model, or those of the adapted layers" }),
  use_rslora: boolean({ default: false, help: "rank-stabilized scaling lora_alpha / sqrt(r) (Kalajdzievski 2023)" }),
  use_dora: boolean({ default: false, help: "weight-decomposed LoRA (Liu et al. 2024): a trainable magnitude per output unit" }),
  lora_bias: boolean({ default: false, help: "a trainable bias on lora_B (PEFT 0.14+), scaled with the update; zero at init" }),
  init_lora_weights: oneOf([true, false, "gaussian"], { default: true, help: 'true: A kaiming-uniform, B zero (identity at init); "gaussian": A ~ N(0, 1/r); false: random B too' }),
  layers_to_transform: nullable(custom<number | number[]>(z.union([z.int(), z.array(z.int())]), "an integer or a list of integers", { help: "only these layer indices are adapted" })),
  layers_pattern: nullable(modules({ help: "the name of the layer list layers_to_transform indexes (e.g. layers, h)" })),
  rank_pattern: pattern("positive integers", { default: {}, help: "per-module rank overrides, keyed by a regex on the module path" }),
  alpha_pattern: pattern("numbers", { default: {}, help: "per-module lora_alpha overrides, keyed by a regex on the module path" }),
  use_gating: boolean({ default: false, write: "unless-default", help: "peftjs extension (UniPELT-style, Mao et al. 2022): the update is scaled by sigmoid(W_g x); not read by PEFT, written only when set" }),
} satisfies ConfigFields;

export type LoraConfig = DeclaredConfig<"LORA", typeof LORA_FIELDS> & TargetSpec;

/** LoRA's config functions: parse (with PEFT's LoraConfig.__post_init__ rules) and adapter_config.json. */
export const LORA_CONFIG = declareConfig<"LORA", typeof LORA_FIELDS, LoraConfig>("LORA", LORA_FIELDS, {
  refine: (cfg, source) => {
    // PEFT's LoraConfig.__post_init__ rules for lora_bias.
    if (cfg.lora_bias && cfg.use_dora) throw new AdapterConfigError(`${source}: lora_bias is not supported with use_dora (as in PEFT)`);
    if (cfg.lora_bias && cfg.init_lora_weights === "gaussian") throw new AdapterConfigError(`${source}: lora_bias needs init_lora_weights true or false (as in PEFT), got "gaussian"`);
  },
});
