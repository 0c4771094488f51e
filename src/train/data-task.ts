// Which task a data file is for, from its fields, and the task's examples: the rules the CLI's
// train / eval / predict and the studio's worker share, so both guess alike and fail alike.
import { didYouMean } from "../io/did-you-mean.js";
import { type Tokenizer } from "../io/tokenizer.js";
import { type Task } from "../models/task.js";
import { classificationExamples, DataError, languageModelingExamples, questionAnsweringExamples, TASK_FIELDS, tokenClassificationExamples, unusedFields, type DataOptions, type DataRecord, type DataTask, type Example } from "./data.js";

/** A data file that does not fit its task, with what to do about it. */
export class DataTaskError extends DataError {
  constructor(
    message: string,
    readonly hint: string,
  ) {
    super(message);
  }
}

/** Every field some task reads, for "did you mean" on a field no task reads. */
const KNOWN_FIELDS = [...new Set(Object.values(TASK_FIELDS).flatMap((f) => [...f.inputs, ...f.targets]))];

/**
 * The task: `task` when given, else guessed from the data: tokens means tagging, question +
 * context QA, a label classification, else `unlabelled` (language modeling for training data).
 * Fields the task does not read are never dropped silently: when the guess fell through to
 * language modeling they are an error (a misspelled "lable" must not turn a classifier into a
 * language model), otherwise a note.
 */
export function detectTask(records: readonly DataRecord[], opts: { task?: Task; unlabelled?: Task; source?: string; labelled?: boolean; note?: (s: string) => void } = {}): { task: Task; guessed: boolean } {
  let task = opts.task;
  const guessed = task === undefined;
  const has = (k: string) => records.some((r) => r[k] !== undefined);
  if (task === undefined) {
    if (has("tokens") || has("words")) task = "token-classification";
    else if (has("question") && has("context")) task = "question-answering";
    else task = TASK_FIELDS["sequence-classification"].targets.some(has) ? "sequence-classification" : (opts.unlabelled ?? "causal-lm");
  }
  if (records.length === 0 || !(task in TASK_FIELDS)) return { task, guessed };
  const source = opts.source ?? "data";
  const unused = unusedFields(records, task as DataTask, { source, labelled: opts.labelled });
  if (unused.length === 0) return { task, guessed };
  if (guessed && task === "causal-lm") {
    const fields = unused.map((u) => `"${u.field}"`).join(", ");
    const typo = unused.map((u) => (KNOWN_FIELDS.includes(u.field) ? "" : didYouMean(u.field, KNOWN_FIELDS))).find(Boolean) ?? "";
    throw new DataTaskError(
      `${unused[0]!.where}: no "label" field, so the task would be causal-lm, which does not read ${fields}${typo}`,
      `name the fields for the task (text + label: classification; tokens + tags: tagging; question + context + answers: QA), or pass --task causal-lm to train a language model on "text" alone`,
    );
  }
  opts.note?.(`note: ${source}: ${unused.map((u) => `"${u.field}" (${u.where.slice(source.length + 1)})`).join(", ")} ${unused.length === 1 ? "is" : "are"} not read by ${task}${didYouMean(unused[0]!.field, KNOWN_FIELDS)}`);
  return { task, guessed };
}

/** The examples of `task` from records (classification and tagging also return the label names). */
export function taskExamples(task: Task, records: readonly DataRecord[], tokenizer: Tokenizer, opts: DataOptions): { examples: Example[]; labels?: string[] } {
  switch (task) {
    case "sequence-classification":
      return classificationExamples(records, tokenizer, opts);
    case "token-classification":
      return tokenClassificationExamples(records, tokenizer, opts);
    case "question-answering":
      return { examples: questionAnsweringExamples(records, tokenizer, opts) };
    case "causal-lm":
      return { examples: languageModelingExamples(records, tokenizer, opts) };
    default:
      throw new DataTaskError(`training task "${task}" from text files is not supported by the CLI`, "use sequence-classification, token-classification, question-answering or causal-lm, or the library API");
  }
}
