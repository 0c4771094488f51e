// Input-level prompt learning. Prompt tuning (Lester et al. 2021, "The Power of Scale for
// Parameter-Efficient Prompt Tuning"): trainable embeddings of `num_virtual_tokens` tokens are
// prepended to the input embeddings. P-tuning (Liu et al. 2021, "GPT Understands, Too"): the
// prompt comes out of a small encoder (an MLP) over trainable embeddings. Both save one tensor,
// `prompt_embeddings` [num_virtual_tokens, hidden] (for P-tuning: the encoder's output).
import { linear } from "../../ir/composites/linear.js";
import { type Value } from "../../ir/graph.js";
import { add, concat, dropout, expand, mul, relu, shapeOf, sigmoid, slice, split, tanh, unsqueeze } from "../../ir/ops/index.js";
import { fillNormal, seededRandom } from "../../ir/random.js";
import { type Tensor } from "../../ir/tensor.js";
import { type PretrainedModel } from "../../models/pretrained.js";
import { z } from "zod";
import { custom, declareConfig, integer, nullable, number, oneOf, string, type ConfigFields, type DeclaredConfig } from "../config-schema.js";
import { PROMPT_LEARNING_FIELDS } from "../prompt-learning.js";
import { AdapterConfigError, type Adapter, type HookContext, type TunerDef } from "../tuner.js";

const END = Number.MAX_SAFE_INTEGER;

const PROMPT_TUNING_FIELDS = {
  ...PROMPT_LEARNING_FIELDS,
  prompt_tuning_init: oneOf(["RANDOM", "TEXT", "SAMPLE_VOCAB"], { default: "RANDOM", help: "RANDOM (N(0, 1), like nn.Embedding), TEXT (embeddings of prompt_tuning_init_text, repeated) or SAMPLE_VOCAB (rows of random vocabulary tokens)" }),
  prompt_tuning_init_text: nullable(string({ help: "the text whose token embeddings start the prompt (TEXT init)" })),
  tokenizer_name_or_path: nullable(string({ help: "the tokenizer of prompt_tuning_init_text (peftjs uses the model's)" })),
  // Arguments for loading that tokenizer: initialization only, accepted at any value and written as null.
  tokenizer_kwargs: nullable(custom<Record<string, unknown>>(z.record(z.string(), z.unknown()), "an object", { help: "arguments for loading the tokenizer (initialization only; not used)", write: () => null })),
} satisfies ConfigFields;

export type PromptTuningConfig = DeclaredConfig<"PROMPT_TUNING", typeof PROMPT_TUNING_FIELDS>;

const P_TUNING_FIELDS = {
  ...PROMPT_LEARNING_FIELDS,
  encoder_reparameterization_type: oneOf(["MLP", "LSTM"], { default: "MLP", help: "the prompt encoder: an MLP, or a bidirectional LSTM followed by an MLP" }),
  encoder_hidden_size: integer({ min: 1, default: ({ config }) => config.token_dim as number, defaultText: "token_dim", help: "hidden size of the prompt encoder" }),
  encoder_num_layers: integer({ min: 1, default: 2, help: "LSTM layers (LSTM encoder)" }),
  encoder_dropout: number({ min: 0, lt: 1, default: 0, help: "dropout between LSTM layers" }),
} satisfies ConfigFields;

export type PTuningConfig = DeclaredConfig<"P_TUNING", typeof P_TUNING_FIELDS>;

const PROMPT_TUNING_CONFIG = declareConfig("PROMPT_TUNING", PROMPT_TUNING_FIELDS, { promptLearning: true });
const P_TUNING_CONFIG = declareConfig("P_TUNING", P_TUNING_FIELDS, { promptLearning: true });

/** Adapters whose prompt is prepended to the input sequence. */
export interface InputPromptAdapter extends Adapter {
  readonly virtualTokens: number;
}

/** Replace the first `n` placeholder rows of the input embeddings with the prompt [n, H]. */
function prependPrompt(embeds: Value, prompt: Value, n: number, gate: unknown): Value {
  if (gate) throw new AdapterConfigError("prompt methods change the sequence and cannot share a batch with other adapters (mixed-adapter batches)");
  const batch = slice(shapeOf(embeds), [0], [1], [0]);
  const p = expand(unsqueeze(prompt, [0]), concat([batch, embeds.graph.int64s(prompt.shape as number[])], 0));
  return concat([p, slice(embeds, [n], [END], [1])], 1);
}

