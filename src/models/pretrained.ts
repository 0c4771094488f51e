// Loading a Hugging Face checkpoint directory (or hub repo id, through the download cache) and
// building its graphs for a task.
import { copyFile, join, readFile, stat } from "../platform/host.js";
import { float32ToFloat16Bits, toFloat32 } from "../io/half.js";
import { loadSafetensorsWeights, writeFileAtomic, writeSafetensors } from "../io/safetensors.js";
import { resolveCheckpoint, type HubOptions } from "../io/hub.js";
import { Tokenizer } from "../io/tokenizer.js";
import { type Tensor } from "../ir/tensor.js";
import { type SessionOptions } from "../runtime/session.js";
import { buildBert, BERT_TASKS } from "./bert.js";
import { CheckpointError, dequantizeStorage, ModelBuilder, type BuildOptions, type Int4Storage, type QuantizedStorage, type WeightSource } from "./builder.js";
import { type QuantizeKind } from "../ir/quantize.js";
import { ConfigError, parseModelConfig, type ModelConfig } from "./config.js";
import { type DecoderOptions } from "./decoder.js";
import { buildDistilBert, DISTILBERT_TASKS } from "./distilbert.js";
import { buildGpt2, GPT2_TASKS } from "./gpt2.js";
import { buildLlama, LLAMA_TASKS } from "./llama.js";
import { ForwardSessions, type ForwardInputs, type ForwardOutputs } from "./forward.js";
import { architectureName, assertTask, taskFromArchitectures, TaskError, type ModelGraph, type Task } from "./task.js";

export interface LoadOptions {
  /** Hub download options when `dirOrRepo` is a repo id. */
  hub?: HubOptions;
  /**
   * The head to build. Default: the one config.json's `architectures` names, as transformers'
   * Auto classes read it (`BertForSequenceClassification` -> "sequence-classification",
   * `GPT2LMHeadModel` / `*ForCausalLM` -> "causal-lm", `BertModel` or no field -> "base").
   * Giving it is like choosing `AutoModelFor<Task>`.
   */
  task?: Task;
  /** Skip loading the tokenizer even when the checkpoint has one. */
  noTokenizer?: boolean;
  /**
   * Store the frozen Linear weights quantized ("int8": per-output-channel symmetric, activations
   * quantized on the fly); embeddings, norms, heads and trainable tensors stay float32. The
   * float32 data of the weights quantized is not kept (see `PretrainedModel.weight`).
   */
  quantize?: QuantizeKind;
}

export interface GraphOptions extends BuildOptions {
  /** Add the task's loss and its label inputs. */
  withLoss?: boolean;
  /** Decoder variants for generation (KV cache). */
  decoder?: DecoderOptions;
  /**
   * Encoders: compute position ids inside the graph and take only the inputs transformers.js
   * feeds (export); `offset`: positions a prefix adapter occupies before the tokens.
   */
  positionsInGraph?: { offset: number };
}

/** Hook points of a model (see PretrainedModel.modules). */
export interface ModuleInventory {
  linear: { path: string; layout: "linear" | "conv1d"; outFeatures: number; inFeatures: number }[];
  sublayers: { path: string; layer: number; kind: "attention" | "ffn"; hidden: number }[];
  attention: { path: string; layer: number }[];
  embeddings: { path: string; hidden: number; vocab: number } | undefined;
  layers: number;
  /** Every parameter the task graph uses (HF names) and its shape. */
  params: Map<string, readonly number[]>;
}

/** The base-model prefix of task-model parameter names, where it is not `<model_type>.`. */
const BASE_PREFIX: Partial<Record<string, string>> = { gpt2: "transformer.", llama: "model." };

const TASKS_BY_FAMILY = { bert: BERT_TASKS, distilbert: DISTILBERT_TASKS, gpt2: GPT2_TASKS, llama: LLAMA_TASKS } as const;

