// Prefix tuning (Li & Liang 2021, "Prefix-Tuning: Optimizing Continuous Prompts for
// Generation"): every layer's attention gets `num_virtual_tokens` trainable key/value pairs
// prepended, optionally produced by a reparameterization MLP (prefix_projection). P-tuning v2
// (Liu et al. 2022) is this method without the projection. Saved as PEFT does: one tensor
// `prompt_embeddings` [num_virtual_tokens, num_layers * 2 * kv_dim] (keys and values of layer l
// at rows 2l and 2l+1 of the second axis viewed as [num_layers * 2, kv_heads, head_dim]).
// Grouped-query models get prefixes for their key/value heads (token_dim / num_attention_heads as
// PEFT derives them, see prefixDims). PEFT passes the prefix as past key/values, so the real
// tokens' positions start at num_virtual_tokens: PeftModel.prepareInputs shifts them
// (`prefixTokens`), and generation continues from there.
import { linear } from "../../ir/composites/linear.js";
import { type Value } from "../../ir/graph.js";
import { concat, expand, mul, reshape, shapeOf, slice, squeeze, tanh, transpose, unsqueeze } from "../../ir/ops/index.js";
import { fillNormal } from "../../ir/random.js";
import { type Tensor } from "../../ir/tensor.js";
import { type PretrainedModel } from "../../models/pretrained.js";
import { boolean, declareConfig, integer, type ConfigFields, type DeclaredConfig } from "../config-schema.js";
import { PROMPT_LEARNING_FIELDS, type PromptLearningConfig } from "../prompt-learning.js";
import { AdapterConfigError, type Adapter, type HookContext, type TunerDef } from "../tuner.js";

const PREFIX_TUNING_FIELDS = {
  ...PROMPT_LEARNING_FIELDS,
  encoder_hidden_size: integer({ min: 1, default: ({ config }) => config.token_dim as number, defaultText: "token_dim", help: "hidden size of the reparameterization MLP (prefix_projection)" }),
  prefix_projection: boolean({ default: false, help: "produce the prefixes with an MLP (embedding -> Linear -> tanh -> Linear), as in the paper; false is P-tuning v2" }),
} satisfies ConfigFields;

export type PrefixTuningConfig = DeclaredConfig<"PREFIX_TUNING", typeof PREFIX_TUNING_FIELDS>;

export class PrefixTuningAdapter implements Adapter<PrefixTuningConfig> {
  readonly tensors = new Map<string, Tensor>();
  private readonly prefix: string;
  private readonly kvHeads: number;
  private readonly headDim: number;
  /** Loaded from a file: the saved prefixes are used directly (PEFT's inference mode). */
  private projected = false;
  /** Cache positions the prefix occupies: the real tokens' positions start after them. */
  readonly prefixTokens: number;

  constructor(model: PretrainedModel, readonly config: PrefixTuningConfig, readonly name: string) {
    const cfg = model.config;
    if (cfg.family === "distilbert") {
      throw new AdapterConfigError(`prefix tuning on DistilBERT: the prefix is fed as past key/values, which transformers' DistilBertModel.forward does not take (PEFT refuses it: "Model does not support past key values which are required for prefix tuning."); use BERT or RoBERTa, or another method`);
    }
    this.prefixTokens = config.num_virtual_tokens;
    this.kvHeads = cfg.kvHeads;
    this.headDim = cfg.headDim;
    const kvDim = this.kvHeads * this.headDim;
    if (config.num_layers !== cfg.layers) throw new AdapterConfigError(`prefix tuning: num_layers ${config.num_layers} differs from the model's ${cfg.layers} layers`);
    if (cfg.family !== "llama" && config.num_virtual_tokens + 1 > cfg.maxPositions) throw new AdapterConfigError(`prefix tuning: ${config.num_virtual_tokens} virtual tokens leave no room in ${cfg.maxPositions} positions`);
    this.prefix = "prompt_encoder";
    const n = config.num_virtual_tokens;
    const t = (shape: number[], std: number, seed: number): Tensor => {
      const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
      if (std) fillNormal(data, std, seed);
      return { dtype: "float32", shape, data };
    };
    if (config.prefix_projection) {
      const E = config.encoder_hidden_size;
      this.tensors.set(`${this.prefix}.embedding.weight`, t([n, config.token_dim], 1, 41));
      this.tensors.set(`${this.prefix}.transform.0.weight`, t([E, config.token_dim], 1 / Math.sqrt(config.token_dim), 42));
      this.tensors.set(`${this.prefix}.transform.0.bias`, t([E], 0, 0));
      this.tensors.set(`${this.prefix}.transform.2.weight`, t([cfg.layers * 2 * kvDim, E], 1 / Math.sqrt(E), 43));
      this.tensors.set(`${this.prefix}.transform.2.bias`, t([cfg.layers * 2 * kvDim], 0, 0));
    } else {
      this.tensors.set(`${this.prefix}.embedding.weight`, t([n, cfg.layers * 2 * kvDim], 1, 41));
    }
  }

