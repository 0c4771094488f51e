// PeftModel: a frozen base model with named adapters: add / load / switch / delete / disable
// them, build training and inference graphs, count parameters, save and load in Hugging Face
// PEFT's format, merge LoRA into the base weights, and run batches whose rows use different
// adapters.
import { join, readFile } from "../platform/host.js";
import { readSafetensors, writeFileAtomic, writeSafetensors } from "../io/safetensors.js";
import { type Graph, type Value } from "../ir/graph.js";
import { add, cast, equal, reshape } from "../ir/ops/index.js";
import { type Tensor } from "../ir/tensor.js";
import { parseModelConfig } from "../models/config.js";
import { ForwardSessions, objectId, type ForwardInputs, type ForwardOutputs } from "../models/forward.js";
import { composeHooks, type ModelHooks } from "../models/hooks.js";
import { PretrainedModel, type GraphOptions } from "../models/pretrained.js";
import { assertAdapterFitsModel, TASK_TYPES, type ModelGraph } from "../models/task.js";
import { type SessionOptions } from "../runtime/session.js";
import { ModulesToSave } from "../tuners/modules-to-save.js";
import { tunerFor, type KnownFields, type PeftConfigInput } from "../tuners/registry.js";
import { layerIndex } from "../tuners/targets.js";
import { AdapterConfigError, type Adapter, type HookContext } from "../tuners/tuner.js";
import { adapterStateDict, headKeyPrefix, loadAdapterState, paramName } from "./adapter-state.js";
import { INT8_ADAPTER_WEIGHTS, isInt8AdapterConfig, readInt8Adapter } from "./int8-adapter.js";
import { adapterHubLabels, isAdapterHubConfig, readAdapterHub, writeAdapterHub } from "./adapterhub-format.js";
import { checkConfigFields } from "./config-check.js";

export const ADAPTER_CONFIG = "adapter_config.json";
export const ADAPTER_WEIGHTS = "adapter_model.safetensors";
/**
 * The class names of an adapter's head, beside its config: `{"id2label": {...}, "label2id": {...}}`
 * as in a transformers config.json. PEFT ignores the file; peftjs writes it so that an adapter
 * trained on named labels predicts and evaluates with those names.
 */
export const ADAPTER_LABELS = "labels.json";

export type { PeftConfigInput } from "../tuners/registry.js";

export interface PeftGraphOptions extends GraphOptions {
  /** Rows choose their adapter: adds an int64 input `adapter_index` [batch] (-1 = base model). */
  mixedAdapters?: boolean;
}

/** Heads PEFT adds to modules_to_save for each task (classifier_module_names / qa_module_names). */
const HEAD_MODULES: Record<string, string[]> = {
  "sequence-classification": ["classifier", "score"],
  "token-classification": ["classifier", "score"],
  "question-answering": ["qa_outputs"],
};


export class PeftModel {
  readonly adapters = new Map<string, Adapter>();
  /**
   * The modules each adapter trains and saves in full (PEFT's modules_to_save: the task's head
   * and any the config names). Their tensors are also in the adapter's `tensors`.
   */
  private readonly heads = new Map<string, ModulesToSave>();
  /** Class names of each adapter's head (index = class id), saved as labels.json. */
  readonly labels = new Map<string, readonly string[]>();
  private active: string[] = [];
  private disabled = false;
  private disabledLayers = new Set<number>();
  /** Receives warnings; default console.warn. (Loading emits none: an unknown or unimplemented config field is an error.) */
  warn: (message: string) => void = (m) => console.warn(m);

  constructor(readonly base: PretrainedModel) {}

  /**
   * Wrap a base model with a first adapter (PEFT's `get_peft_model`).
   *
   * @example
   *   const model = await loadModel("./bert-tiny", { task: "sequence-classification" });
   *   const peft = PeftModel.create(model, { peft_type: "LORA", r: 8, lora_alpha: 16, target_modules: ["query", "value"] });
   *   peft.printTrainableParameters();
   */
  static create<K extends string, T extends Record<string, unknown>>(base: PretrainedModel, config: T & { peft_type: K } & KnownFields<K, T>, adapterName = "default"): PeftModel {
    const m = new PeftModel(base);
    m.addAdapter(adapterName, config as PeftConfigInput);
    return m;
  }

  addAdapter<K extends string, T extends Record<string, unknown>>(name: string, config: T & { peft_type: K } & KnownFields<K, T>): Adapter {
    return this.addAdapterFrom(name, config, `adapter "${name}" config`);
  }

