// `npm run experiment -- ablation`: the Houlsby et al. (2019, fig. 6) ablation. Train an adapter
// on each task, then remove the trained adapters from each span of layers i..j (the task head
// stays) and measure the validation accuracy drop. Written to bench/results/ablation/.
import { mkdir } from "node:fs/promises";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { type TopLevelSpec } from "vega-lite";
import { writeFileAtomic } from "../../src/io/safetensors.js";
import { DEFAULT_BUDGET, SHIPPED_DECODER, TASK_NAMES } from "./grid.js";
import { renderSvg } from "./methods-report.js";
import { trainRun } from "./run-one.js";

export const ABLATION_DIR = fileURLToPath(new URL("../results/ablation", import.meta.url));

export interface AblationResult {
  task: string;
  method: string;
  layers: number;
  baseline: number;
  /** drop[i][j] = baseline accuracy minus accuracy with layers i..j (j >= i) stripped of adapters; null below the diagonal. */
  drop: (number | null)[][];
  /** Accuracy with every layer's adapters removed (head only). */
  headOnly: number;
}

export async function main(args: string[]): Promise<void> {
  const { values } = parseArgs({ args, options: { methods: { type: "string", default: "houlsby rf=16,lora r=8" }, tasks: { type: "string" }, seed: { type: "string", default: "1" }, output: { type: "string", default: ABLATION_DIR }, model: { type: "string", default: SHIPPED_DECODER } } });
  const out = values.output;
  await mkdir(out, { recursive: true });
  const results: AblationResult[] = [];
  for (const task of values.tasks ? values.tasks.split(",") : TASK_NAMES) {
    for (const method of values.methods.split(",").map((s) => s.trim())) {
      const { result, peft, trainer } = await trainRun({ method, task, seed: Number(values.seed), budget: DEFAULT_BUDGET, workDir: join(out, ".work"), model: values.model });
      const layers = peft.base.config.layers;
      const accuracyWithout = async (from: number, to: number) => {
        peft.disableAdapterLayers(from, to);
        try {
          return (await trainer.evaluate()).accuracy!;
        } finally {
          peft.enableAllAdapterLayers();
        }
      };
      const drop: (number | null)[][] = [];
      for (let i = 0; i < layers; i++) {
        drop.push([]);
        for (let j = 0; j < layers; j++) drop[i]!.push(j < i ? null : result.accuracy - (await accuracyWithout(i, j)));
      }
      const headOnly = result.accuracy - drop[0]![layers - 1]!;
      results.push({ task, method, layers, baseline: result.accuracy, drop, headOnly });
      console.log(`${task} · ${method}: accuracy ${result.accuracy.toFixed(3)}, head only ${headOnly.toFixed(3)}`);
    }
  }
  await writeFileAtomic(join(out, "ablation.json"), `${JSON.stringify(results, null, 2)}\n`);
  await writeFileAtomic(join(out, "ablation.md"), ablationMarkdown(results, relative(process.cwd(), values.model) || values.model));
  await writeFileAtomic(join(out, "ablation.svg"), await renderSvg(ablationPlotSpec(results)));
  console.log(`wrote ${join(out, "ablation.md")} and ${join(out, "ablation.svg")}`);
}

export function ablationMarkdown(results: readonly AblationResult[], base: string): string {
  const lines = [
    "# Layer ablation",
    "",
    `Written by \`npm run experiment -- ablation\`. Each adapter is trained once (seed 1, the methods experiment's budget) on \`${base}\`;`,
    "then the trained adapters of layers i..j are removed (the task head stays) and the validation accuracy is measured again.",
    "Cells: accuracy drop in points (baseline minus ablated; positive = the span mattered). Row = first removed layer i, column = last removed layer j.",
    "",
  ];
  for (const r of results) {
    lines.push(`### ${r.task} · ${r.method} (baseline accuracy ${r.baseline.toFixed(3)}; all adapters removed: ${r.headOnly.toFixed(3)})`, "");
    lines.push(`| i \\ j | ${[...Array(r.layers).keys()].join(" | ")} |`, `|---|${"---:|".repeat(r.layers)}`);
    r.drop.forEach((row, i) => lines.push(`| ${i} | ${row.map((d) => (d === null ? "" : (100 * d).toFixed(1))).join(" | ")} |`));
    lines.push("");
  }
  return lines.join("\n");
}

/** The drop matrices as heatmaps, one per (task, method). */
export function ablationPlotSpec(results: readonly AblationResult[]): TopLevelSpec {
  const values = results.flatMap((r) => r.drop.flatMap((row, i) => row.flatMap((d, j) => (d === null ? [] : [{ panel: `${r.task} · ${r.method}`, first: i, last: j, drop: 100 * d }]))));
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    data: { values },
    facet: { field: "panel", type: "nominal", title: null },
    columns: 2,
    spec: {
      width: 180, height: 180,
      layer: [
        { mark: "rect", encoding: { x: { field: "last", type: "ordinal", title: "last layer removed" }, y: { field: "first", type: "ordinal", title: "first layer removed" }, color: { field: "drop", type: "quantitative", title: "accuracy drop (points)", scale: { scheme: "reds" } } } },
        { mark: { type: "text", fontSize: 10 }, encoding: { x: { field: "last", type: "ordinal" }, y: { field: "first", type: "ordinal" }, text: { field: "drop", type: "quantitative", format: ".1f" } } },
      ],
    },
  } as TopLevelSpec;
}