  /** [n, layers * 2 * kvDim] prefixes. */
  private prefixes(ctx: HookContext): Value {
    const emb = ctx.bind(`${this.prefix}.embedding.weight`);
    if (!this.config.prefix_projection || this.projected) return emb;
    const h = tanh(linear(emb, ctx.bind(`${this.prefix}.transform.0.weight`), ctx.bind(`${this.prefix}.transform.0.bias`)));
    return linear(h, ctx.bind(`${this.prefix}.transform.2.weight`), ctx.bind(`${this.prefix}.transform.2.bias`));
  }

  hooks(ctx: HookContext) {
    let table: Value | undefined;
    const n = this.config.num_virtual_tokens;
    return {
      keyValue: (h: { layer: number; k: Value; v: Value; mask: Value | undefined }) => {
        // Rows would need their own key lengths and positions (see PeftModel.prepareInputs).
        if (ctx.rowGate) throw new AdapterConfigError(`prefix tuning adapter "${this.name}" adds ${n} key/value positions and moves the positions after them, which cannot differ per row: it cannot be in mixed-adapter batches`);
        // [n, L * 2 * kvDim] -> [L * 2, kvHeads, n, headDim]
        table ??= transpose(reshape(this.prefixes(ctx), [n, -1, this.kvHeads, this.headDim]), [1, 2, 0, 3]);
        const batch = slice(shapeOf(h.k), [0], [1], [0]);
        const one = (row: number) => {
          const p = squeeze(slice(table!, [row], [row + 1], [0]), [0]); // [kvHeads, n, headDim]
          return expand(unsqueeze(p, [0]), concat([batch, h.k.graph.int64s([this.kvHeads, n, this.headDim])], 0));
        };
        const k = concat([one(2 * h.layer), h.k], 2);
        const v = concat([one(2 * h.layer + 1), h.v], 2);
        const mask = h.mask && concat([expand(mul(slice(h.mask, [0], [1], [3]), 0), h.k.graph.int64s([1, 1, 1, n])), h.mask], 3);
        return { k, v, mask, prefix: n };
      },
    };
  }

  /** One tensor, `prompt_embeddings`: the prefixes, through the projection when there is one (peft_model.py get_prompt_embedding_to_save). */
  stateKeys(): Map<string, string> {
    return new Map([["prompt_embeddings", `${this.prefix}.embedding.weight`]]);
  }

  savedTensor(peftKey: string): Tensor | undefined {
    return peftKey === "prompt_embeddings" ? this.projectedTable() : undefined;
  }