  /** addAdapter, with errors naming `source` (the config file when loading). */
  private addAdapterFrom(name: string, config: PeftConfigInput, source: string): Adapter {
    validateAdapterName(name);
    if (this.adapters.has(name)) throw new Error(`adapter "${name}" already exists`);
    const def = tunerFor(config.peft_type, source);
    checkConfigFields(def, config, source);
    const own = config.modules_to_save;
    if (own !== undefined && own !== null && !(Array.isArray(own) && own.every((m) => typeof m === "string"))) throw new AdapterConfigError(`${source}: field "modules_to_save" must be a list of module names, got ${JSON.stringify(own)}`);
    // Like PEFT's task-specific PeftModel classes: the task type is recorded and a new head is
    // trained and saved with the adapter.
    const task = TASK_TYPES[this.base.task];
    const heads = HEAD_MODULES[this.base.task] ?? [];
    const modules = [...new Set([...((own as string[] | null | undefined) ?? []), ...heads])];
    const withTask = { ...config, task_type: config.task_type ?? task, modules_to_save: modules.length ? modules : (own ?? null) };
    const parsed = def.parseConfig(withTask, source, this.base);
    const adapter = def.create(this.base, parsed, name);
    const prefix = headKeyPrefix(def);
    const trained = new ModulesToSave(this.base, parsed.modules_to_save ?? [], [], (n) => `${prefix}${n}`);
    for (const [k, t] of trained.tensors) adapter.tensors.set(k, t);
    this.heads.set(name, trained);
    this.adapters.set(name, adapter);
    if (this.active.length === 0) this.active = [name];
    return adapter;
  }

  /**
   * A new LoRA adapter combining existing ones (PEFT's `add_weighted_adapter`): "linear", "cat"
   * or "svd" (see tuners/lora/combine.ts).
   */
  addWeightedAdapter(adapters: readonly string[], weights: readonly number[], name: string, opts: { combination?: "linear" | "cat" | "svd"; svdRank?: number } = {}): void {
    const list = adapters.map((n) => {
      const a = this.adapters.get(n);
      if (!a) throw new Error(`add_weighted_adapter: "${n}" is not an adapter`);
      return a;
    });
    const type = (list[0]?.config as { peft_type?: string } | undefined)?.peft_type;
    const def = tunerFor(type, "add_weighted_adapter");
    if (!def.combine) throw new Error(`add_weighted_adapter: ${type} adapters cannot be combined`);
    const { config, fill } = def.combine(list, weights, opts);
    fill(this.addAdapter(name, config as PeftConfigInput));
  }

  /** Make one adapter, or several at once (their effects add up), the active set. */
  setAdapter(names: string | readonly string[]): void {
    const list = typeof names === "string" ? [names] : [...names];
    for (const n of list) if (!this.adapters.has(n)) throw new Error(`no adapter "${n}"; adapters: ${[...this.adapters.keys()].join(", ") || "none"}`);
    this.active = list;
  }

  get activeAdapters(): readonly string[] {
    return this.active;
  }

  deleteAdapter(name: string): void {
    if (!this.adapters.delete(name)) throw new Error(`no adapter "${name}"`);
    this.labels.delete(name);
    this.heads.delete(name);
    this.active = this.active.filter((n) => n !== name);
  }

  /** Run `fn` with every adapter switched off (the base model), restoring them afterwards. */
  async withAdaptersDisabled<T>(fn: () => Promise<T> | T): Promise<T> {
    const was = this.disabled;
    this.disabled = true;
    try {
      return await fn();
    } finally {
      this.disabled = was;
    }
  }

  /** Remove adapters from layers `from..to` (inclusive) in graphs built from now on (Houlsby's ablation). */
  disableAdapterLayers(from: number, to: number): void {
    for (let i = from; i <= to; i++) this.disabledLayers.add(i);
  }

  enableAllAdapterLayers(): void {
    this.disabledLayers.clear();
  }

