// Training data: JSONL / CSV records -> tokenized examples for a task -> padded batches
// (dynamic padding, length-grouped, seeded shuffling that a resumed run can replay).
import { extname, readFile } from "../platform/host.js";
import { parse as parseCsv } from "csv-parse/sync";
import { type Tokenizer } from "../io/tokenizer.js";
import { seededRandom } from "../ir/random.js";
import { int64, type Tensor } from "../ir/tensor.js";

export class DataError extends Error {}

export type DataRecord = Record<string, unknown>;

/** The line of a data file each record read by readRecords starts on (ends on, for a multi-line CSV field). */
const LINES = new WeakMap<DataRecord, number>();

/** How errors name a record: `train.jsonl line 3` when it came from a file, else `data record 3`. */
export function recordName(source: string | undefined, record: DataRecord | undefined, index: number): string {
  const line = record && LINES.get(record);
  return line !== undefined ? `${source ?? "data"} line ${line}` : `${source ?? "data"} record ${index + 1}`;
}

/**
 * The text of a data file: UTF-8, a leading byte-order mark dropped. UTF-16 (a byte-order mark,
 * or NUL bytes, which text never holds) and invalid UTF-8 are errors naming the file and line.
 */
export function decodeDataFile(bytes: Uint8Array, path: string): string {
  const [b0, b1] = [bytes[0], bytes[1]];
  if ((b0 === 0xff && b1 === 0xfe) || (b0 === 0xfe && b1 === 0xff)) throw new DataError(`${path}: the file is UTF-16 (${b0 === 0xff ? "little" : "big"}-endian byte-order mark); save it as UTF-8`);
  const nul = bytes.indexOf(0);
  if (nul >= 0) {
    const utf16 = bytes.subarray(0, 4096).filter((b) => b === 0).length >= Math.min(bytes.length, 4096) / 4;
    if (utf16) throw new DataError(`${path}: the file looks like UTF-16 (every other byte is NUL); save it as UTF-8`);
    throw new DataError(`${path} line ${lineAt(bytes, nul)}: a NUL byte; a data file is UTF-8 text`);
  }
  try {
    return new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(bytes);
  } catch {
    // Find the line: decode line by line (a newline byte never occurs inside a UTF-8 sequence).
    const decoder = new TextDecoder("utf-8", { fatal: true });
    let start = 0;
    for (let line = 1; start <= bytes.length; line++) {
      const end = bytes.indexOf(0x0a, start) < 0 ? bytes.length : bytes.indexOf(0x0a, start);
      try {
        decoder.decode(bytes.subarray(start, end));
      } catch {
        throw new DataError(`${path} line ${line}: invalid UTF-8; the file must be UTF-8 text`);
      }
      start = end + 1;
    }
    throw new DataError(`${path}: invalid UTF-8; the file must be UTF-8 text`);
  }
}

const lineAt = (bytes: Uint8Array, offset: number) => bytes.subarray(0, offset).filter((b) => b === 0x0a).length + 1;

/** The data files readRecords reads. */
export const DATA_EXTENSIONS = [".jsonl", ".ndjson", ".json", ".csv", ".tsv"];

/**
 * Records from a .jsonl / .ndjson (one JSON object per line), .json (an array of objects) or
 * .csv / .tsv file (header row). A file
 * without records is an error; each record remembers its line for error messages (recordName).
 */
export async function readRecords(path: string): Promise<DataRecord[]> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (e) {
    throw new DataError(`${path}: ${(e as Error).message}`);
  }
  return parseRecords(bytes, path);
}

