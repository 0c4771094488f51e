// One graph for rows of many LoRA adapters, with the cost of one: each adapted layer reads every
// loaded adapter's A and B from a slot table ([slots, r, in] / [slots, out, r], scaling folded
// into B, ranks zero-padded, slot 0 zeros = the base model), and each row gathers its own pair by
// `adapter_index` before two batched MatMuls, as Punica's SGMV and S-LoRA do, in standard ONNX
// ops (Gather, MatMul). The task head each adapter trains (modules_to_save: classifier, score,
// qa_outputs) is a slot table too (slot 0: the base head). The tables are run inputs, not
// initializers: loading or unloading an adapter writes its slot and never recompiles; only a new
// set of adapted layers does. The gated mixed graph of PeftModel computes every adapter on every
// row instead; it remains the path for methods this file does not cover.
//
// @example
//   const stack = new LoraStack(model);
//   stack.add("a", peft.adapters.get("a")!);
//   const step = await compile({ logits: stack.build(model).outputs.logits! });
//   const { feeds, adapterIndex } = stack.feeds([stack.slotOf("a"), 0]);
//   await step.run({ ...model.prepareInputs(batch), ...feeds, adapter_index: int64([2], adapterIndex) });
import { type Graph, type Value } from "../ir/graph.js";
import { add, gather, matmul, reshape, transpose } from "../ir/ops/index.js";
import { type Tensor } from "../ir/tensor.js";
import { type LinearHook, type ModelHooks } from "../models/hooks.js";
import { type GraphOptions, type PretrainedModel } from "../models/pretrained.js";
import { type ModelGraph } from "../models/task.js";
import { type Adapter } from "../tuners/tuner.js";

const HEADS = ["classifier", "score", "qa_outputs"];
const LORA_KEY = /^(.+)\.lora_([AB])\.weight$/;
const HEAD_KEY = /^(.+)\.modules_to_save\.(weight|bias)$/;

/** Plain LoRA whose update is B A x * scaling on Linear layers, with at most a Linear task head. */
export function isStackable(adapter: Adapter): boolean {
  const c = adapter.config as Record<string, unknown>;
  if (c.peft_type !== "LORA" || c.use_dora || c.lora_bias || c.use_gating || (c.bias ?? "none") !== "none") return false;
  if (Object.keys((c.rank_pattern as object | null) ?? {}).length || Object.keys((c.alpha_pattern as object | null) ?? {}).length) return false;
  for (const key of adapter.tensors.keys()) {
    const head = HEAD_KEY.exec(key);
    if (!LORA_KEY.test(key) && !(head && HEADS.includes(head[1]!))) return false;
  }
  return true;
}

/** One adapted layer's slot tables: A [slots, rank, in], B [slots, out, rank] (scaling folded in). */
interface LayerTable {
  rank: number;
  inDim: number;
  outDim: number;
  A: Float32Array;
  B: Float32Array;
}

/** One head's slot tables: W [slots, out, in], b [slots, out]; an adapter without its own head holds the base's. */
interface HeadTable {
  outDim: number;
  inDim: number;
  W: Float32Array;
  b: Float32Array;
}

/** The slot tables of every loaded plain-LoRA adapter; memory grows with the adapters loaded. */
export class LoraStack {
  private readonly layers = new Map<string, LayerTable>();
  private readonly heads = new Map<string, HeadTable>();
  private readonly slots = new Map<string, number>();
  private readonly free: number[] = [];
  private used = 1;
  /** Allocated slots (slot 0 included); doubles when full. */
  private capacity = 8;
  /** Bumped whenever a slot's contents change (add, remove), so cached feeds are never stale. */
  private version = 0;
  private lastFeeds?: { key: string; value: { feeds: Record<string, Tensor>; adapterIndex: number[] } };

  constructor(private readonly model: PretrainedModel) {}

  /** The adapted layers and heads: a graph built from the stack fits every stack with the same signature. */
  get signature(): string {
    return [...[...this.layers.keys()].sort(), ...[...this.heads.keys()].sort().map((h) => `head:${h}`)].join(",");
  }

