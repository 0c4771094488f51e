// What every PEFT method provides: a typed config mapped to and from PEFT's adapter_config.json,
// and adapters that own their trainable tensors, hook into a model's graph, and convert to and
// from PEFT's state-dict keys.
import { type Graph, type Value } from "../ir/graph.js";
import { type ConfigFields } from "./config-schema.js";
import { type Tensor } from "../ir/tensor.js";
import { type ModelHooks } from "../models/hooks.js";
import { type PretrainedModel } from "../models/pretrained.js";

/** Fields every config shares (PEFT's PeftConfig). */
export interface BaseConfig {
  /** Modules trained and saved in full besides the adapter (e.g. "classifier"). */
  modules_to_save?: readonly string[] | null;
  base_model_name_or_path?: string | null;
  task_type?: string | null;
  inference_mode?: boolean;
}

/** What an adapter gets when a graph is built. */
export interface HookContext {
  graph: Graph;
  /** The graph value of one of the adapter's tensors (fed each run, so updates apply). */
  bind(key: string): Value;
  training: boolean;
  model: PretrainedModel;
  /**
   * For mixed-adapter batches: a float gate, 1 on rows using this adapter and 0 elsewhere,
   * shaped [batch, 1, ...] to broadcast against `like`; undefined when the whole batch uses it.
   */
  rowGate: ((like: Value) => Value) | undefined;
  /** Add a term to the training loss (e.g. AdaLoRA's orthogonality regularizer). */
  addLoss(term: Value): void;
}

export interface Adapter<C extends BaseConfig = BaseConfig> {
  readonly name: string;
  readonly config: C;
  /** Trainable tensors by key (the key is the in-graph parameter name). */
  readonly tensors: Map<string, Tensor>;
  /** Base-model parameters this method trains in place (BitFit, LN tuning, full fine-tuning). */
  readonly trainsBaseParams?: readonly string[];
  hooks(ctx: HookContext): ModelHooks;
  /**
   * The adapter's own tensors as PEFT names them in a saved file (adapter name stripped) -> their
   * keys in `tensors`, when that is not simply `base_model.model.<key>` for every tensor (the
   * default, which fits tuners that key tensors like PEFT: `<module path>.ia3_l`). PeftModel saves
   * and loads through this map (adding the heads it trains, modules_to_save) and refuses a file
   * whose keys or shapes differ from it.
   */
  stateKeys?(): Map<string, string>;
  /** The tensor saved under a PEFT key when it is not the in-graph tensor itself (a reparameterized prompt saves the encoder's output; AdaLoRA only its kept ranks). */
  savedTensor?(peftKey: string): Tensor | undefined;
  /** Keys PEFT saves with an unchanged base weight (PEFT key -> base parameter name), e.g. a LoRA-targeted embed_tokens table. */
  baseKeys?(): Map<string, string>;
  /** Prepare to load a file's tensors (a reparameterized prompt switches to the saved form). */
  beforeLoad?(file: ReadonlyMap<string, Tensor>): void;
  /** Called by the training loop after each step with that step's gradients (AdaLoRA's rank allocation). */
  afterStep?(step: number, grads: ReadonlyMap<string, Tensor>): void;
  /**
   * State besides the tensors that a resumed training run needs to continue exactly (AdaLoRA's
   * importance averages), by key; the trainer checkpoints it and hands it back on resume.
   */
  trainingState?(): Map<string, Tensor>;
  loadTrainingState?(state: ReadonlyMap<string, Tensor>, source: string): void;
  /** Merge into base weights (returns updated copies by base parameter name), where supported. */
  mergedWeights?(weight: (name: string) => Tensor): Map<string, Tensor>;
}

export interface TunerDef<C extends BaseConfig = BaseConfig> {
  /** PEFT's `peft_type` (or AdapterHub's architecture name for bottleneck adapters). */
  readonly peftType: string;
  /**
   * PEFT's prompt-learning methods (PromptLearningConfig): PEFT wraps the transformers model
   * directly, so heads are saved as `base_model.<module>` (no `model.` level), and the config has
   * no modules_to_save field.
   */
  readonly promptLearning?: boolean;
  /**
   * PEFT config fields peftjs does not implement, accepted only at values that change nothing
   * (`test`); `means` says which values those are. Any other field must be one the config writes.
   */
  readonly inertFields?: Readonly<Record<string, InertField>>;
  /**
   * The method's config fields, declared once as data (config-schema.ts: PEFT's name, type,
   * default, range, help); parseConfig and toJSON are derived from them (declareConfig), and so
   * are the known fields behind "did you mean" and the CLI's `peftjs methods` listing.
   */
  readonly fields: ConfigFields;
  /** Names a config may also use for its fields, besides `fields` (AdapterHub's nesting under "config", its "architecture"). */
  readonly knownAliases?: readonly string[];
  /** Rows whose configs nest under a field of this one (the hybrid's "lora" and "adapter"), checked field by field like top-level configs. */
  readonly parts?: Readonly<Record<string, TunerDef>>;
  /**
   * Config from adapter_config.json (or user input): defaults filled (some depend on the model,
   * e.g. default target modules or the hidden size), fields validated. Derived from `fields`
   * (declareConfig).
   */
  parseConfig(json: Readonly<Record<string, unknown>>, source: string, model?: PretrainedModel): C;
  /** adapter_config.json content (derived from `fields`: exactly the fields PEFT's config class writes). */
  toJSON(config: C): Record<string, unknown>;
  create(model: PretrainedModel, config: C, name: string): Adapter<C>;
  /**
   * A new adapter combining existing ones of this method (PEFT's add_weighted_adapter): the new
   * config, and a function that fills the created adapter's tensors.
   */
  combine?(adapters: readonly Adapter[], weights: readonly number[], opts: Readonly<Record<string, unknown>>): { config: Record<string, unknown>; fill(added: Adapter): void };
}

/** A PEFT field accepted only where it does not change the computation. */
export interface InertField {
  test: (v: unknown) => boolean;
  means: string;
}
/** Inert only when null/absent (or an empty list or object). */
export const inertWhenUnset = (means = "only null is supported"): InertField => ({ test: (v) => v === null || (Array.isArray(v) && v.length === 0) || (typeof v === "object" && v !== null && Object.keys(v).length === 0), means });
/** Inert at any value (it affects only initialization or hardware-specific code paths). */
export const alwaysInert = (means: string): InertField => ({ test: () => true, means });

export class AdapterConfigError extends Error {}

/** PEFT's key prefix for the wrapped model's parameters. */
export const MODEL_PREFIX = "base_model.model.";