export class PromptTuningAdapter implements InputPromptAdapter {
  readonly tensors = new Map<string, Tensor>();
  readonly virtualTokens: number;

  constructor(model: PretrainedModel, readonly config: PromptTuningConfig, readonly name: string) {
    const { num_virtual_tokens: n, token_dim: H } = config;
    this.virtualTokens = n;
    if (H !== model.config.hidden) throw new AdapterConfigError(`prompt tuning: token_dim ${H} differs from the model's hidden size ${model.config.hidden}`);
    const data = new Float32Array(n * H);
    const embeddings = model.modules().embeddings;
    const table = embeddings ? (model.weight(`${embeddings.path}.weight`).data as Float32Array) : undefined;
    const copyRows = (ids: number[]) => ids.forEach((id, i) => data.set(table!.subarray(id * H, (id + 1) * H), i * H));
    if (config.prompt_tuning_init === "TEXT") {
      if (!config.prompt_tuning_init_text || !model.tokenizer) throw new AdapterConfigError(`prompt tuning: TEXT init needs prompt_tuning_init_text and a tokenizer`);
      const ids = model.tokenizer.encode(config.prompt_tuning_init_text, { addSpecialTokens: false }).ids;
      copyRows(Array.from({ length: n }, (_, i) => ids[i % ids.length]!));
    } else if (config.prompt_tuning_init === "SAMPLE_VOCAB") {
      const rand = seededRandom(11);
      copyRows(Array.from({ length: n }, () => Math.floor(rand() * model.config.vocabSize)));
    } else {
      fillNormal(data, 1, 17);
    }
    this.tensors.set(`prompt_encoder.embedding.weight`, { dtype: "float32", shape: [n, H], data });
  }

  hooks(ctx: HookContext) {
    return {
      inputEmbeddings: (h: { embeds: Value }) => prependPrompt(h.embeds, ctx.bind(`prompt_encoder.embedding.weight`), this.virtualTokens, ctx.rowGate),
    };
  }

  /** One tensor, `prompt_embeddings` [n, token_dim] (tuners_utils.py / peft_model.py get_prompt_embedding_to_save). */
  stateKeys(): Map<string, string> {
    return new Map([["prompt_embeddings", `prompt_encoder.embedding.weight`]]);
  }
}

export class PTuningAdapter implements InputPromptAdapter {
  readonly tensors = new Map<string, Tensor>();
  readonly virtualTokens: number;
  private readonly prefix: string;
  /** [out, in] of the MLP head's linear layers. */
  private readonly mlp: [number, number][];
  /** Set when loaded from a file: the saved encoder output is used as is (PEFT's inference mode). */
  private frozenPrompt = false;

