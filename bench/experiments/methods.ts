// `npm run experiment -- methods`: every PEFT method x both tasks x 3 seeds under one fixed
// budget. Each run is its own process (its peak memory is its own); results are appended to
// bench/results/methods/runs.jsonl as they come, so an interrupted experiment resumes where it
// stopped. At the end: the table (methods.md), the summary (summary.json) and the plot of
// accuracy vs trainable parameters (methods.svg).
import { appendFile, mkdir, readFile } from "node:fs/promises";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { DEFAULT_BUDGET, METHOD_GRID, SHIPPED_DECODER, TASK_NAMES, type Budget } from "./grid.js";
import { writeMethodsReport } from "./methods-report.js";
import { runInChild, type RunResult, type RunSpec } from "./run-one.js";

export const RESULTS_DIR = fileURLToPath(new URL("../results/methods", import.meta.url));

export async function readRuns(file: string): Promise<RunResult[]> {
  const text = await readFile(file, "utf8").catch(() => "");
  return text.split("\n").filter(Boolean).map((l) => JSON.parse(l) as RunResult);
}

/**
 * The options every run-grid experiment takes (--seeds --steps --tasks --output --model
 * --report-only, plus --methods): parsed, the output directory made, the budget and tasks resolved.
 */
export async function experimentSetup(args: string[], defaultOutput: string) {
  const { values } = parseArgs({
    args,
    options: {
      seeds: { type: "string", default: "3" },
      steps: { type: "string" },
      methods: { type: "string" },
      tasks: { type: "string" },
      output: { type: "string", default: defaultOutput },
      model: { type: "string", default: SHIPPED_DECODER },
      "report-only": { type: "boolean", default: false },
    },
  });
  const out = values.output;
  await mkdir(out, { recursive: true });
  const budget: Budget = { ...DEFAULT_BUDGET, ...(values.steps ? { steps: Number(values.steps) } : {}) };
  const tasks = values.tasks ? values.tasks.split(",") : [...TASK_NAMES];
  return { values, out, runsFile: join(out, "runs.jsonl"), budget, tasks };
}

export async function main(args: string[]): Promise<void> {
  const { values, out, runsFile, budget, tasks } = await experimentSetup(args, RESULTS_DIR);
  const methods = values.methods ? values.methods.split(",").map((s) => s.trim()) : METHOD_GRID.map((m) => m.name);
  const seeds = [...Array(Number(values.seeds)).keys()].map((i) => i + 1);
  if (!values["report-only"]) {
    const done = new Set((await readRuns(runsFile)).map((r) => `${r.task}|${r.method}|${r.seed}`));
    // Seeds outermost: an experiment cut short still covers every method and task.
    const todo = seeds.flatMap((seed) => tasks.flatMap((task) => methods.map((method) => ({ task, method, seed })))).filter((r) => !done.has(`${r.task}|${r.method}|${r.seed}`));
    console.log(`methods experiment: ${todo.length} runs to do (${done.size} already in ${runsFile}); budget ${JSON.stringify(budget)}`);
    const t0 = performance.now();
    for (const [i, r] of todo.entries()) {
      const spec: RunSpec = { ...r, budget, workDir: join(out, ".work"), model: values.model };
      const result = await runInChild(spec);
      await appendFile(runsFile, `${JSON.stringify(result)}\n`);
      const eta = ((performance.now() - t0) / (i + 1)) * (todo.length - i - 1) / 1000;
      console.log(`[${i + 1}/${todo.length}] ${r.task} · ${r.method} · seed ${r.seed}: accuracy ${result.accuracy.toFixed(3)} f1 ${result.f1.toFixed(3)} step ${result.stepMs.toFixed(0)} ms (ETA ${Math.round(eta)} s)`);
    }
  }
  await writeMethodsReport(await readRuns(runsFile), out, budget, relative(process.cwd(), values.model) || values.model);
  console.log(`wrote ${join(out, "methods.md")}, ${join(out, "methods.svg")} and ${join(out, "summary.json")}`);
}
