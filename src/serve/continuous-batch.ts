// Continuous batching for generation (Orca's iteration-level scheduling, as vLLM and TGI run it):
// one running batch of sequences on ONE shared, unmerged base model, where each row reads its own
// LoRA adapter from the slot tables (stacked-lora.ts) and keeps its own sampling settings. Between
// two decode steps, finished or cancelled rows leave and waiting requests join: their prompts run
// through the prefill graph (left-padded, as Generator does), and the rows' key/value caches are
// re-laid into one batched cache, each row right-aligned with its own past length (the attention
// mask hides the padding on the left; position ids are per row). The graphs are Generator's
// prefill and decode graphs (models/generate.ts, models/decoder.ts), built over the stack.
import { seededRandom } from "../ir/random.js";
import { int64, type Tensor } from "../ir/tensor.js";
import { pick } from "../models/generate.js";
import { type PretrainedModel } from "../models/pretrained.js";
import { compile, type CompiledGraph, type SessionOptions } from "../runtime/session.js";
import { type LoraStack } from "./stacked-lora.js";

/** One request's rows: `rows` completions of one prompt on one adapter, with its sampling settings. */
export interface SequenceGroup {
  readonly prompt: readonly number[];
  readonly rows: number;
  /** The adapter's name in the stack (undefined: the base model). */
  readonly adapter: string | undefined;
  readonly maxTokens: number;
  /** 0 = greedy. */
  readonly temperature: number;
  readonly topP?: number;
  readonly seed: number;
  /** Row `row`'s next token; returns true when that row is finished (a stop token or string). */
  onToken(row: number, token: number): boolean;
  /** Asked between steps: an error ends the group with it (cancelled, deadline passed). */
  shouldStop(): Error | undefined;
}

export interface Submitted {
  /** Resolves when the group joins the running batch (or ends without joining). */
  admitted: Promise<void>;
  /** Resolves when every row has finished; rejects with shouldStop's error or a failed run's. */
  done: Promise<void>;
}

interface Entry {
  readonly spec: SequenceGroup;
  readonly slot: number;
  /** One generator per request, drawn row by row in row order each step: Generator's draws for the same seed. */
  readonly rand: () => number;
  readonly rows: Row[];
  settled: boolean;
  admit(): void;
  resolve(): void;
  reject(e: Error): void;
}

interface Row {
  readonly entry: Entry;
  readonly index: number;
  /** Keys/values of this row in the cache (its prompt and the tokens fed since). */
  length: number;
  /** Position id of the next token fed. */
  position: number;
  last: number;
  generated: number;
  done: boolean;
}

/** The batched cache: per layer key and value [rows, kvHeads, width, headDim], rows right-aligned. */
interface Cache {
  width: number;
  /** present.{i}.key, present.{i}.value, ... in that order. */
  kv: Float32Array[];
}

interface Graphs {
  signature: string;
  prefill: CompiledGraph;
  decode: CompiledGraph;
}

export interface BatcherOptions {
  /** Rows in the running batch (a single group with more rows still runs, alone). */
  maxBatch: number;
  session?: SessionOptions;
  /** Rows of each prefill or decode run (metrics). */
  onRun?: (kind: "prefill" | "decode", rows: number) => void;
}

/**
 * The running batch of one decoder and its stack of LoRA adapters.
 *
 * @example
 *   const batcher = new ContinuousBatcher(model, stack, { maxBatch: 32 });
 *   const { done } = batcher.submit({ prompt: ids, rows: 1, adapter: "a", maxTokens: 16, temperature: 0, seed: 0, onToken: (_, t) => t === eos, shouldStop: () => undefined });
 *   await done;
 */
export class ContinuousBatcher {
  private readonly waiting: Entry[] = [];
  private live: Row[] = [];
  private cache: Cache | undefined;
  private running: Promise<void> | undefined;
  private current: Graphs | undefined;
  private pending: { signature: string; graphs: Promise<Graphs> } | undefined;
  private readonly kvNames: string[];
  private kvDims: readonly number[] | undefined;

  constructor(
    readonly model: PretrainedModel,
    private readonly stack: LoraStack,
    private readonly opts: BatcherOptions,
  ) {
    this.kvNames = Array.from({ length: model.config.layers }, (_, i) => [`present.${i}.key`, `present.${i}.value`]).flat();
  }

  /** Rows generating now. */
  get rows(): number {
    return this.live.length;
  }

  /** Queue a group; it joins the running batch between two decode steps. */
  submit(spec: SequenceGroup): Submitted {
    if (spec.prompt.length === 0) throw new RangeError("ContinuousBatcher: the prompt has no tokens");
    let admit!: () => void;
    const admitted = new Promise<void>((r) => (admit = r));
    let entry!: Entry;
    const done = new Promise<void>((resolve, reject) => {
      entry = {
        spec,
        slot: this.stack.slotOf(spec.adapter),
        rand: seededRandom(spec.seed),
        rows: [],
        settled: false,
        admit,
        resolve: () => settle(resolve),
        reject: (e) => settle(() => reject(e)),
      };
      const settle = (f: () => void) => {
        if (entry.settled) return;
        entry.settled = true;
        for (const r of entry.rows) r.done = true;
        admit();
        f();
      };
    });
    this.waiting.push(entry);
    this.running ??= this.loop().finally(() => (this.running = undefined));
    return { admitted, done };
  }

