// The trainer on the tiny BERT checkpoint: learning, evaluation and logs, gradient accumulation,
// resume after a killed run or a finished shorter one (bit for bit, dropout on), output folders,
// divergence and step errors.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { readSafetensors } from "../src/io/safetensors.js";
import { adapterValues, FIXTURES, tinyTrainer } from "./support/tiny-training.js";
import { DivergenceGuard } from "../src/train/divergence.js";
import { OutputExistsError, Trainer, TrainingDivergedError, TrainingStepError } from "../src/train/trainer.js";

const metrics = (dir: string) => readFileSync(join(dir, "metrics.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as Record<string, number>);
const stepOf = (dir: string) => (JSON.parse(readFileSync(join(dir, "trainer_state.json"), "utf8")) as { step: number }).step;

const tmp = () => mkdtempSync(join(tmpdir(), "peftjs-train-"));

describe("Trainer", () => {
  it("learns, evaluates, logs every metric and saves the adapter", async () => {
    const out = tmp();
    const settings = { method: "lora", r: 4, data: "train.jsonl", seed: 42 };
    const { trainer } = await tinyTrainer({ outputDir: out, epochs: 6, lr: 2e-2, headLrScale: 5, settings });
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
    // Titled by the model's name, not a path of this machine; the run's settings in a table.
    assert.match(report, /<title>bert-tiny · default<\/title>/);
    assert.ok(!report.includes(FIXTURES), "no absolute path");
    assert.match(report, /<h2>Settings<\/h2><table class="settings"><tr><td>method<\/td><td>lora<\/td><\/tr><tr><td>r<\/td><td>4<\/td><\/tr><tr><td>data<\/td><td>train.jsonl<\/td><\/tr><tr><td>seed<\/td><td>42<\/td><\/tr><\/table>/);
  });

  it("library options go through a schema: out-of-range values and mistyped keys are errors, not hangs or silent defaults", async () => {
    const out = tmp();
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ batchSize: 0 }, /^TrainerOptions\.batchSize: expected number to be >=1, got 0$/],
      [{ lr: -0.001 }, /^TrainerOptions\.lr: expected number to be >0, got -0\.001$/],
      [{ epochs: 1.5 }, /^TrainerOptions\.epochs: expected int, got 1\.5$/],
      [{ gradientAccumulation: 0 }, /^TrainerOptions\.gradientAccumulation: .*, got 0$/],
      [{ schedule: "cos" }, /^TrainerOptions\.schedule: expected one of .*, got "cos"$/],
      [{ earlyStopping: { metric: "f1", patience: 0 } }, /^TrainerOptions\.earlyStopping\.patience: .*, got 0$/],
      [{ bachSize: 4 }, /^TrainerOptions: unknown option "bachSize" \(did you mean "batchSize"\?\)$/],
      [{ divergence: { factr: 2 } }, /^TrainerOptions\.divergence: unknown option "factr" \(did you mean "factor"\?\)$/],
      [{ outputDir: "" }, /^TrainerOptions\.outputDir: expected a non-empty path, got ""$/],
    ];
    for (const [opts, message] of cases) await assert.rejects(tinyTrainer({ outputDir: out, ...opts } as never), (e: Error) => e instanceof RangeError && message.test(e.message), JSON.stringify(opts));
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

  it("resumes a finished run to more steps bit for bit: across epoch boundaries, mid accumulation, dropout on", async () => {
    // 20 examples in batches of 4, two per step: epochs of 3 steps (2 + 2 + 1 batches), so
    // step 32 ends inside epoch 10 and the resumed part starts mid-epoch.
    const opts = { epochs: 100, batchSize: 4, gradientAccumulation: 2, schedule: "constant" as const, warmupRatio: 0, dropout: true, logEvery: 4 };
    const dir = tmp();
    const first = await tinyTrainer({ ...opts, outputDir: dir, maxSteps: 32 }, 20);
    await first.trainer.train();
    const resumed = await tinyTrainer({ ...opts, outputDir: dir, maxSteps: 64, resume: true }, 20);
    await resumed.trainer.train();
    const straight = await tinyTrainer({ ...opts, outputDir: tmp(), maxSteps: 64 }, 20);
    await straight.trainer.train();
    assert.deepEqual(adapterValues(resumed.peft), adapterValues(straight.peft), "32 steps then resumed to 64 equals 64 straight");
    const again = await tinyTrainer({ ...opts, outputDir: tmp(), maxSteps: 64 }, 20);
    await again.trainer.train();
    assert.deepEqual(adapterValues(again.peft), adapterValues(straight.peft), "the same seed with dropout on gives the same adapter");
    const other = await tinyTrainer({ ...opts, outputDir: tmp(), maxSteps: 64, seed: 7 }, 20);
    await other.trainer.train();
    assert.notDeepEqual(adapterValues(other.peft), adapterValues(straight.peft), "another seed, another adapter");
    // The resumed run's log holds each step once, the mean losses equal to the straight run's.
    const losses = (d: string) => metrics(d).filter((e) => e.loss !== undefined).map((e) => [e.step, e.loss]);
    assert.deepEqual(losses(dir), losses(straight.trainer.opts.outputDir));
  });

  it("an AdaLoRA run resumed mid rank allocation equals the uninterrupted run (its importance averages are checkpointed)", async () => {
    const adalora = { peft_type: "ADALORA", init_r: 4, target_r: 2, lora_alpha: 8, target_modules: ["query", "value"], total_step: 24, tinit: 2, tfinal: 4, deltaT: 2 };
    const opts = { epochs: 100, batchSize: 4, schedule: "constant" as const, warmupRatio: 0, logEvery: 4 };
    const dir = tmp();
    await (await tinyTrainer({ ...opts, outputDir: dir, maxSteps: 11 }, 20, adalora)).trainer.train();
    const resumed = await tinyTrainer({ ...opts, outputDir: dir, maxSteps: 24, resume: true }, 20, adalora);
    await resumed.trainer.train();
    const straight = await tinyTrainer({ ...opts, outputDir: tmp(), maxSteps: 24 }, 20, adalora);
    await straight.trainer.train();
    assert.deepEqual(adapterValues(resumed.peft), adapterValues(straight.peft));
    const state = (p: typeof straight.peft) => [...p.adapters.get("default")!.trainingState!()].map(([k, t]) => [k, Array.from(t.data as Float64Array)]);
    assert.deepEqual(state(resumed.peft), state(straight.peft), "the importance averages continue, not restart");
    // Rank allocation happened: some singular values were masked to zero.
    const E = [...straight.peft.adapters.get("default")!.tensors].filter(([k]) => k.endsWith("lora_E")).flatMap(([, t]) => Array.from(t.data as Float32Array));
    assert.ok(E.some((x) => x === 0) && E.some((x) => x !== 0), "some, not all, singular values pruned");
  });

  it("logs the mean loss of each logging interval", async () => {
    const every = await tinyTrainer({ outputDir: tmp(), maxSteps: 6, logEvery: 1 });
    await every.trainer.train();
    const per = metrics(every.trainer.opts.outputDir).filter((e) => e.loss !== undefined).map((e) => e.loss!);
    const third = await tinyTrainer({ outputDir: tmp(), maxSteps: 6, logEvery: 3 });
    await third.trainer.train();
    const logged = metrics(third.trainer.opts.outputDir).filter((e) => e.loss !== undefined).map((e) => [e.step, e.loss]);
    // Step 1 is logged alone (an early sign of life), then steps 2-3 and 4-6.
    assert.deepEqual(logged, [[1, per[0]], [3, (per[1]! + per[2]!) / 2], [6, (per[3]! + per[4]! + per[5]!) / 3]]);
  });

  it("refuses an output folder that holds a previous run unless resuming or overwriting; overwrite starts a clean log", async () => {
    const dir = tmp();
    await (await tinyTrainer({ outputDir: dir, maxSteps: 3 })).trainer.train();
    const again = await tinyTrainer({ outputDir: dir, maxSteps: 2 });
    await assert.rejects(again.trainer.train(), (e: Error) => e instanceof OutputExistsError && e.message.includes(dir) && /--resume.*--overwrite/.test(e.message));
    const over = await tinyTrainer({ outputDir: dir, maxSteps: 2, overwrite: true });
    await over.trainer.train();
    const steps = metrics(dir).filter((e) => e.loss !== undefined).map((e) => e.step);
    assert.deepEqual(steps, [1, 2], "only the new run's entries");
    assert.equal(stepOf(join(dir, "checkpoint-last")), 2);
  });

  it("cleans up the temp folders of a killed run at start", async () => {
    const dir = tmp();
    const { mkdirSync, writeFileSync } = await import("node:fs");
    mkdirSync(join(dir, "adapter.tmp-1234-abcd"));
    writeFileSync(join(dir, "adapter.tmp-1234-abcd", "adapter_model.safetensors"), "partial");
    mkdirSync(join(dir, "checkpoint-last.tmp-99-ffff"));
    writeFileSync(join(dir, "report.html.tmp-99-0123456789ab"), "<html");
    const lines: string[] = [];
    await (await tinyTrainer({ outputDir: dir, maxSteps: 1, print: (l) => lines.push(l) })).trainer.train();
    assert.deepEqual(readdirSync(dir).filter((f) => f.includes(".tmp-") || f.includes(".old-")), []);
    assert.ok(lines.some((l) => /cleaned up after a killed run: removed .*adapter\.tmp-1234-abcd/.test(l)), lines.join("\n"));
  });

  it("stops a run whose loss runs away (--lr 100), naming the rule's numbers", async () => {
    const { trainer } = await tinyTrainer({ outputDir: tmp(), lr: 100, epochs: 6, warmupRatio: 0 });
    await assert.rejects(trainer.train(), (e: Error) => e instanceof TrainingDivergedError && /training diverged at step \d+: .*(smoothed loss rose to .* over 4x its best .* for 5 steps in a row|non-finite)/.test(e.message));
  });

  it("the divergence rule: a loss far above its best for `patience` steps; near-zero wobbles and `false` never stop", () => {
    const run = (guard: DivergenceGuard, losses: number[]) => losses.map((l) => guard.observe(l)).findIndex((why) => why !== undefined);
    const climb = [...Array(20).fill(0.7), ...Array(20).fill(30)];
    const at = run(new DivergenceGuard(undefined), climb);
    assert.ok(at > 20 && at < 30, `stopped at step ${at + 1}`);
    assert.equal(run(new DivergenceGuard({ patience: 3 }), climb), at - 2, "patience counts rising steps in a row");
    assert.equal(run(new DivergenceGuard(undefined), [...Array(20).fill(0.002), ...Array(40).fill(0.05)]), -1, "below minRise");
    assert.equal(run(new DivergenceGuard(false), climb), -1, "switched off");
    assert.throws(() => new DivergenceGuard({ factor: 1 }), /divergence.factor must be > 1/);
  });

  it("a NaN loss names the last good checkpoint, which exists and holds finite weights; poisoned states are not saved", async () => {
    const out = tmp();
    const lines: string[] = [];
    const { trainer, peft } = await tinyTrainer({ outputDir: out, saveEvery: 2, print: (l) => lines.push(l) });
    const [, a] = [...peft.adapters.get("default")!.tensors].find(([k]) => k.includes("lora_A"))!;
    // Poison the weights as step 4 is logged, before its checkpoint: that checkpoint is skipped.
    trainer.opts.onLog = (e) => void (e.step === 4 && e.loss !== undefined && ((a.data as Float32Array)[0] = NaN));
    let message = "";
    await assert.rejects(trainer.train(), (e: Error) => ((message = e.message), e instanceof TrainingDivergedError));
    assert.match(message, /training diverged at step 5: a non-finite loss \(NaN\)\. The last good checkpoint is .*checkpoint-last \(step 2\)/);
    assert.equal(stepOf(join(out, "checkpoint-last")), 2);
    const saved = await readSafetensors(join(out, "checkpoint-last", "adapter_model.safetensors"));
    for (const n of saved.names()) assert.ok((saved.get(n).data as Float32Array).every(Number.isFinite), n);
    assert.ok(lines.some((l) => /^step 4: not saved as a checkpoint \(adapter "default" tensor .* holds NaN\); checkpoint-last stays at step 2$/.test(l)), lines.join("\n"));
    // NaN before any checkpoint says there is none.
    const early = await tinyTrainer({ outputDir: tmp() });
    (([...early.peft.adapters.get("default")!.tensors].find(([k]) => k.includes("lora_A"))![1].data as Float32Array)[0] = NaN);
    await assert.rejects(early.trainer.train(), /training diverged at step 1: a non-finite loss \(NaN\)\. No checkpoint was saved before it/);
  });

  it("reports an exception inside a step as what it is, with the step, its examples and the original message", async () => {
    const { trainer } = await tinyTrainer({ outputDir: tmp(), batchSize: 2 });
    // An example longer than the model's 64 positions: the position lookup fails in the runtime.
    const long = { ids: Array.from({ length: 80 }, () => 5), typeIds: Array.from({ length: 80 }, () => 0), label: 0 };
    const bad = new Trainer(trainer.model, [long, long], undefined, { ...trainer.opts, outputDir: tmp() });
    await assert.rejects(bad.train(), (e: Error) => e instanceof TrainingStepError && !/diverged/.test(e.message) && /^training step 1 \(epoch 1\) failed on training examples [01], [01] \(positions in the training set\): .+/.test(e.message));
    // Examples built from a data file name their file and line instead.
    const named = new Trainer(trainer.model, [{ ...long, source: "train.jsonl line 3" }, { ...long, source: "train.jsonl line 9" }], undefined, { ...trainer.opts, outputDir: tmp() });
    await assert.rejects(named.train(), (e: Error) => e instanceof TrainingStepError && /^training step 1 \(epoch 1\) failed on train\.jsonl line [39], train\.jsonl line [39]: .+/.test(e.message));
  });
});
