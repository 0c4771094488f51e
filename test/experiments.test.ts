// The experiments' bookkeeping: summaries over seeds, the tables and the plots they commit.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ablationMarkdown, ablationPlotSpec, type AblationResult } from "../bench/experiments/ablation.js";
import { HEAD_LR, headLrScale, METHOD_GRID } from "../bench/experiments/grid.js";
import { meanStd, methodsPlotSpec, methodsTable, renderSvg, summarize } from "../bench/experiments/methods-report.js";
import { bestRate, compare, PAIRS, pretrainingTable, welchT } from "../bench/experiments/pretraining.js";
import { type RunResult } from "../bench/experiments/run-one.js";
import { TUNERS } from "../src/tuners/registry.js";

const run = (method: string, seed: number, accuracy: number, stepMs: number): RunResult => ({
  method, family: method.split(" ")[0]!, task: "spam", seed, trainable: method === "full" ? 1000 : 10, all: 1000, trainablePercent: method === "full" ? 100 : 1,
  accuracy, f1: accuracy - 0.01, rocAuc: 0.9, evalLoss: 0.5, finalTrainLoss: 0.4, stepMs, peakRssMb: 500, adapterBytes: method === "full" ? 4_000_000 : 40_960,
});

describe("methods experiment summary", () => {
  it("mean and sample standard deviation", () => {
    assert.deepEqual(meanStd([0.5]), { mean: 0.5, std: 0 });
    const { mean, std } = meanStd([0.7, 0.8, 0.9]);
    assert.ok(Math.abs(mean - 0.8) < 1e-12);
    assert.ok(Math.abs(std - 0.1) < 1e-12, "n - 1 in the denominator");
    assert.throws(() => meanStd([]), /no values/);
  });

  it("groups runs by task and method; timing is the median run", () => {
    const rows = summarize([run("full", 1, 0.8, 300), run("lora r=8", 1, 0.7, 100), run("full", 2, 0.9, 900), run("full", 3, 0.85, 310), run("lora r=8", 2, 0.75, 110)]);
    assert.deepEqual(rows.map((r) => [r.method, r.seeds]), [["full", 3], ["lora r=8", 2]]);
    assert.equal(rows[0]!.stepMs, 310, "one slow run does not move the median");
    assert.ok(Math.abs(rows[0]!.accuracy.mean - 0.85) < 1e-12);
    const table = methodsTable(rows);
    assert.match(table, /### spam/);
    assert.match(table, /\| lora r=8 \| 10 \| 1\.00 \| 0\.725 ± 0\.035 \|/);
    assert.match(table, /\| 105 \| 0\.34 \|/, "step time relative to full fine-tuning");
    assert.match(table, /40 KB/);
  });

  it("renders the accuracy-vs-parameters plot to SVG", async () => {
    const svg = await renderSvg(methodsPlotSpec(summarize([run("full", 1, 0.8, 300), run("lora r=8", 1, 0.7, 100)])));
    assert.match(svg, /^<svg/);
    assert.match(svg, /lora r=8/);
    assert.match(svg, /trainable parameters \(log scale\)/);
  });

  it("the head trains at HEAD_LR over a frozen base, at the method's own rate when whole layers train", () => {
    const m = (name: string) => METHOD_GRID.find((x) => x.name === name)!;
    for (const name of ["full", "full (random init)", "top-2 layers"]) assert.equal(headLrScale(m(name), 2e-4), 1, name);
    for (const name of ["lora r=8", "bitfit", "head only (linear probe)", "prefix (20)"]) assert.ok(Math.abs(headLrScale(m(name), m(name).lr) * m(name).lr - HEAD_LR) < 1e-12, name);
  });

  it("the grid names each method once and uses only registered PEFT types", () => {
    assert.equal(new Set(METHOD_GRID.map((m) => m.name)).size, METHOD_GRID.length);
    for (const m of METHOD_GRID) assert.ok(m.config.peft_type in TUNERS, m.name);
    // Every method family of the issue is in the grid.
    for (const t of ["FULL", "TOP_K_LAYERS", "LN_TUNING", "BITFIT", "PROMPT_TUNING", "P_TUNING", "PREFIX_TUNING", "IA3", "LORA", "BOTTLENECK", "HYBRID"]) assert.ok(METHOD_GRID.some((m) => m.config.peft_type === t), t);
  });
});

describe("layer ablation report", () => {
  const result: AblationResult = { task: "spam", method: "houlsby rf=16", layers: 2, baseline: 0.9, drop: [[0.1, 0.35], [null, 0.05]], headOnly: 0.55 };

  it("writes the drop matrix in points, upper triangle only", () => {
    const md = ablationMarkdown([result], "models/decoder-mini");
    assert.match(md, /on `models\/decoder-mini`/);
    assert.match(md, /### spam · houlsby rf=16 \(baseline accuracy 0\.900; all adapters removed: 0\.550\)/);
    assert.match(md, /\| 0 \| 10\.0 \| 35\.0 \|/);
    assert.match(md, /\| 1 \|  \| 5\.0 \|/);
  });

  it("renders the heatmaps", async () => {
    const svg = await renderSvg(ablationPlotSpec([result]));
    assert.match(svg, /^<svg/);
    assert.match(svg, /spam · houlsby rf=16/);
  });
});

describe("pretraining experiment summary", () => {
  it("picks the best swept rate (the lower on a tie) and computes Welch's t", () => {
    assert.equal(bestRate([{ lr: 1e-3, accuracy: 0.7 }, { lr: 3e-4, accuracy: 0.7 }, { lr: 3e-3, accuracy: 0.6 }]), 3e-4);
    assert.throws(() => bestRate([]), /no runs/);
    // means 0.8 and 0.6, sample variances 0.01 each, 3 values each: se = sqrt(0.01/3 * 2)
    assert.ok(Math.abs(welchT([0.7, 0.8, 0.9], [0.5, 0.6, 0.7]) - 0.2 / Math.sqrt(0.02 / 3)) < 1e-9);
    assert.equal(welchT([0.5, 0.5], [0.5, 0.5]), 0);
    assert.equal(welchT([0.6, 0.6], [0.5, 0.5]), Infinity);
  });

  it("compares each start at its own best rate over the seeds, and skips incomplete pairs", () => {
    const lora = PAIRS.find((p) => p.method === "lora r=32")!;
    const r = (method: string, seed: number, lr: number, accuracy: number): RunResult => ({ ...run(method, seed, accuracy, 100), lr });
    const runs = [
      // pretrained: best at the middle rate; random: best at the highest
      ...lora.lrs.map((lr, i) => r(lora.pretrained, 1, lr, [0.70, 0.80, 0.75][i]!)),
      ...lora.lrs.map((lr, i) => r(lora.random, 1, lr, [0.50, 0.55, 0.60][i]!)),
      r(lora.pretrained, 2, lora.lrs[1], 0.82), r(lora.pretrained, 3, lora.lrs[1], 0.78),
      r(lora.random, 2, lora.lrs[2], 0.62), r(lora.random, 3, lora.lrs[2], 0.58),
      // full fine-tuning has only part of its sweep: no row
      r("full", 1, 1e-4, 0.9),
    ];
    const [c, ...others] = compare(runs, 3);
    assert.equal(others.length, 0);
    assert.equal(c!.pretrained.bestLr, lora.lrs[1]);
    assert.equal(c!.random.bestLr, lora.lrs[2]);
    assert.ok(Math.abs(c!.gain - 0.2) < 1e-9);
    assert.ok(c!.t > 5);
    assert.match(pretrainingTable([c!]), /\| spam \| lora r=32 \| 0\.800 ± 0\.020 at 1e-3 \| 0\.600 ± 0\.020 at 3e-3 \| 20\.0 \|/);
  });
});
