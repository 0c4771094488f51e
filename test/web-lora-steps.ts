// The parity workload, shared by Node (onnxruntime-node and onnxruntime-web) and the Chromium page
// (test/web-page-entry.ts): LoRA (r=8 on query/value, dropout on) over encoder-mini's sequence
// classifier (a from-config causal LM instead trains its LM loss, LoRA on q_proj / v_proj), the same fixed batch every step, AdamW; everything seeded, so the losses of each
// step must agree across runtimes up to floating-point rounding. Imports core modules only.
import { int64 } from "../src/ir/tensor.js";
import { seededRandom } from "../src/ir/random.js";
import { loadModel, PretrainedModel } from "../src/models/pretrained.js";
import { PeftModel } from "../src/peft/peft-model.js";
import { AdamW } from "../src/train/optimizers.js";
import { type SessionOptions } from "../src/runtime/session.js";
import { TrainStep } from "../src/train/train-step.js";

export const PARITY_TEXTS = [
  "the film was a delight from start to finish",
  "a dull and lifeless story",
  "great acting and a clever plot",
  "i want those two hours back",
  "warm, funny and moving",
  "the worst thing i have seen this year",
  "an instant classic",
  "boring",
];
export const PARITY_LABELS = [1, 0, 1, 0, 1, 0, 1, 0];

/** A checkpoint folder, or a config for a randomly initialized model (transformers' from_config). */
export type ModelSource = string | { config: Record<string, unknown>; name: string };

export interface LoraRunOptions {
  steps?: number;
  /** Intra-op threads (onnxruntime-web: the page's pool, set by its first session). */
  threads?: number;
  /** Rows per batch (default: the 8 parity texts). */
  batch?: number;
  /** Pad every row to this many tokens (default: the longest row). */
  seqLen?: number;
  /** More session options, e.g. `{ executionProviders: ["webgpu"] }`. */
  session?: SessionOptions;
}

async function setup(source: ModelSource, opts: LoraRunOptions) {
  // A from-config causal LM (Llama family) trains its LM loss with LoRA on q_proj / v_proj.
  const lm = typeof source !== "string" && String((source.config.architectures as string[] | undefined)?.[0]).endsWith("ForCausalLM");
  const task = lm ? "causal-lm" : "sequence-classification";
  const base = typeof source === "string" ? await loadModel(source, { task }) : PretrainedModel.fromConfig(source.config, undefined, task, source.name);
  const peft = PeftModel.create(base, { peft_type: "LORA", r: 8, lora_alpha: 16, lora_dropout: 0.1, target_modules: lm ? ["q_proj", "v_proj"] : ["query", "value"] });
  const batch = opts.batch ?? PARITY_TEXTS.length;
  const labels = int64([batch], Array.from({ length: batch }, (_, i) => PARITY_LABELS[i % PARITY_LABELS.length]!));
  let feeds;
  if (lm) {
    // The token ids bench/reference/llama_lora_torch.py uses; the labels are the inputs (shifted inside the loss).
    const len = opts.seqLen ?? 16;
    const vocab = base.config.vocabSize;
    const ids = int64([batch, len], Array.from({ length: batch * len }, (_, i) => (i * 7919 + 13) % vocab));
    feeds = peft.prepareInputs({ input_ids: ids }, { labels: ids });
  } else if (base.tokenizer) {
    const texts = Array.from({ length: batch }, (_, i) => PARITY_TEXTS[i % PARITY_TEXTS.length]!);
    feeds = peft.prepareInputs(base.tokenizer.encodeBatch(texts, opts.seqLen ? { padding: "max_length", maxLength: opts.seqLen } : {}), { labels });
  } else {
    // No tokenizer (a from-config model): seeded token ids, every position attended.
    const len = opts.seqLen ?? 16;
    const rand = seededRandom(11);
    const vocab = base.config.vocabSize;
    const ids = int64([batch, len], Array.from({ length: batch * len }, () => 1 + Math.floor(rand() * (vocab - 1))));
    feeds = peft.prepareInputs({ input_ids: ids, attention_mask: int64([batch, len], new Array<number>(batch * len).fill(1)), token_type_ids: int64([batch, len], new Array<number>(batch * len).fill(0)) }, { labels });
  }
  const step = await TrainStep.create(peft.build({ withLoss: true, training: true }).outputs.loss!, {
    seed: 7,
    session: { ...(opts.threads ? { threads: opts.threads } : {}), ...opts.session },
  });
  return { step, opt: new AdamW(step.params, { lr: 1e-3 }), feeds };
}

/** Losses of `steps` (default 10) LoRA steps (every seed fixed). */
export async function loraStepLosses(source: ModelSource, opts: LoraRunOptions = {}): Promise<number[]> {
  const { step, opt, feeds } = await setup(source, opts);
  const losses: number[] = [];
  try {
    for (let i = 0; i < (opts.steps ?? 10); i++) {
      const { loss, grads } = await step.run(feeds);
      opt.step(grads);
      losses.push(loss);
    }
  } finally {
    await step.release();
  }
  return losses;
}

/**
 * Milliseconds of each of `steps` LoRA steps (run + optimizer update) after untimed ones: at least
 * `warmup` (default 2) and, with `warmupSeconds`, as many more as start within that many seconds.
 * A browser needs the seconds: V8 first runs ONNX Runtime's wasm as quickly compiled baseline code
 * and optimizes hot functions in the background, so early steps are slower (encoder-mini in
 * headless Chromium, 2 threads: ~600-900 ms per step over the first ~10 s, 270-330 ms after ~20 s).
 */
export async function timeLoraSteps(source: ModelSource, opts: LoraRunOptions & { steps: number; warmup?: number; warmupSeconds?: number }): Promise<number[]> {
  const { step, opt, feeds } = await setup(source, opts);
  const ms: number[] = [];
  try {
    const start = performance.now();
    let warm = 0;
    while (ms.length < opts.steps) {
      const t0 = performance.now();
      const { grads } = await step.run(feeds);
      opt.step(grads);
      if (warm < (opts.warmup ?? 2) || t0 - start < (opts.warmupSeconds ?? 0) * 1000) warm++;
      else ms.push(performance.now() - t0);
    }
  } finally {
    await step.release();
  }
  return ms;
}