  get size(): number {
    return this.slots.size;
  }

  /** The slot rows of `name` read (0: no adapter, the base model). */
  slotOf(name: string | undefined): number {
    if (name === undefined) return 0;
    const slot = this.slots.get(name);
    if (slot === undefined) throw new Error(`LoraStack: no adapter "${name}" is stacked`);
    return slot;
  }

  /** Copy `adapter`'s factors (and head) into a free slot under `name`. */
  add(name: string, adapter: Adapter): number {
    if (this.slots.has(name)) throw new Error(`LoraStack: "${name}" is already stacked`);
    if (!isStackable(adapter)) throw new Error(`LoraStack: "${name}" is not a plain LoRA adapter (${String((adapter.config as { peft_type?: unknown }).peft_type)})`);
    const c = adapter.config as { r: number; lora_alpha: number; use_rslora?: boolean };
    const scaling = c.use_rslora ? c.lora_alpha / Math.sqrt(c.r) : c.lora_alpha / c.r;
    // Check every tensor before writing anything, so a mismatched adapter leaves the stack as it was.
    const factors: { path: string; A: Tensor; B: Tensor }[] = [];
    for (const [key, A] of adapter.tensors) {
      const m = LORA_KEY.exec(key);
      if (!m || m[2] !== "A") continue;
      const B = adapter.tensors.get(`${m[1]}.lora_B.weight`);
      if (!B) throw new Error(`LoraStack: "${name}" has ${key} but no ${m[1]}.lora_B.weight`);
      const [r, inDim] = A.shape as [number, number];
      const [outDim, rB] = B.shape as [number, number];
      const t = this.layers.get(m[1]!);
      if (rB !== r || (t && (t.inDim !== inDim || t.outDim !== outDim))) throw new Error(`LoraStack: "${name}" ${m[1]}: lora_A ${JSON.stringify(A.shape)} and lora_B ${JSON.stringify(B.shape)} do not fit the layer's [${t?.outDim ?? outDim}, ${t?.inDim ?? inDim}]`);
      factors.push({ path: m[1]!, A, B });
    }
    for (const h of HEADS) {
      const w = adapter.tensors.get(`${h}.modules_to_save.weight`);
      if (w && w.shape.join() !== this.model.weight(`${h}.weight`).shape.join()) throw new Error(`LoraStack: "${name}" ${h}.modules_to_save.weight is ${JSON.stringify(w.shape)}, the model's head is ${JSON.stringify(this.model.weight(`${h}.weight`).shape)}`);
    }
    const slot = this.free.pop() ?? this.used++;
    if (slot >= this.capacity) this.grow(this.capacity * 2);
    for (const { path, A, B } of factors) {
      const [r, inDim] = A.shape as [number, number];
      const outDim = B.shape[0]!;
      let t = this.layers.get(path);
      if (!t) {
        t = { rank: r, inDim, outDim, A: new Float32Array(this.capacity * r * inDim), B: new Float32Array(this.capacity * outDim * r) };
        this.layers.set(path, t);
      } else if (r > t.rank) this.widen(t, r);
      t.A.set(A.data as Float32Array, slot * t.rank * inDim); // rows r..rank stay zero
      const b = B.data as Float32Array;
      const base = slot * outDim * t.rank;
      for (let o = 0; o < outDim; o++) for (let k = 0; k < r; k++) t.B[base + o * t.rank + k] = b[o * r + k]! * scaling;
    }
    for (const h of HEADS) {
      const w = adapter.tensors.get(`${h}.modules_to_save.weight`);
      if (w && !this.heads.has(h)) this.heads.set(h, this.newHead(h));
      const t = this.heads.get(h);
      if (!t) continue;
      t.W.set((w ?? this.model.weight(`${h}.weight`)).data as Float32Array, slot * t.outDim * t.inDim);
      t.b.set((adapter.tensors.get(`${h}.modules_to_save.bias`) ?? this.model.weight(`${h}.bias`)).data as Float32Array, slot * t.outDim);
    }
    this.slots.set(name, slot);
    this.version++;
    return slot;
  }