  /** Compile the graphs for the stack's adapted layers now (they are compiled on first use otherwise). */
  prepare(): Promise<unknown> {
    return this.graphs();
  }

  /** Wait for the running batch to end, then free the sessions. */
  async release(): Promise<void> {
    while (this.running) await this.running;
    const all = [this.current, await this.pending?.graphs.catch(() => undefined)];
    this.current = this.pending = undefined;
    for (const g of new Set(all)) if (g) for (const s of [g.prefill, g.decode]) await s.release();
  }

  private graphs(): Promise<Graphs> {
    const signature = this.stack.signature;
    if (this.pending?.signature === signature) return this.pending.graphs;
    const build = (withPast: boolean) => {
      const built = this.stack.build({ decoder: { withPast, returnPresent: true, lastTokenLogits: true } });
      return { logits: built.outputs.logits!, ...built.present };
    };
    const graphs = (async () => ({ signature, prefill: await compile(build(false), this.opts.session), decode: await compile(build(true), this.opts.session) }))();
    this.pending = { signature, graphs };
    graphs.catch(() => this.pending?.graphs === graphs && (this.pending = undefined));
    return graphs;
  }

  /** The graphs for the stack now; the previous ones are freed here, where no run holds them. */
  private async use(): Promise<Graphs> {
    const g = await this.graphs();
    if (this.current && this.current !== g) {
      await this.current.prefill.release();
      await this.current.decode.release();
    }
    return (this.current = g);
  }

  private async loop(): Promise<void> {
    while (this.live.length > 0 || this.waiting.length > 0) {
      let joining: Row[] = [];
      try {
        this.checkStops();
        joining = this.admit();
        const joined = joining.length > 0 ? await this.prefill(joining) : undefined;
        this.relayout(joined);
        if (this.live.length > 0) await this.decode();
      } catch (e) {
        // A failed run ends the requests in it; the batch starts afresh and the server keeps serving.
        const err = e instanceof Error ? e : new Error(String(e));
        for (const r of [...this.live, ...joining]) r.entry.reject(err);
        this.live = [];
        this.cache = undefined;
      }
    }
  }

  private checkStops(): void {
    for (const e of new Set([...this.waiting, ...this.live.map((r) => r.entry)])) {
      const err = e.settled ? undefined : e.spec.shouldStop();
      if (err) e.reject(err);
    }
    for (let i = this.waiting.length - 1; i >= 0; i--) if (this.waiting[i]!.settled) this.waiting.splice(i, 1);
  }

  /** Waiting groups (in arrival order) while their rows fit beside the running ones. */
  private admit(): Row[] {
    const rows: Row[] = [];
    let room = this.opts.maxBatch - this.live.filter((r) => !r.done).length;
    while (this.waiting.length > 0) {
      const e = this.waiting[0]!;
      const alone = this.live.length === 0 && rows.length === 0;
      if (e.spec.rows > room && !alone) break;
      this.waiting.shift();
      room -= e.spec.rows;
      for (let i = 0; i < e.spec.rows; i++) {
        const row: Row = { entry: e, index: i, length: e.spec.prompt.length, position: 0, last: 0, generated: 0, done: false };
        e.rows.push(row);
        rows.push(row);
      }
      e.admit();
    }
    return rows;
  }

  /** Run the joining rows' prompts; their first tokens are sampled here. */
  private async prefill(rows: Row[]): Promise<{ rows: Row[]; width: number; kv: Float32Array[] }> {
    const g = await this.use();
    const width = Math.max(...rows.map((r) => r.length));
    const cfg = this.model.config;
    const eos = cfg.eosTokenId;
    const pad = cfg.padTokenId ?? this.model.tokenizer?.padTokenId ?? (typeof eos === "number" ? eos : 0);
    // Left padding keeps every row's last prompt token in the last column (Generator's layout).
    const ids = rows.flatMap((r) => [...Array<number>(width - r.length).fill(pad), ...r.entry.spec.prompt]);
    const mask = rows.flatMap((r) => [...Array<number>(width - r.length).fill(0), ...Array<number>(r.length).fill(1)]);
    const feeds = this.model.prepareInputs({ input_ids: int64([rows.length, width], ids), attention_mask: int64([rows.length, width], mask) });
    const positions = feeds.position_ids!.data as BigInt64Array;
    rows.forEach((r, i) => (r.position = Number(positions[i * width + width - 1]!) + 1));
    this.opts.onRun?.("prefill", rows.length);
    const out = await g.prefill.run(this.withAdapters(g.prefill, feeds, rows));
    this.kvDims = out[this.kvNames[0]!]!.shape;
    this.sample(rows, out.logits!);
    return { rows, width, kv: this.kvNames.map((n) => out[n]!.data as Float32Array) };
  }

