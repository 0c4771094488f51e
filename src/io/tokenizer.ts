// Tokenizers from a checkpoint's tokenizer.json / tokenizer_config.json, via Hugging Face's
// own JS implementation (@huggingface/tokenizers: WordPiece, byte-level BPE, Unigram, ...),
// plus the batching transformers' tokenizers do: truncation, padding (either side), masks.
import { join, readFile } from "../platform/host.js";
import { Tokenizer as HfTokenizer } from "@huggingface/tokenizers";
import { int64, type Tensor } from "../ir/tensor.js";

export interface EncodeOptions {
  /** Second text of a pair (QA, NLI). */
  pair?: string;
  /** Add [CLS]/[SEP], <s>, BOS etc. as the tokenizer's post-processor defines (default true). */
  addSpecialTokens?: boolean;
}

export interface BatchOptions extends EncodeOptions {
  /** Truncate to this many tokens (default: the tokenizer's model_max_length, if any). */
  maxLength?: number;
  /** "longest" pads to the longest row (default); "max_length" pads to maxLength. */
  padding?: "longest" | "max_length";
  /** Which side pads go on (default from tokenizer_config, else right; use left to generate). */
  paddingSide?: "left" | "right";
  /** Pairs for every row (QA: question + context). */
  pairs?: readonly string[];
}

export interface Encoded {
  ids: number[];
  attentionMask: number[];
  tokenTypeIds: number[];
}

export interface BatchEncoding {
  input_ids: Tensor<"int64">;
  attention_mask: Tensor<"int64">;
  token_type_ids: Tensor<"int64">;
  /** Token count of each row before padding. */
  lengths: number[];
}

export class TokenizerError extends Error {}

export class Tokenizer {
  readonly padTokenId: number | undefined;
  readonly bosTokenId: number | undefined;
  readonly eosTokenId: number | undefined;
  readonly modelMaxLength: number | undefined;
  readonly paddingSide: "left" | "right";

  constructor(
    private readonly hf: HfTokenizer,
    readonly config: Readonly<Record<string, unknown>>,
    readonly vocabSize: number,
    /** Byte-level pre-tokenizer (GPT-2, RoBERTa): a word inside a sentence carries its leading space. */
    readonly byteLevel = false,
  ) {
    const id = (key: string): number | undefined => {
      const v = config[key];
      const text = typeof v === "string" ? v : v && typeof v === "object" && "content" in v ? String((v as { content: unknown }).content) : undefined;
      return text === undefined ? undefined : hf.token_to_id(text);
    };
    this.padTokenId = id("pad_token");
    this.bosTokenId = id("bos_token");
    this.eosTokenId = id("eos_token");
    const max = config.model_max_length;
    this.modelMaxLength = typeof max === "number" && max < 1e9 ? max : undefined;
    this.paddingSide = config.padding_side === "left" ? "left" : "right";
  }