/** A pretrained checkpoint: config, weights (float32) and tokenizer; builds graphs on demand. */
export class PretrainedModel {
  constructor(
    readonly dir: string,
    readonly config: ModelConfig,
    readonly weights: WeightSource,
    readonly tokenizer: Tokenizer | undefined,
    readonly task: Task,
  ) {
    assertTask(task, TASKS_BY_FAMILY[config.family], config.modelType);
  }

  /** Built from a config alone: every weight is freshly initialized (pretraining). */
  fromScratch = false;

  /** Frozen Linear weights are built quantized (loadModel's `quantize`); undefined: float32. */
  quantize: QuantizeKind | undefined;
  /** Their quantized storage, made on first build and shared by later builds. */
  readonly quantizedWeights = new Map<string, QuantizedStorage>();
  readonly quantized4Weights = new Map<string, Int4Storage>();

  /** The model as the user named it (hub id or the path given to loadModel); adapters record it as base_model_name_or_path. */
  nameOrPath: string | undefined;

  /**
   * A randomly initialized model from a config object (transformers' `from_config`), e.g. to
   * pretrain. `dir` is where it will be saved.
   */
  static fromConfig(config: Record<string, unknown>, tokenizer: Tokenizer | undefined, task: Task, dir: string): PretrainedModel {
    const m = new PretrainedModel(dir, parseModelConfig(config, `${dir}/config.json`), { names: () => [], has: () => false, get: (n) => { throw new CheckpointError(`no weight ${n}`); } }, tokenizer, task);
    m.fromScratch = true;
    return m;
  }

