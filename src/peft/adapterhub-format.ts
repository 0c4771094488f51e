// AdapterHub's adapter folders (`adapters` v1.1), read and written: adapter_config.json
// ({"config": BnConfig.to_dict(), "hidden_size", "model_class", "model_name", "model_type", "name",
// "version"}; configuration/model_adapters_config.py build_full_config, loading.py
// AdapterLoader.save), weights in pytorch_adapter.bin (torch.save; what load_adapter reads by
// default) or adapter.safetensors, keyed `<module>.adapters.<name>.*`, and the prediction head in
// head_config.json + pytorch_model_head.bin / model_head.safetensors with flex-head keys
// `heads.<name>.<i>.*` (loading.py PredictionHeadLoader). Heads map to transformers' task heads
// by AdapterHub's own table (head_utils.py STATIC_TO_FLEX_HEAD_MAP). Only bottleneck adapters.
import { access, join, mkdir, readFile } from "../platform/host.js";
import { readSafetensors, writeFileAtomic, serializeSafetensors } from "../io/safetensors.js";
import { readTorchStateDict, writeTorchStateDict } from "../io/torch-pickle.js";
import { type Tensor } from "../ir/tensor.js";
import { type PretrainedModel } from "../models/pretrained.js";
import { BOTTLENECK_INERT_DEFAULTS, VARIANT_ALIASES, bottleneckFields, type BottleneckConfig } from "../tuners/bottleneck/config.js";
import { AdapterConfigError, MODEL_PREFIX, type BaseConfig } from "../tuners/tuner.js";

export const AH_CONFIG = "adapter_config.json";
export const AH_WEIGHTS = "pytorch_adapter.bin";
export const AH_SAFE_WEIGHTS = "adapter.safetensors";
export const AH_HEAD_CONFIG = "head_config.json";
export const AH_HEAD_WEIGHTS = "pytorch_model_head.bin";
export const AH_SAFE_HEAD_WEIGHTS = "model_head.safetensors";
/** The library version written into saved configs (what the files are compatible with). */
const AH_VERSION = "adapters.1.1.0";
/** Fields of an AdapterHub adapter_config.json (build_full_config). */
const AH_FIELDS = ["config", "model_class", "model_name", "name", "version", "hidden_size"];

/** An adapter_config.json written by AdapterHub: no peft_type, AdapterHub's top-level fields. */
export function isAdapterHubConfig(json: unknown): boolean {
  return typeof json === "object" && json !== null && !Array.isArray(json) && !("peft_type" in json) && AH_FIELDS.every((k) => k in json);
}

/** AdapterHub's class-name stem per model type (models/<type>/adapter_model.py `<Stem>AdapterModel`). */
const CLASS_STEM: Readonly<Record<string, string>> = { bert: "Bert", roberta: "Roberta", distilbert: "DistilBert", gpt2: "GPT2", llama: "Llama" };
/** transformers' base_model_prefix per model type: AdapterHub's saved keys carry it (XAdapterModel.<prefix>.*), a bare model's do not. */
const BASE_PREFIX: Readonly<Record<string, string>> = { bert: "bert", roberta: "roberta", distilbert: "distilbert", gpt2: "transformer", llama: "model", qwen2: "model", mistral: "model" };

