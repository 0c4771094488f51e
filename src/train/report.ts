// An HTML report of a training run: its settings, loss, learning rate and evaluation curves,
// confusion matrix, ROC and precision-recall curves. Chart.js is inlined, so the file is viewable
// offline.
import { writeFileAtomic } from "../io/safetensors.js";
import { chartJsUmd } from "../platform/assets.js";

export interface ReportData {
  /** The model's name (hub id or folder name) and the adapters trained. */
  title: string;
  /** The run's settings (method, hyperparameters, data files, seed), shown as a table. */
  settings?: Readonly<Record<string, unknown>>;
  /** metrics.jsonl entries. */
  log: readonly Record<string, unknown>[];
  finalMetrics: Record<string, number>;
  labels?: readonly string[];
  confusion?: number[][];
  roc?: { fpr: number[]; tpr: number[] };
  pr?: { recall: number[]; precision: number[] };
}

const escape = (s: string) => s.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]!);

/** Write {@link renderReport}'s page to `path` (atomically). */
export async function writeReport(path: string, data: ReportData): Promise<void> {
  await writeFileAtomic(path, await renderReport(data));
}

/**
 * The report as one self-contained HTML page (Chart.js inlined: viewable offline), e.g. for a
 * download in the browser.
 */
export async function renderReport(data: ReportData): Promise<string> {
  const chartJs = await chartJsUmd();
  const series = (key: string) => data.log.filter((e) => typeof e[key] === "number").map((e) => ({ x: e.step as number, y: e[key] as number }));
  const evalKeys = [...new Set(data.log.flatMap((e) => Object.keys(e).filter((k) => k.startsWith("eval_") && typeof e[k] === "number")))];
  const charts: { id: string; title: string; datasets: { label: string; data: { x: number; y: number }[] }[]; x: string; y: string }[] = [
    { id: "loss", title: "Training loss", datasets: [{ label: "loss", data: series("loss") }, { label: "eval loss", data: series("eval_loss") }], x: "step", y: "loss" },
    { id: "lr", title: "Learning rate", datasets: [{ label: "lr", data: series("lr") }], x: "step", y: "lr" },
    { id: "eval", title: "Evaluation metrics", datasets: evalKeys.filter((k) => k !== "eval_loss").map((k) => ({ label: k.slice(5), data: series(k) })), x: "step", y: "value" },
  ];
  if (data.roc) charts.push({ id: "roc", title: "ROC curve", datasets: [{ label: "ROC", data: data.roc.fpr.map((x, i) => ({ x, y: data.roc!.tpr[i]! })) }], x: "false positive rate", y: "true positive rate" });
  if (data.pr) charts.push({ id: "pr", title: "Precision-recall curve", datasets: [{ label: "PR", data: data.pr.recall.map((x, i) => ({ x, y: data.pr!.precision[i]! })) }], x: "recall", y: "precision" });
  const confusion = data.confusion
    ? `<h2>Confusion matrix (rows: true, columns: predicted)</h2><table><tr><th></th>${data.confusion.map((_, j) => `<th>${escape(data.labels?.[j] ?? String(j))}</th>`).join("")}</tr>${data.confusion
        .map((row, i) => {
          const total = row.reduce((a, b) => a + b, 0) || 1;
          return `<tr><th>${escape(data.labels?.[i] ?? String(i))}</th>${row.map((v) => `<td style="background: rgba(54,162,235,${(v / total).toFixed(2)})">${v}</td>`).join("")}</tr>`;
        })
        .join("")}</table>`
    : "";
  const settings = Object.entries(data.settings ?? {})
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `<tr><td>${escape(k)}</td><td>${escape(typeof v === "string" ? v : JSON.stringify(v))}</td></tr>`)
    .join("");
  const metrics = Object.entries(data.finalMetrics)
    .map(([k, v]) => `<tr><td>${escape(k)}</td><td>${Number.isFinite(v) ? v.toFixed(4) : String(v)}</td></tr>`)
    .join("");
  const html = `<!doctype html><html><head><meta charset="utf-8"><title>${escape(data.title)}</title>
<style>body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em}canvas{max-height:320px}table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}.settings td{text-align:left}</style>
<script>${chartJs}</script></head><body><h1>${escape(data.title)}</h1>
${settings ? `<h2>Settings</h2><table class="settings">${settings}</table>` : ""}
<h2>Final metrics</h2><table>${metrics}</table>${confusion}
${charts.map((c) => `<h2>${escape(c.title)}</h2><canvas id="${c.id}"></canvas>`).join("\n")}
<script>const charts=${JSON.stringify(charts)};for(const c of charts){new Chart(document.getElementById(c.id),{type:"line",data:{datasets:c.datasets.map(d=>({...d,pointRadius:c.id==="roc"||c.id==="pr"?0:2,borderWidth:2}))},options:{animation:false,parsing:false,scales:{x:{type:"linear",title:{display:true,text:c.x}},y:{title:{display:true,text:c.y}}}}});}</script>
</body></html>`;
  return html;
}
