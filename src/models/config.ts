// Hugging Face `config.json` for the supported architectures, read into one typed, validated
// shape. Field names follow transformers; each family's aliases are mapped in one place.
// Sizes are bounded before anything is allocated: each dimension has a cap far above any released
// model, and the estimated memory of weights plus one training sequence's activations must fit a
// budget (see ResourceLimits), so a typo like `num_labels: 1e7` is a clear error, not 40 GB.

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

/**
 * What a config.json may ask for. The per-field caps sit 4-10x above the largest released model
 * of each kind (Llama 3.1 405B: 126 layers, hidden 16384, FFN 53248, 128 heads; vocabularies up to
 * 256k; contexts up to ~1M positions), so they only stop typos and hostile files. Override any of
 * them through `parseModelConfig`'s `limits`; the memory budget also through the environment
 * variable `PEFTJS_MAX_MODEL_BYTES`.
 */
export interface ResourceLimits {
  /**
   * Most bytes for the float32 weights plus the activations of one training sequence (see
   * {@link estimateModelMemory}). Default 64 GiB: the float32 weights of a 16B-parameter model,
   * far beyond what peftjs trains on a CPU.
   */
  maxBytes: number;
  /** num_hidden_layers / n_layer / n_layers. Default 1024. */
  maxLayers: number;
  /** hidden_size / n_embd / dim, and head_dim. Default 65536. */
  maxHidden: number;
  /** intermediate_size / n_inner / hidden_dim. Default 262144. */
  maxIntermediate: number;
  /** num_attention_heads / num_key_value_heads. Default 1024. */
  maxHeads: number;
  /** vocab_size and type_vocab_size. Default 4194304 (2^22). */
  maxVocab: number;
  /** max_position_embeddings / n_positions. Default 16777216 (2^24). */
  maxPositions: number;
  /** num_labels and the size of id2label. Default 100000. */
  maxLabels: number;
}

export const DEFAULT_RESOURCE_LIMITS: Readonly<ResourceLimits> = {
  maxBytes: 64 * 2 ** 30,
  maxLayers: 1024,
  maxHidden: 65536,
  maxIntermediate: 262144,
  maxHeads: 1024,
  maxVocab: 2 ** 22,
  maxPositions: 2 ** 24,
  maxLabels: 100_000,
};

/** Defaults, then `PEFTJS_MAX_MODEL_BYTES` (when set), then explicit overrides. */
function resolveLimits(overrides: Partial<ResourceLimits> | undefined): ResourceLimits {
  const limits = { ...DEFAULT_RESOURCE_LIMITS };
  // `process` is absent in browsers; the budget then comes from defaults and overrides only.
  const env = typeof process === "undefined" ? undefined : process.env?.PEFTJS_MAX_MODEL_BYTES;
  if (env !== undefined && env !== "") {
    const v = Number(env);
    if (!(v > 0)) throw new ConfigError(`PEFTJS_MAX_MODEL_BYTES must be a positive number of bytes, got ${JSON.stringify(env)}`);
    limits.maxBytes = v;
  }
  return { ...limits, ...overrides };
}

/** The estimate {@link estimateModelMemory} returns; `terms` name the config fields behind each part. */
export interface MemoryEstimate {
  parameters: number;
  /** Activation values (float32) kept for the backward pass of `batch` sequences of `seqLen` tokens. */
  activations: number;
  /** float32 bytes of both. */
  bytes: number;
  /** The parts, largest first: [what (config fields), number of values]. */
  terms: [string, number][];
}

/**
 * Order-of-magnitude memory of a model: its parameters (embeddings, layers, output and task heads)
 * and the activations one training step keeps (per layer about 10·hidden + 3·intermediate values
 * per token plus two heads × seq² attention maps, and the logits), all float32. Used to refuse
 * absurd configs before building; also useful to size a batch.
 *
 * @example
 *   const est = estimateModelMemory(model.config, { batch: 8, seqLen: 128 });
 *   console.log(`${(est.bytes / 2 ** 30).toFixed(1)} GiB`);
 */
