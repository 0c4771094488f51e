// Text generation for the completion endpoints. Plain LoRA adapters and the base model share ONE
// unmerged base: their requests join a running batch between decode steps, each row reading its
// own adapter's factors (continuous-batch.ts over stacked-lora.ts). Other methods (prefix tuning,
// DoRA, IA3, ...) get a Generator of their own, built as `peftjs generate` builds it (merged when
// the method merges), and generate one request at a time. Greedy output is `peftjs generate`'s.
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { Template } from "@huggingface/jinja";
import { Generator } from "../models/generate.js";
import { type PretrainedModel } from "../models/pretrained.js";
import { PeftModel } from "../peft/peft-model.js";
import { type SessionOptions } from "../runtime/session.js";
import { type AdapterLoader } from "./adapter-registry.js";
import { ContinuousBatcher, type BatcherOptions } from "./continuous-batch.js";
import { Cancelled, ServeError } from "./errors.js";
import { isStackable, LoraStack } from "./stacked-lora.js";

export interface DecoderAdapter {
  readonly internalName: string;
  /** Plain LoRA: its rows join the shared running batch. */
  readonly batched: boolean;
  /** Any other method: its own generator (requests run one at a time). */
  readonly generator?: Generator;
}

export interface Sampling {
  maxTokens: number;
  temperature: number;
  topP?: number;
  stop: readonly string[];
  seed: number;
  n: number;
}

export interface Completion {
  texts: string[];
  finishReasons: ("stop" | "length")[];
  promptTokens: number;
  completionTokens: number;
}

export interface CompletionHooks {
  /** New text of choice `row` (rows of prompt p are p * n ... p * n + n - 1). */
  onText?: (row: number, delta: string) => void;
  /** Asked between tokens: an error ends the request with it (a disconnected client, a passed deadline). */
  shouldStop?: () => Error | undefined;
}

/** The scheduler group of requests that join the running batch. */
export const BATCHED = "batched";

/** Ends a lone generation early once every row has stopped (Generator only stops rows at stop tokens). */
class AllStopped extends Error {}

/** One prompt's `n` rows as text: stop strings, the eos token, streaming deltas, counts. */
class RowsText {
  readonly tokens: number[][];
  readonly texts: string[];
  readonly finish: ("stop" | "length" | undefined)[];
  counted = 0;
  private readonly shown: string[];

  constructor(
    private readonly engine: DecoderEngine,
    private readonly s: Sampling,
    private readonly onText: ((row: number, delta: string) => void) | undefined,
  ) {
    this.tokens = Array.from({ length: s.n }, () => []);
    this.texts = Array<string>(s.n).fill("");
    this.shown = Array<string>(s.n).fill("");
    this.finish = Array(s.n).fill(undefined);
  }

  /** Row `row`'s next token; true when the row has finished. */
  add(row: number, t: number): boolean {
    if (this.finish[row]) return true;
    this.counted++;
    this.tokens[row]!.push(t);
    let text = this.engine.base.tokenizer!.decode(this.tokens[row]!, { skipSpecialTokens: true });
    const cut = this.s.stop.map((x) => text.indexOf(x)).filter((i) => i >= 0);
    if (cut.length) {
      text = text.slice(0, Math.min(...cut));
      this.finish[row] = "stop";
    } else if (this.engine.stopIds.has(t)) this.finish[row] = "stop";
    this.texts[row] = text;
    // A token may end inside a multi-byte character: stream up to the last whole one.
    this.emit(row, text.replace(/\uFFFD+$/, ""));
    return this.finish[row] !== undefined;
  }

  get allFinished(): boolean {
    return this.finish.every(Boolean);
  }

  result(promptTokens: number): Completion {
    this.texts.forEach((t, row) => this.emit(row, t));
    return { texts: this.texts, finishReasons: this.finish.map((f) => f ?? "length"), promptTokens, completionTokens: this.counted };
  }

  private emit(row: number, upTo: string): void {
    if (upTo.length > this.shown[row]!.length && upTo.startsWith(this.shown[row]!)) {
      this.onText?.(row, upTo.slice(this.shown[row]!.length));
      this.shown[row] = upTo;
    }
  }
}

