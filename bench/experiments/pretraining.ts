// `npm run experiment -- pretraining`: does the shipped base's pretraining pay? Full fine-tuning
// and LoRA r=32 start from the pretrained base and from a random initialization of the same
// architecture (and tokenizer). So that no start is judged at a learning rate that suits only
// the other, each (task, method, start) first runs at every rate of a small sweep (seed 1), then
// at its best rate with the remaining seeds. Both starts are swept and selected alike, on the
// same validation split the table reports (so both numbers are equally optimistic). Runs go to
// runs.jsonl as they finish (an interrupted experiment resumes); the table is pretraining.md,
// the numbers summary.json.
import { appendFile } from "node:fs/promises";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { writeFileAtomic } from "../../src/io/safetensors.js";

import { meanStd } from "./methods-report.js";
import { experimentSetup, readRuns } from "./methods.js";
import { runInChild, type RunResult } from "./run-one.js";

/** Each compared method: its pretrained-start and random-start rows of the method grid, and the learning rates swept. */
export const PAIRS = [
  { method: "full", pretrained: "full", random: "full (random init)", lrs: [1e-4, 3e-4, 1e-3] },
  { method: "lora r=32", pretrained: "lora r=32", random: "lora r=32 (random init)", lrs: [3e-4, 1e-3, 3e-3] },
] as const;

export interface PretrainingRow {
  task: string;
  method: string;
  start: "pretrained" | "random";
  /** Seed-1 accuracy at each swept rate. */
  sweep: { lr: number; accuracy: number }[];
  bestLr: number;
  seeds: number;
  accuracy: { mean: number; std: number };
}

export interface PretrainingComparison {
  task: string;
  method: string;
  pretrained: PretrainingRow;
  random: PretrainingRow;
  /** Pretrained minus random mean accuracy, and Welch's t of that difference. */
  gain: number;
  t: number;
}

/** The rate with the best seed-1 accuracy (the lower rate on a tie). */
export function bestRate(sweep: readonly { lr: number; accuracy: number }[]): number {
  if (sweep.length === 0) throw new RangeError("bestRate: no runs");
  return [...sweep].sort((a, b) => b.accuracy - a.accuracy || a.lr - b.lr)[0]!.lr;
}

/** Welch's t statistic of mean(a) - mean(b); Infinity when both have zero spread and differ. */
export function welchT(a: readonly number[], b: readonly number[]): number {
  const [x, y] = [meanStd(a), meanStd(b)];
  const se = Math.sqrt(x.std ** 2 / a.length + y.std ** 2 / b.length);
  const d = x.mean - y.mean;
  return se > 0 ? d / se : d === 0 ? 0 : Math.sign(d) * Infinity;
}

/** Summaries of the runs: one comparison per (task, method) whose two starts have their sweeps and seeds. */
export function compare(runs: readonly RunResult[], seeds: number): PretrainingComparison[] {
  const out: PretrainingComparison[] = [];
  for (const task of [...new Set(runs.map((r) => r.task))]) {
    for (const pair of PAIRS) {
      const row = (start: "pretrained" | "random"): PretrainingRow | undefined => {
        const name = pair[start];
        const mine = runs.filter((r) => r.task === task && r.method === name);
        const sweep = pair.lrs.flatMap((lr) => mine.filter((r) => r.seed === 1 && r.lr === lr).map((r) => ({ lr, accuracy: r.accuracy })));
        if (sweep.length < pair.lrs.length) return undefined;
        const bestLr = bestRate(sweep);
        const at = mine.filter((r) => r.lr === bestLr && r.seed <= seeds);
        if (at.length < seeds) return undefined;
        return { task, method: pair.method, start, sweep, bestLr, seeds: at.length, accuracy: meanStd(at.map((r) => r.accuracy)) };
      };
      const [p, r] = [row("pretrained"), row("random")];
      if (!p || !r) continue;
      const acc = (name: string, lr: number) => runs.filter((x) => x.task === task && x.method === name && x.lr === lr && x.seed <= seeds).map((x) => x.accuracy);
      out.push({ task, method: pair.method, pretrained: p, random: r, gain: p.accuracy.mean - r.accuracy.mean, t: welchT(acc(pair.pretrained, p.bestLr), acc(pair.random, r.bestLr)) });
    }
  }
  return out;
}