interface HeadSpec {
  /** The flex head's config as AdapterHub derives it from the static class (head_utils.py STATIC_TO_FLEX_HEAD_MAP). */
  config: Record<string, unknown>;
  /** Flex layer index -> the transformers module (null: a layer without weights). */
  layers: (string | null)[];
}
const one = (head_type: string, module: string, extra: Record<string, unknown> = {}): HeadSpec => ({ config: { head_type, layers: 1, activation_function: null, ...extra }, layers: [null, module] });
/** STATIC_TO_FLEX_HEAD_MAP rows for the task models peftjs builds, by model type and task. */
const HEADS: Readonly<Record<string, Partial<Record<string, HeadSpec>>>> = {
  bert: { "sequence-classification": one("classification", "classifier", { use_pooler: true }), "token-classification": one("tagging", "classifier"), "question-answering": one("question_answering", "qa_outputs") },
  roberta: {
    "sequence-classification": { config: { head_type: "classification", layers: 2, activation_function: "tanh", use_pooler: false }, layers: [null, "classifier.dense", null, null, "classifier.out_proj"] },
    "token-classification": one("tagging", "classifier"),
    "question-answering": one("question_answering", "qa_outputs"),
  },
  distilbert: {
    "sequence-classification": { config: { head_type: "classification", layers: 2, activation_function: "relu" }, layers: [null, "pre_classifier", null, null, "classifier"] },
    "token-classification": one("tagging", "classifier"),
    "question-answering": one("question_answering", "qa_outputs"),
  },
  gpt2: { "sequence-classification": one("classification", "score", { bias: false }), "token-classification": one("tagging", "classifier"), "question-answering": one("question_answering", "qa_outputs") },
  llama: { "sequence-classification": one("classification", "score", { dropout_prob: 0, bias: false }), "token-classification": one("tagging", "score"), "question-answering": one("question_answering", "qa_outputs") },
};
/** The flex heads' defaults for the fields a head config may omit (heads/base.py ClassificationHead, TaggingHead, QuestionAnsweringHead). */
const HEAD_DEFAULTS: Readonly<Record<string, Record<string, unknown>>> = {
  classification: { layers: 2, activation_function: "tanh", use_pooler: false, bias: true },
  tagging: { layers: 1, activation_function: "tanh" },
  question_answering: { layers: 1, activation_function: "tanh" },
};
const TASK_TYPE: Readonly<Record<string, string>> = { "sequence-classification": "SEQ_CLS", "token-classification": "TOKEN_CLS", "question-answering": "QUESTION_ANS" };

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

async function readJson(path: string): Promise<Record<string, unknown>> {
  let json: unknown;
  try {
    json = JSON.parse(await readFile(path, "utf8"));
  } catch (e) {
    throw new AdapterConfigError(`${path}: ${(e as Error).message}`);
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) throw new AdapterConfigError(`${path}: expected an object, got ${JSON.stringify(json)}`);
  return json as Record<string, unknown>;
}

/** Weights from the safetensors file if there is one, else the torch.save file (read by the restricted unpickler). */
async function readWeights(dir: string, safe: string, bin: string): Promise<{ tensors: Map<string, Tensor>; file: string } | undefined> {
  if (await exists(join(dir, safe))) {
    const f = await readSafetensors(join(dir, safe));
    return { tensors: new Map(f.names().map((n) => [n, f.get(n)])), file: join(dir, safe) };
  }
  if (await exists(join(dir, bin))) return { tensors: readTorchStateDict(await readFile(join(dir, bin)), join(dir, bin)), file: join(dir, bin) };
  return undefined;
}

export interface AdapterHubAdapter {
  /** The adapter's config as a peftjs BOTTLENECK config. */
  config: Record<string, unknown> & { peft_type: "BOTTLENECK" };
  /** Tensors under the keys the BOTTLENECK adapter loads (its module paths as this model names them; heads as PEFT's modules_to_save keys). */
  tensors: Map<string, Tensor>;
  /** The weights file the tensors came from, for errors. */
  file: string;
  /** Class names of the head, from its label2id. */
  labels?: string[];
}

/** Weight names of adapter-transformers' files, as AdapterHub renames them on load (loading.py AdapterLoader.legacy_weights_mapping). */
const LEGACY_NAMES: readonly [string, string][] = [
  ["attention_text_task_adapters", "adapters"], ["attention_text_lang_adapters", "adapters"], ["layer_text_task_adapters", "adapters"], ["layer_text_lang_adapters", "adapters"], ["invertible_lang_adapters", "invertible_adapters"],
];
function renameLegacy(key: string): string {
  for (const [from, to] of LEGACY_NAMES) key = key.replace(from, to);
  return key;
}

/** Key prefix rule: AdapterHub's files carry the base model prefix or not; this model's module paths decide which. */
function keysForModel(model: PretrainedModel, tensors: Map<string, Tensor>): Map<string, Tensor> {
  const prefix = BASE_PREFIX[model.config.modelType];
  const first = model.modules().sublayers[0]?.path ?? "";
  if (!prefix) return tensors;
  const modelHas = first.startsWith(`${prefix}.`);
  return new Map(
    [...tensors].map(([k, t]) => {
      const has = k.startsWith(`${prefix}.`);
      return [modelHas && !has ? `${prefix}.${k}` : !modelHas && has ? k.slice(prefix.length + 1) : k, t];
    }),
  );
}