  /** Build a graph with the active adapters; their tensors become trainable graph parameters. */
  build(opts: PeftGraphOptions = {}): ModelGraph {
    const bindings = new Map<Graph, Map<string, Value>>();
    const auxLosses: Value[] = [];
    let adapterIndex: Value | undefined;
    const hookSets: ModelHooks[] = [];
    // Merged adapters live in the weights of `merged`; only the others hook in.
    const names = this.disabled ? [] : this.active.filter((n) => !this.merged?.adapters.includes(n));
    const model = this.disabled || !this.merged ? this.base : this.merged.model;
    const perAdapter = (adapter: Adapter, i: number): ModelHooks => {
      let ctx: HookContext | undefined;
      const context = (graph: Graph): HookContext => {
        if (ctx) return ctx;
        let bound = bindings.get(graph);
        if (!bound) bindings.set(graph, (bound = new Map()));
        let rowGate: ((like: Value) => Value) | undefined;
        if (opts.mixedAdapters) {
          adapterIndex ??= graph.input("adapter_index", "int64", ["batch"]);
          const gate = cast(equal(adapterIndex, i), "float32");
          rowGate = (like) => reshape(gate, [-1, ...Array<number>(like.rank - 1).fill(1)]);
        }
        return (ctx = {
          graph,
          training: opts.training ?? false,
          model: this.base,
          rowGate,
          addLoss: (term) => void auxLosses.push(term),
          bind: (key) => {
            // The adapter's name is added here, once for every method: tuners name tensors without it.
            const name = paramName(adapter.name, key);
            let v = bound!.get(name);
            if (!v) {
              const t = adapter.tensors.get(key);
              if (!t) throw new Error(`adapter "${adapter.name}" has no tensor "${key}"`);
              bound!.set(name, (v = graph.params.get(name)?.value ?? graph.param(name, t, { trainable: !this.frozen.has(adapter.name) })));
            }
            return v;
          },
        });
      };
      const skip = (path: string) => {
        const layer = layerIndex(path);
        return layer !== undefined && this.disabledLayers.has(layer);
      };
      // One hook set per graph, created when the builder first calls in.
      const cached = new Map<Graph, ModelHooks>();
      const heads = this.heads.get(adapter.name);
      const hooksFor = (graph: Graph) => {
        let h = cached.get(graph);
        if (!h) {
          const ctx = context(graph);
          const own: ModelHooks = { parameter: (n) => heads?.parameter(n, ctx), linear: (lh) => heads?.linear(lh, ctx) };
          cached.set(graph, (h = composeHooks([own, adapter.hooks(ctx)])));
        }
        return h;
      };
      return {
        parameter: (name, graph) => hooksFor(graph).parameter?.(name, graph),
        linear: (h) => (skip(h.path) ? undefined : hooksFor(h.x.graph).linear?.(h)),
        sublayerOutput: (h) => (skip(h.path) ? undefined : hooksFor(h.y.graph).sublayerOutput?.(h)),
        blockOutput: (h) => (skip(h.path) ? undefined : hooksFor(h.output.graph).blockOutput?.(h)),
        keyValue: (h) => (skip(h.path) ? undefined : hooksFor(h.k.graph).keyValue?.(h)),
        inputEmbeddings: (h) => hooksFor(h.embeds.graph).inputEmbeddings?.(h),
      };
    };
    names.forEach((n, i) => hookSets.push(perAdapter(this.adapters.get(n)!, i)));
    const built = model.build({ ...opts, hooks: composeHooks(hookSets) });
    if (built.outputs.loss && auxLosses.length) built.outputs.loss = auxLosses.reduce((l, t) => add(l, t), built.outputs.loss);
    return built;
  }

  /**
   * Let the active adapters react to a finished training step (AdaLoRA reallocates its rank
   * budget from the gradients). Call after each optimizer step with that step's gradients.
   */
  afterStep(step: number, grads: ReadonlyMap<string, Tensor>): void {
    for (const n of this.active) {
      const adapter = this.adapters.get(n)!;
      if (!adapter.afterStep) continue;
      const own = new Map<string, Tensor>();
      for (const k of adapter.tensors.keys()) {
        const g = grads.get(paramName(n, k));
        if (g) own.set(k, g);
      }
      adapter.afterStep(step, own);
    }
  }

  /** Virtual tokens prepended to inputs by the active prompt-tuning / P-tuning adapter. */
  get virtualTokens(): number {
    if (this.disabled) return 0;
    return this.active.reduce((n, a) => n + ((this.adapters.get(a) as { virtualTokens?: number }).virtualTokens ?? 0), 0);
  }

  /**
   * Cache positions the active prefix-tuning adapters occupy. PEFT passes a prefix as past
   * key/values, so transformers starts the real tokens' positions after it.
   */
  get prefixTokens(): number {
    if (this.disabled) return 0;
    return this.active.reduce((n, a) => n + ((this.adapters.get(a) as { prefixTokens?: number }).prefixTokens ?? 0), 0);
  }

