// Hugging Face `config.json` for the supported architectures, read into one typed, validated
// shape. Field names follow transformers; each family's aliases are mapped in one place.

export const MODEL_TYPES = ["bert", "roberta", "distilbert", "gpt2", "llama", "qwen2", "mistral"] as const;
export type ModelType = (typeof MODEL_TYPES)[number];
export type Family = "bert" | "distilbert" | "gpt2" | "llama";

export interface RopeScaling {
  rope_type: "llama3" | "default" | "linear";
  factor: number;
  low_freq_factor?: number;
  high_freq_factor?: number;
  original_max_position_embeddings?: number;
}

/** The architecture facts peftjs needs, normalized across families. */
export interface ModelConfig {
  modelType: ModelType;
  family: Family;
  vocabSize: number;
  hidden: number;
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  intermediate: number;
  maxPositions: number;
  activation: string;
  layerNormEps: number;
  /** Token type vocabulary (BERT family); 0 when absent. */
  typeVocabSize: number;
  padTokenId: number | undefined;
  bosTokenId: number | undefined;
  eosTokenId: number | readonly number[] | undefined;
  tieWordEmbeddings: boolean;
  hiddenDropout: number;
  attentionDropout: number;
  /** Classification labels (`id2label` / `num_labels`). */
  numLabels: number;
  id2label: Record<number, string>;
  /** Llama family. */
  ropeTheta: number;
  ropeScaling: RopeScaling | undefined;
  attentionBias: boolean;
  mlpBias: boolean;
  /** The raw config.json, kept so that saving round-trips unknown fields. */
  raw: Readonly<Record<string, unknown>>;
}

export class ConfigError extends Error {}

function family(t: ModelType): Family {
  return t === "roberta" ? "bert" : t === "qwen2" || t === "mistral" ? "llama" : (t as Family);
}