  /** Load `tokenizer.json` (+ `tokenizer_config.json`, `special_tokens_map.json`) from a directory. */
  static async fromDir(dir: string): Promise<Tokenizer> {
    const read = async (name: string, required: boolean): Promise<Record<string, unknown> | undefined> => {
      let text: string;
      try {
        text = await readFile(join(dir, name), "utf8");
      } catch (e) {
        if (!required && (e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
        throw new TokenizerError(`${join(dir, name)}: ${(e as Error).message}`);
      }
      try {
        return JSON.parse(text) as Record<string, unknown>;
      } catch (e) {
        throw new TokenizerError(`${join(dir, name)}: invalid JSON (${(e as Error).message})`);
      }
    };
    const json = (await read("tokenizer.json", true))!;
    const config = { ...((await read("special_tokens_map.json", false)) ?? {}), ...((await read("tokenizer_config.json", false)) ?? {}) };
    return Tokenizer.fromJSON(json, config, join(dir, "tokenizer.json"));
  }

  static fromJSON(json: Record<string, unknown>, config: Record<string, unknown> = {}, source = "tokenizer.json"): Tokenizer {
    let hf: HfTokenizer;
    try {
      hf = new HfTokenizer(json, config);
    } catch (e) {
      throw new TokenizerError(`${source}: cannot build the tokenizer: ${(e as Error).message}`);
    }
    const model = json.model as { vocab?: Record<string, number> | [string, number][] } | undefined;
    const vocab = model?.vocab;
    let size = vocab ? (Array.isArray(vocab) ? vocab.length : Object.keys(vocab).length) : 0;
    for (const t of (json.added_tokens as { id: number }[] | undefined) ?? []) size = Math.max(size, t.id + 1);
    const byteLevel = JSON.stringify(json.pre_tokenizer ?? null).includes('"ByteLevel"');
    return new Tokenizer(hf, config, size, byteLevel);
  }

  encode(text: string, opts: EncodeOptions = {}): Encoded {
    const e = this.hf.encode(text, { text_pair: opts.pair ?? null, add_special_tokens: opts.addSpecialTokens ?? true, return_token_type_ids: true });
    return { ids: e.ids, attentionMask: e.attention_mask, tokenTypeIds: e.token_type_ids ?? e.ids.map(() => 0) };
  }

  /**
   * Ids of one pre-split word (transformers' `is_split_into_words`): byte-level tokenizers see it
   * with a leading space, as inside a sentence (their `add_prefix_space`); no special tokens.
   */
  encodeWord(word: string): number[] {
    return this.encode(this.byteLevel ? ` ${word}` : word, { addSpecialTokens: false }).ids;
  }

  /** The post-processor's template, found by encoding a probe: `[prefix] a [middle] b [suffix]`. */
  private templates = new Map<boolean, { ids: number[]; types: number[]; a: [number, number]; b: [number, number] }>();

  /**
   * Add the special tokens the post-processor adds ([CLS] a [SEP] b [SEP], <s> a </s></s> b </s>,
   * BOS a, ...) around content that is already tokenized, e.g. words encoded one by one.
   * `starts` are where the first (and second) content begins.
   */
  wrapSpecialTokens(first: readonly number[], second?: readonly number[]): Encoded & { starts: number[] } {
    const pair = second !== undefined;
    let t = this.templates.get(pair);
    if (!t) {
      const full = this.encode("a", { pair: pair ? "b" : undefined });
      const locate = (text: string, from: number): [number, number] => {
        const xs = this.encode(text, { addSpecialTokens: false }).ids;
        for (let i = from; i + xs.length <= full.ids.length; i++) if (xs.every((x, k) => full.ids[i + k] === x)) return [i, i + xs.length];
        throw new TokenizerError(`cannot locate "${text}" in the tokenizer's special-token template ${JSON.stringify(full.ids)}`);
      };
      const a = locate("a", 0);
      // Without a post-processor the JS tokenizer drops a pair's second text; Python's
      // tokenizers concatenate the two, and so does this.
      const dropsPair = pair && full.ids.length === a[1];
      t = { ids: full.ids, types: full.tokenTypeIds, a, b: !pair ? [full.ids.length, full.ids.length] : dropsPair ? [a[1], a[1]] : locate("b", a[1]) };
      this.templates.set(pair, t);
    }
    const out: Encoded & { starts: number[] } = { ids: [], attentionMask: [], tokenTypeIds: [], starts: [] };
    const special = (from: number, to: number) => {
      out.ids.push(...t.ids.slice(from, to));
      out.tokenTypeIds.push(...t.types.slice(from, to));
    };
    const content = (xs: readonly number[], type: number) => {
      out.starts.push(out.ids.length);
      out.ids.push(...xs);
      out.tokenTypeIds.push(...xs.map(() => type));
    };
    special(0, t.a[0]);
    content(first, t.types[t.a[0]] ?? 0);
    special(t.a[1], t.b[0]);
    if (second) content(second, t.types[t.b[0]] ?? 0);
    special(t.b[1], t.ids.length);
    out.attentionMask = out.ids.map(() => 1);
    return out;
  }

  /** How many special tokens wrapping adds (single text or pair). */
  specialTokenCount(pair = false): number {
    return this.wrapSpecialTokens([], pair ? [] : undefined).ids.length;
  }

  tokenize(text: string): string[] {
    return this.hf.tokenize(text);
  }

  decode(ids: readonly number[], opts: { skipSpecialTokens?: boolean } = {}): string {
    return this.hf.decode([...ids], { skip_special_tokens: opts.skipSpecialTokens ?? false });
  }

  tokenToId(token: string): number | undefined {
    return this.hf.token_to_id(token);
  }

  /** Encode a batch into padded int64 tensors [batch, seq]. */
  encodeBatch(texts: readonly string[], opts: BatchOptions = {}): BatchEncoding {
    if (opts.pairs && opts.pairs.length !== texts.length) throw new TokenizerError(`encodeBatch: ${texts.length} texts but ${opts.pairs.length} pairs`);
    const maxLength = opts.maxLength ?? this.modelMaxLength;
    const rows = texts.map((t, i) => {
      const e = this.encode(t, { pair: opts.pairs?.[i], addSpecialTokens: opts.addSpecialTokens });
      // Only the tokens the post-processor adds are kept: an [UNK] from the text is content.
      if (maxLength !== undefined && e.ids.length > maxLength) truncate(e, maxLength, new Set(this.wrapSpecialTokens([], opts.pairs ? [] : undefined).ids));
      return e;
    });
    const width = opts.padding === "max_length" && maxLength !== undefined ? maxLength : Math.max(1, ...rows.map((r) => r.ids.length));
    const pad = this.padTokenId ?? this.eosTokenId ?? 0;
    const left = (opts.paddingSide ?? this.paddingSide) === "left";
    const ids: number[] = [];
    const mask: number[] = [];
    const types: number[] = [];
    for (const r of rows) {
      const n = width - r.ids.length;
      const fill = (xs: number[], v: number) => (left ? [...Array<number>(n).fill(v), ...xs] : [...xs, ...Array<number>(n).fill(v)]);
      ids.push(...fill(r.ids, pad));
      mask.push(...fill(r.attentionMask, 0));
      types.push(...fill(r.tokenTypeIds, 0));
    }
    const shape = [rows.length, width];
    return { input_ids: int64(shape, ids), attention_mask: int64(shape, mask), token_type_ids: int64(shape, types), lengths: rows.map((r) => r.ids.length) };
  }
}

/**
 * Truncate to `max` tokens the way transformers' "longest_first" does: content tokens are cut
 * from the end of the longer segment, special tokens ([CLS], [SEP], </s>) are kept.
 */
function truncate(e: Encoded, max: number, special: ReadonlySet<number>): void {
  // The content positions of each segment (token type 0 / 1), then how many of each survive:
  // one token at a time from the longer one (the first on ties), in one pass over the counts.
  const content: [number[], number[]] = [[], []];
  e.ids.forEach((id, i) => special.has(id) || content[e.tokenTypeIds[i] === 1 ? 1 : 0].push(i));
  let [n0, n1] = [content[0].length, content[1].length];
  for (let excess = e.ids.length - max; excess > 0 && n0 + n1 > 0; excess--) {
    if (n1 > n0) n1--;
    else n0--;
  }
  const drop = new Set([...content[0].slice(n0), ...content[1].slice(n1)]);
  const keep = (xs: number[]) => xs.filter((_, i) => !drop.has(i)).slice(0, max);
  e.ids = keep(e.ids);
  e.attentionMask = keep(e.attentionMask);
  e.tokenTypeIds = keep(e.tokenTypeIds);
}
