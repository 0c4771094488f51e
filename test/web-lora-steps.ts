// The parity workload, shared by Node (onnxruntime-node and onnxruntime-web) and the Chromium page
// (test/web-page-entry.ts): LoRA (r=8 on query/value, dropout on) over encoder-mini's sequence
// classifier, the same fixed batch every step, AdamW; everything seeded, so the losses of each
// step must agree across runtimes up to floating-point rounding. Imports core modules only.
import { int64 } from "../src/ir/tensor.js";
import { loadModel } from "../src/models/pretrained.js";
import { PeftModel } from "../src/peft/peft-model.js";
import { AdamW } from "../src/train/optimizers.js";
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

/** Losses of `steps` LoRA steps on the model in `modelDir` (every seed fixed). */
export async function loraStepLosses(modelDir: string, opts: { steps?: number; threads?: number; batch?: number; seqLen?: number } = {}): Promise<number[]> {
  const base = await loadModel(modelDir, { task: "sequence-classification" });
  const peft = PeftModel.create(base, { peft_type: "LORA", r: 8, lora_alpha: 16, lora_dropout: 0.1, target_modules: ["query", "value"] });
  const tokenizer = base.tokenizer!;
  const batch = opts.batch ?? PARITY_TEXTS.length;
  const texts = Array.from({ length: batch }, (_, i) => PARITY_TEXTS[i % PARITY_TEXTS.length]!);
  const enc = tokenizer.encodeBatch(texts, opts.seqLen ? { padding: "max_length", maxLength: opts.seqLen } : {});
  const feeds = peft.prepareInputs(enc, { labels: int64([batch], texts.map((_, i) => PARITY_LABELS[i % PARITY_LABELS.length]!)) });
  const step = await TrainStep.create(peft.build({ withLoss: true, training: true }).outputs.loss!, { seed: 7, session: opts.threads ? { threads: opts.threads } : {} });
  const opt = new AdamW(step.params, { lr: 1e-3 });
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