/**
 * Read an AdapterHub adapter folder for `model`. Unsupported architectures (LoRA, prefix tuning,
 * unions in AdapterHub's format) and options are refused by name; the head must be one
 * transformers' task model for `model.task` computes.
 */
export async function readAdapterHub(dir: string, model: PretrainedModel): Promise<AdapterHubAdapter> {
  const configPath = join(dir, AH_CONFIG);
  const json = await readJson(configPath);
  let c = json.config;
  if (typeof c === "string") c = { variant: VARIANT_ALIASES[c] ?? c };
  if (typeof c !== "object" || c === null || Array.isArray(c)) throw new AdapterConfigError(`${configPath}: field "config" must be an AdapterHub adapter config object, got ${JSON.stringify(c)}`);
  const inner = c as Record<string, unknown>;
  const arch = inner.architecture ?? "bottleneck";
  if (arch !== "bottleneck") throw new AdapterConfigError(`${configPath}: AdapterHub architecture ${JSON.stringify(arch)} is not supported; peftjs reads AdapterHub's bottleneck adapters (seq_bn, double_seq_bn, par_bn)`);
  if (inner.use_gating === true) throw new AdapterConfigError(`${configPath}: config field "use_gating" = true (AdapterHub's gate, averaged over the sequence) is not implemented`);
  if (json.model_type !== undefined && json.model_type !== null && json.model_type !== model.config.modelType) {
    throw new AdapterConfigError(`${configPath}: an adapter for model_type "${String(json.model_type)}", this model is "${model.config.modelType}"`);
  }
  if (typeof json.hidden_size === "number" && json.hidden_size !== model.config.hidden) {
    throw new AdapterConfigError(`${configPath}: hidden_size ${json.hidden_size}, this model's is ${model.config.hidden} (adapter saved for a different base?)`);
  }
  const { use_gating: _gating, invertible_adapter: invertible, ...fields } = inner;
  const weights = await readWeights(dir, AH_SAFE_WEIGHTS, AH_WEIGHTS);
  if (!weights) throw new AdapterConfigError(`${dir}: an AdapterHub adapter folder without weights (${AH_WEIGHTS} or ${AH_SAFE_WEIGHTS})`);
  const tensors = keysForModel(model, new Map([...weights.tensors].map(([k, t]) => [renameLegacy(k), t])));
  // adapter-transformers v1 nested the invertible adapter's settings (adapter_config.py BnConfig.__setattr__).
  if (invertible !== undefined && invertible !== null) Object.assign(fields, { inv_adapter: (invertible as { block_type?: unknown }).block_type ?? invertible, inv_adapter_reduction_factor: (invertible as { reduction_factor?: unknown }).reduction_factor ?? null });
  // loading.py AdapterLoader._fix_legacy_config: older task adapters name an invertible adapter they have no weights for; AdapterHub drops it.
  if (fields.inv_adapter !== undefined && fields.inv_adapter !== null && ![...tensors.keys()].some((k) => k.includes("invertible_adapters."))) Object.assign(fields, { inv_adapter: null, inv_adapter_reduction_factor: null });
  const config: AdapterHubAdapter["config"] = { ...fields, peft_type: "BOTTLENECK", base_model_name_or_path: typeof json.model_name === "string" ? json.model_name : null };
  const out: AdapterHubAdapter = { config, tensors, file: weights.file };
  const spec = HEADS[model.config.modelType]?.[model.task];
  const hasHead = (await exists(join(dir, AH_HEAD_WEIGHTS))) || (await exists(join(dir, AH_SAFE_HEAD_WEIGHTS)));
  if (!hasHead) {
    if (spec) throw new AdapterConfigError(`${dir}: this AdapterHub adapter has no prediction head (${AH_HEAD_CONFIG} + ${AH_HEAD_WEIGHTS}), and a ${model.task} model needs its trained head; load the model without a head (task "base" or "causal-lm") to use the adapter alone`);
    return out;
  }
  if (!spec) throw new AdapterConfigError(`${dir}: AdapterHub prediction heads are read for sequence classification, token classification and question answering on ${Object.keys(HEADS).join(", ")}; this model is ${model.config.modelType} ${model.task}`);
  const headPath = join(dir, AH_HEAD_CONFIG);
  const head = await readJson(headPath);
  const hc = head.config as Record<string, unknown> | null | undefined;
  if (typeof hc !== "object" || hc === null) throw new AdapterConfigError(`${headPath}: field "config" must be a flex head config (static-head folders are not read)`);
  const headType = String(hc.head_type);
  const want = { ...HEAD_DEFAULTS[headType], ...spec.config };
  const got = { ...HEAD_DEFAULTS[headType], ...hc };
  for (const [k, v] of Object.entries(want)) {
    if (k === "dropout_prob") continue;
    if (got[k] !== v) throw new AdapterConfigError(`${headPath}: head field "${k}" = ${JSON.stringify(got[k])}; peftjs computes this model's ${model.task} head as transformers does, which is AdapterHub's ${JSON.stringify(v)}`);
  }
  const headWeights = (await readWeights(dir, AH_SAFE_HEAD_WEIGHTS, AH_HEAD_WEIGHTS))!;
  const name = typeof head.name === "string" ? head.name : undefined;
  for (const [k, t] of headWeights.tensors) {
    const m = /^heads\.([^.]+)\.(\d+)\.(.+)$/.exec(k);
    const module = m && (name === undefined || m[1] === name) ? spec.layers[Number(m[2])] : undefined;
    if (!module) throw new AdapterConfigError(`${headWeights.file}: "${k}" is not a weight of the ${headType} head ${JSON.stringify(name)} (expected heads.<name>.<${spec.layers.flatMap((l, i) => (l ? [i] : [])).join("|")}>.*)`);
    out.tensors.set(`${MODEL_PREFIX}${module}.${m![3]}`, t);
  }
  config.task_type = TASK_TYPE[model.task];
  config.modules_to_save = [...new Set(spec.layers.filter((l): l is string => l !== null).map((l) => l.split(".")[0]!))];
  out.labels = labelsOf(head);
  return out;
}