  /**
   * Feeds for a tokenized batch (see PretrainedModel.prepareInputs), with room for the virtual
   * tokens of an active prompt method: placeholders in front of input_ids, their mask set, and
   * per-token labels padded with -100. Positions start after an active prefix adapter's virtual
   * tokens (see prefixTokens).
   */
  prepareInputs(batch: { input_ids: Tensor<"int64">; attention_mask?: Tensor<"int64">; token_type_ids?: Tensor<"int64"> }, extra: Readonly<Record<string, Tensor>> = {}): Record<string, Tensor> {
    const n = this.virtualTokens;
    const [rows, seq] = batch.input_ids.shape as [number, number];
    const front = (t: Tensor<"int64"> | undefined, fill: bigint, fallback: bigint): Tensor<"int64"> => {
      const out = new BigInt64Array(rows * (seq + n));
      for (let r = 0; r < rows; r++) {
        out.fill(fill, r * (seq + n), r * (seq + n) + n);
        for (let s = 0; s < seq; s++) out[r * (seq + n) + n + s] = t ? (t.data[r * seq + s] as bigint) : fallback;
      }
      return { dtype: "int64", shape: [rows, seq + n], data: out };
    };
    const past = this.prefixTokens;
    // PeftModelForFeatureExtraction.forward drops token_type_ids for prompt-learning methods.
    const types = this.base.task === "base" && n + past > 0 ? undefined : batch.token_type_ids;
    const feeds = n === 0 ? this.base.prepareInputs({ ...batch, token_type_ids: types }, past) : this.base.prepareInputs({ input_ids: front(batch.input_ids, 0n, 0n), attention_mask: front(batch.attention_mask, 1n, 1n), token_type_ids: front(types, 0n, 0n) }, past);
    for (const [k, t] of Object.entries(extra)) {
      if (n && (k === "start_positions" || k === "end_positions")) feeds[k] = { dtype: "int64", shape: t.shape, data: (t.data as BigInt64Array).map((p) => p + BigInt(n)) };
      else feeds[k] = n && t.shape.length === 2 && t.shape[1] === seq && t.dtype === "int64" ? front(t as Tensor<"int64">, -100n, -100n) : t;
    }
    return feeds;
  }

  // ---- One-call forward (models/forward.ts): sessions cached under graphKey() ----

  /** Compiled forward graphs (see `forward`). */
  readonly sessions = new ForwardSessions(this);

  /**
   * Run the model with its active adapters once, like PEFT's `model(**inputs)`: the head's named
   * outputs as shaped tensors. Compiled on first use; adding, switching, disabling or merging
   * adapters selects (or compiles) another session, training between calls needs none.
   *
   * @example
   *   const peft = await PeftModel.load(await loadModel("./bert-tiny", { task: "sequence-classification" }), "./adapter");
   *   const { logits } = await peft.forward({ input_ids: [[2, 61, 72, 3]] }); // [1, num_labels]
   */
  forward(inputs: ForwardInputs, opts?: SessionOptions): Promise<ForwardOutputs> {
    return this.sessions.run(this.graphKey(), inputs, opts);
  }

  /** Free the sessions `forward` compiled. */
  releaseSessions(): Promise<void> {
    return this.sessions.release();
  }

  /**
   * What changes the graph `build()` returns: the base head, the active adapters (each object,
   * frozen ones being baked into the session), the arrays of their trained tensors (runs feed
   * them by reference, so in-place training needs no recompile), disabled layers and the merge.
   */
  private graphKey(): string {
    const active = this.disabled ? [] : this.active.map((n) => `${n}#${objectId(this.adapters.get(n)!)}${this.frozen.has(n) ? "(frozen)" : ""}`);
    const tensors = [...this.trainableTensors()].map(([k, t]) => `${k}#${objectId(t.data)}`);
    const layersOff = [...this.disabledLayers].sort((a, b) => a - b);
    return `${this.base.task} labels=${this.base.config.numLabels} active=[${active}] merged=${this.merged ? objectId(this.merged.model) : "no"} layers-off=[${layersOff}] tensors=[${tensors}]`;
  }

