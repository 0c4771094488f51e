// Encoder requests (classify, tag, answer, embed) on one shared PeftModel. Concurrent requests for
// different adapters run as ONE session run: plain LoRA adapters (and the base model) share the
// stacked graph, where each row gathers its own adapter's factors from slot tables fed at run time
// (stacked-lora.ts: loading one more adapter does not recompile); other methods
// that can gate their effect per row (IA3, bottleneck, DoRA, ...) share PeftModel's mixed-adapter
// graph (every adapter computed, rows gated by `adapter_index`); the rest (prompt, prefix tuning,
// selective methods) run in a graph of their own. Outputs decode exactly as `peftjs predict`
// decodes them (train/predict.ts).
import { int64, type Tensor } from "../ir/tensor.js";
import { type PeftModel } from "../peft/peft-model.js";
import { compile, type CompiledGraph } from "../runtime/session.js";
import { collate, type Example } from "../train/data.js";
import { decodePredictions, type Prediction } from "../train/predict.js";
import { type AdapterLoader, type Lease } from "./adapter-registry.js";
import { type Job } from "./scheduler.js";
import { isStackable, LoraStack } from "./stacked-lora.js";
import { type ModelGraph } from "../models/task.js";

export interface EncoderAdapter {
  readonly internalName: string;
  /** Its class names (labels.json), if it has them. */
  readonly labels?: readonly string[];
  /** Can share a mixed-adapter batch. */
  readonly mixable: boolean;
  /** Plain LoRA: shares the stacked graph, each row gathering its own factors (stacked-lora.ts). */
  readonly stackable: boolean;
}

export type EncoderKind = "predict" | "embed";

export interface EncoderJob extends Job<EncoderResult> {
  readonly kind: EncoderKind;
  readonly examples: Example[];
  /** Undefined: the base model. */
  readonly lease?: Lease<EncoderAdapter>;
}

export interface EncoderResult {
  predictions?: Prediction[];
  /** Mean of the last hidden states over each example's tokens. */
  embeddings?: number[][];
}

/** Sessions kept: the stacked and mixed graphs plus a few of adapters that run alone. */
const SESSION_LIMIT = 4;

export class EncoderEngine implements AdapterLoader<EncoderAdapter> {
  private readonly mixable = new Set<string>();
  /** Plain LoRA adapters' factors and heads (their tensors leave the PeftModel once copied here). */
  private readonly stack: LoraStack;
  private readonly sessions = new Map<string, Promise<CompiledGraph>>();
  /** Graphs compiled so far (a changed set of loaded adapters recompiles the shared graphs). */
  compiled = 0;

  constructor(
    readonly peft: PeftModel,
    private readonly threads?: number,
  ) {
    this.stack = new LoraStack(peft.base);
  }

  async load(path: string, internalName: string): Promise<{ value: EncoderAdapter; bytes: number }> {
    const adapter = await this.peft.loadAdapter(path, internalName);
    let bytes = 0;
    for (const t of adapter.tensors.values()) bytes += t.data.byteLength;
    // Whether the method can gate its effect per row: try building the graph (cheap: no lowering).
    let mixable = false;
    this.peft.setAdapter([internalName]);
    if (this.peft.virtualTokens === 0 && this.peft.prefixTokens === 0) {
      // Plain LoRA needs no trial build (the stacked graph serves it): loading 1000 stays cheap.
      if (isStackable(adapter)) mixable = true;
      else {
        try {
          this.peft.build({ mixedAdapters: true });
          mixable = true;
        } catch {
          mixable = false;
        }
      }
    }
    const stackable = mixable && isStackable(adapter);
    const labels = this.peft.labels.get(internalName);
    if (stackable) {
      try {
        this.stack.add(internalName, adapter);
      } finally {
        // One copy of the factors: the stack's.
        this.peft.deleteAdapter(internalName);
      }
    } else if (mixable) this.mixable.add(internalName);
    return { value: { internalName, labels, mixable, stackable }, bytes };
  }

  async unload(value: EncoderAdapter): Promise<void> {
    // A running batch may use a graph holding this adapter even when none of its rows do.
    while (this.running) await this.running.catch(() => undefined);
    if (value.stackable) return this.stack.remove(value.internalName);
    this.mixable.delete(value.internalName);
    const stale = [...this.sessions].filter(([key]) => key.slice(key.indexOf(":") + 1).split(",").includes(value.internalName));
    for (const [key] of stale) this.sessions.delete(key);
    this.peft.deleteAdapter(value.internalName);
    for (const [, s] of stale) await (await s.catch(() => undefined))?.release();
  }

  /**
   * Requests of one group may share a batch: plain LoRA adapters and the base model (the stacked
   * graph), other methods that gate per row (the mixed graph), and each remaining adapter alone.
   */
  group(adapter: EncoderAdapter | undefined): string {
    return !adapter || adapter.stackable ? "stacked" : adapter.mixable ? "mixed" : `alone:${adapter.internalName}`;
  }