/** Records from the bytes of a data file (a dropped File in the studio): `path` names it in errors, and its extension picks the format. */
export function parseRecords(bytes: Uint8Array, path: string): DataRecord[] {
  const text = decodeDataFile(bytes, path);
  const ext = extname(path).toLowerCase();
  let records: DataRecord[];
  if (!DATA_EXTENSIONS.includes(ext)) throw new DataError(`${path}: unknown data file type "${ext || "(no extension)"}"; expected ${DATA_EXTENSIONS.join(", ")}`);
  if (ext === ".json") {
    // One JSON array of records (JSONL is one record per line).
    let v: unknown;
    try {
      v = JSON.parse(text);
    } catch (e) {
      throw new DataError(`${path}: ${(e as Error).message} (a .json data file is one array of records; use .jsonl for one record per line)`);
    }
    if (!Array.isArray(v)) throw new DataError(`${path}: expected an array of records, got ${v === null ? "null" : typeof v === "object" ? "an object" : typeof v} (use .jsonl for one record per line)`);
    const bad = v.findIndex((r) => typeof r !== "object" || r === null || Array.isArray(r));
    if (bad >= 0) throw new DataError(`${path} record ${bad + 1}: expected a JSON object, got ${JSON.stringify(v[bad])?.slice(0, 40)}`);
    if (v.length === 0) throw new DataError(`${path}: no records (an empty array)`);
    return v as DataRecord[];
  }
  if (ext === ".csv" || ext === ".tsv") {
    let rows: { record: DataRecord; info: { lines: number } }[];
    try {
      // A header naming a column twice would keep only the last column's values: refused.
      const columns = (header: string[]) => {
        const twice = header.find((h, i) => header.indexOf(h) !== i);
        if (twice !== undefined) throw new DataError(`${path} line 1: the header names column "${twice}" twice`);
        return header;
      };
      rows = parseCsv(text, { columns, skip_empty_lines: true, delimiter: ext === ".tsv" ? "\t" : ",", info: true }) as typeof rows;
    } catch (e) {
      if (e instanceof DataError) throw e;
      throw new DataError(`${path}: ${(e as Error).message.split("\n")[0]}`);
    }
    records = rows.map(({ record, info }) => (LINES.set(record, info.lines), record));
    if (records.length === 0) throw new DataError(`${path}: no records (${text.trim() ? "only a header row" : "the file is empty"})`);
    return records;
  }
  records = text.split("\n").flatMap((line, i) => {
    if (!line.trim()) return [];
    try {
      const v = JSON.parse(line) as unknown;
      if (typeof v !== "object" || v === null || Array.isArray(v)) throw new Error(`expected a JSON object, got ${Array.isArray(v) ? "an array" : JSON.stringify(v)?.slice(0, 40)}`);
      LINES.set(v as DataRecord, i + 1);
      return [v as DataRecord];
    } catch (e) {
      throw new DataError(`${path} line ${i + 1}: ${(e as Error).message}`);
    }
  });
  if (records.length === 0) throw new DataError(`${path}: no records (the file is ${text.trim() ? "blank" : "empty"})`);
  return records;
}

/** One tokenized example: ids plus the task's targets. */
export interface Example {
  ids: number[];
  typeIds: number[];
  /** Sequence label (classification). */
  label?: number;
  /** Per-token labels (-100 = ignored): tagging and language modeling. */
  tokenLabels?: number[];
  /** Extractive QA: the answer's first and last token (0 and 0, the first token, when it was truncated away). */
  startPosition?: number;
  endPosition?: number;
  /** Extractive QA: the reference answers (for exact match / F1), and where the context starts. */
  answers?: string[];
  contextStart?: number;
  /** Extractive QA: the record this window of a long context comes from (its index); windows of one record share it. */
  group?: number;
  /** Where the example comes from, for error messages: `train.jsonl line 3` (recordName). */
  source?: string;
}

export interface ClassificationData {
  examples: Example[];
  labels: string[];
}

const field = (r: DataRecord, names: readonly string[], where: string): unknown => {
  for (const n of names) if (r[n] !== undefined && r[n] !== "" && r[n] !== null) return r[n];
  throw new DataError(`${where}: missing field ${names.map((n) => `"${n}"`).join(" or ")} (has ${Object.keys(r).join(", ") || "no fields"})`);
};

/** A text or label field's value as a string: a string, number or boolean, never an object turned into "[object Object]". */
const scalar = (r: DataRecord, names: readonly string[], where: string): string => {
  const v = field(r, names, where);
  if (typeof v === "string" || typeof v === "number" || typeof v === "boolean") return String(v);
  const name = names.find((n) => r[n] === v)!;
  throw new DataError(`${where}: field "${name}" must be a string or number, got ${Array.isArray(v) ? "an array" : typeof v === "object" ? "an object" : typeof v}`);
};