  /** The prefixes as saved: through the projection MLP when there is one. */
  private projectedTable(): Tensor {
    const E = (k: string) => this.tensors.get(`${this.prefix}.${k}`)!;
    if (!this.config.prefix_projection || this.projected) return E("embedding.weight");
    const apply = (x: Float32Array, rows: number, W: Tensor, b: Tensor, act: boolean): Float32Array => {
      const [O, I] = W.shape as [number, number];
      const out = new Float32Array(rows * O);
      for (let r = 0; r < rows; r++) {
        for (let o = 0; o < O; o++) {
          let s = (b.data as Float32Array)[o]!;
          for (let i = 0; i < I; i++) s += (W.data as Float32Array)[o * I + i]! * x[r * I + i]!;
          out[r * O + o] = act ? Math.tanh(s) : s;
        }
      }
      return out;
    };
    const n = this.config.num_virtual_tokens;
    const h = apply(E("embedding.weight").data as Float32Array, n, E("transform.0.weight"), E("transform.0.bias"), true);
    const out = apply(h, n, E("transform.2.weight"), E("transform.2.bias"), false);
    return { dtype: "float32", shape: [n, out.length / n], data: out };
  }

  beforeLoad(file: ReadonlyMap<string, Tensor>): void {
    if (!this.config.prefix_projection) return;
    // The file holds projected prefixes: keep them as the embedding and drop the MLP (PEFT's inference mode).
    const saved = file.get("prompt_embeddings");
    if (saved) this.tensors.set(`${this.prefix}.embedding.weight`, { dtype: "float32", shape: [...saved.shape], data: new Float32Array(saved.data.length) });
    for (const k of [...this.tensors.keys()]) if (k.startsWith(`${this.prefix}.transform.`)) this.tensors.delete(k);
    this.projected = true;
  }
}

/**
 * token_dim and num_attention_heads as PEFT prepares them (peft/utils/other.py
 * _prepare_prompt_learning_config, applied to new and loaded configs alike): models whose
 * transformers config has num_key_value_heads (the Llama family) get token_dim = head_dim *
 * num_key_value_heads and num_attention_heads = num_key_value_heads (peft #1901; head_dim is the
 * config's, which LlamaConfig always sets; PEFT 0.14 took token_dim // num_attention_heads, the
 * same for the configs it could load). PeftModel.get_prompt views prompt_embeddings as
 * [n, num_layers * 2, num_attention_heads, token_dim // num_attention_heads], so these must be
 * the model's key/value heads and their width.
 */
function prefixDims(c: PromptLearningConfig, model: PretrainedModel, source: string): { token_dim: number; num_attention_heads: number } {
  const { kvHeads, headDim, family } = model.config;
  const dims = family === "llama" ? { token_dim: headDim * kvHeads, num_attention_heads: kvHeads } : { token_dim: c.token_dim, num_attention_heads: c.num_attention_heads };
  if (dims.num_attention_heads !== kvHeads || dims.token_dim !== kvHeads * headDim) {
    throw new AdapterConfigError(`${source}: token_dim ${dims.token_dim} with num_attention_heads ${dims.num_attention_heads} gives prefixes of ${dims.num_attention_heads} heads of ${dims.token_dim / dims.num_attention_heads}; the model's attention takes ${kvHeads} key/value heads of ${headDim} (token_dim ${kvHeads * headDim})`);
  }
  return dims;
}

const PREFIX_TUNING_CONFIG = declareConfig("PREFIX_TUNING", PREFIX_TUNING_FIELDS, {
  promptLearning: true,
  refine: (c, source, model, json) => {
    if (!model) return c;
    const dims = { ...c, ...prefixDims(c, model, source) };
    // encoder_hidden_size defaults to the token_dim PEFT prepares.
    return json.encoder_hidden_size === undefined || json.encoder_hidden_size === null ? { ...dims, encoder_hidden_size: dims.token_dim } : dims;
  },
});

export const PREFIX_TUNING: TunerDef<PrefixTuningConfig> = {
  peftType: "PREFIX_TUNING",
  promptLearning: true,
  ...PREFIX_TUNING_CONFIG,
  create: (model, config, name) => new PrefixTuningAdapter(model, PREFIX_TUNING_CONFIG.parseConfig({ ...config }, "prefix tuning config", model), name),
};
