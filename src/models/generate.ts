// Text generation for causal LMs with a key/value cache: a prefill graph runs the prompt once
// and returns every layer's keys/values; a decode graph then takes one new token per row plus
// the cache, so the prefix is never recomputed. Greedy, temperature, top-k and top-p sampling,
// stop tokens, streaming callbacks, batched prompts with left padding. A PeftModel generates with
// its active adapters; a prefix adapter's virtual tokens come before every row's positions.
import { int64, type Tensor } from "../ir/tensor.js";
import { seededRandom } from "../ir/random.js";
import { compile, type CompiledGraph, type SessionOptions } from "../runtime/session.js";
import { type ModelHooks } from "./hooks.js";
import { type GraphOptions, type PretrainedModel } from "./pretrained.js";
import { type ModelGraph } from "./task.js";

type Batch = { input_ids: Tensor<"int64">; attention_mask?: Tensor<"int64"> };

/** A model with adapters (a PeftModel): its graphs include the active adapters, its feeds their positions. */
export interface AdaptedModel {
  readonly base: PretrainedModel;
  build(opts: GraphOptions): ModelGraph;
  prepareInputs(batch: Batch): Record<string, Tensor>;
  /** Tokens an input-prompt adapter prepends to the inputs (prompt tuning, P-tuning). */
  readonly virtualTokens: number;
}

export interface GenerateOptions {
  /** Tokens to generate per row (default 32). */
  maxNewTokens?: number;
  /** 0 (default) = greedy; otherwise sample from softmax(logits / temperature). */
  temperature?: number;
  /** Keep only the k most likely tokens when sampling. */
  topK?: number;
  /** Keep the smallest set of tokens whose probability reaches p when sampling. */
  topP?: number;
  /** Token ids that end a row (default: the model's eos_token_id). */
  stopTokens?: readonly number[];
  /** Seed for sampling. */
  seed?: number;
  /** Called for each new token of each row, as it is produced. */
  onToken?: (token: number, row: number) => void;
}

export interface GenerationResult {
  /** New token ids per row (stop token included when one was produced). */
  tokens: number[][];
  /** Decoded new text per row (special tokens skipped), when the model has a tokenizer. */
  texts: string[];
}

/**
 * Compiled prefill + decode graphs for one causal LM.
 *
 * @example
 *   const model = await loadModel("./gpt2-tiny", { task: "causal-lm" });
 *   const gen = await Generator.create(model);
 *   const { texts } = await gen.generate(["the cat"], { maxNewTokens: 8, onToken: (t) => process.stdout.write(".") });
 *   // With an adapter (not merged: prefix tuning, or LoRA kept separate).
 *   const tuned = await Generator.create(await PeftModel.load(model, "./my-prefix-adapter"));
 */
export class Generator {
  private constructor(
    readonly model: PretrainedModel,
    private readonly prefill: CompiledGraph,
    private readonly decode: CompiledGraph,
    private readonly layers: number,
    private readonly prepare: (batch: Batch) => Record<string, Tensor>,
  ) {}

  /** `hooks` apply to a plain model; a PeftModel brings its active adapters' own. */
  static async create(model: PretrainedModel | AdaptedModel, opts: { session?: SessionOptions; hooks?: ModelHooks } = {}): Promise<Generator> {
    const adapted = "base" in model ? model : undefined;
    const lm = adapted ? adapted.base : (model as PretrainedModel);
    if (lm.task !== "causal-lm") throw new Error(`Generator needs a model loaded with task "causal-lm", got "${lm.task}"`);
    // The decode step feeds one token and the cache; a prompt prepended to the inputs is not in it.
    if (adapted && adapted.virtualTokens > 0) throw new Error("Generator: adapters that prepend a prompt to the input embeddings (PROMPT_TUNING, P_TUNING) are not supported in cached generation; prefix tuning and weight methods are");
    const graphOutputs = (withPast: boolean) => {
      const built = model.build({ hooks: opts.hooks, decoder: { withPast, returnPresent: true, lastTokenLogits: true } });
      return { logits: built.outputs.logits!, ...built.present };
    };
    const prefill = await compile(graphOutputs(false), opts.session);
    const decode = await compile(graphOutputs(true), opts.session);
    return new Generator(lm, prefill, decode, lm.config.layers, (batch) => model.prepareInputs(batch));
  }