/**
 * Text (or text pair) classification examples. Labels may be names or integer ids; names are
 * mapped in sorted order unless `labelNames` fixes the order. With `labelled: false` the records
 * need no label (examples to predict).
 */
export function classificationExamples(records: readonly DataRecord[], tokenizer: Tokenizer, opts: DataOptions): ClassificationData {
  const where = (i: number) => recordName(opts.source, records[i], i);
  const labelled = opts.labelled !== false;
  const raw = records.map((r, i) => (labelled ? scalar(r, LABEL_FIELDS, where(i)) : ""));
  const names = opts.labelNames ? [...opts.labelNames] : labelled ? sortedLabels(raw) : [];
  const index = new Map(names.map((n, i) => [n, i]));
  const examples = records.map((r, i) => {
    const text = scalar(r, TEXT_FIELDS, where(i));
    const pair = r.text_pair ?? r.sentence2 ?? undefined;
    const label = labelled ? index.get(raw[i]!) : undefined;
    if (labelled && label === undefined) throw new DataError(`${where(i)}: label "${raw[i]}" is not one of ${names.join(", ")}`);
    // Each text is cut first to a prefix that still holds more than maxLength tokens, so a huge
    // record costs what its kept part costs; the pair's longest-first truncation is unchanged.
    const clip = (t: string) => clipText(t, tokenizer, opts.maxLength);
    const enc = tokenizer.encodeBatch([clip(text)], { pairs: pair === undefined ? undefined : [clip(String(pair))], maxLength: opts.maxLength });
    const n = enc.lengths[0]!;
    return { ids: Array.from(enc.input_ids.data.slice(0, n), Number), typeIds: Array.from(enc.token_type_ids.data.slice(0, n), Number), ...(label === undefined ? {} : { label }), source: where(i) };
  });
  return { examples, labels: names };
}

/** The texts of language-modeling records ("text" or "content"); a record without one is an error naming its line. */
export function languageModelingTexts(records: readonly DataRecord[], source?: string): string[] {
  return records.map((r, i) => scalar(r, LM_FIELDS, recordName(source, r, i)));
}

/** Causal-LM examples: each text becomes a sequence whose labels are its own ids. */
export function languageModelingExamples(records: readonly DataRecord[], tokenizer: Tokenizer, opts: { maxLength: number; source?: string }): Example[] {
  return records.map((r, i) => {
    const source = recordName(opts.source, r, i);
    const text = scalar(r, LM_FIELDS, source);
    const enc = tokenizer.encodeBatch([clipText(text, tokenizer, opts.maxLength)], { maxLength: opts.maxLength });
    const ids = Array.from(enc.input_ids.data.slice(0, enc.lengths[0]!), Number);
    return { ids, typeIds: ids.map(() => 0), tokenLabels: ids, source };
  });
}

const TEXT_FIELDS = ["text", "sentence", "sentence1", "question"] as const;
const LABEL_FIELDS = ["label", "labels", "class", "target"] as const;
const WORD_FIELDS = ["tokens", "words"] as const;
const TAG_FIELDS = ["tags", "ner_tags", "pos_tags", "labels", "label"] as const;
const LM_FIELDS = ["text", "content"] as const;

/** The tasks examples can be built for from data files. */
export type DataTask = "sequence-classification" | "token-classification" | "question-answering" | "causal-lm";

/** The fields each task's examples read: inputs, and targets (not needed to predict). Any other field is unused. */
export const TASK_FIELDS: Readonly<Record<DataTask, { inputs: readonly string[]; targets: readonly string[] }>> = {
  "sequence-classification": { inputs: [...TEXT_FIELDS, "text_pair", "sentence2"], targets: LABEL_FIELDS },
  "token-classification": { inputs: WORD_FIELDS, targets: TAG_FIELDS },
  "question-answering": { inputs: ["question", "context"], targets: ["answers", "answer", "answer_start"] },
  "causal-lm": { inputs: LM_FIELDS, targets: [] },
};

/**
 * Fields of the records that `task` does not read, with the first line (or record) holding each;
 * with `labelled: false` targets count as read (prediction ignores them on purpose).
 */