  /**
   * Write the model as a Hugging Face checkpoint: config.json, model.safetensors (float32, or
   * float16 to halve the size) and the tokenizer files.
   */
  async save(dir: string, opts: { dtype?: "float32" | "float16"; tokenizerFiles?: Record<string, unknown> } = {}): Promise<void> {
    const tensors = new Map<string, Tensor>();
    for (const name of this.modules().params.keys()) {
      const t = toFloat32(this.weight(name));
      tensors.set(name, opts.dtype === "float16" ? { dtype: "float16", shape: t.shape, data: Uint16Array.from(t.data, float32ToFloat16Bits) } : t);
    }
    await writeSafetensors(join(dir, "model.safetensors"), tensors, { format: "pt" });
    await writeFileAtomic(join(dir, "config.json"), JSON.stringify({ ...this.config.raw, architectures: [architectureName(this.config.modelType, this.task)], torch_dtype: opts.dtype ?? "float32" }, null, 2));
    for (const [file, content] of Object.entries(opts.tokenizerFiles ?? {})) await writeFileAtomic(join(dir, file), JSON.stringify(content, null, 1));
    if (!opts.tokenizerFiles && this.dir !== dir) {
      for (const f of ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]) await copyFile(join(this.dir, f), join(dir, f)).catch(() => undefined);
    }
  }

  /** Head weights the checkpoint lacks, initialized on first build and shared by later builds. */
  readonly freshWeights = new Map<string, Tensor>();

  /**
   * A base parameter by name: from the checkpoint, or a freshly initialized head. On a quantized
   * model (`loadModel`'s `quantize`) the frozen Linear weights it quantizes are not kept in
   * float32: for those this answers the dequantized values the graphs compute with (as
   * `computedWeight`), made anew on each call. So that the answer does not depend on whether a
   * graph was built yet, the first call on a quantized model builds the graph once (`modules()`),
   * which quantizes them.
   */
  weight(name: string): Tensor {
    if (this.quantize && !this.fromScratch) this.modules();
    const fresh = this.freshWeights.get(name);
    if (fresh) return fresh;
    // Task models name parameters with the base-model prefix; base checkpoints do not (and back).
    const prefix = BASE_PREFIX[this.config.family] ?? `${this.config.modelType}.`;
    const key = [name, name.startsWith(prefix) ? name.slice(prefix.length) : prefix + name].find((k) => this.weights.has(k));
    if (key === undefined) throw new CheckpointError(`${this.dir}: no parameter "${name}"`);
    return this.weights.get(key);
  }

  /**
   * A base parameter as the graphs compute with it: dequantized where the model stores it
   * quantized (a merge into a quantized base starts from these values), else `weight(name)`.
   */
  computedWeight(name: string): Tensor {
    const stored = this.quantized4Weights.get(name) ?? this.quantizedWeights.get(name);
    return stored ? dequantizeStorage(stored) : this.weight(name);
  }

  /**
   * The longest input the learned position embeddings allow (RoBERTa's start after the padding
   * index); Infinity for rotary (Llama-family) models.
   */
  get maxInputLength(): number {
    const c = this.config;
    if (c.family === "llama") return Infinity;
    return c.modelType === "roberta" ? c.maxPositions - (c.padTokenId ?? 1) - 1 : c.maxPositions;
  }

  /** Tasks this architecture supports. */
  get supportedTasks(): readonly Task[] {
    return TASKS_BY_FAMILY[this.config.family];
  }

  /** Compiled forward graphs (see `forward`). */
  readonly sessions = new ForwardSessions(this);

  /**
   * Run the model once, like transformers' `model(**inputs)`: the head's named outputs as shaped
   * tensors. The graph is compiled on the first call and its session reused (`releaseSessions()`
   * frees it).
   *
   * @example
   *   const model = await loadModel("./gpt2-tiny"); // GPT2LMHeadModel: the LM head
   *   const { logits } = await model.forward({ input_ids: [[257, 276, 280]] }); // [1, 3, vocab]
   */
  forward(inputs: ForwardInputs, opts?: SessionOptions): Promise<ForwardOutputs> {
    // The graph depends on the head and its size (callers resize classification heads).
    return this.sessions.run(`${this.task} labels=${this.config.numLabels}`, inputs, opts);
  }

  /** Free the sessions `forward` compiled. */
  releaseSessions(): Promise<void> {
    return this.sessions.release();
  }

  /**
   * Build the forward graph (plus loss when `withLoss`). Parameters are bound to the loaded
   * weights without copying; build as often as needed (train / eval / decode graphs).
   */
  build(opts: GraphOptions = {}): ModelGraph {
    const b = new ModelBuilder(this.weights, this.dir, { initializeMissing: this.fromScratch, quantize: this.quantize, ...opts }, this.freshWeights, this.quantizedWeights, this.quantized4Weights);
    const initRange = this.config.raw.initializer_range;
    if (typeof initRange === "number") b.initStd = initRange;
    const withLoss = opts.withLoss ?? false;
    switch (this.config.family) {
      case "bert":
        return buildBert(b, this.config, this.task, withLoss, opts.positionsInGraph);
      case "distilbert":
        return buildDistilBert(b, this.config, this.task, withLoss, opts.positionsInGraph);
      case "gpt2":
        return buildGpt2(b, this.config, this.task, withLoss, opts.decoder);
      case "llama":
        return buildLlama(b, this.config, this.task, withLoss, opts.decoder);
    }
  }

  /**
   * The model's hook points, found by building the graph once with recording hooks: every
   * linear layer (HF module path, layout and [out, in] sizes), sublayer output, attention
   * module and the input embeddings.
   */
  modules(): ModuleInventory {
    if (this.inventory) return this.inventory;
    const inv: ModuleInventory = { linear: [], sublayers: [], attention: [], embeddings: undefined, layers: this.config.layers, params: new Map() };
    const built = this.build({
      hooks: {
        linear: (h) => {
          const [a, b] = h.weight.shape as [number, number];
          inv.linear.push({ path: h.path, layout: h.layout, outFeatures: h.layout === "linear" ? a : b, inFeatures: h.layout === "linear" ? b : a });
          return undefined;
        },
        sublayerOutput: (h) => void inv.sublayers.push({ path: h.path, layer: h.layer, kind: h.kind, hidden: h.y.shape[h.y.rank - 1] as number }),
        keyValue: (h) => void inv.attention.push({ path: h.path, layer: h.layer }),
        inputEmbeddings: (h) => void (inv.embeddings = { path: h.path, hidden: h.embeds.shape[2] as number, vocab: h.weight.shape[0] as number }),
      },
    });
    for (const [name, p] of built.graph.params) inv.params.set(name, p.shape);
    return (this.inventory = inv);
  }
  private inventory: ModuleInventory | undefined;

  /**
   * Model inputs for a tokenized batch: input_ids, attention_mask, token_type_ids (when the
   * model has them) and position ids; checks token ids against the vocabulary and the length
   * against the position table, naming the row and position.
   */
  prepareInputs(batch: { input_ids: Tensor<"int64">; attention_mask?: Tensor<"int64">; token_type_ids?: Tensor<"int64"> }, pastLength = 0): Record<string, Tensor> {
    const ids = batch.input_ids;
    const [rows, seq] = ids.shape as [number, number];
    const vocab = this.config.vocabSize;
    ids.data.forEach((id, i) => {
      if (id < 0n || id >= BigInt(vocab)) throw new RangeError(`input_ids[${Math.floor(i / seq)}][${i % seq}] = ${id} is outside the vocabulary (size ${vocab}) of ${this.dir}`);
    });
    const mask = batch.attention_mask ?? { dtype: "int64" as const, shape: [rows, seq], data: new BigInt64Array(rows * seq).fill(1n) };
    const positions = this.positionIds(mask, pastLength);
    if (this.config.family !== "llama") {
      let max = 0n;
      for (const p of positions.data) if (p > max) max = p;
      if (max >= BigInt(this.config.maxPositions)) {
        throw new RangeError(`sequence of ${seq + pastLength} tokens is longer than ${this.config.modelType}'s ${this.config.maxPositions} positions (max_position_embeddings in ${this.dir}/config.json); truncate the input`);
      }
    }
    const feeds: Record<string, Tensor> = { input_ids: ids, attention_mask: mask, position_ids: positions };
    const types = this.config.typeVocabSize;
    if (types > 0) {
      // RoBERTa-style models (one type embedding) take no token types: their tokenizers mark a
      // pair's second text, but transformers never feeds that to them.
      const given = types > 1 ? batch.token_type_ids : undefined;
      given?.data.forEach((t, i) => {
        if (t < 0n || t >= BigInt(types)) throw new RangeError(`token_type_ids[${Math.floor(i / seq)}][${i % seq}] = ${t} is outside type_vocab_size ${types} of ${this.dir}`);
      });
      feeds.token_type_ids = given ?? { dtype: "int64", shape: [rows, seq], data: new BigInt64Array(rows * seq) };
    }
    return feeds;
  }

  /**
   * Default position ids for a batch: 0..n-1 per row (RoBERTa: after its padding offset; left-padded
   * rows start at their first token). `pastLength` cached positions (a KV cache, or a prefix
   * adapter's virtual tokens) come first, as in transformers: RoBERTa's rule is
   * create_position_ids_from_input_ids(ids, padding_idx, past_key_values_length).
   */
  positionIds(attentionMask: Tensor<"int64">, pastLength = 0): Tensor<"int64"> {
    const [batch, seq] = attentionMask.shape as [number, number];
    const out = new BigInt64Array(batch * seq);
    const roberta = this.config.modelType === "roberta";
    const pad = this.config.padTokenId ?? 1;
    for (let b = 0; b < batch; b++) {
      let pos = 0;
      for (let s = 0; s < seq; s++) {
        const on = attentionMask.data[b * seq + s] !== 0n;
        if (roberta) out[b * seq + s] = BigInt(on ? pad + 1 + pastLength + pos : pad);
        else out[b * seq + s] = BigInt(on ? pastLength + pos : this.config.family === "llama" || this.config.family === "gpt2" ? 1 : pastLength + s);
        if (on) pos++;
      }
    }
    return { dtype: "int64", shape: [batch, seq], data: out };
  }
}