export function estimateModelMemory(c: ModelConfig, opts: { batch?: number; seqLen?: number } = {}): MemoryEstimate {
  const f = (k: string, fallback: string) => (c.raw[k] !== undefined ? k : fallback);
  const keys = {
    layers: f("num_hidden_layers", c.family === "gpt2" ? "n_layer" : "n_layers"),
    hidden: f("hidden_size", c.family === "gpt2" ? "n_embd" : "dim"),
    inter: c.family === "gpt2" ? "n_inner" : f("intermediate_size", "hidden_dim"),
    positions: f("max_position_embeddings", "n_positions"),
  };
  const H = c.hidden;
  const T = opts.seqLen ?? Math.min(c.maxPositions, 1024);
  const B = opts.batch ?? 1;
  const attn = H * c.heads * c.headDim * 2 + 2 * H * c.kvHeads * c.headDim;
  const ffn = (c.family === "llama" ? 3 : 2) * H * c.intermediate;
  const terms: [string, number][] = [
    [`vocab_size × ${keys.hidden} (token embeddings${c.tieWordEmbeddings ? "" : " and output layer"})`, c.vocabSize * H * (c.tieWordEmbeddings ? 1 : 2)],
    [`${keys.layers} × layer weights (${keys.hidden}, ${keys.inter}, attention heads)`, c.layers * (attn + ffn + 4 * H)],
    [`num_labels × ${keys.hidden} (classification head)`, c.numLabels * H + H * H],
    [`${keys.layers} × activations of ${B} × ${T} tokens (${keys.hidden}, ${keys.inter}, num_attention_heads × ${keys.positions}²)`, c.layers * B * (T * (10 * H + 3 * c.intermediate) + 2 * c.heads * T * T)],
    [`vocab_size × ${B} × ${T} tokens (logits)`, B * T * c.vocabSize],
  ];
  if (c.family !== "llama") terms.push([`${keys.positions} × ${keys.hidden} (position embeddings)`, c.maxPositions * H]);
  if (c.typeVocabSize) terms.push([`type_vocab_size × ${keys.hidden} (token type embeddings)`, c.typeVocabSize * H]);
  const parameters = terms.filter(([what]) => !/activations|logits/.test(what)).reduce((a, [, n]) => a + n, 0);
  const activations = terms.filter(([what]) => /activations|logits/.test(what)).reduce((a, [, n]) => a + n, 0);
  terms.sort((a, b) => b[1] - a[1]);
  return { parameters, activations, bytes: 4 * (parameters + activations), terms };
}

/** 3 significant digits in the largest binary unit that keeps the number >= 1. */
function formatBytes(bytes: number): string {
  const units = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
  let i = 0;
  while (i < units.length - 1 && bytes >= 1024 ** (i + 1)) i++;
  return `${Number((bytes / 1024 ** i).toPrecision(3))} ${units[i]}`;
}

function family(t: ModelType): Family {
  return t === "roberta" ? "bert" : t === "qwen2" || t === "mistral" ? "llama" : (t as Family);
}

/**
 * Parse and validate a config.json object; `source` names the file in errors. Sizes are checked
 * against `limits` (defaults: {@link DEFAULT_RESOURCE_LIMITS}) before the caller allocates anything.
 *
 * @example
 *   const config = parseModelConfig(JSON.parse(text), "bert/config.json", { maxBytes: 8 * 2 ** 30 });
 */
