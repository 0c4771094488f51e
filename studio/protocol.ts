// The messages between the studio page (app.ts) and its Web Worker (worker.ts). Everything that
// loads, tokenizes, trains or predicts runs in the worker, so the page stays responsive; the page
// only renders what the worker reports. Every request carries an id its answer repeats.

/** A model: one the studio server ships, or a Hugging Face folder the user picked or dropped. */
export type ModelSource = { kind: "shipped"; name: string } | { kind: "files"; name: string; files: File[] };

/** The training settings the page's form gives (the CLI's train options, by the same names). */
export interface TrainSettings {
  /** A preset name (the CLI's --method): lora, dora, ia3, prefix, ... */
  method: string;
  /** Method fields the user set (a --peft object); the rest take the registry's defaults. */
  peft: Record<string, unknown>;
  epochs: number;
  maxSteps?: number;
  batchSize: number;
  lr: number;
  schedule: "linear" | "cosine" | "constant";
  warmupRatio: number;
  weightDecay: number;
  maxLength: number;
  valSplit: number;
  /** Evaluate every n steps (default: each epoch). */
  evalEvery?: number;
  seed: number;
}

/** What a run needs to be resumed after a reload: kept beside its checkpoints in OPFS. */
export interface RunRecord {
  id: string;
  model: { kind: "shipped" | "files"; name: string };
  dataName: string;
  settings: TrainSettings;
  totalSteps?: number;
  /** ISO time the run started. */
  started: string;
}

export type ToWorker =
  | { id: number; type: "load-model"; source: ModelSource }
  | { id: number; type: "load-data"; file: File }
  /** Train (or resume, when the run's folder has a checkpoint) the loaded model on the loaded data. */
  | { id: number; type: "train"; run: RunRecord; resume: boolean }
  /** Stop the run in progress at its next checkpoint (every few steps); it can be resumed, also after a reload. */
  | { id: number; type: "pause" }
  | { id: number; type: "predict"; text: string }
  /** The trained adapter (PEFT layout, zipped) and report.html. */
  | { id: number; type: "export" }
  /** For tests: throw outside any handler, as a bug in the worker would. */
  | { id: number; type: "crash" };

export interface ModelInfo {
  name: string;
  modelType: string;
  layers: number;
  hidden: number;
  parameters: number;
  tasks: string[];
}

export interface DataInfo {
  name: string;
  records: number;
  task: string;
  /** How the task was chosen: "guessed from the fields" and what fields it reads. */
  fields: string[];
  labels?: string[];
  /** Notes the CLI would print (fields the task does not read). */
  notes: string[];
}

export type Prediction =
  | { kind: "classification"; labels: string[]; probabilities: number[]; logits: number[] }
  | { kind: "tags"; tokens: string[]; tags: string[] }
  | { kind: "answer"; answer: string; score: number }
  | { kind: "text"; text: string };

export type FromWorker =
  | { type: "ready"; backend: string; threads: number; isolated: boolean }
  | { id: number; type: "model"; info: ModelInfo }
  | { id: number; type: "data"; info: DataInfo }
  | { id: number; type: "started"; totalSteps: number; resumedAt: number; trainable: string }
  /** One log entry of the trainer (loss, lr, grad_norm; eval_* after an evaluation). */
  | { id: number; type: "log"; entry: Record<string, number | string> }
  | { id: number; type: "progress"; step: number; totalSteps: number }
  | { id: number; type: "paused"; step: number }
  | { id: number; type: "done"; finalMetrics: Record<string, number>; steps: number }
  | { id: number; type: "prediction"; prediction: Prediction }
  | { id: number; type: "export"; adapterZip: Uint8Array; report: string; files: string[] }
  /** A request failed: one line naming what and where; the worker stays usable. */
  | { id: number; type: "error"; message: string };
