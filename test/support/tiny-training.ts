// A small, deterministic fine-tuning setup on the tiny BERT checkpoint, shared by the trainer
// tests and the child process they kill mid-run.
import { join } from "node:path";
import { loadModel } from "../../src/models/pretrained.js";
import { PeftModel, type PeftConfigInput } from "../../src/peft/peft-model.js";
import { classificationExamples } from "../../src/train/data.js";
import { Trainer, type TrainerOptions } from "../../src/train/trainer.js";

export const FIXTURES = join(import.meta.dirname, "..", "fixtures", "models");

const WORDS = ["the cat sat on the mat", "a dog near the river", "money in the bank", "the cat and the dog", "the bank of the river", "a cat on a mat", "the dog sat", "money and the bank"];

/** Label 1 when the text mentions an animal. */
export const RECORDS = Array.from({ length: 24 }, (_, i) => {
  const text = WORDS[i % WORDS.length]!;
  return { text, label: /cat|dog/.test(text) ? "animal" : "other" };
});

export async function tinyTrainer(opts: Partial<TrainerOptions> & { outputDir: string }, limit?: number, config: PeftConfigInput = { peft_type: "LORA", r: 4, lora_alpha: 8, target_modules: ["query", "value"] }) {
  const base = await loadModel(join(FIXTURES, "bert-tiny"), { task: "sequence-classification" });
  const peft = PeftModel.create(base, config as never);
  const { examples } = classificationExamples(RECORDS, base.tokenizer!, { maxLength: 16, labelNames: ["other", "animal"] });
  const trainer = new Trainer(peft, examples.slice(0, limit), examples.slice(0, 8), { epochs: 2, batchSize: 4, lr: 5e-3, dropout: false, progress: false, threads: 1, logEvery: 1, ...opts });
  return { trainer, peft, base };
}

/** The trained adapter tensors, flattened in a fixed order. */
export function adapterValues(peft: PeftModel): number[] {
  return [...peft.adapters.get("default")!.tensors].sort(([a], [b]) => (a < b ? -1 : 1)).flatMap(([, t]) => Array.from(t.data as Float32Array));
}

// Child-process entry (used by the resume test): train, checkpointing every 2 steps.
if (process.argv[2] === "--run") {
  const { trainer } = await tinyTrainer({ outputDir: process.argv[3]!, saveEvery: 2, onLog: (e) => void (e.loss !== undefined && console.log(`step ${e.step}`)) });
  await trainer.train();
}