export function unusedFields(records: readonly DataRecord[], task: DataTask, opts: { source?: string; labelled?: boolean } = {}): { field: string; where: string }[] {
  const used = new Set([...TASK_FIELDS[task].inputs, ...(opts.labelled === false ? Object.values(TASK_FIELDS).flatMap((f) => f.targets) : TASK_FIELDS[task].targets)]);
  const unused = new Map<string, string>();
  records.forEach((r, i) => {
    for (const k of Object.keys(r)) if (!used.has(k) && !unused.has(k)) unused.set(k, recordName(opts.source, r, i));
  });
  return [...unused].map(([field, where]) => ({ field, where }));
}

/**
 * A prefix of `text` that still tokenizes to more than `maxTokens` content tokens (or the whole
 * text when it is shorter): tokenizing a window that grows 4x from ~8 characters a token costs a
 * few times what is kept, where tokenizing a 5 MB record to keep 128 tokens used to take hours.
 * The cut falls on whitespace when the window has any, so the kept tokens are those of the full
 * text (pre-tokenizers split words at whitespace).
 */
export function clipText(text: string, tokenizer: Tokenizer, maxTokens: number): string {
  for (let size = Math.max(256, 8 * maxTokens); size < text.length; size *= 4) {
    let cut = size;
    // The start of the last run of whitespace in the window's second half.
    while (cut > size >> 1 && !/\s/.test(text[cut]!)) cut--;
    while (cut > size >> 1 && /\s/.test(text[cut - 1]!)) cut--;
    if (cut === size >> 1) cut = size;
    const prefix = text.slice(0, cut);
    // A margin of tokens past maxTokens: the last word's pieces may depend on what follows it.
    if (tokenizer.encode(prefix, { addSpecialTokens: false }).ids.length > maxTokens + 8) return prefix;
  }
  return text;
}

export interface DataOptions {
  /** Truncate to this many tokens (special tokens included). */
  maxLength: number;
  /** Class names in id order (e.g. those an adapter was trained with); default: the data's, sorted. */
  labelNames?: readonly string[];
  /** Named in errors, e.g. the file name. */
  source?: string;
  /** false: records without targets, for prediction (default true). */
  labelled?: boolean;
  /** Extractive QA: tokens shared by neighbouring windows of a long context (default min(128, half a window)). */
  stride?: number;
}

/**
 * Token classification (NER, POS) from pre-split words: `tokens` (or `words`) and `tags`
 * (`ner_tags`, ...) of equal length, names or integer ids. As in transformers' run_ner, the first
 * sub-token of each word carries the word's tag and the others are ignored (-100). With
 * `labelled: false` the records need no tags; each word's first sub-token is then marked 0.
 */
export function tokenClassificationExamples(records: readonly DataRecord[], tokenizer: Tokenizer, opts: DataOptions): ClassificationData {
  const where = (i: number) => recordName(opts.source, records[i], i);
  const labelled = opts.labelled !== false;
  const rows = records.map((r, i) => {
    const words = field(r, WORD_FIELDS, where(i));
    const tags = labelled ? field(r, TAG_FIELDS, where(i)) : Array.isArray(words) ? words.map(() => "") : words;
    if (!Array.isArray(words) || !Array.isArray(tags)) throw new DataError(`${where(i)}: "tokens" and "tags" must be arrays`);
    if (words.length !== tags.length) throw new DataError(`${where(i)}: ${words.length} tokens but ${tags.length} tags`);
    return { words: words.map(String), tags: tags.map(String) };
  });
  const names = opts.labelNames ? [...opts.labelNames] : labelled ? sortedLabels(rows.flatMap((r) => r.tags)) : [];
  const index = new Map(names.map((n, i) => [n, i]));
  const room = opts.maxLength - tokenizer.specialTokenCount();
  const examples = rows.map(({ words, tags }, i) => {
    const ids: number[] = [];
    const labels: number[] = [];
    for (const [w, word] of words.entries()) {
      const pieces = tokenizer.encodeWord(word);
      if (ids.length + pieces.length > room) break;
      const label = labelled ? index.get(tags[w]!) : 0;
      if (label === undefined) throw new DataError(`${where(i)}: tag "${tags[w]}" is not one of ${names.join(", ")}`);
      pieces.forEach((id, k) => {
        ids.push(id);
        labels.push(k === 0 ? label : -100);
      });
    }
    const enc = tokenizer.wrapSpecialTokens(ids);
    // Special tokens are ignored (-100).
    const start = enc.starts[0]!;
    const tokenLabels = enc.ids.map((_, k) => (k >= start && k < start + ids.length ? labels[k - start]! : -100));
    return { ids: enc.ids, typeIds: enc.tokenTypeIds, tokenLabels, source: where(i) };
  });
  return { examples, labels: names };
}

