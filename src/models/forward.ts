// One-call inference, like transformers' `model(**inputs)`: token ids in (plain rows or tensors),
// the head's named outputs back as shaped tensors. A model's graph is compiled on first use and
// its ONNX Runtime session reused; sessions are cached under a key naming what changes the graph
// (head, active adapters, merge state), so switching back and forth does not recompile.
import { int64, type Tensor } from "../ir/tensor.js";
import { formatShape } from "../ir/shape.js";
import { compile, type CompiledGraph, type SessionOptions } from "../runtime/session.js";
import { type ModelGraph, type ModelOutputs } from "./task.js";

/** Token ids (or a mask): rows of integers, or an int64 / int32 tensor [batch, seq]. */
export type TokenRows = readonly (readonly (number | bigint)[])[] | Tensor<"int64"> | Tensor<"int32">;

/** What `forward` takes: input_ids and optionally the mask and token types (a tokenizer's `encodeBatch` output fits). */
export interface ForwardInputs {
  input_ids: TokenRows;
  /** 1 = attend, 0 = padding (default: all ones). */
  attention_mask?: TokenRows;
  /** Segment ids for models with token types (BERT); default zeros. */
  token_type_ids?: TokenRows;
}

/** The head's outputs, as transformers names them. */
export type OutputName = "last_hidden_state" | "logits" | "start_logits" | "end_logits";

/**
 * Named outputs: `logits` [batch, seq, vocab] (causal / masked LM) or [batch, seq, num_labels]
 * (token classification) or [batch, num_labels] (sequence classification); `start_logits` and
 * `end_logits` [batch, seq] (extractive QA); `last_hidden_state` [batch, seq, hidden] (no head).
 * With prompt-learning adapters, `seq` includes the virtual tokens in front, as in PEFT.
 */
export type ForwardOutputs = Partial<Record<OutputName, Tensor>>;

/** What a model must offer to be run by `ForwardSessions` (PretrainedModel and PeftModel do). */
export interface Forwardable {
  build(): ModelGraph;
  prepareInputs(batch: { input_ids: Tensor<"int64">; attention_mask?: Tensor<"int64">; token_type_ids?: Tensor<"int64"> }): Record<string, Tensor>;
}

const HEAD_OUTPUTS = ["logits", "start_logits", "end_logits"] as const;

/** The outputs `forward` returns for a built graph: the head's, or the hidden states when there is no head. */
function forwardOutputs(outputs: ModelOutputs): Partial<Record<OutputName, ModelOutputs[OutputName]>> {
  const head = HEAD_OUTPUTS.filter((k) => outputs[k]);
  return head.length ? Object.fromEntries(head.map((k) => [k, outputs[k]])) : { last_hidden_state: outputs.last_hidden_state };
}

/** `rows` as an int64 [batch, seq] tensor; `name` is the input's name in errors. */
export function tokenTensor(rows: TokenRows, name: string): Tensor<"int64"> {
  if (!Array.isArray(rows)) {
    const t = rows as Tensor;
    if (t.dtype !== "int64" && t.dtype !== "int32") throw new TypeError(`${name}: expected an int64 or int32 tensor, got ${t.dtype}`);
    if (t.shape.length !== 2) throw new RangeError(`${name}: expected shape [batch, seq], got ${formatShape(t.shape)}`);
    return t.dtype === "int64" ? (t as Tensor<"int64">) : int64(t.shape, Array.from(t.data as Int32Array));
  }
  const list = rows as readonly unknown[];
  if (list.length === 0) throw new RangeError(`${name}: empty batch`);
  if (!list.every(Array.isArray)) throw new TypeError(`${name}: expected rows [batch, seq] of integers; wrap one sequence as [[...ids]]`);
  const seq = (list[0] as unknown[]).length;
  const data = new BigInt64Array(list.length * seq);
  (list as readonly (readonly unknown[])[]).forEach((row, r) => {
    if (row.length !== seq) throw new RangeError(`${name}: row ${r} has ${row.length} entries, row 0 has ${seq}; pad rows to one length (and mask the padding)`);
    row.forEach((v, s) => {
      if (typeof v === "bigint") data[r * seq + s] = v;
      else if (typeof v === "number" && Number.isInteger(v)) data[r * seq + s] = BigInt(v);
      else throw new TypeError(`${name}[${r}][${s}] = ${JSON.stringify(v)} is not an integer`);
    });
  });
  return { dtype: "int64", shape: [list.length, seq], data };
}

