// Tasks (heads) and what a built model graph exposes.
import { type Graph, type Value } from "../ir/graph.js";

export const TASKS = ["base", "sequence-classification", "token-classification", "question-answering", "masked-lm", "causal-lm"] as const;
export type Task = (typeof TASKS)[number];

/** Named graph inputs of a built model (HF names). */
export interface ModelInputs {
  input_ids: Value;
  attention_mask: Value;
  position_ids: Value;
  token_type_ids?: Value;
  /** Present when built with `withLoss`: [batch] for sequence classification, [batch, seq] otherwise. */
  labels?: Value;
  start_positions?: Value;
  end_positions?: Value;
}

export interface ModelOutputs {
  last_hidden_state: Value;
  logits?: Value;
  start_logits?: Value;
  end_logits?: Value;
  loss?: Value;
}

export interface ModelGraph {
  graph: Graph;
  inputs: ModelInputs;
  outputs: ModelOutputs;
  /** Decoder key/value cache outputs (`present.{i}.key` / `.value`) when requested. */
  present: Record<string, Value>;
  /** Checkpoint tensors the architecture did not use. */
  unexpected: string[];
  /** Head parameters absent from the checkpoint and freshly initialized (train them). */
  newlyInitialized: string[];
}

export function assertTask(task: string, supported: readonly Task[], modelType: string): asserts task is Task {
  if (!(supported as readonly string[]).includes(task)) {
    throw new Error(`task "${task}" is not supported for ${modelType}; supported: ${supported.join(", ")}`);
  }
}

/**
 * The head each transformers class builds, by the end of its name (`BertForSequenceClassification`,
 * `GPT2LMHeadModel`, `LlamaForCausalLM`, bare `BertModel`): what an Auto class reads from
 * `architectures` in config.json. A `...HeadsModel` (GPT-2's double heads) is not a bare model.
 */
const ARCHITECTURE_TASKS: readonly (readonly [ending: RegExp, task: Task])[] = [
  [/ForSequenceClassification$/, "sequence-classification"],
  [/ForTokenClassification$/, "token-classification"],
  [/ForQuestionAnswering$/, "question-answering"],
  [/ForMaskedLM$/, "masked-lm"],
  [/ForCausalLM$/, "causal-lm"],
  [/LMHeadModel$/, "causal-lm"],
  [/^(?!.*(For|Heads?Model$)).*Model$/, "base"],
];

/**
 * The task (head) a checkpoint's config.json declares through `architectures` (its first entry,
 * as transformers does); "base" when the field is absent. A class peftjs builds no head for is an
 * error that names it, so a model is never silently loaded without the head its checkpoint has.
 */
export function taskFromArchitectures(raw: Readonly<Record<string, unknown>>, source: string): Task {
  const archs = raw.architectures;
  if (archs === undefined || archs === null) return "base";
  if (!Array.isArray(archs) || !archs.every((a) => typeof a === "string")) throw new TaskError(`${source}: "architectures" must be a list of class names, got ${JSON.stringify(archs)}`);
  const first = archs[0] as string | undefined;
  if (first === undefined) return "base";
  const match = ARCHITECTURE_TASKS.find(([ending]) => ending.test(first));
  if (!match) {
    throw new TaskError(
      `${source}: architectures[0] is "${first}", a head peftjs does not build (it builds *ForSequenceClassification, *ForTokenClassification, ` +
        `*ForQuestionAnswering, *ForMaskedLM, *ForCausalLM / *LMHeadModel and bare *Model); choose a head with loadModel(dir, { task }) (one of ${TASKS.join(", ")})`,
    );
  }
  return match[1];
}

export class TaskError extends Error {}

/** transformers' class-name stem per model_type. */
const CLASS_STEMS: Readonly<Record<string, string>> = { bert: "Bert", roberta: "Roberta", distilbert: "DistilBert", gpt2: "GPT2", llama: "Llama", qwen2: "Qwen2", mistral: "Mistral" };

/**
 * The transformers class of a model with this head (what `save_pretrained` writes into
 * `architectures`), so that a saved checkpoint loads back with the same head.
 *
 * @example
 *   architectureName("gpt2", "causal-lm"); // "GPT2LMHeadModel"
 */
export function architectureName(modelType: string, task: Task): string {
  const stem = CLASS_STEMS[modelType] ?? modelType;
  if (task === "causal-lm") return modelType === "gpt2" ? `${stem}LMHeadModel` : `${stem}ForCausalLM`;
  const suffix = { base: "Model", "sequence-classification": "ForSequenceClassification", "token-classification": "ForTokenClassification", "question-answering": "ForQuestionAnswering", "masked-lm": "ForMaskedLM" } as const;
  return stem + suffix[task];
}

/** PEFT's TaskType for each task (masked LM has none). */
export const TASK_TYPES: Readonly<Record<Task, string | null>> = {
  base: "FEATURE_EXTRACTION", "sequence-classification": "SEQ_CLS", "token-classification": "TOKEN_CLS",
  "question-answering": "QUESTION_ANS", "causal-lm": "CAUSAL_LM", "masked-lm": null,
};

/**
 * The head a PEFT `task_type` needs: PEFT wraps the model in PeftModelForSequenceClassification,
 * ...ForTokenClassification, ...ForQuestionAnswering or ...ForCausalLM, and the adapter's trained
 * head (modules_to_save) or its outputs assume that head. FEATURE_EXTRACTION fits any model.
 */
export const TASK_TYPE_HEADS: Readonly<Record<string, Task>> = Object.fromEntries(
  Object.entries(TASK_TYPES).flatMap(([task, type]) => (type === null || task === "base" ? [] : [[type, task as Task]])),
);

/**
 * Refuse an adapter whose `task_type` needs a head the model was not loaded with, saying which
 * head and how to load it (rather than failing later on the head's missing weights).
 *
 * @example
 *   assertAdapterFitsModel("SEQ_CLS", await loadModel("./bert-tiny"), "adapter/adapter_config.json");
 *   // throws: task_type "SEQ_CLS" needs a sequence-classification head; ./bert-tiny was loaded with
 *   // masked-lm (architectures in its config.json: BertForMaskedLM): loadModel(dir, { task: "sequence-classification" })
 */
export function assertAdapterFitsModel(taskType: unknown, model: { task: Task; dir: string; supportedTasks: readonly Task[]; config: { modelType: string; raw: Readonly<Record<string, unknown>> } }, source: string): void {
  const needed = typeof taskType === "string" ? TASK_TYPE_HEADS[taskType] : undefined;
  if (needed === undefined || needed === model.task) return;
  const archs = model.config.raw.architectures;
  const why = Array.isArray(archs) && archs.length ? ` (architectures in its config.json: ${archs.join(", ")})` : "";
  const how = model.supportedTasks.includes(needed) ? `load it with loadModel(dir, { task: "${needed}" })` : `${model.config.modelType} has no ${needed} head in peftjs (it has ${model.supportedTasks.join(", ")})`;
  throw new TaskError(`${source}: task_type "${taskType}" needs a ${needed} head, but ${model.dir} was loaded with ${model.task}${why}; ${how}`);
}