/** Label names in a stable order: numerically when all are integers, else sorted. */
function sortedLabels(raw: readonly string[]): string[] {
  return [...new Set(raw)].sort((a, b) => (/^\d+$/.test(a) && /^\d+$/.test(b) ? Number(a) - Number(b) : a < b ? -1 : 1));
}

/** The reference answers of a QA record: SQuAD's `answers: {text: [...], answer_start: [...]}` or flat `answer` + `answer_start`. */
function answersOf(r: DataRecord, context: string, where: string, labelled: boolean): { text: string; start: number }[] {
  const squad = r.answers as { text?: unknown; answer_start?: unknown } | undefined;
  const texts = squad && typeof squad === "object" ? squad.text : r.answer;
  const starts = squad && typeof squad === "object" ? squad.answer_start : r.answer_start;
  const list = (Array.isArray(texts) ? texts : texts === undefined ? [] : [texts]).map(String);
  const at = Array.isArray(starts) ? starts : starts === undefined ? [] : [starts];
  if (list.length === 0 && !labelled) return [];
  if (list.length === 0) throw new DataError(`${where}: missing field "answers" (SQuAD format) or "answer"`);
  return list.map((text, k) => {
    const start = at[k] !== undefined ? Number(at[k]) : context.indexOf(text);
    if (!Number.isInteger(start) || start < 0 || context.slice(start, start + text.length) !== text) throw new DataError(`${where}: answer "${text}" is not in the context${at[k] !== undefined ? ` at ${String(at[k])}` : ""}`);
    return { text, start };
  });
}

/**
 * Extractive QA examples (SQuAD layout: question, context, answers). The context is tokenized in
 * three pieces (before, answer, after) so the answer's token span is known exactly. A context too
 * long for maxLength is cut into overlapping windows, `stride` tokens shared by neighbours
 * (transformers' run_qa doc_stride), each an example of the record's `group`; a window that does
 * not hold the whole answer targets the first token (transformers' convention). With
 * `labelled: false` the records need no answers.
 */
export function questionAnsweringExamples(records: readonly DataRecord[], tokenizer: Tokenizer, opts: Omit<DataOptions, "labelNames">): Example[] {
  const specials = tokenizer.specialTokenCount(true);
  return records.flatMap((r, i) => {
    const where = recordName(opts.source, r, i);
    const question = scalar(r, ["question"], where);
    const context = scalar(r, ["context"], where);
    const answers = answersOf(r, context, where, opts.labelled !== false);
    const { text, start } = answers[0] ?? { text: "", start: 0 };
    // Leading whitespace belongs to the answer's piece so byte-level BPE sees " word" as in the full text.
    let cut = start;
    while (cut > 0 && /\s/.test(context[cut - 1]!)) cut--;
    const piece = (t: string) => (t.length ? tokenizer.encode(t, { addSpecialTokens: false }).ids : []);
    const before = piece(context.slice(0, cut));
    const answer = piece(context.slice(cut, start + text.length));
    const after = piece(context.slice(start + text.length));
    const q = piece(question);
    const room = opts.maxLength - specials - q.length;
    if (room < 1) throw new DataError(`${where}: the question takes ${q.length} tokens, leaving no room for the context in --max-length ${opts.maxLength}`);
    const stride = opts.stride ?? Math.min(128, Math.floor(room / 2));
    if (!(stride >= 0 && stride < room)) throw new DataError(`${where}: the window overlap (stride ${stride}) must be smaller than the ${room} context tokens a window holds; lower the stride or raise --max-length`);
    const all = [...before, ...answer, ...after];
    const windows: Example[] = [];
    for (let from = 0; ; from += room - stride) {
      const contextIds = all.slice(from, from + room);
      const enc = tokenizer.wrapSpecialTokens(q, contextIds);
      const contextStart = enc.starts[1]!;
      const inside = answer.length > 0 && before.length >= from && before.length + answer.length <= from + contextIds.length;
      const first = contextStart + before.length - from;
      windows.push({ ids: enc.ids, typeIds: enc.tokenTypeIds, startPosition: inside ? first : 0, endPosition: inside ? first + answer.length - 1 : 0, answers: answers.map((a) => a.text), contextStart, group: i, source: where });
      if (from + room >= all.length) break;
    }
    return windows;
  });
}