  private running: Promise<unknown> | undefined;

  /** Run one batch of jobs (all of one group); one result per job. Batches run one at a time. */
  async run(jobs: readonly EncoderJob[]): Promise<EncoderResult[]> {
    const p = this.runBatch(jobs);
    this.running = p;
    try {
      return await p;
    } finally {
      if (this.running === p) this.running = undefined;
    }
  }

  private async runBatch(jobs: readonly EncoderJob[]): Promise<EncoderResult[]> {
    const first = jobs[0]!.lease?.adapter.value;
    const group = this.group(first);
    const stacked = group === "stacked";
    const names = stacked ? [] : group === "mixed" ? [...this.mixable].sort() : [first!.internalName];
    const examples = jobs.flatMap((j) => j.examples);
    const tok = this.peft.base.tokenizer;
    const padId = tok?.padTokenId ?? tok?.eosTokenId ?? 0;
    const { input_ids, attention_mask, token_type_ids } = collate(examples, padId);
    // The active set decides the graph and the feeds' virtual tokens; set it right before each use.
    // (The stacked graph is built from the base model: its adapters are not active in the PeftModel.)
    const active = stacked ? [] : names;
    this.peft.setAdapter(active);
    // The stacked graph depends only on which layers are adapted (the tables are fed per run).
    const session = this.session(stacked ? `stacked:|${this.stack.signature}` : `${group === "mixed" ? "mixed" : "alone"}:${names.join(",")}`, () =>
      stacked ? this.stack.build() : this.peft.build({ mixedAdapters: group === "mixed" }),
    );
    const feeds = this.peft.prepareInputs({ input_ids, attention_mask, token_type_ids });
    const compiled = await session;
    // Each row's adapter: its slot in the stack (0: the base model), or its place in `names` in the mixed graph (-1: the base).
    const rowOf = (j: EncoderJob) => (stacked ? this.stack.slotOf(j.lease?.adapter.value.internalName) : j.lease ? names.indexOf(j.lease.adapter.value.internalName) : -1);
    let rows = jobs.flatMap((j) => j.examples.map(() => rowOf(j)));
    if (stacked) {
      const compact = this.stack.feeds(rows);
      Object.assign(feeds, compact.feeds);
      rows = compact.adapterIndex;
    }
    const wanted = new Set(compiled.inputNames);
    if (wanted.has("adapter_index")) feeds.adapter_index = int64([rows.length], rows);
    const out = await compiled.run(Object.fromEntries(Object.entries(feeds).filter(([k]) => wanted.has(k))));
    this.peft.setAdapter(active);
    const predictions = jobs.some((j) => j.kind === "predict") ? decodePredictions(this.peft, examples, out) : undefined;
    const hidden = out.last_hidden_state;
    let at = 0;
    return jobs.map((j) => {
      const from = at;
      at += j.examples.length;
      if (j.kind === "predict") return { predictions: predictions!.slice(from, at) };
      return { embeddings: j.examples.map((e, i) => meanPool(hidden!, from + i, e.ids.length, this.peft.virtualTokens)) };
    });
  }

  async release(): Promise<void> {
    for (const s of this.sessions.values()) await (await s.catch(() => undefined))?.release();
    this.sessions.clear();
  }

  private session(key: string, build: () => ModelGraph): Promise<CompiledGraph> {
    let s = this.sessions.get(key);
    if (s) {
      this.sessions.delete(key);
      this.sessions.set(key, s);
      return s;
    }
    const built = build();
    const { logits, start_logits, end_logits, last_hidden_state } = built.outputs;
    const outputs = Object.fromEntries(Object.entries({ logits, start_logits, end_logits, last_hidden_state }).filter(([, v]) => v !== undefined)) as Record<string, NonNullable<typeof logits>>;
    // On a worker thread: the server keeps answering (health, metrics, new requests) while it runs.
    s = compile(outputs, { worker: true, ...(this.threads ? { threads: this.threads } : {}) });
    this.compiled++;
    this.sessions.set(key, s);
    s.catch(() => this.sessions.get(key) === s && this.sessions.delete(key));
    while (this.sessions.size > SESSION_LIMIT) {
      const [oldest, old] = this.sessions.entries().next().value as [string, Promise<CompiledGraph>];
      this.sessions.delete(oldest);
      // Batches run one at a time, so no run holds the evicted session.
      void old.then((c) => c.release()).catch(() => undefined);
    }
    return s;
  }
}

function meanPool(hidden: Tensor, row: number, length: number, shift: number): number[] {
  const [, width, dim] = hidden.shape as [number, number, number];
  const h = hidden.data as Float32Array;
  const out = new Array<number>(dim).fill(0);
  for (let t = shift; t < shift + length; t++) for (let d = 0; d < dim; d++) out[d]! += h[(row * width + t) * dim + d]!;
  return out.map((v) => v / length);
}
