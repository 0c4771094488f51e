// PEFT's PromptLearningConfig (peft/config.py): the fields prompt tuning, P-tuning and prefix
// tuning share, and their adapter_config.json form. Shared like PEFT's base class, so that no
// method folder imports another.
import { type PretrainedModel } from "../models/pretrained.js";
import { AdapterConfigError, field, isInt, isStrList, type BaseConfig } from "./tuner.js";

export interface PromptLearningConfig extends BaseConfig {
  num_virtual_tokens: number;
  token_dim: number;
  num_transformer_submodules: number;
  num_attention_heads: number;
  num_layers: number;
}

export function parsePromptLearning(json: Readonly<Record<string, unknown>>, source: string, model?: PretrainedModel): PromptLearningConfig {
  const n = field(json, "num_virtual_tokens", undefined as unknown as number, isInt(1), "a positive integer", source);
  if (n === undefined) throw new AdapterConfigError(`${source}: num_virtual_tokens is required`);
  const cfg = model?.config;
  return {
    num_virtual_tokens: n,
    token_dim: field(json, "token_dim", cfg?.hidden ?? 0, isInt(1), "a positive integer", source),
    num_transformer_submodules: field(json, "num_transformer_submodules", 1, isInt(1), "a positive integer", source),
    num_attention_heads: field(json, "num_attention_heads", cfg?.heads ?? 0, isInt(1), "a positive integer", source),
    num_layers: field(json, "num_layers", cfg?.layers ?? 0, isInt(1), "a positive integer", source),
    modules_to_save: field<string[] | null>(json, "modules_to_save", null, isStrList, "a list of module names", source),
    base_model_name_or_path: (json.base_model_name_or_path as string | undefined) ?? null,
    task_type: (json.task_type as string | undefined) ?? null,
    inference_mode: (json.inference_mode as boolean | undefined) ?? false,
  };
}

/** PEFT's PromptLearningConfig fields (config.py): no modules_to_save (PeftModel adds the task's head itself). */
export const promptLearningJSON = (c: PromptLearningConfig & { peft_type: string }) => ({
  peft_type: c.peft_type, task_type: c.task_type ?? null, base_model_name_or_path: c.base_model_name_or_path ?? null, inference_mode: c.inference_mode ?? false,
  num_virtual_tokens: c.num_virtual_tokens, token_dim: c.token_dim, num_transformer_submodules: c.num_transformer_submodules,
  num_attention_heads: c.num_attention_heads, num_layers: c.num_layers, revision: null,
});