interface CacheEntry {
  session: Promise<CompiledGraph>;
  /** Runs in flight: an evicted session is released only when they are done. */
  users: number;
  evicted: boolean;
}

/**
 * A model's compiled forward graphs, keyed by what changes the graph; the least recently used
 * session beyond `limit` is released.
 *
 * @example
 *   const sessions = new ForwardSessions(model);
 *   const { logits } = await sessions.run(`head=${model.task}`, { input_ids: [[2, 61, 72, 3]] });
 *   await sessions.release();
 */
export class ForwardSessions {
  private readonly cache = new Map<string, CacheEntry>();
  /** Sessions compiled so far (each costs a lowering and an ORT session creation). */
  compiled = 0;

  constructor(
    private readonly model: Forwardable,
    /** Sessions kept at once (each holds its own copy of the frozen weights in ORT). */
    readonly limit = 4,
  ) {}

  /** Sessions currently held. */
  get size(): number {
    return this.cache.size;
  }

  /** Run the graph for `key` (compiling it on first use) on `inputs`. */
  async run(key: string, inputs: ForwardInputs, opts: SessionOptions = {}): Promise<ForwardOutputs> {
    const batch = { input_ids: tokenTensor(inputs.input_ids, "input_ids") } as Parameters<Forwardable["prepareInputs"]>[0];
    for (const name of ["attention_mask", "token_type_ids"] as const) {
      const given = inputs[name];
      if (given === undefined) continue;
      const t = tokenTensor(given, name);
      if (t.shape[0] !== batch.input_ids.shape[0] || t.shape[1] !== batch.input_ids.shape[1]) {
        throw new RangeError(`${name} is ${formatShape(t.shape)} but input_ids is ${formatShape(batch.input_ids.shape)}`);
      }
      batch[name] = t;
    }
    const feeds = this.model.prepareInputs(batch);
    const entry = this.entry(`${key} ${JSON.stringify(opts)}`, opts);
    entry.users++;
    try {
      return (await (await entry.session).run(feeds)) as ForwardOutputs;
    } finally {
      entry.users--;
      if (entry.evicted && entry.users === 0) await releaseEntry(entry);
    }
  }

  /** Release every session (the next run compiles again). */
  async release(): Promise<void> {
    const entries = [...this.cache.values()];
    this.cache.clear();
    for (const e of entries) {
      e.evicted = true;
      if (e.users === 0) await releaseEntry(e);
    }
  }

  private entry(key: string, opts: SessionOptions): CacheEntry {
    let e = this.cache.get(key);
    if (e) {
      // Most recently used last.
      this.cache.delete(key);
      this.cache.set(key, e);
      return e;
    }
    const session = compile(forwardOutputs(this.model.build().outputs) as Record<string, NonNullable<ModelOutputs[OutputName]>>, opts);
    e = { session, users: 0, evicted: false };
    this.compiled++;
    this.cache.set(key, e);
    // A failed compile is not cached: the next run tries again and reports its own error.
    session.catch(() => this.cache.get(key) === e && this.cache.delete(key));
    while (this.cache.size > this.limit) {
      const [oldest, old] = this.cache.entries().next().value as [string, CacheEntry];
      this.cache.delete(oldest);
      old.evicted = true;
      if (old.users === 0) void releaseEntry(old);
    }
    return e;
  }
}

async function releaseEntry(e: CacheEntry): Promise<void> {
  const session = await e.session.catch(() => undefined);
  await session?.release();
}

const objectIds = new WeakMap<object, number>();
let lastObjectId = 0;

/** A number that stays the same for one object: cache keys change when an object is replaced. */
export function objectId(o: object): number {
  let id = objectIds.get(o);
  if (id === undefined) objectIds.set(o, (id = ++lastObjectId));
  return id;
}