export function pretrainingTable(rows: readonly PretrainingComparison[]): string {
  const lrs = (r: PretrainingRow) => r.sweep.map((s) => `${s.lr.toExponential(0)}: ${s.accuracy.toFixed(3)}`).join(", ");
  const pm = (r: PretrainingRow) => `${r.accuracy.mean.toFixed(3)} ± ${r.accuracy.std.toFixed(3)}`;
  const lines = ["| task | method | pretrained start | random start | gain (points) | Welch t | sweep, pretrained (seed 1) | sweep, random (seed 1) |", "|---|---|---|---|---:|---:|---|---|"];
  for (const c of rows) {
    lines.push(`| ${c.task} | ${c.method} | ${pm(c.pretrained)} at ${c.pretrained.bestLr.toExponential(0)} | ${pm(c.random)} at ${c.random.bestLr.toExponential(0)} | ${(100 * c.gain).toFixed(1)} | ${Number.isFinite(c.t) ? c.t.toFixed(1) : c.t > 0 ? "∞" : "−∞"} | ${lrs(c.pretrained)} | ${lrs(c.random)} |`);
  }
  return lines.join("\n");
}

export async function main(args: string[]): Promise<void> {
  const { values, out, runsFile, budget, tasks } = await experimentSetup(args, fileURLToPath(new URL("../results/pretraining", import.meta.url)));
  if (values.methods) throw new RangeError("the pretraining experiment compares the fixed PAIRS (full, lora r=32); --methods does not apply");
  const seeds = Number(values.seeds);
  const key = (r: { task: string; method: string; seed: number; lr?: number }) => `${r.task}|${r.method}|${r.seed}|${r.lr}`;
  const execute = async (todo: { task: string; method: string; seed: number; lr: number }[], stage: string) => {
    const done = new Set((await readRuns(runsFile)).map(key));
    const left = todo.filter((r) => !done.has(key(r)));
    console.log(`pretraining experiment, ${stage}: ${left.length} runs to do (${todo.length - left.length} already in ${runsFile})`);
    for (const [i, r] of left.entries()) {
      const result = await runInChild({ ...r, budget, workDir: join(out, ".work"), model: values.model });
      await appendFile(runsFile, `${JSON.stringify(result)}\n`);
      console.log(`[${i + 1}/${left.length}] ${r.task} · ${r.method} · lr ${r.lr} · seed ${r.seed}: accuracy ${result.accuracy.toFixed(3)}`);
    }
  };
  const names = PAIRS.flatMap((p) => [p.pretrained, p.random].map((method) => ({ method, lrs: p.lrs })));
  if (!values["report-only"]) {
    await execute(tasks.flatMap((task) => names.flatMap(({ method, lrs }) => lrs.map((lr) => ({ task, method, seed: 1, lr })))), "learning-rate sweep (seed 1)");
    const runs = await readRuns(runsFile);
    const best = (task: string, method: string, lrs: readonly number[]) => bestRate(lrs.map((lr) => ({ lr, accuracy: runs.find((r) => r.task === task && r.method === method && r.seed === 1 && r.lr === lr)!.accuracy })));
    const rest = [...Array(Math.max(0, seeds - 1)).keys()].map((i) => i + 2);
    await execute(rest.flatMap((seed) => tasks.flatMap((task) => names.map(({ method, lrs }) => ({ task, method, seed, lr: best(task, method, lrs) })))), `seeds 2..${seeds} at the best rates`);
  }
  const rows = compare(await readRuns(runsFile), seeds);
  const base = relative(process.cwd(), values.model) || values.model;
  const md = [
    "# Does pretraining pay?",
    "",
    `Written by \`npm run experiment -- pretraining\`. Base \`${base}\` against a random initialization of the same architecture and tokenizer; the methods experiment's budget`,
    `(${budget.steps} steps of ${budget.batchSize}, ${budget.maxLength} tokens, ${2 * budget.trainPerClass} training / ${2 * budget.validationPerClass} validation examples; LoRA's task head at 3e-3, full fine-tuning's at its own rate).`,
    `Each row's learning rate is the best of its sweep at seed 1; accuracy is mean ± std over ${seeds} seeds at that rate. Both starts are swept and chosen alike on the validation split`,
    "they are scored on. Welch's t of the gain: above ~2.8 is a difference 3 seeds resolve (p < 0.05, two-sided, about 4 degrees of freedom).",
    "",
    pretrainingTable(rows),
    "",
  ].join("\n");
  await writeFileAtomic(join(out, "pretraining.md"), md);
  await writeFileAtomic(join(out, "summary.json"), `${JSON.stringify(rows, null, 2)}\n`);
  console.log(md);
}
