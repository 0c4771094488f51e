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