  /** Free `name`'s slot (zeroed: a row that still pointed at it would see the base model). */
  remove(name: string): void {
    const slot = this.slotOf(name);
    for (const t of this.layers.values()) {
      t.A.fill(0, slot * t.rank * t.inDim, (slot + 1) * t.rank * t.inDim);
      t.B.fill(0, slot * t.outDim * t.rank, (slot + 1) * t.outDim * t.rank);
    }
    for (const [h, t] of this.heads) {
      t.W.set(this.model.weight(`${h}.weight`).data as Float32Array, slot * t.outDim * t.inDim);
      t.b.set(this.model.weight(`${h}.bias`).data as Float32Array, slot * t.outDim);
    }
    this.slots.delete(name);
    this.free.push(slot);
    this.version++;
  }

  /**
   * The tables of the slots `rows` read, compacted to those slots, and each row's index into them,
   * by the input names of graphs built from this stack. A batch feeds only its own adapters (at
   * most one per row), not every loaded one: with 1000 adapters loaded the full tables are ~1 GB
   * for a BERT-base q/v stack, which made each run scale with adapters loaded (S-LoRA gathers the
   * batch's adapters the same way).
   */
  feeds(rows: readonly number[]): { feeds: Record<string, Tensor>; adapterIndex: number[] } {
    // A decode loop asks for the same rows every step until one joins or leaves: reuse the last
    // compaction while no slot was written since.
    const key = `${this.version}:${rows.join(",")}`;
    if (this.lastFeeds?.key === key) return this.lastFeeds.value;
    const compact = new Map<number, number>();
    const adapterIndex = rows.map((slot) => {
      if (slot < 0 || slot >= this.used) throw new Error(`LoraStack: slot ${slot} is not allocated`);
      let i = compact.get(slot);
      if (i === undefined) compact.set(slot, (i = compact.size));
      return i;
    });
    const slots = [...compact.keys()];
    const pick = (table: Float32Array, per: number): Float32Array => {
      const out = new Float32Array(slots.length * per);
      slots.forEach((slot, i) => out.set(table.subarray(slot * per, (slot + 1) * per), i * per));
      return out;
    };
    const k = slots.length;
    const out: Record<string, Tensor> = {};
    for (const [path, t] of this.layers) {
      out[`lora_stack.${path}.A`] = { dtype: "float32", shape: [k, t.rank, t.inDim], data: pick(t.A, t.rank * t.inDim) };
      out[`lora_stack.${path}.B`] = { dtype: "float32", shape: [k, t.outDim, t.rank], data: pick(t.B, t.outDim * t.rank) };
    }
    for (const [h, t] of this.heads) {
      out[`lora_stack.${h}.weight`] = { dtype: "float32", shape: [k, t.outDim, t.inDim], data: pick(t.W, t.outDim * t.inDim) };
      out[`lora_stack.${h}.bias`] = { dtype: "float32", shape: [k, t.outDim], data: pick(t.b, t.outDim) };
    }
    this.lastFeeds = { key, value: { feeds: out, adapterIndex } };
    return this.lastFeeds.value;
  }

