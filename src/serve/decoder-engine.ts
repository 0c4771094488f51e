// Text generation for the completion endpoints: one Generator (prefill + decode sessions) per
// loaded adapter, built as `peftjs generate` builds it (LoRA-like adapters merged into a copy of
// the base weights, others unmerged), so greedy output equals the CLI's token for token.
// Requests run one at a time (see the scheduler); no continuous batching across adapters yet.
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { Template } from "@huggingface/jinja";
import { Generator } from "../models/generate.js";
import { type PretrainedModel } from "../models/pretrained.js";
import { PeftModel } from "../peft/peft-model.js";
import { type AdapterLoader } from "./adapter-registry.js";
import { Cancelled, ServeError } from "./errors.js";

export interface DecoderAdapter {
  readonly generator: Generator;
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

/** Ends generation early once every row has stopped (Generator only stops rows at stop tokens). */
class AllStopped extends Error {}

export class DecoderEngine implements AdapterLoader<DecoderAdapter> {
  private constructor(
    readonly base: PretrainedModel,
    readonly baseGenerator: Generator,
    private readonly chatTemplate: { template: Template; special: Record<string, string> } | undefined,
  ) {}

  static async create(base: PretrainedModel): Promise<DecoderEngine> {
    return new DecoderEngine(base, await Generator.create(base), await readChatTemplate(base.dir));
  }

  get hasChatTemplate(): boolean {
    return this.chatTemplate !== undefined;
  }

  async load(path: string): Promise<{ value: DecoderAdapter; bytes: number }> {
    const peft = await PeftModel.load(this.base, path);
    let bytes = 0;
    for (const a of peft.adapters.values()) for (const t of a.tensors.values()) bytes += t.data.byteLength;
    // As `peftjs generate`: merged when the method merges (no extra work per token).
    const lm = [...peft.adapters.values()].every((a) => a.mergedWeights) ? peft.mergeAndUnload() : peft;
    return { value: { generator: await Generator.create(lm) }, bytes };
  }

  async unload(value: DecoderAdapter): Promise<void> {
    await value.generator.release();
  }

  async release(): Promise<void> {
    await this.baseGenerator.release();
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

  /**
   * Generate `n` completions of `prompt`. `onText(row, delta)` receives new text as it is made;
   * `shouldStop()` is asked after every token (a disconnected client, a passed deadline).
   */
  async complete(generator: Generator, prompt: string, s: Sampling, hooks: { onText?: (row: number, delta: string) => void; shouldStop?: () => Error | undefined } = {}): Promise<Completion> {
    const tok = this.base.tokenizer;
    if (!tok) throw new ServeError(400, `the model ${this.base.dir} has no tokenizer.json`);
    const promptIds = tok.encode(prompt).ids;
    if (promptIds.length === 0) throw new ServeError(400, "the prompt is empty (it has no tokens)");
    if (promptIds.length + s.maxTokens > this.base.config.maxPositions && this.base.config.family !== "llama") {
      throw new ServeError(400, `the prompt (${promptIds.length} tokens) plus max_tokens ${s.maxTokens} exceeds the model's ${this.base.config.maxPositions} positions`);
    }
    const eos = this.base.config.eosTokenId;
    const stopIds = new Set(eos === undefined ? [] : Array.isArray(eos) ? eos : [eos as number]);
    const tokens: number[][] = Array.from({ length: s.n }, () => []);
    const texts = Array<string>(s.n).fill("");
    const shown = Array<string>(s.n).fill("");
    const finish: ("stop" | "length" | undefined)[] = Array(s.n).fill(undefined);
    let counted = 0;
    const emit = (row: number, upTo: string) => {
      if (upTo.length > shown[row]!.length && upTo.startsWith(shown[row]!)) {
        hooks.onText?.(row, upTo.slice(shown[row]!.length));
        shown[row] = upTo;
      }
    };
    const onToken = (t: number, row: number) => {
      const stopNow = hooks.shouldStop?.();
      if (stopNow) throw stopNow;
      if (finish[row]) return;
      counted++;
      tokens[row]!.push(t);
      let text = tok.decode(tokens[row]!, { skipSpecialTokens: true });
      const cut = s.stop.map((x) => text.indexOf(x)).filter((i) => i >= 0);
      if (cut.length) {
        text = text.slice(0, Math.min(...cut));
        finish[row] = "stop";
      } else if (stopIds.has(t)) finish[row] = "stop";
      texts[row] = text;
      // A token may end inside a multi-byte character: stream up to the last whole one.
      emit(row, text.replace(/\uFFFD+$/, ""));
      if (finish.every(Boolean)) throw new AllStopped();
    };
    try {
      await generator.generate(
        Array.from({ length: s.n }, () => promptIds),
        { maxNewTokens: s.maxTokens, temperature: s.temperature, topP: s.topP, seed: s.seed, onToken },
      );
    } catch (e) {
      if (!(e instanceof AllStopped)) throw e;
    }
    texts.forEach((t, row) => emit(row, t));
    return { texts, finishReasons: finish.map((f) => f ?? "length"), promptTokens: promptIds.length, completionTokens: counted };
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