  /**
   * The batch for the next step: running rows that go on, then the joining ones, each right-aligned
   * in a cache as wide as the longest of them. Unchanged membership copies nothing.
   */
  private relayout(joined: { rows: Row[]; width: number; kv: Float32Array[] } | undefined): void {
    const kept = this.live.filter((r) => !r.done);
    const joining = joined?.rows.filter((r) => !r.done) ?? [];
    if (kept.length === this.live.length && joining.length === 0) return;
    const rows = [...kept, ...joining];
    if (rows.length === 0) {
      this.live = [];
      this.cache = undefined;
      return;
    }
    const [, heads, , dim] = this.kvShape();
    const width = Math.max(...rows.map((r) => r.length));
    const sources = [...kept.map((r) => ({ r, from: this.live.indexOf(r), w: this.cache!.width, kv: this.cache!.kv })), ...joining.map((r) => ({ r, from: joined!.rows.indexOf(r), w: joined!.width, kv: joined!.kv }))];
    const kv = this.kvNames.map((_, k) => {
      const to = new Float32Array(rows.length * heads * width * dim);
      sources.forEach(({ r, from, w, kv: src }, b) => {
        for (let h = 0; h < heads; h++) {
          const at = ((from * heads + h) * w + w - r.length) * dim;
          to.set(src[k]!.subarray(at, at + r.length * dim), ((b * heads + h) * width + width - r.length) * dim);
        }
      });
      return to;
    });
    this.live = rows;
    this.cache = { width, kv };
  }

  /** One token for every running row. */
  private async decode(): Promise<void> {
    const g = await this.use();
    const rows = this.live;
    const cache = this.cache!;
    const width = cache.width;
    const [, heads, , dim] = this.kvShape();
    const mask = new Array<number>(rows.length * (width + 1)).fill(0);
    rows.forEach((r, b) => mask.fill(1, b * (width + 1) + width - r.length, (b + 1) * (width + 1)));
    const feeds: Record<string, Tensor> = {
      input_ids: int64([rows.length, 1], rows.map((r) => r.last)),
      attention_mask: int64([rows.length, width + 1], mask),
      position_ids: int64([rows.length, 1], rows.map((r) => r.position)),
    };
    this.kvNames.forEach((n, k) => (feeds[n.replace("present.", "past_key_values.")] = { dtype: "float32", shape: [rows.length, heads, width, dim], data: cache.kv[k]! }));
    this.opts.onRun?.("decode", rows.length);
    const out = await g.decode.run(this.withAdapters(g.decode, feeds, rows));
    this.cache = { width: width + 1, kv: this.kvNames.map((n) => out[n]!.data as Float32Array) };
    for (const r of rows) {
      r.length++;
      r.position++;
    }
    this.sample(rows, out.logits!);
  }

  /** Each row's next token from its logits, rows of one request in row order (their shared generator). */
  private sample(rows: readonly Row[], logits: Tensor): void {
    const z = logits.data as Float32Array;
    const vocab = z.length / rows.length;
    const cfg = this.model.config;
    rows.forEach((r, i) => {
      const e = r.entry;
      if (r.done || e.settled) return;
      let t: number;
      let finished: boolean;
      try {
        t = pick(z.subarray(i * vocab, (i + 1) * vocab), e.spec.temperature, undefined, e.spec.topP, e.rand);
        r.generated++;
        finished = e.spec.onToken(r.index, t);
      } catch (err) {
        e.reject(err instanceof Error ? err : new Error(String(err)));
        return;
      }
      r.last = t;
      // Learned positions end at max_position_embeddings (Generator stops there too).
      if (finished || r.generated >= e.spec.maxTokens || (cfg.family !== "llama" && r.position >= cfg.maxPositions)) r.done = true;
      if (e.rows.every((x) => x.done)) e.resolve();
    });
  }

  /** The stack's tables and each row's slot, for graphs that read them. */
  private withAdapters(graph: CompiledGraph, feeds: Record<string, Tensor>, rows: readonly Row[]): Record<string, Tensor> {
    const wanted = new Set(graph.inputNames);
    if (!wanted.has("adapter_index")) return feeds;
    const stacked = this.stack.feeds(rows.map((r) => r.entry.slot));
    const all: Record<string, Tensor> = { ...feeds, ...stacked.feeds, adapter_index: int64([rows.length], stacked.adapterIndex) };
    return Object.fromEntries(Object.entries(all).filter(([k]) => wanted.has(k)));
  }

  /** [_, kvHeads, _, headDim] of the cache, as the prefill graph returned it. */
  private kvShape(): [number, number, number, number] {
    if (!this.kvDims) throw new Error("ContinuousBatcher: no prefill has run yet");
    return this.kvDims as [number, number, number, number];
  }
}