/** config.json files are a few KB; anything near this is not one (and is not read into memory). */
const MAX_CONFIG_BYTES = 16 * 2 ** 20;

async function readJson(path: string): Promise<unknown> {
  let text: string;
  try {
    const { size } = await stat(path);
    if (size > MAX_CONFIG_BYTES) throw new Error(`${size} bytes, more than a config file holds (at most ${MAX_CONFIG_BYTES})`);
    text = await readFile(path, "utf8");
  } catch (e) {
    throw new ConfigError(`${path}: ${(e as NodeJS.ErrnoException).code === "ENOENT" ? "not found" : (e as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ConfigError(`${path}: invalid JSON (${(e as Error).message})`);
  }
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/**
 * Weights as float32 (f16/bf16/f64 converted once, on first use). `release(n, replacement)`
 * drops the cached tensor and the file's data for `n`; `get(n)` then answers `replacement()`.
 */
function float32Weights(source: { names(): string[]; get(name: string): Tensor; release?(name: string): void }): WeightSource {
  const names = new Set(source.names());
  const cache = new Map<string, Tensor>();
  const replaced = new Map<string, () => Tensor>();
  return {
    names: () => [...names],
    has: (n) => names.has(n),
    release: (n, replacement) => {
      if (!names.has(n) || replaced.has(n)) return;
      cache.delete(n);
      source.release?.(n);
      replaced.set(n, replacement);
    },
    get: (n) => {
      const replacement = replaced.get(n);
      if (replacement) return replacement();
      let t = cache.get(n);
      if (!t) {
        const raw = source.get(n);
        const isFloat = raw.dtype.startsWith("float") || raw.dtype === "bfloat16";
        t = isFloat && raw.dtype !== "float32" ? toFloat32(raw) : raw;
        cache.set(n, t);
      }
      return t;
    },
  };
}

/** The head config.json's `architectures` declares, checked against what peftjs builds for the family. */
function taskFromConfig(config: ModelConfig, source: string): Task {
  const task = taskFromArchitectures(config.raw, source);
  const supported = TASKS_BY_FAMILY[config.family];
  if (!supported.includes(task)) {
    throw new TaskError(`${source}: architectures[0] "${(config.raw.architectures as string[])[0]}" has a ${task} head, which peftjs does not build for ${config.modelType} (it builds ${supported.join(", ")}); choose one with loadModel(dir, { task })`);
  }
  return task;
}

/**
 * Load a checkpoint in the Hugging Face layout: config.json, model.safetensors (or a sharded
 * index) and, when present, tokenizer.json. `dirOrRepo` is a local directory or a hub repo id
 * (downloaded once into the cache).
 *
 * @example
 *   const model = await loadModel("./bert-tiny"); // the head its config.json's architectures names
 *   const { logits } = await model.forward(model.tokenizer!.encodeBatch(["the cat sat"]));
 *   const classifier = await loadModel("./bert-tiny", { task: "sequence-classification" });
 *   const { graph, inputs, outputs } = classifier.build({ withLoss: true, training: true });
 */
export async function loadModel(dirOrRepo: string, opts: LoadOptions = {}): Promise<PretrainedModel> {
  const dir = await resolveCheckpoint(dirOrRepo, opts.hub);
  const config = parseModelConfig(await readJson(join(dir, "config.json")), join(dir, "config.json"));
  const task = opts.task ?? taskFromConfig(config, join(dir, "config.json"));
  // Quantized: a buffer per tensor, so the float32 data of each weight quantized can be freed.
  const weights = float32Weights(await loadSafetensorsWeights(dir, { separate: opts.quantize !== undefined }));
  const tokenizer = !opts.noTokenizer && (await exists(join(dir, "tokenizer.json"))) ? await Tokenizer.fromDir(dir) : undefined;
  const model = new PretrainedModel(dir, config, weights, tokenizer, task);
  model.nameOrPath = dirOrRepo;
  model.quantize = opts.quantize;
  return model;
}
