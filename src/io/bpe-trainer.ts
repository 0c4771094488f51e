// Training a byte-level BPE tokenizer (GPT-2 / RoBERTa style) and writing it as tokenizer.json,
// so that models pretrained here load with the same tokenizer code as hub models. Written here
// because no maintained JavaScript tokenizer trainer exists (@huggingface/tokenizers only
// encodes and decodes).

/** GPT-2's pre-tokenization pattern (the ByteLevel pre-tokenizer's `use_regex`). */
const GPT2_SPLIT = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

/** GPT-2's reversible byte -> printable character map. */
export function byteToUnicode(): string[] {
  const keep = new Set<number>();
  for (let b = 33; b <= 126; b++) keep.add(b);
  for (let b = 161; b <= 172; b++) keep.add(b);
  for (let b = 174; b <= 255; b++) keep.add(b);
  const out: string[] = [];
  let extra = 0;
  for (let b = 0; b < 256; b++) out[b] = String.fromCodePoint(keep.has(b) ? b : 256 + extra++);
  return out;
}

export interface BpeTrainOptions {
  vocabSize: number;
  /** Special tokens, placed first in the vocabulary (e.g. <s>, <pad>, </s>, <unk>, <mask>). */
  specialTokens: readonly string[];
  /** Pairs seen fewer times are not merged. */
  minFrequency?: number;
  /** Post-processing: "roberta" wraps <s> ... </s>; "none" adds nothing (GPT-2). */
  postProcessor: "roberta" | "none";
  modelMaxLength: number;
}

/**
 * Learn merges from texts (most frequent adjacent pair first, ties broken by the pair's
 * characters) and return tokenizer.json and tokenizer_config.json contents.
 */
export function trainByteLevelBpe(texts: Iterable<string>, opts: BpeTrainOptions): { tokenizer: Record<string, unknown>; config: Record<string, unknown> } {
  const b2u = byteToUnicode();
  const encoder = new TextEncoder();
  const wordCounts = new Map<string, number>();
  for (const text of texts) {
    for (const m of text.matchAll(GPT2_SPLIT)) {
      const w = Array.from(encoder.encode(m[0]), (b) => b2u[b]!).join("");
      wordCounts.set(w, (wordCounts.get(w) ?? 0) + 1);
    }
  }
  const words = [...wordCounts].map(([w, count]) => ({ symbols: [...w], count }));
  const key = (a: string, b: string) => `${a}\u0000${b}`;
  const pairCounts = new Map<string, number>();
  const pairWords = new Map<string, Set<number>>();
  const addPairs = (wi: number, sign: 1 | -1) => {
    const { symbols, count } = words[wi]!;
    for (let i = 0; i + 1 < symbols.length; i++) {
      const k = key(symbols[i]!, symbols[i + 1]!);
      pairCounts.set(k, (pairCounts.get(k) ?? 0) + sign * count);
      if (sign > 0) {
        let s = pairWords.get(k);
        if (!s) pairWords.set(k, (s = new Set()));
        s.add(wi);
      }
    }
  };
  words.forEach((_, i) => addPairs(i, 1));

  const vocab = new Map<string, number>();
  for (const t of opts.specialTokens) vocab.set(t, vocab.size);
  for (const c of b2u) if (!vocab.has(c)) vocab.set(c, vocab.size);
  const merges: string[] = [];
  const minFrequency = opts.minFrequency ?? 2;
  while (vocab.size < opts.vocabSize) {
    let best: string | undefined;
    let bestCount = 0;
    for (const [k, c] of pairCounts) if (c > bestCount || (c === bestCount && best !== undefined && k < best)) [best, bestCount] = [k, c];
    if (!best || bestCount < minFrequency) break;
    const [a, b] = best.split("\u0000") as [string, string];
    const merged = a + b;
    merges.push(`${a} ${b}`);
    if (!vocab.has(merged)) vocab.set(merged, vocab.size);
    for (const wi of pairWords.get(best) ?? []) {
      const w = words[wi]!;
      addPairs(wi, -1);
      const next: string[] = [];
      for (let i = 0; i < w.symbols.length; i++) {
        if (i + 1 < w.symbols.length && w.symbols[i] === a && w.symbols[i + 1] === b) {
          next.push(merged);
          i++;
        } else next.push(w.symbols[i]!);
      }
      w.symbols = next;
      addPairs(wi, 1);
    }
    pairCounts.delete(best);
    pairWords.delete(best);
  }

  const ids = Object.fromEntries(vocab);
  const added = opts.specialTokens.map((t) => ({ id: vocab.get(t)!, content: t, single_word: false, lstrip: t === "<mask>", rstrip: false, normalized: false, special: true }));
  const byteLevel = { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true };
  const [bos, pad, eos, unk, mask] = opts.specialTokens;
  const post =
    opts.postProcessor === "roberta"
      ? { type: "RobertaProcessing", sep: [eos, vocab.get(eos!)], cls: [bos, vocab.get(bos!)], trim_offsets: true, add_prefix_space: false }
      : { ...byteLevel, trim_offsets: false };
  const tokenizer = {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: null,
    pre_tokenizer: byteLevel,
    post_processor: post,
    decoder: byteLevel,
    model: { type: "BPE", dropout: null, unk_token: null, continuing_subword_prefix: "", end_of_word_suffix: "", fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab: ids, merges },
  };
  const config: Record<string, unknown> = { tokenizer_class: opts.postProcessor === "roberta" ? "RobertaTokenizer" : "GPT2Tokenizer", model_max_length: opts.modelMaxLength };
  if (bos) Object.assign(config, { bos_token: bos, eos_token: eos, pad_token: pad, unk_token: unk, ...(mask ? { mask_token: mask, cls_token: bos, sep_token: eos } : {}) });
  return { tokenizer, config };
}