export class DecoderEngine implements AdapterLoader<DecoderAdapter> {
  readonly stopIds: ReadonlySet<number>;
  private readonly stack: LoraStack;
  readonly batcher: ContinuousBatcher;

  private constructor(
    readonly base: PretrainedModel,
    private readonly chatTemplate: { template: Template; special: Record<string, string> } | undefined,
    private readonly session: SessionOptions | undefined,
    batching: Omit<BatcherOptions, "session">,
  ) {
    const eos = base.config.eosTokenId;
    this.stopIds = new Set(eos === undefined ? [] : Array.isArray(eos) ? eos : [eos as number]);
    this.stack = new LoraStack(base);
    this.batcher = new ContinuousBatcher(base, this.stack, { ...batching, session });
  }

  static async create(base: PretrainedModel, opts: Omit<BatcherOptions, "session"> & { threads?: number }): Promise<DecoderEngine> {
    // Sessions on this thread, unlike the encoder's: every decode step feeds the whole KV cache,
    // and copying it to a worker thread and back doubled the step (GPT-2-small, 32 rows, 40
    // cached tokens: 274-311 vs 134-178 ms). Keeping the cache inside a worker is the way to both.
    const engine = new DecoderEngine(base, await readChatTemplate(base.dir), opts.threads ? { threads: opts.threads } : undefined, opts);
    await engine.batcher.prepare();
    return engine;
  }

  get hasChatTemplate(): boolean {
    return this.chatTemplate !== undefined;
  }

  async load(path: string, internalName: string): Promise<{ value: DecoderAdapter; bytes: number }> {
    const peft = await PeftModel.load(this.base, path);
    let bytes = 0;
    for (const a of peft.adapters.values()) for (const t of a.tensors.values()) bytes += t.data.byteLength;
    const [only, ...more] = peft.adapters.values();
    if (only && more.length === 0 && isStackable(only)) {
      this.stack.add(internalName, only);
      // A newly adapted layer means new graphs: compile them now, not in the way of a running batch.
      await this.batcher.prepare();
      return { value: { internalName, batched: true }, bytes };
    }
    // As `peftjs generate`: merged when the method merges (no extra work per token), unless the
    // base is quantized (a merge would re-quantize it).
    const lm = !peft.base.quantize && [...peft.adapters.values()].every((a) => a.mergedWeights) ? peft.mergeAndUnload() : peft;
    return { value: { internalName, batched: false, generator: await Generator.create(lm, { session: this.session }) }, bytes };
  }

  async unload(value: DecoderAdapter): Promise<void> {
    // Only idle adapters are unloaded (the registry waits for their requests), so no row reads the slot.
    if (value.batched) this.stack.remove(value.internalName);
    else await value.generator!.release();
  }

  async release(): Promise<void> {
    await this.batcher.release();
  }

  /** Requests that may share a run: the running batch, or an adapter's own generator. */
  group(adapter: DecoderAdapter | undefined): string {
    return !adapter || adapter.batched ? BATCHED : `alone:${adapter.internalName}`;
  }

  /** The chat messages as the tokenizer's template renders them, ready to generate from. */
  renderChat(messages: readonly { role: string; content: string }[]): string {
    if (!this.chatTemplate) throw new ServeError(400, `the model ${this.base.dir} has no chat template (tokenizer_config.json "chat_template"); use /v1/completions`);
    try {
      return this.chatTemplate.template.render({ messages, add_generation_prompt: true, ...this.chatTemplate.special });
    } catch (e) {
      throw new ServeError(400, `the chat template failed on these messages: ${(e as Error).message}`);
    }
  }

  countTokens(text: string): number {
    return this.base.tokenizer!.encode(text).ids.length;
  }

  /** A prompt's token ids, checked against the model's positions. */
  encode(prompt: string, s: Sampling): number[] {
    const tok = this.base.tokenizer;
    if (!tok) throw new ServeError(400, `the model ${this.base.dir} has no tokenizer.json`);
    const ids = tok.encode(prompt).ids;
    if (ids.length === 0) throw new ServeError(400, "the prompt is empty (it has no tokens)");
    if (ids.length + s.maxTokens > this.base.config.maxPositions && this.base.config.family !== "llama") {
      throw new ServeError(400, `the prompt (${ids.length} tokens) plus max_tokens ${s.maxTokens} exceeds the model's ${this.base.config.maxPositions} positions`);
    }
    return ids;
  }