  /** Generate from text prompts (tokenized with the model's tokenizer) or token id lists. */
  async generate(prompts: readonly string[] | readonly (readonly number[])[], opts: GenerateOptions = {}): Promise<GenerationResult> {
    const { maxNewTokens = 32, temperature = 0, topK, topP, seed = 0 } = opts;
    const cfg = this.model.config;
    const eos = cfg.eosTokenId;
    const stop = new Set(opts.stopTokens ?? (eos === undefined ? [] : Array.isArray(eos) ? eos : [eos as number]));
    const rows = prompts.map((p) => (typeof p === "string" ? this.tokenizer().encode(p).ids : [...p]));
    if (rows.some((r) => r.length === 0)) throw new RangeError("generate: every prompt needs at least one token");
    const width = Math.max(...rows.map((r) => r.length));
    const pad = cfg.padTokenId ?? this.model.tokenizer?.padTokenId ?? (typeof eos === "number" ? eos : 0);
    // Left padding keeps every row's last prompt token in the last column.
    const ids = rows.flatMap((r) => [...Array<number>(width - r.length).fill(pad), ...r]);
    let mask = rows.flatMap((r) => [...Array<number>(width - r.length).fill(0), ...r.map(() => 1)]);
    const batch = rows.length;
    const inputs = this.prepare({ input_ids: int64([batch, width], ids), attention_mask: int64([batch, width], mask) });
    let out = await this.prefill.run(inputs);
    // Next position per row: after its last prompt token (itself after a prefix adapter's virtual
    // tokens, as transformers continues cache_position / past_length after PEFT's prefix). Left
    // padding does not count, as PEFT >= 0.19 does it (transformers' positions from the mask, plus
    // num_virtual_tokens); PEFT 0.14 dropped those positions, so its left-padded rows counted it.
    const prefillPositions = inputs.position_ids!.data as BigInt64Array;
    const positions = rows.map((_, r) => Number(prefillPositions[r * width + width - 1]!) + 1);
    const rand = seededRandom(seed);
    const tokens: number[][] = rows.map(() => []);
    const done = rows.map(() => false);
    for (let step = 0; step < maxNewTokens; step++) {
      const logits = out.logits!.data as Float32Array;
      const vocab = logits.length / batch;
      const next = rows.map((_, r) => {
        if (done[r]) return pad;
        const t = pick(logits.subarray(r * vocab, (r + 1) * vocab), temperature, topK, topP, rand);
        tokens[r]!.push(t);
        opts.onToken?.(t, r);
        if (stop.has(t)) done[r] = true;
        return t;
      });
      if (done.every(Boolean) || step === maxNewTokens - 1) break;
      mask = rows.flatMap((_, r) => [...mask.slice(r * (mask.length / batch), (r + 1) * (mask.length / batch)), 1]);
      const total = mask.length / batch;
      const feeds: Record<string, Tensor> = {
        input_ids: int64([batch, 1], next),
        attention_mask: int64([batch, total], mask),
        position_ids: int64([batch, 1], positions.map((p) => p)),
      };
      if (cfg.family !== "llama" && Math.max(...positions) >= cfg.maxPositions) break; // learned positions end here
      positions.forEach((p, r) => (positions[r] = p + 1));
      for (let i = 0; i < this.layers; i++) {
        feeds[`past_key_values.${i}.key`] = out[`present.${i}.key`]!;
        feeds[`past_key_values.${i}.value`] = out[`present.${i}.value`]!;
      }
      out = await this.decode.run(feeds);
    }
    const texts = this.model.tokenizer ? tokens.map((t) => this.model.tokenizer!.decode(t, { skipSpecialTokens: true })) : [];
    return { tokens, texts };
  }

  private tokenizer() {
    if (!this.model.tokenizer) throw new Error(`${this.model.dir} has no tokenizer.json; pass token ids instead of text`);
    return this.model.tokenizer;
  }

  async release(): Promise<void> {
    await this.prefill.release();
    await this.decode.release();
  }
}

/** Choose the next token: argmax, or a sample after temperature, top-k and top-p filtering. */
export function pick(logits: Float32Array, temperature: number, topK: number | undefined, topP: number | undefined, rand: () => number): number {
  if (!temperature) {
    let best = 0;
    for (let i = 1; i < logits.length; i++) if (logits[i]! > logits[best]!) best = i;
    return best;
  }
  let order = [...logits.keys()].sort((a, b) => logits[b]! - logits[a]!);
  if (topK !== undefined && topK > 0) order = order.slice(0, topK);
  const maxLogit = logits[order[0]!]!;
  let probs = order.map((i) => Math.exp((logits[i]! - maxLogit) / temperature));
  let sum = probs.reduce((a, b) => a + b, 0);
  probs = probs.map((p) => p / sum);
  if (topP !== undefined && topP < 1) {
    let acc = 0;
    let keep = 0;
    while (keep < probs.length && acc < topP) acc += probs[keep++]!;
    order = order.slice(0, keep);
    probs = probs.slice(0, keep);
    sum = probs.reduce((a, b) => a + b, 0);
    probs = probs.map((p) => p / sum);
  }
  let u = rand();
  for (let i = 0; i < probs.length; i++) {
    u -= probs[i]!;
    if (u <= 0) return order[i]!;
  }
  return order[order.length - 1]!;
}