export function parseModelConfig(raw: unknown, source = "config.json", limits?: Partial<ResourceLimits>): ModelConfig {
  const lim = resolveLimits(limits);
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw new ConfigError(`${source}: expected a JSON object`);
  const c = raw as Record<string, unknown>;
  const type = c.model_type;
  if (typeof type !== "string" || !(MODEL_TYPES as readonly string[]).includes(type)) {
    throw new ConfigError(`${source}: unsupported model_type ${JSON.stringify(type)}; supported: ${MODEL_TYPES.join(", ")}`);
  }
  const modelType = type as ModelType;
  const fam = family(modelType);
  const num = (keys: string[], fallback?: number, opts: { integer?: boolean; min?: number; max?: [number, keyof ResourceLimits] } = { integer: true, min: 1 }): number => {
    for (const k of keys) {
      if (c[k] === undefined || c[k] === null) continue;
      const v = c[k];
      if (typeof v !== "number" || !Number.isFinite(v) || (opts.integer && !Number.isInteger(v)) || (opts.min !== undefined && v < opts.min)) {
        throw new ConfigError(`${source}: field "${k}" must be ${opts.integer ? "an integer" : "a number"}${opts.min !== undefined ? ` >= ${opts.min}` : ""}, got ${JSON.stringify(v)}`);
      }
      if (opts.max && v > opts.max[0]) {
        throw new ConfigError(`${source}: field "${k}" is ${v}, above the limit of ${opts.max[0]} (far beyond real models; a typo? raise limits.${opts.max[1]} if it is meant)`);
      }
      return v;
    }
    if (fallback === undefined) throw new ConfigError(`${source}: missing required field "${keys[0]}" for model_type "${modelType}"`);
    return fallback;
  };
  const optInt = (k: string): number | undefined => (typeof c[k] === "number" ? (c[k] as number) : undefined);
  const real = (keys: string[], fallback: number) => num(keys, fallback, { integer: false, min: 0 });

  const size = (max: keyof ResourceLimits) => ({ integer: true, min: 1, max: [lim[max], max] as [number, keyof ResourceLimits] });
  const hidden = num(fam === "gpt2" ? ["n_embd", "hidden_size"] : fam === "distilbert" ? ["dim", "hidden_size"] : ["hidden_size"], undefined, size("maxHidden"));
  const heads = num(fam === "gpt2" ? ["n_head", "num_attention_heads"] : fam === "distilbert" ? ["n_heads", "num_attention_heads"] : ["num_attention_heads"], undefined, size("maxHeads"));
  const layers = num(fam === "gpt2" ? ["n_layer", "num_hidden_layers"] : fam === "distilbert" ? ["n_layers", "num_hidden_layers"] : ["num_hidden_layers"], undefined, size("maxLayers"));
  const headDim = fam === "llama" ? num(["head_dim"], hidden / heads, size("maxHidden")) : hidden / heads;
  if (!Number.isInteger(headDim)) throw new ConfigError(`${source}: hidden size ${hidden} is not divisible by ${heads} attention heads`);
  const kvHeads = fam === "llama" ? num(["num_key_value_heads"], heads, size("maxHeads")) : heads;
  if (heads % kvHeads !== 0) throw new ConfigError(`${source}: num_attention_heads ${heads} is not a multiple of num_key_value_heads ${kvHeads}`);

  const id2labelRaw = (c.id2label ?? {}) as Record<string, string>;
  const id2label: Record<number, string> = {};
  if (typeof id2labelRaw !== "object" || id2labelRaw === null || Array.isArray(id2labelRaw)) throw new ConfigError(`${source}: field "id2label" must be an object {id: label}, got ${JSON.stringify(id2labelRaw).slice(0, 80)}`);
  const labelCount = Object.keys(id2labelRaw).length;
  if (labelCount > lim.maxLabels) throw new ConfigError(`${source}: field "id2label" has ${labelCount} labels, above the limit of ${lim.maxLabels} (raise limits.maxLabels if it is meant)`);
  for (const [k, v] of Object.entries(id2labelRaw)) id2label[Number(k)] = String(v);
  const numLabels = num(["num_labels"], labelCount || 2, size("maxLabels"));

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
  const config: ModelConfig = {
    modelType,
    family: fam,
    vocabSize: num(["vocab_size"], undefined, size("maxVocab")),
    hidden,
    layers,
    heads,
    kvHeads,
    headDim,
    intermediate: num(fam === "gpt2" ? ["n_inner"] : fam === "distilbert" ? ["hidden_dim", "intermediate_size"] : ["intermediate_size"], 4 * hidden, size("maxIntermediate")),
    maxPositions: num(fam === "gpt2" ? ["n_positions", "max_position_embeddings"] : ["max_position_embeddings"], fam === "llama" ? 2048 : 512, size("maxPositions")),
    activation: String(c.hidden_act ?? c.activation_function ?? c.activation ?? defaultAct),
    layerNormEps: real(fam === "gpt2" ? ["layer_norm_epsilon"] : fam === "llama" ? ["rms_norm_eps"] : ["layer_norm_eps"], fam === "llama" ? 1e-6 : fam === "distilbert" ? 1e-12 : fam === "gpt2" ? 1e-5 : 1e-12),
    typeVocabSize: fam === "bert" ? num(["type_vocab_size"], 2, { integer: true, min: 0, max: [lim.maxVocab, "maxVocab"] }) : 0,
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
  const est = estimateModelMemory(config);
  if (est.bytes > lim.maxBytes) {
    const [what, n] = est.terms[0]!;
    throw new ConfigError(
      `${source}: this model would need about ${formatBytes(est.bytes)} (${est.parameters.toPrecision(3)} parameters plus one training sequence's activations, as float32), above the limit of ${formatBytes(lim.maxBytes)}; the largest part is ${what}: ${formatBytes(4 * n)} (set PEFTJS_MAX_MODEL_BYTES or limits.maxBytes to allow it)`,
    );
  }
  return config;
}