  /** Hooks that read the slot tables (inputs `lora_stack.*` and `adapter_index` [batch]). */
  hooks(): ModelHooks {
    const layers = new Map(this.layers);
    const heads = new Map(this.heads);
    let index: Value | undefined;
    const rowIndex = (g: Graph) => (index ??= g.input("adapter_index", "int64", ["batch"]));
    const loraLayer = (h: LinearHook): Value | undefined => {
      const t = layers.get(h.path);
      if (!t) return undefined;
      const g = h.x.graph;
      const idx = rowIndex(g);
      const rank = `${h.path}.rank`;
      const As = gather(g.input(`lora_stack.${h.path}.A`, "float32", ["adapter_slots", rank, t.inDim]), idx); // [batch, r, in]
      const Bs = gather(g.input(`lora_stack.${h.path}.B`, "float32", ["adapter_slots", t.outDim, rank]), idx); // [batch, out, r]
      const x3 = h.x.rank === 3 ? h.x : reshape(h.x, [-1, 1, t.inDim]);
      let delta = matmul(matmul(x3, transpose(As, [0, 2, 1])), transpose(Bs, [0, 2, 1]));
      if (h.x.rank !== 3) delta = reshape(delta, [-1, t.outDim]);
      return add(h.base(h.x), delta);
    };
    const headLayer = (h: LinearHook): Value | undefined => {
      const t = heads.get(h.path);
      if (!t) return undefined;
      const g = h.x.graph;
      const idx = rowIndex(g);
      const Ws = gather(g.input(`lora_stack.${h.path}.weight`, "float32", ["adapter_slots", t.outDim, t.inDim]), idx);
      const bs = gather(g.input(`lora_stack.${h.path}.bias`, "float32", ["adapter_slots", t.outDim]), idx); // [batch, out]
      const x3 = h.x.rank === 3 ? h.x : reshape(h.x, [-1, 1, t.inDim]);
      const y = add(matmul(x3, transpose(Ws, [0, 2, 1])), reshape(bs, [-1, 1, t.outDim]));
      return h.x.rank === 3 ? y : reshape(y, [-1, t.outDim]);
    };
    return { linear: (h) => headLayer(h) ?? loraLayer(h) };
  }

  /** The base model's graph where each row reads its adapter's slot (`adapter_index`, 0 = none). */
  build(opts: GraphOptions = {}): ModelGraph {
    return this.model.build({ ...opts, hooks: this.hooks() });
  }

  private newHead(h: string): HeadTable {
    const w = this.model.weight(`${h}.weight`);
    const bias = this.model.weight(`${h}.bias`);
    const [outDim, inDim] = w.shape as [number, number];
    const t: HeadTable = { outDim, inDim, W: new Float32Array(this.capacity * outDim * inDim), b: new Float32Array(this.capacity * outDim) };
    // Every slot starts as the base head: adapters loaded before without a head of their own use it.
    for (let s = 0; s < this.capacity; s++) {
      t.W.set(w.data as Float32Array, s * outDim * inDim);
      t.b.set(bias.data as Float32Array, s * outDim);
    }
    return t;
  }

  private grow(capacity: number): void {
    for (const t of this.layers.values()) {
      t.A = copyInto(new Float32Array(capacity * t.rank * t.inDim), t.A);
      t.B = copyInto(new Float32Array(capacity * t.outDim * t.rank), t.B);
    }
    for (const [h, t] of this.heads) {
      const W = copyInto(new Float32Array(capacity * t.outDim * t.inDim), t.W);
      const b = copyInto(new Float32Array(capacity * t.outDim), t.b);
      const base = this.model.weight(`${h}.weight`).data as Float32Array;
      const baseB = this.model.weight(`${h}.bias`).data as Float32Array;
      for (let s = this.capacity; s < capacity; s++) {
        W.set(base, s * t.outDim * t.inDim);
        b.set(baseB, s * t.outDim);
      }
      t.W = W;
      t.b = b;
    }
    this.capacity = capacity;
  }

  /** Re-lay a layer's tables for a larger rank (zero-padded). */
  private widen(t: LayerTable, rank: number): void {
    const A = new Float32Array(this.capacity * rank * t.inDim);
    const B = new Float32Array(this.capacity * t.outDim * rank);
    for (let s = 0; s < this.capacity; s++) {
      A.set(t.A.subarray(s * t.rank * t.inDim, (s + 1) * t.rank * t.inDim), s * rank * t.inDim);
      for (let o = 0; o < t.outDim; o++) B.set(t.B.subarray((s * t.outDim + o) * t.rank, (s * t.outDim + o + 1) * t.rank), (s * t.outDim + o) * rank);
    }
    Object.assign(t, { rank, A, B });
  }
}

function copyInto(to: Float32Array, from: Float32Array): Float32Array {
  to.set(from);
  return to;
}