/** Parse and validate a config.json object; `source` names the file in errors. */
export function parseModelConfig(raw: unknown, source = "config.json"): ModelConfig {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw new ConfigError(`${source}: expected a JSON object`);
  const c = raw as Record<string, unknown>;
  const type = c.model_type;
  if (typeof type !== "string" || !(MODEL_TYPES as readonly string[]).includes(type)) {
    throw new ConfigError(`${source}: unsupported model_type ${JSON.stringify(type)}; supported: ${MODEL_TYPES.join(", ")}`);
  }
  const modelType = type as ModelType;
  const fam = family(modelType);
  const num = (keys: string[], fallback?: number, opts: { integer?: boolean; min?: number } = { integer: true, min: 1 }): number => {
    for (const k of keys) {
      if (c[k] === undefined || c[k] === null) continue;
      const v = c[k];
      if (typeof v !== "number" || !Number.isFinite(v) || (opts.integer && !Number.isInteger(v)) || (opts.min !== undefined && v < opts.min)) {
        throw new ConfigError(`${source}: field "${k}" must be ${opts.integer ? "an integer" : "a number"}${opts.min !== undefined ? ` >= ${opts.min}` : ""}, got ${JSON.stringify(v)}`);
      }
      return v;
    }
    if (fallback === undefined) throw new ConfigError(`${source}: missing required field "${keys[0]}" for model_type "${modelType}"`);
    return fallback;
  };
  const optInt = (k: string): number | undefined => (typeof c[k] === "number" ? (c[k] as number) : undefined);
  const real = (keys: string[], fallback: number) => num(keys, fallback, { integer: false, min: 0 });

  const hidden = num(fam === "gpt2" ? ["n_embd", "hidden_size"] : fam === "distilbert" ? ["dim", "hidden_size"] : ["hidden_size"]);
  const heads = num(fam === "gpt2" ? ["n_head", "num_attention_heads"] : fam === "distilbert" ? ["n_heads", "num_attention_heads"] : ["num_attention_heads"]);
  const layers = num(fam === "gpt2" ? ["n_layer", "num_hidden_layers"] : fam === "distilbert" ? ["n_layers", "num_hidden_layers"] : ["num_hidden_layers"]);
  const headDim = fam === "llama" ? num(["head_dim"], hidden / heads) : hidden / heads;
  if (!Number.isInteger(headDim)) throw new ConfigError(`${source}: hidden size ${hidden} is not divisible by ${heads} attention heads`);
  const kvHeads = fam === "llama" ? num(["num_key_value_heads"], heads) : heads;
  if (heads % kvHeads !== 0) throw new ConfigError(`${source}: num_attention_heads ${heads} is not a multiple of num_key_value_heads ${kvHeads}`);

  const id2labelRaw = (c.id2label ?? {}) as Record<string, string>;
  const id2label: Record<number, string> = {};
  for (const [k, v] of Object.entries(id2labelRaw)) id2label[Number(k)] = String(v);
  const numLabels = num(["num_labels"], Object.keys(id2label).length || 2);

  let ropeScaling: RopeScaling | undefined;
  const rs = c.rope_scaling as Record<string, unknown> | null | undefined;
  if (rs) {
    const ropeType = (rs.rope_type ?? rs.type) as string;
    if (ropeType !== "llama3" && ropeType !== "linear" && ropeType !== "default") {
      throw new ConfigError(`${source}: rope_scaling type ${JSON.stringify(ropeType)} is not supported (supported: llama3, linear, default)`);
    }
    ropeScaling = { ...(rs as object), rope_type: ropeType, factor: Number(rs.factor ?? 1) } as RopeScaling;
  }

  const defaultAct = fam === "gpt2" ? "gelu_new" : fam === "llama" ? "silu" : "gelu";
  return {
    modelType,
    family: fam,
    vocabSize: num(["vocab_size"]),
    hidden,
    layers,
    heads,
    kvHeads,
    headDim,
    intermediate: num(fam === "gpt2" ? ["n_inner"] : fam === "distilbert" ? ["hidden_dim", "intermediate_size"] : ["intermediate_size"], 4 * hidden),
    maxPositions: num(fam === "gpt2" ? ["n_positions", "max_position_embeddings"] : ["max_position_embeddings"], fam === "llama" ? 2048 : 512),
    activation: String(c.hidden_act ?? c.activation_function ?? c.activation ?? defaultAct),
    layerNormEps: real(fam === "gpt2" ? ["layer_norm_epsilon"] : fam === "llama" ? ["rms_norm_eps"] : ["layer_norm_eps"], fam === "llama" ? 1e-6 : fam === "distilbert" ? 1e-12 : fam === "gpt2" ? 1e-5 : 1e-12),
    typeVocabSize: fam === "bert" ? num(["type_vocab_size"], 2, { integer: true, min: 0 }) : 0,
    padTokenId: optInt("pad_token_id"),
    bosTokenId: optInt("bos_token_id"),
    eosTokenId: (c.eos_token_id as number | number[] | undefined) ?? undefined,
    tieWordEmbeddings: c.tie_word_embeddings === undefined ? fam !== "llama" : Boolean(c.tie_word_embeddings),
    hiddenDropout: real(fam === "gpt2" ? ["resid_pdrop"] : fam === "distilbert" ? ["dropout"] : ["hidden_dropout_prob"], fam === "llama" ? 0 : 0.1),
    attentionDropout: real(fam === "gpt2" ? ["attn_pdrop"] : fam === "distilbert" ? ["attention_dropout"] : ["attention_probs_dropout_prob", "attention_dropout"], fam === "llama" ? 0 : 0.1),
    numLabels,
    id2label,
    ropeTheta: real(["rope_theta"], 10000),
    ropeScaling,
    attentionBias: modelType === "qwen2" ? true : Boolean(c.attention_bias ?? false),
    mlpBias: Boolean(c.mlp_bias ?? false),
    raw: c,
  };
}