  /**
   * Generate `s.n` completions of each prompt on `adapter` (undefined: the base model). Batched
   * adapters join the running batch (`admitted` resolves then); others generate here, one prompt
   * after another (`admitted` resolves when they are done).
   */
  start(adapter: DecoderAdapter | undefined, prompts: readonly string[], s: Sampling, hooks: CompletionHooks = {}): { admitted: Promise<void>; done: Promise<Completion[]> } {
    if (adapter && !adapter.batched) {
      const done = (async () => {
        const out: Completion[] = [];
        for (const [p, text] of prompts.entries()) out.push(await this.complete(adapter.generator!, text, s, { ...hooks, onText: hooks.onText && ((row, d) => hooks.onText!(p * s.n + row, d)) }));
        return out;
      })();
      return { admitted: done.then(() => undefined, () => undefined), done };
    }
    let ids: number[][];
    try {
      ids = prompts.map((p) => this.encode(p, s));
    } catch (e) {
      const failed = Promise.reject(e as Error);
      return { admitted: Promise.resolve(), done: failed };
    }
    // One failed prompt ends the request: its other prompts stop too.
    let failure: Error | undefined;
    const groups = ids.map((prompt, p) => {
      const rows = new RowsText(this, s, hooks.onText && ((row, d) => hooks.onText!(p * s.n + row, d)));
      const { admitted, done } = this.batcher.submit({
        prompt,
        rows: s.n,
        adapter: adapter?.internalName,
        maxTokens: s.maxTokens,
        temperature: s.temperature,
        topP: s.topP,
        seed: s.seed,
        onToken: (row, t) => rows.add(row, t),
        shouldStop: () => failure ?? hooks.shouldStop?.(),
      });
      return { admitted, done: done.then(() => rows.result(prompt.length)) };
    });
    const done = Promise.all(groups.map((g) => g.done));
    done.catch((e: Error) => (failure = e));
    return { admitted: Promise.all(groups.map((g) => g.admitted)).then(() => undefined), done };
  }

  /** Generate `n` completions of `prompt` on an adapter's own generator. */
  async complete(generator: Generator, prompt: string, s: Sampling, hooks: CompletionHooks = {}): Promise<Completion> {
    const promptIds = this.encode(prompt, s);
    const rows = new RowsText(this, s, hooks.onText);
    const onToken = (t: number, row: number) => {
      const stopNow = hooks.shouldStop?.();
      if (stopNow) throw stopNow;
      rows.add(row, t);
      if (rows.allFinished) throw new AllStopped();
    };
    try {
      await generator.generate(
        Array.from({ length: s.n }, () => promptIds),
        { maxNewTokens: s.maxTokens, temperature: s.temperature, topP: s.topP, seed: s.seed, onToken },
      );
    } catch (e) {
      if (!(e instanceof AllStopped)) throw e;
    }
    return rows.result(promptIds.length);
  }
}

/** The tokenizer's chat template (tokenizer_config.json), with its special tokens for rendering. */
async function readChatTemplate(dir: string): Promise<{ template: Template; special: Record<string, string> } | undefined> {
  let config: Record<string, unknown>;
  try {
    config = JSON.parse(await readFile(join(dir, "tokenizer_config.json"), "utf8")) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  let source = config.chat_template;
  // transformers also allows a list of named templates; the "default" one is used for chat.
  if (Array.isArray(source)) source = (source as { name?: string; template?: string }[]).find((t) => t.name === "default")?.template;
  if (typeof source !== "string") return undefined;
  const tokenText = (v: unknown) => (typeof v === "string" ? v : typeof v === "object" && v !== null && typeof (v as { content?: unknown }).content === "string" ? (v as { content: string }).content : undefined);
  const special: Record<string, string> = {};
  for (const k of ["bos_token", "eos_token", "unk_token", "pad_token"]) {
    const t = tokenText(config[k]);
    if (t !== undefined) special[k] = t;
  }
  return { template: new Template(source), special };
}

export { Cancelled };