  constructor(model: PretrainedModel, readonly config: PTuningConfig, readonly name: string) {
    const { num_virtual_tokens: n, token_dim: H, encoder_hidden_size: E } = config;
    if (H !== model.config.hidden) throw new AdapterConfigError(`P-tuning: token_dim ${H} differs from the model's hidden size ${model.config.hidden}`);
    this.virtualTokens = n;
    this.prefix = "prompt_encoder";
    let seed = 21;
    const t = (shape: number[], init: "normal" | number): Tensor => {
      const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
      if (init === "normal") fillNormal(data, 1, seed++);
      else {
        const rand = seededRandom(seed++);
        data.forEach((_, i) => (data[i] = (rand() * 2 - 1) * init));
      }
      return { dtype: "float32" as const, shape, data };
    };
    this.tensors.set(`${this.prefix}.embedding.weight`, t([n, H], "normal"));
    if (config.encoder_reparameterization_type === "LSTM") {
      // torch.nn.LSTM(H, E, num_layers, bidirectional=True): gates i, f, g, o; U(-1/sqrt(E), 1/sqrt(E)).
      const bound = 1 / Math.sqrt(E);
      for (let l = 0; l < config.encoder_num_layers; l++) {
        for (const dir of ["", "_reverse"]) {
          const k = `${this.prefix}.lstm_head.`;
          this.tensors.set(`${k}weight_ih_l${l}${dir}`, t([4 * E, l === 0 ? H : 2 * E], bound));
          this.tensors.set(`${k}weight_hh_l${l}${dir}`, t([4 * E, E], bound));
          this.tensors.set(`${k}bias_ih_l${l}${dir}`, t([4 * E], bound));
          this.tensors.set(`${k}bias_hh_l${l}${dir}`, t([4 * E], bound));
        }
      }
      // PEFT's head after the LSTM: Linear(2E, 2E) -> ReLU -> Linear(2E, H).
      this.mlp = [[2 * E, 2 * E], [H, 2 * E]];
    } else {
      // PEFT's MLP head: Linear(H, E) -> ReLU -> Linear(E, E) -> ReLU -> Linear(E, H).
      this.mlp = [[E, H], [E, E], [H, E]];
    }
    this.mlp.forEach(([o, i], k) => {
      this.tensors.set(`${this.prefix}.mlp_head.${2 * k}.weight`, t([o, i], 1 / Math.sqrt(i)));
      this.tensors.set(`${this.prefix}.mlp_head.${2 * k}.bias`, t([o], 1 / Math.sqrt(i)));
    });
  }

  private prompt(ctx: HookContext): Value {
    const emb = ctx.bind(`${this.prefix}.embedding.weight`);
    if (this.frozenPrompt) return emb;
    let h = emb;
    if (this.config.encoder_reparameterization_type === "LSTM") {
      for (let l = 0; l < this.config.encoder_num_layers; l++) {
        if (l > 0) h = dropout(h, this.config.encoder_dropout, ctx.training);
        const x = h;
        const dir = (suffix: string, reverse: boolean) => lstmDirection(x, (w) => ctx.bind(`${this.prefix}.lstm_head.${w}_l${l}${suffix}`), this.virtualTokens, this.config.encoder_hidden_size, reverse);
        h = concat([dir("", false), dir("_reverse", true)], 1);
      }
    }
    const last = this.mlp.length - 1;
    this.mlp.forEach((_, k) => {
      h = linear(h, ctx.bind(`${this.prefix}.mlp_head.${2 * k}.weight`), ctx.bind(`${this.prefix}.mlp_head.${2 * k}.bias`));
      if (k < last) h = relu(h);
    });
    return h;
  }

  hooks(ctx: HookContext) {
    return {
      inputEmbeddings: (h: { embeds: Value }) => prependPrompt(h.embeds, this.prompt(ctx), this.virtualTokens, ctx.rowGate),
    };
  }

  /** PEFT saves the encoder's output, so the file is the same as for prompt tuning. */
  stateKeys(): Map<string, string> {
    return new Map([["prompt_embeddings", `${this.prefix}.embedding.weight`]]);
  }

  savedTensor(peftKey: string): Tensor | undefined {
    return peftKey === "prompt_embeddings" ? this.encoderOutput() : undefined;
  }

  /** The encoder's output [n, H], computed on the host. */
  private encoderOutput(): Tensor {
    if (this.frozenPrompt) return this.tensors.get(`${this.prefix}.embedding.weight`)!;
    const T = (k: string) => this.tensors.get(`${this.prefix}.${k}`)!.data as Float32Array;
    const n = this.virtualTokens;
    let h = Float32Array.from(T("embedding.weight"));
    let width = this.config.token_dim;
    if (this.config.encoder_reparameterization_type === "LSTM") {
      const E = this.config.encoder_hidden_size;
      for (let l = 0; l < this.config.encoder_num_layers; l++) {
        const out = new Float32Array(n * 2 * E);
        for (const [d, suffix] of [[0, ""], [1, "_reverse"]] as const) {
          const W = (w: string) => T(`lstm_head.${w}_l${l}${suffix}`);
          const hs = lstmHost(h, width, W("weight_ih"), W("weight_hh"), W("bias_ih"), W("bias_hh"), n, E, d === 1);
          for (let t = 0; t < n; t++) out.set(hs.subarray(t * E, (t + 1) * E), t * 2 * E + d * E);
        }
        h = out;
        width = 2 * E;
      }
    }
    this.mlp.forEach(([O], k) => {
      const W = T(`mlp_head.${2 * k}.weight`);
      const b = T(`mlp_head.${2 * k}.bias`);
      const out = new Float32Array(n * O);
      for (let t = 0; t < n; t++) {
        for (let o = 0; o < O; o++) {
          let s = b[o]!;
          for (let i = 0; i < width; i++) s += W[o * width + i]! * h[t * width + i]!;
          out[t * O + o] = k < this.mlp.length - 1 ? Math.max(0, s) : s;
        }
      }
      h = out;
      width = O;
    });
    return { dtype: "float32", shape: [n, this.config.token_dim], data: h };
  }

