// PEFT's PromptLearningConfig (peft/config.py): the fields prompt tuning, P-tuning and prefix
// tuning share. Declared here like PEFT's base class, so that no method folder imports another.
import { integer, type ConfigFields, type ConfigOfFields } from "./config-schema.js";
import { type BaseConfig } from "./tuner.js";

export const PROMPT_LEARNING_FIELDS = {
  num_virtual_tokens: integer({ min: 1, help: "length of the learned prompt (virtual tokens)" }),
  token_dim: integer({ min: 1, default: ({ model }) => model?.config.hidden, defaultText: "the model's hidden size", help: "width of each virtual token" }),
  num_transformer_submodules: integer({ min: 1, default: 1, help: "1 for decoder-only and encoder models (2 for encoder-decoders)" }),
  num_attention_heads: integer({ min: 1, default: ({ model }) => model?.config.heads, defaultText: "the model's attention heads", help: "attention heads the prompt is split into" }),
  num_layers: integer({ min: 1, default: ({ model }) => model?.config.layers, defaultText: "the model's layers", help: "transformer layers of the model" }),
} satisfies ConfigFields;

export type PromptLearningConfig = ConfigOfFields<typeof PROMPT_LEARNING_FIELDS> & BaseConfig;
