// The methods experiment's summary: mean ± std over seeds per (task, method), a Markdown table
// and the Houlsby-style plot (accuracy vs trainable parameters, log scale) rendered to SVG with
// Vega-Lite.
import { join } from "node:path";
import * as vega from "vega";
import { compile, type TopLevelSpec } from "vega-lite";
import { writeFileAtomic } from "../../src/io/safetensors.js";
import { METHOD_GRID, type Budget } from "./grid.js";
import { type RunResult } from "./run-one.js";

export interface MethodSummary {
  task: string;
  method: string;
  family: string;
  seeds: number;
  trainable: number;
  trainablePercent: number;
  accuracy: { mean: number; std: number };
  f1: { mean: number; std: number };
  rocAuc: { mean: number; std: number } | null;
  stepMs: number;
  peakRssMb: number;
  adapterBytes: number;
}

/** Mean and sample standard deviation (n - 1; 0 for a single value). */
export function meanStd(xs: readonly number[]): { mean: number; std: number } {
  if (xs.length === 0) throw new RangeError("meanStd: no values");
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const std = xs.length > 1 ? Math.sqrt(xs.reduce((a, x) => a + (x - mean) ** 2, 0) / (xs.length - 1)) : 0;
  return { mean, std };
}

const median = (xs: readonly number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

/** One row per (task, method), in the order the runs first appear. */
export function summarize(runs: readonly RunResult[]): MethodSummary[] {
  const groups = new Map<string, RunResult[]>();
  for (const r of runs) {
    const key = `${r.task}|${r.method}`;
    groups.set(key, [...(groups.get(key) ?? []), r]);
  }
  return [...groups.values()].map((g) => {
    const first = g[0]!;
    const aucs = g.map((r) => r.rocAuc).filter((x): x is number => x !== null);
    return {
      task: first.task, method: first.method, family: first.family, seeds: g.length, trainable: first.trainable, trainablePercent: first.trainablePercent,
      accuracy: meanStd(g.map((r) => r.accuracy)), f1: meanStd(g.map((r) => r.f1)), rocAuc: aucs.length === g.length ? meanStd(aucs) : null,
      // Timing and memory: the median run, robust to one run disturbed by the machine.
      stepMs: median(g.map((r) => r.stepMs)), peakRssMb: median(g.map((r) => r.peakRssMb)), adapterBytes: first.adapterBytes,
    };
  });
}

const pm = (s: { mean: number; std: number } | null) => (s ? `${s.mean.toFixed(3)} ± ${s.std.toFixed(3)}` : "–");
const size = (b: number) => (b >= 1 << 20 ? `${(b / (1 << 20)).toFixed(1)} MB` : `${(b / 1024).toFixed(0)} KB`);

export function methodsTable(rows: readonly MethodSummary[]): string {
  const out: string[] = [];
  for (const task of [...new Set(rows.map((r) => r.task))]) {
    const full = rows.find((r) => r.task === task && r.method === "full");
    out.push(`### ${task}`, "", "| method | trainable params | trainable % | accuracy | macro F1 | ROC-AUC | step (ms) | step vs full | peak RSS (MB) | adapter file |", "|---|---:|---:|---|---|---|---:|---:|---:|---:|");
    for (const r of rows.filter((x) => x.task === task)) {
      out.push(`| ${r.method} | ${r.trainable.toLocaleString("en-US")} | ${r.trainablePercent < 0.1 ? r.trainablePercent.toFixed(3) : r.trainablePercent.toFixed(2)} | ${pm(r.accuracy)} | ${pm(r.f1)} | ${pm(r.rocAuc)} | ${r.stepMs.toFixed(0)} | ${full ? (r.stepMs / full.stepMs).toFixed(2) : "–"} | ${r.peakRssMb.toFixed(0)} | ${size(r.adapterBytes)} |`);
    }
    out.push("");
  }
  return out.join("\n");
}

/** Accuracy (mean ± std over seeds) against trainable parameters, one panel per task. */
export function methodsPlotSpec(rows: readonly MethodSummary[]): TopLevelSpec {
  const values = rows.map((r) => ({ task: r.task, method: r.method, family: r.family, trainable: r.trainable, accuracy: r.accuracy.mean, lo: r.accuracy.mean - r.accuracy.std, hi: r.accuracy.mean + r.accuracy.std }));
  const x = { field: "trainable", type: "quantitative", scale: { type: "log" }, title: "trainable parameters (log scale)" } as const;
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    data: { values },
    facet: { column: { field: "task", type: "nominal", title: null } },
    spec: {
      width: 380, height: 300,
      layer: [
        { mark: { type: "rule" }, encoding: { x, y: { field: "lo", type: "quantitative", scale: { zero: false } }, y2: { field: "hi" }, color: { field: "family", type: "nominal" } } },
        { mark: { type: "point", filled: true, size: 70 }, encoding: { x, y: { field: "accuracy", type: "quantitative", title: "validation accuracy (mean ± std, 3 seeds)", scale: { zero: false } }, color: { field: "family", type: "nominal", title: "method" }, tooltip: [{ field: "method" }, { field: "accuracy", format: ".3f" }, { field: "trainable" }] } },
        { mark: { type: "text", align: "left", dx: 6, fontSize: 9 }, encoding: { x, y: { field: "accuracy", type: "quantitative" }, text: { field: "method" } } },
      ],
    },
    resolve: { scale: { y: "independent" } },
  } as TopLevelSpec;
}

export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: "none" });
  return view.toSVG();
}

export async function writeMethodsReport(runs: readonly RunResult[], dir: string, budget: Budget, base: string): Promise<MethodSummary[]> {
  // Tasks as they first appear, methods in grid order.
  const tasks = [...new Set(runs.map((r) => r.task))];
  const key = (r: MethodSummary) => tasks.indexOf(r.task) * 1000 + METHOD_GRID.findIndex((g) => g.name === r.method);
  const rows = summarize(runs).sort((a, b) => key(a) - key(b));
  const header = [
    "# Methods experiment",
    "",
    `Written by \`npm run experiment -- methods\` from ${runs.length} runs (runs.jsonl). Base: \`${base}\`; each run trains ${budget.steps} optimizer steps of ${budget.batchSize} examples`,
    `(inputs truncated to ${budget.maxLength} tokens) on ${2 * budget.trainPerClass} balanced training examples and is evaluated once on ${2 * budget.validationPerClass} held-out ones; seeds change initialization, dropout and batch order, not the data.`,
    "Step time is the median run's mean optimizer step after the first (AdamW included); peak RSS is the run's own process.",
    "",
  ];
  await writeFileAtomic(join(dir, "methods.md"), `${header.join("\n")}\n${methodsTable(rows)}`);
  await writeFileAtomic(join(dir, "summary.json"), `${JSON.stringify(rows, null, 2)}\n`);
  await writeFileAtomic(join(dir, "methods.svg"), await renderSvg(methodsPlotSpec(rows)));
  return rows;
}