/** Class names from a head config's label2id (the head's, else the top level's), when they name 0..n-1. */
function labelsOf(head: Record<string, unknown>): string[] | undefined {
  const label2id = ((head.config as { label2id?: unknown } | null | undefined)?.label2id ?? head.label2id) as Record<string, unknown> | undefined;
  if (typeof label2id !== "object" || label2id === null) return undefined;
  const labels: string[] = [];
  for (const [label, id] of Object.entries(label2id)) if (Number.isInteger(id)) labels[id as number] = label;
  return labels.length === Object.keys(label2id).length && labels.every((l) => typeof l === "string") ? labels : undefined;
}

/** The class names of an AdapterHub folder's head (head_config.json), sizing the model's head before loading. */
export async function adapterHubLabels(dir: string): Promise<string[] | undefined> {
  if (!(await exists(join(dir, AH_HEAD_CONFIG)))) return undefined;
  return labelsOf(await readJson(join(dir, AH_HEAD_CONFIG)));
}

/** The task an AdapterHub folder's prediction head is for (undefined without one), by its head_type. */
export async function adapterHubTask(dir: string): Promise<"sequence-classification" | "token-classification" | "question-answering" | undefined> {
  if (!(await exists(join(dir, AH_HEAD_CONFIG)))) return undefined;
  const head = await readJson(join(dir, AH_HEAD_CONFIG));
  const type = (head.config as { head_type?: unknown } | null | undefined)?.head_type;
  return type === "classification" ? "sequence-classification" : type === "tagging" ? "token-classification" : type === "question_answering" ? "question-answering" : undefined;
}

/** JSON with the fields AdapterHub checks as floats written as floats (`"scaling": 1.0`: JavaScript writes 1, and AdapterHub's Adapter refuses "Unknown scaling type: 1"). */
function stringifyWithFloats(value: unknown, floatKeys: ReadonlySet<string>): string {
  const mark = "\u0000float:";
  // sort_keys=True, indent=2 as AdapterHub writes (save_weights_config).
  const sorted = (v: unknown): unknown => (Array.isArray(v) ? v.map(sorted) : typeof v === "object" && v !== null ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, sorted((v as Record<string, unknown>)[k])])) : v);
  const text = JSON.stringify(sorted(value), (k, v) => (floatKeys.has(k) && typeof v === "number" && Number.isInteger(v) ? `${mark}${v}` : v), 2);
  return text.replace(/"\\u0000float:(-?\d+)"/g, "$1.0");
}