  /** Adapter tensors of the active adapters, by graph parameter name (`<adapter>/<key>`). */
  trainableTensors(): Map<string, Tensor> {
    const out = new Map<string, Tensor>();
    if (this.disabled) return out;
    for (const n of this.active) if (!this.frozen.has(n)) for (const [k, t] of this.adapters.get(n)!.tensors) out.set(paramName(n, k), t);
    return out;
  }

  private readonly frozen = new Set<string>();

  /**
   * Keep an adapter active but stop training it: two-stage training, e.g. a general adapter
   * trained first, frozen, and a task adapter trained on top (`setAdapter([general, task])`).
   */
  freezeAdapter(name: string, frozen = true): void {
    if (!this.adapters.has(name)) throw new Error(`no adapter "${name}"`);
    if (frozen) this.frozen.add(name);
    else this.frozen.delete(name);
  }

  /** Trainable (active adapters) and total parameter counts, as PEFT reports them. */
  countParameters(): { trainable: number; all: number } {
    const size = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);
    let trainable = 0;
    for (const t of this.trainableTensors().values()) trainable += size(t.shape);
    let base = 0;
    const replaced = new Set<string>();
    for (const n of this.active) {
      const trains = this.adapters.get(n)!.trainsBaseParams;
      // Methods that train base parameters in place (BitFit, full fine-tuning) train the head in place too.
      if (trains) for (const k of [...trains, ...(this.heads.get(n)?.names ?? [])]) replaced.add(k);
    }
    for (const [name, shape] of this.base.modules().params) if (!replaced.has(name)) base += size(shape);
    return { trainable, all: base + trainable };
  }

  /** Print `trainable params: N || all params: M || trainable%: x` like PEFT. */
  printTrainableParameters(log: (s: string) => void = console.log): void {
    const { trainable, all } = this.countParameters();
    log(`trainable params: ${trainable.toLocaleString("en-US")} || all params: ${all.toLocaleString("en-US")} || trainable%: ${((100 * trainable) / all).toFixed(4)}`);
  }

  /** The tensors PEFT's save_pretrained would write for an adapter, by key (adapter name stripped). */
  stateDict(name = "default"): Map<string, Tensor> {
    const adapter = this.adapters.get(name);
    if (!adapter) throw new Error(`no adapter "${name}"`);
    const def = tunerFor((adapter.config as { peft_type?: string }).peft_type ?? "", `adapter "${name}"`);
    return adapterStateDict(this.base, adapter, this.heads.get(name), headKeyPrefix(def));
  }

  /**
   * Save every adapter in PEFT's layout: adapter_config.json + adapter_model.safetensors, the
   * "default" adapter at `dir`, others in `dir/<name>/`. Files are written atomically.
   * `format: "adapterhub"` writes bottleneck adapters as AdapterHub's `save_adapter` does
   * (adapterhub-format.ts), loadable by its `model.load_adapter(dir)`.
   */
  async save(dir: string, opts: { adapters?: readonly string[]; format?: "peft" | "adapterhub" } = {}): Promise<void> {
    for (const name of opts.adapters ?? [...this.adapters.keys()]) {
      const adapter = this.adapters.get(name);
      if (!adapter) throw new Error(`no adapter "${name}"`);
      const target = name === "default" ? dir : join(dir, name);
      if (opts.format === "adapterhub") {
        const type = (adapter.config as { peft_type?: string }).peft_type;
        if (type !== "BOTTLENECK") throw new AdapterConfigError(`adapter "${name}" is ${type}; AdapterHub's format is written for bottleneck adapters only`);
        await writeAdapterHub(target, { model: this.base, config: adapter.config as never, name, state: this.stateDict(name), labels: this.labels.get(name) });
        continue;
      }
      const def = tunerFor((adapter.config as { peft_type?: string }).peft_type ?? "", `adapter "${name}"`);
      // As PEFT's save_pretrained writes it: inference_mode true, the base model as the user named it.
      const config = { ...def.toJSON(adapter.config), base_model_name_or_path: adapter.config.base_model_name_or_path ?? this.base.nameOrPath ?? null, inference_mode: true, peft_version: "peftjs-0.1.0" };
      await writeSafetensors(join(target, ADAPTER_WEIGHTS), this.stateDict(name), { format: "pt" });
      await writeFileAtomic(join(target, ADAPTER_CONFIG), JSON.stringify(config, null, 2));
      const names = this.labels.get(name);
      if (names) await writeFileAtomic(join(target, ADAPTER_LABELS), JSON.stringify(labelMaps(names), null, 2));
    }
  }

  /**
   * Class names for the active adapter's head: those it was trained with (labels.json), else the
   * base config's id2label when it names every class (transformers' placeholder names LABEL_0,
   * LABEL_1, ... do not count); undefined when nothing names them.
   */
  labelNames(name = this.active[0]): string[] | undefined {
    const own = name === undefined ? undefined : this.labels.get(name);
    if (own) return [...own];
    const { id2label, numLabels } = this.base.config;
    const names = Array.from({ length: numLabels }, (_, i) => id2label[i]);
    return names.every((n) => n !== undefined) && !names.every((n, i) => n === `LABEL_${i}`) ? (names as string[]) : undefined;
  }

  /** Load an adapter saved by PEFT (or peftjs) from `dir` under `name`. */
  async loadAdapter(dir: string, name = "default"): Promise<Adapter> {
    const configPath = join(dir, ADAPTER_CONFIG);
    let json: Record<string, unknown>;
    try {
      json = JSON.parse(await readFile(configPath, "utf8")) as Record<string, unknown>;
    } catch (e) {
      throw new AdapterConfigError(`${configPath}: ${(e as Error).message}`);
    }
    if (typeof json !== "object" || json === null || Array.isArray(json)) throw new AdapterConfigError(`${configPath}: expected an object of config fields, got ${JSON.stringify(json)}`);
    if (isAdapterHubConfig(json)) return this.loadAdapterHub(dir, name);
    // An INT8 adapter folder (peftjs quantize-adapter): PEFT's config plus a flag; weights dequantized here.
    const int8 = isInt8AdapterConfig(json) ? await readInt8Adapter(dir, json) : undefined;
    if (int8) json = int8.config;
    // An adapter for another head (task_type SEQ_CLS on a masked-LM model, ...) says so here,
    // rather than as missing head weights later (models/task.ts).
    assertAdapterFitsModel(json.task_type, this.base, configPath);
    tunerFor(json.peft_type, configPath);
    const adapter = this.addAdapterFrom(name, json as PeftConfigInput, configPath);
    try {
      const file = int8 ? undefined : await readSafetensors(join(dir, ADAPTER_WEIGHTS));
      const def = tunerFor(json.peft_type, configPath);
      const tensors = int8?.tensors ?? new Map(file!.names().map((n) => [n, file!.get(n)]));
      loadAdapterState(this.base, adapter, this.heads.get(name), headKeyPrefix(def), tensors, join(dir, int8 ? INT8_ADAPTER_WEIGHTS : ADAPTER_WEIGHTS));
      const names = await readAdapterLabels(dir);
      if (names) this.labels.set(name, names);
    } catch (e) {
      this.deleteAdapter(name);
      throw e;
    }
    return adapter;
  }

  /** An AdapterHub adapter folder (adapter_config.json without peft_type), read by adapterhub-format.ts. */
  private async loadAdapterHub(dir: string, name: string): Promise<Adapter> {
    const hub = await readAdapterHub(dir, this.base);
    const adapter = this.addAdapterFrom(name, hub.config, join(dir, ADAPTER_CONFIG));
    try {
      loadAdapterState(this.base, adapter, this.heads.get(name), headKeyPrefix(tunerFor("BOTTLENECK", hub.file)), hub.tensors, hub.file);
      if (hub.labels) this.labels.set(name, hub.labels);
    } catch (e) {
      this.deleteAdapter(name);
      throw e;
    }
    return adapter;
  }

  /** PEFT's `PeftModel.from_pretrained`: the base model with a saved adapter loaded. */
  static async load(base: PretrainedModel, dir: string, name = "default"): Promise<PeftModel> {
    const m = new PeftModel(base);
    await m.loadAdapter(dir, name);
    return m;
  }

  private merged: { adapters: string[]; model: PretrainedModel } | undefined;

  /**
   * Fold the active adapters into (a copy of) the base weights for faster inference, keeping
   * them so that `unmerge()` restores the unmerged model (PEFT's `merge_adapter`). Graphs built
   * while merged use the merged weights; the base model itself is never modified.
   */
  merge(opts: { safe?: boolean } = {}): void {
    if (this.merged) throw new Error(`adapters ${this.merged.adapters.join(", ")} are already merged; unmerge() first`);
    this.merged = { adapters: [...this.active], model: this.mergeAndUnload(opts) };
  }

  /** Undo `merge()`. */
  unmerge(): void {
    if (!this.merged) throw new Error("no adapter is merged");
    this.merged = undefined;
  }

  get isMerged(): boolean {
    return this.merged !== undefined;
  }

  /**
   * Merge the active adapters into the base weights and return the plain model (PEFT's
   * `merge_and_unload`). With `safe`, a merge producing NaN or Inf is refused.
   */
  mergeAndUnload(opts: { safe?: boolean } = {}): PretrainedModel {
    const updated = new Map<string, Tensor>();
    // A quantized base merges from its dequantized weights; the merged model is re-quantized.
    const current = (name: string) => updated.get(name) ?? this.base.computedWeight(name);
    if (this.base.quantize) this.warn(`merging into a ${this.base.quantize} base: the merged weights are re-quantized to ${this.base.quantize} (the merge is exact only up to that rounding)`);
    for (const n of this.active) {
      const adapter = this.adapters.get(n)!;
      if (!adapter.mergedWeights) throw new Error(`adapter "${n}" (${(adapter.config as { peft_type?: string }).peft_type}) cannot be merged into the base weights`);
      for (const [k, t] of [...adapter.mergedWeights(current), ...(this.heads.get(n)?.mergedWeights() ?? [])]) {
        if (opts.safe && (t.data as Float32Array).some((v) => !Number.isFinite(v))) throw new RangeError(`safe merge: adapter "${n}" produces non-finite values in "${k}"; the base model is unchanged`);
        updated.set(k, t);
      }
    }
    const weights = this.base.weights;
    const fresh = this.base.freshWeights;
    const merged = {
      names: () => [...new Set([...weights.names(), ...updated.keys()])],
      has: (name: string) => updated.has(name) || weights.has(name) || fresh.has(name),
      get: (name: string) => updated.get(name) ?? (weights.has(name) ? weights.get(name) : fresh.get(name)!),
    };
    // The merged checkpoint's config names the classes the adapter's head was trained on.
    const names = this.active.map((n) => this.labels.get(n)).find((l) => l !== undefined);
    const config = names ? parseModelConfig({ ...this.base.config.raw, ...labelMaps(names), num_labels: names.length }, `${this.base.dir}/config.json`) : this.base.config;
    const result = new PretrainedModel(this.base.dir, config, merged, this.base.tokenizer, this.base.task);
    result.fromScratch = this.base.fromScratch;
    result.nameOrPath = this.base.nameOrPath;
    result.quantize = this.base.quantize;
    return result;
  }
}

