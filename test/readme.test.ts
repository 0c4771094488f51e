// The README's example, on the tiny BERT checkpoint, so the documented API stays true.
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { it } from "node:test";
import { AdamW, Generator, PeftModel, TrainStep, int64, loadModel } from "../src/index.js";

const FIXTURES = join(import.meta.dirname, "fixtures", "models");

it("README: fine-tuning in a few lines", async () => {
  const base = await loadModel(join(FIXTURES, "bert-tiny"), { task: "sequence-classification" });
  const model = PeftModel.create(base, { peft_type: "LORA", r: 8, lora_alpha: 16, target_modules: ["query", "value"] });
  const lines: string[] = [];
  model.printTrainableParameters((s) => lines.push(s));
  assert.match(lines[0]!, /^trainable params: [\d,]+ \|\| all params: [\d,]+ \|\| trainable%: \d+\.\d{4}$/);
  const step = await TrainStep.create(model.build({ withLoss: true, training: true }).outputs.loss!);
  const opt = new AdamW(step.params, { lr: 2e-2 });
  const batch = base.tokenizer!.encodeBatch(["a great movie", "a waste of time"]);
  let first = NaN;
  let last = NaN;
  for (let i = 0; i < 30; i++) {
    const { loss, grads } = await step.run(model.prepareInputs(batch, { labels: int64([2], [1, 0]) }));
    if (i === 0) first = loss;
    last = loss;
    opt.step(grads);
  }
  assert.ok(last < first, `loss ${first} -> ${last}`);
  const dir = mkdtempSync(join(tmpdir(), "peftjs-readme-"));
  await model.save(dir);
  assert.deepEqual(readdirSync(dir).sort(), ["adapter_config.json", "adapter_model.safetensors"]);
  assert.ok(model.mergeAndUnload().build().outputs.logits);
});

it("README: generation with a key/value cache", async () => {
  const lm = await loadModel(join(FIXTURES, "llama-tiny"), { task: "causal-lm" });
  const gen = await Generator.create(lm);
  const streamed: number[] = [];
  const { texts, tokens } = await gen.generate(["the cat"], { maxNewTokens: 5, temperature: 0.8, topP: 0.95, onToken: (t) => streamed.push(t) });
  assert.equal(texts.length, 1);
  assert.deepEqual(streamed, tokens[0]);
  await gen.release();
});