export interface AdapterHubSave {
  model: PretrainedModel;
  config: BottleneckConfig & BaseConfig;
  name: string;
  /** The adapter's saved tensors as peftjs keys them (adapterStateDict): `<module>.adapters.<name>.*`, heads `base_model.model.<head>.*`. */
  state: ReadonlyMap<string, Tensor>;
  labels?: readonly string[];
}

/**
 * Write an AdapterHub adapter folder that `model.load_adapter(dir)` in AdapterHub 1.1 loads:
 * adapter_config.json, pytorch_adapter.bin (its default) and adapter.safetensors
 * (use_safetensors=True), and the head files when the adapter trains a head.
 */
export async function writeAdapterHub(dir: string, s: AdapterHubSave): Promise<void> {
  const { model, config } = s;
  const where = `saving adapter "${s.name}" in AdapterHub's format`;
  if (config.train_layer_norms) throw new AdapterConfigError(`${where}: train_layer_norms is a peftjs extension AdapterHub cannot load (its LayerNorms stay frozen)`);
  if (config.use_gating) throw new AdapterConfigError(`${where}: use_gating computes peftjs's per-token gate, not AdapterHub's`);
  const stem = CLASS_STEM[model.config.modelType];
  if (!stem) throw new AdapterConfigError(`${where}: AdapterHub has no ${model.config.modelType} adapter model here (${Object.keys(CLASS_STEM).join(", ")})`);
  const prefix = BASE_PREFIX[model.config.modelType]!;
  const adapter = new Map<string, Tensor>();
  const head = new Map<string, Tensor>();
  const spec = HEADS[model.config.modelType]?.[model.task];
  for (const [k, t] of s.state) {
    // The adapter's keys carry the name it was loaded under; AdapterHub's the name in adapter_config.json.
    if (/\.adapters\.[^.]+\./.test(k)) {
      const renamed = k.replace(/\.adapters\.[^.]+\./, `.adapters.${s.name}.`);
      adapter.set(renamed.startsWith(`${prefix}.`) ? renamed : `${prefix}.${renamed}`, t);
      continue;
    }
    const param = k.startsWith(MODEL_PREFIX) ? k.slice(MODEL_PREFIX.length) : k;
    const i = spec?.layers.findIndex((l) => l !== null && param.startsWith(`${l}.`) && !param.slice(l.length + 1).includes(".")) ?? -1;
    if (!spec || i < 0) throw new AdapterConfigError(`${where}: "${k}" has no place in AdapterHub's layout (only the adapter's weights and a ${Object.keys(TASK_TYPE).join(" / ")} head are written)`);
    head.set(`heads.${s.name}.${i}.${param.slice(spec.layers[i]!.length + 1)}`, t);
  }
  const base = { hidden_size: model.config.hidden, model_class: `${stem}AdapterModel`, model_name: config.base_model_name_or_path ?? model.nameOrPath ?? null, model_type: model.config.modelType, name: s.name, version: AH_VERSION };
  const full = { ...base, config: { ...BOTTLENECK_INERT_DEFAULTS, ...bottleneckFields(config), use_gating: false } };
  await mkdir(dir, { recursive: true });
  const floats = new Set(["scaling", "dropout", "stochastic_depth", "phm_init_range"]);
  await writeFileAtomic(join(dir, AH_CONFIG), stringifyWithFloats(full, floats));
  await writeFileAtomic(join(dir, AH_WEIGHTS), writeTorchStateDict(adapter, "pytorch_adapter"));
  await writeFileAtomic(join(dir, AH_SAFE_WEIGHTS), serializeSafetensors(adapter, { format: "pt" }));
  if (head.size === 0) return;
  const names = s.labels ?? Array.from({ length: model.config.numLabels }, (_, i) => model.config.id2label[i] ?? `LABEL_${i}`);
  const label2id = Object.fromEntries(names.map((n, i) => [n, i]));
  // get_head_config_and_rename_list: the static head's flex config with num_labels and label2id.
  const headConfig = { ...spec!.config, num_labels: names.length, label2id };
  await writeFileAtomic(join(dir, AH_HEAD_CONFIG), stringifyWithFloats({ ...base, config: headConfig, label2id }, floats));
  await writeFileAtomic(join(dir, AH_HEAD_WEIGHTS), writeTorchStateDict(head, "pytorch_model_head"));
  await writeFileAtomic(join(dir, AH_SAFE_HEAD_WEIGHTS), serializeSafetensors(head, { format: "pt" }));
}