/**
 * Adapter names become folder names (`save` writes non-default adapters to `dir/<name>/`) and
 * parts of tensor names: not empty, not `.` or `..`, no path separators.
 */
export function validateAdapterName(name: string): void {
  if (typeof name !== "string" || name === "" || name === "." || name === ".." || /[/\\]/.test(name)) {
    throw new AdapterConfigError(`invalid adapter name ${JSON.stringify(name)}: it must be non-empty, not "." or "..", and contain no "/" or "\\"`);
  }
}

/** transformers' id2label / label2id for class names. */
function labelMaps(names: readonly string[]): { id2label: Record<string, string>; label2id: Record<string, number> } {
  return { id2label: Object.fromEntries(names.map((n, i) => [String(i), n])), label2id: Object.fromEntries(names.map((n, i) => [n, i])) };
}

/** Class names from an adapter directory's labels.json (undefined when there is none). */
export async function readAdapterLabels(dir: string): Promise<string[] | undefined> {
  const path = join(dir, ADAPTER_LABELS);
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (e) {
    // An AdapterHub folder keeps them in its head's label2id.
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return adapterHubLabels(dir);
    throw e;
  }
  let id2label: unknown;
  try {
    id2label = (JSON.parse(text) as { id2label?: unknown }).id2label;
  } catch (e) {
    throw new AdapterConfigError(`${path}: ${(e as Error).message}`);
  }
  if (typeof id2label !== "object" || id2label === null || Array.isArray(id2label)) throw new AdapterConfigError(`${path}: expected {"id2label": {"0": "name", ...}}`);
  const entries = Object.entries(id2label as Record<string, unknown>);
  const names = entries.map((_, i) => (id2label as Record<string, unknown>)[String(i)]);
  if (names.some((n) => typeof n !== "string")) throw new AdapterConfigError(`${path}: id2label must map 0..${entries.length - 1} to class names, got ${JSON.stringify(id2label)}`);
  return names as string[];
}
