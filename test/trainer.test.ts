// The trainer on the tiny BERT checkpoint: learning, evaluation and logs, gradient accumulation,
// resume after a killed run, divergence handling.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { adapterValues, tinyTrainer } from "./support/tiny-training.js";
import { TrainingDivergedError } from "../src/train/trainer.js";

const tmp = () => mkdtempSync(join(tmpdir(), "peftjs-train-"));

describe("Trainer", () => {
  it("learns, evaluates, logs every metric and saves the adapter", async () => {
    const out = tmp();
    const { trainer } = await tinyTrainer({ outputDir: out, epochs: 6, lr: 2e-2, headLrScale: 5 });
    const result = await trainer.train();
    assert.equal(result.steps, 36);
    assert.ok(result.finalMetrics.accuracy! >= 0.75, `accuracy ${result.finalMetrics.accuracy}`);
    // (ROC-AUC and PR-AUC are added for binary heads; this checkpoint's head has 3 labels.)
    for (const k of ["loss", "accuracy", "precision", "recall", "f1"]) assert.ok(k in result.finalMetrics, k);
    const log = readFileSync(join(out, "metrics.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as Record<string, number>);
    const losses = log.filter((e) => e.loss !== undefined).map((e) => e.loss!);
    assert.ok(losses.at(-1)! < losses[0]!, `training loss ${losses[0]} -> ${losses.at(-1)}`);
    assert.ok(log.some((e) => e.eval_accuracy !== undefined));
    assert.ok(existsSync(join(result.adapterDir, "adapter_model.safetensors")));
    assert.ok(existsSync(join(out, "checkpoint-last", "trainer_state.json")));
    const report = readFileSync(join(out, "report.html"), "utf8");
    assert.match(report, /Confusion matrix/);
    assert.match(report, /new Chart\(/);
    assert.ok(!/<script src=/.test(report), "no external scripts: viewable offline");
  });

  it("gradient accumulation equals one larger batch", async () => {
    // The same 8 examples: one step of 2 x 4 accumulated, or one step of a batch of 8.
    const a = await tinyTrainer({ outputDir: tmp(), maxSteps: 1, batchSize: 4, gradientAccumulation: 2, warmupRatio: 0 }, 8);
    const b = await tinyTrainer({ outputDir: tmp(), maxSteps: 1, batchSize: 8, gradientAccumulation: 1, warmupRatio: 0 }, 8);
    await a.trainer.train();
    await b.trainer.train();
    const [va, vb] = [adapterValues(a.peft), adapterValues(b.peft)];
    const diff = va.reduce((m, v, i) => Math.max(m, Math.abs(v - vb[i]!)), 0);
    assert.ok(diff < 1e-6, `max parameter difference ${diff}`);
  });

  it("a run killed mid-way resumes from its last checkpoint to the same final parameters", async () => {
    const killedDir = tmp();
    const child = spawn(process.execPath, ["--import", "tsx", join(import.meta.dirname, "support", "tiny-training.ts"), "--run", killedDir], { stdio: ["ignore", "pipe", "inherit"] });
    await new Promise<void>((resolve, reject) => {
      child.stdout.on("data", (d: Buffer) => {
        // Checkpoints are written every 2 steps; kill once step 5 has run (checkpoint at 4 on disk).
        if (/step 5\b/.test(d.toString())) {
          child.kill("SIGKILL");
          resolve();
        }
      });
      child.on("exit", (code) => (code === 0 ? reject(new Error("the run finished before it was killed")) : resolve()));
    });
    const state = JSON.parse(readFileSync(join(killedDir, "checkpoint-last", "trainer_state.json"), "utf8")) as { step: number };
    assert.ok(state.step >= 4 && state.step < 12, `checkpoint at step ${state.step}`);
    const resumed = await tinyTrainer({ outputDir: killedDir, saveEvery: 2, resume: true });
    await resumed.trainer.train();
    const straight = await tinyTrainer({ outputDir: tmp(), saveEvery: 2 });
    await straight.trainer.train();
    const [a, b] = [adapterValues(resumed.peft), adapterValues(straight.peft)];
    assert.deepEqual(a, b, "resumed parameters equal the uninterrupted run's");
  });

  it("stops with a clear error on a non-finite loss and keeps the last checkpoint", async () => {
    const out = tmp();
    const { trainer, peft } = await tinyTrainer({ outputDir: out });
    const [, a] = [...peft.adapters.get("default")!.tensors].find(([k]) => k.includes("lora_A"))!;
    (a.data as Float32Array)[0] = NaN;
    await assert.rejects(trainer.train(), (e: Error) => e instanceof TrainingDivergedError && /training diverged at step 1: .*non-finite loss.*checkpoint-last/.test(e.message));
  });
});