/** A seeded split into train / validation; examples of one `group` (QA windows of one record) stay together. */
export function splitExamples<T>(items: readonly T[], validationFraction: number, seed: number): { train: T[]; validation: T[] } {
  const groups = new Map<number | string, number[]>();
  items.forEach((item, i) => {
    const key = (item as { group?: number } | undefined)?.group ?? `item ${i}`;
    const members = groups.get(key);
    if (members) members.push(i);
    else groups.set(key, [i]);
  });
  const members = [...groups.values()];
  const order = shuffled(members.length, seededRandom(seed));
  const n = Math.max(1, Math.round(members.length * validationFraction));
  const pick = (gs: number[]) => gs.flatMap((g) => members[g]!).map((i) => items[i]!);
  return { validation: pick(order.slice(0, n)), train: pick(order.slice(n)) };
}

function shuffled(n: number, rand: () => number): number[] {
  const a = [...Array(n).keys()];
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

/**
 * The order of examples in an epoch: shuffled with (seed, epoch), then grouped by length in
 * windows of 50 batches so batches pad little (the windows stay in random order). Pure
 * function of its arguments, so a resumed run replays it.
 */
export function epochBatches(examples: readonly Example[], batchSize: number, seed: number, epoch: number, opts: { shuffle?: boolean; groupByLength?: boolean } = {}): number[][] {
  const order = opts.shuffle === false ? [...examples.keys()] : shuffled(examples.length, seededRandom(seed * 1_000_003 + epoch));
  if (opts.groupByLength !== false) {
    const window = batchSize * 50;
    for (let s = 0; s < order.length; s += window) {
      const part = order.slice(s, s + window).sort((a, b) => examples[b]!.ids.length - examples[a]!.ids.length);
      order.splice(s, part.length, ...part);
    }
  }
  const batches: number[][] = [];
  for (let s = 0; s < order.length; s += batchSize) batches.push(order.slice(s, s + batchSize));
  if (opts.shuffle !== false) {
    const rand = seededRandom(seed * 7 + epoch + 1);
    for (let i = batches.length - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [batches[i], batches[j]] = [batches[j]!, batches[i]!];
    }
  }
  return batches;
}

/** Pad a batch to its longest example (dynamic padding), right side; targets as the task's loss inputs. */
export function collate(examples: readonly Example[], padId: number): { input_ids: Tensor<"int64">; attention_mask: Tensor<"int64">; token_type_ids: Tensor<"int64">; labels?: Tensor<"int64">; start_positions?: Tensor<"int64">; end_positions?: Tensor<"int64"> } {
  const width = Math.max(1, ...examples.map((e) => e.ids.length));
  const rows = examples.length;
  const pad = (xs: readonly number[], v: number) => [...xs, ...Array<number>(width - xs.length).fill(v)];
  const out = {
    input_ids: int64([rows, width], examples.flatMap((e) => pad(e.ids, padId))),
    attention_mask: int64([rows, width], examples.flatMap((e) => pad(e.ids.map(() => 1), 0))),
    token_type_ids: int64([rows, width], examples.flatMap((e) => pad(e.typeIds, 0))),
  };
  if (examples.every((e) => e.label !== undefined)) return { ...out, labels: int64([rows], examples.map((e) => e.label!)) };
  if (examples.every((e) => e.tokenLabels)) return { ...out, labels: int64([rows, width], examples.flatMap((e) => pad(e.tokenLabels!, -100))) };
  if (examples.every((e) => e.startPosition !== undefined)) return { ...out, start_positions: int64([rows], examples.map((e) => e.startPosition!)), end_positions: int64([rows], examples.map((e) => e.endPosition!)) };
  return out;
}