  /** The file holds the encoder's output: it is used as is, and the encoder is dropped (PEFT's inference mode). */
  beforeLoad(): void {
    this.frozenPrompt = true;
    for (const k of [...this.tensors.keys()]) if (k.startsWith(`${this.prefix}.`) && k !== `${this.prefix}.embedding.weight`) this.tensors.delete(k);
  }
}

/** One direction of an LSTM layer over a [n, in] sequence (torch's gate order i, f, g, o) -> [n, E]. */
function lstmDirection(x: Value, w: (name: string) => Value, n: number, E: number, reverse: boolean): Value {
  const projected = linear(x, w("weight_ih"), w("bias_ih")); // every step's input projection at once
  let h: Value = x.graph.constant({ dtype: "float32", shape: [1, E], data: new Float32Array(E) });
  let c: Value = h;
  const outputs = new Array<Value>(n);
  for (let s = 0; s < n; s++) {
    const t = reverse ? n - 1 - s : s;
    const gates = add(slice(projected, [t], [t + 1], [0]), linear(h, w("weight_hh"), w("bias_hh")));
    const [i, f, g, o] = split(gates, [E, E, E, E], 1);
    c = add(mul(sigmoid(f!), c), mul(sigmoid(i!), tanh(g!)));
    h = mul(sigmoid(o!), tanh(c));
    outputs[t] = h;
  }
  return concat(outputs, 0);
}

/** The same LSTM direction on the host, for saving the encoder output. */
function lstmHost(x: Float32Array, width: number, Wih: Float32Array, Whh: Float32Array, bih: Float32Array, bhh: Float32Array, n: number, E: number, reverse: boolean): Float32Array {
  const sig = (v: number) => 1 / (1 + Math.exp(-v));
  const out = new Float32Array(n * E);
  let h = new Float32Array(E);
  let c = new Float32Array(E);
  for (let s = 0; s < n; s++) {
    const t = reverse ? n - 1 - s : s;
    const z = new Float64Array(4 * E);
    for (let r = 0; r < 4 * E; r++) {
      let v = bih[r]! + bhh[r]!;
      for (let i = 0; i < width; i++) v += Wih[r * width + i]! * x[t * width + i]!;
      for (let i = 0; i < E; i++) v += Whh[r * E + i]! * h[i]!;
      z[r] = v;
    }
    const nh = new Float32Array(E);
    const nc = new Float32Array(E);
    for (let e = 0; e < E; e++) {
      nc[e] = sig(z[E + e]!) * c[e]! + sig(z[e]!) * Math.tanh(z[2 * E + e]!);
      nh[e] = sig(z[3 * E + e]!) * Math.tanh(nc[e]!);
    }
    h = nh;
    c = nc;
    out.set(h, t * E);
  }
  return out;
}

export const PROMPT_TUNING: TunerDef<PromptTuningConfig> = {
  peftType: "PROMPT_TUNING",
  promptLearning: true,
  ...PROMPT_TUNING_CONFIG,
  create: (model, config, name) => new PromptTuningAdapter(model, PROMPT_TUNING_CONFIG.parseConfig({ ...config }, "prompt tuning config", model), name),
};

export const P_TUNING: TunerDef<PTuningConfig> = {
  peftType: "P_TUNING",
  promptLearning: true,
  ...P_TUNING_CONFIG,
  create: (model, config, name) => new PTuningAdapter(model, P_TUNING_CONFIG.parseConfig({ ...config }, "P-tuning config", model), name),
};
