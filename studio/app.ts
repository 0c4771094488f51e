// The studio page: the form, the drops, the charts and the downloads. All work happens in the
// Web Worker (worker.ts); this file sends it requests and renders what it reports. A worker that
// crashes is replaced and given back the model and data it had, so the page stays usable. Runs
// live in the Origin Private File System (runs/<id>: run.json, the data file, the trainer's
// checkpoints), so a paused or interrupted run resumes after a reload.
import { CategoryScale, Chart, Legend, LinearScale, LineController, LineElement, PointElement, Title, Tooltip } from "chart.js";
import type { DataInfo, FromWorker, ModelInfo, ModelSource, Prediction, RunRecord, ToWorker, TrainSettings } from "./protocol.js";
// The method catalog's shape, as the studio server (GET /api/methods) declares it; a type-only import.
import type { StudioMethod } from "../src/cli/studio.js";

Chart.register(LineController, LineElement, PointElement, LinearScale, CategoryScale, Title, Legend, Tooltip);

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;
/** The studio's folder in OPFS (the worker's "/studio": the core's writable store is OPFS's root). */
const STUDIO_DIR = "studio";
const RUNS = "runs";

// ---- messages -------------------------------------------------------------------------------

function showMessage(text: string, kind: "error" | "info" = "error"): void {
  const m = $("message");
  m.textContent = text;
  m.className = `shown ${kind === "info" ? "info" : ""}`;
}
function clearMessage(): void {
  $("message").className = "";
  $("message").textContent = "";
}

// ---- the worker -----------------------------------------------------------------------------

type Listener = (m: FromWorker) => void;
/** A request as sent, before it gets its id. */
type Request = ToWorker extends infer T ? (T extends ToWorker ? Omit<T, "id"> : never) : never;
let worker: Worker;
let nextId = 1;
const listeners = new Map<number, Listener>();
let envText = "";

function spawnWorker(): void {
  worker = new Worker("/worker.js", { type: "module", name: "peftjs-studio" });
  worker.onmessage = (e: MessageEvent<FromWorker>) => {
    const m = e.data;
    if (m.type === "ready") {
      envText = `${m.backend}, ${m.threads} thread${m.threads === 1 ? "" : "s"}${m.isolated ? ", cross-origin isolated" : " (not cross-origin isolated: one thread)"}`;
      $("env").textContent = envText;
      return;
    }
    listeners.get(m.id)?.(m);
  };
  // An error nothing in the worker caught: the worker is gone or in an unknown state; replace it.
  worker.onerror = (e: ErrorEvent) => {
    e.preventDefault();
    const where = e.filename ? ` at ${e.filename.replace(location.origin, "")}:${e.lineno}` : "";
    void workerCrashed(`${e.message || "unknown error"}${where}`);
  };
}

/** Send a request; `onEvent` sees every message answering it until `done` says it is the last. */
function request(msg: Request, onEvent: (m: FromWorker) => boolean): number {
  const id = nextId++;
  listeners.set(id, (m) => {
    if (onEvent(m)) listeners.delete(id);
  });
  worker.postMessage({ ...msg, id } as ToWorker);
  return id;
}

/** A request with one answer (or an error, thrown). */
function ask<T extends FromWorker["type"]>(msg: Request, answer: T): Promise<Extract<FromWorker, { type: T }>> {
  return new Promise((ok, fail) => {
    request(msg, (m) => {
      if (m.type === "error") fail(new Error(m.message));
      else if (m.type === answer) ok(m as Extract<FromWorker, { type: T }>);
      else return false;
      return true;
    });
  });
}

/** What a new worker must be given to stand where the old one stood. */
let loadedModel: ModelSource | undefined;
let loadedData: File | undefined;

/** Replace the worker (it crashed, or a run was cancelled mid-step) and give the new one the model and data. */
async function workerCrashed(why: string, cancelled = false): Promise<void> {
  const wasTraining = training;
  worker.terminate();
  // Requests in flight will never be answered: settle them as failed.
  for (const [id, l] of listeners) l({ id, type: "error", message: `the worker stopped: ${why}` });
  listeners.clear();
  setTraining(false);
  spawnWorker();
  if (cancelled) showMessage("Training cancelled.", "info");
  else showMessage(`The worker stopped unexpectedly (${why}). A new one was started${loadedModel ? " and given the model and data again" : ""}${wasTraining && currentRun ? "; resume the run from its last checkpoint below" : ""}.`);
  try {
    if (loadedModel) await loadModel(loadedModel, false);
    if (loadedData) await loadData(loadedData, false);
  } catch (e) {
    showMessage(`The worker stopped unexpectedly (${why}), and reloading failed: ${(e as Error).message}`);
  }
  await listRuns();
}

// ---- model ----------------------------------------------------------------------------------

let modelInfo: ModelInfo | undefined;

async function loadModel(source: ModelSource, announce = true): Promise<void> {
  $("model-status").textContent = `loading ${source.name}…`;
  modelInfo = undefined;
  updateButtons();
  try {
    const { info } = await ask({ type: "load-model", source }, "model");
    modelInfo = info;
    loadedModel = source;
    $("model-status").textContent = `${info.name}: ${info.modelType}, ${info.layers} layers, hidden ${info.hidden}, ${info.parameters.toLocaleString("en-US")} parameters\ntasks: ${info.tasks.join(", ")}`;
    if (announce) clearMessage();
    // The data's task may depend on the model: check it again.
    if (announce && loadedData) await loadData(loadedData, false);
  } catch (e) {
    loadedModel = undefined;
    $("model-status").textContent = "no model loaded";
    showMessage((e as Error).message);
  }
  updateButtons();
}

/** Every file under a dropped folder (webkitGetAsEntry), with its path inside the folder. */
async function filesOfEntry(entry: FileSystemEntry, prefix = ""): Promise<File[]> {
  if (entry.isFile) {
    const file = await new Promise<File>((ok, fail) => (entry as FileSystemFileEntry).file(ok, fail));
    return [new File([file], prefix + file.name, { type: file.type })];
  }
  const reader = (entry as FileSystemDirectoryEntry).createReader();
  const out: File[] = [];
  for (;;) {
    const batch = await new Promise<FileSystemEntry[]>((ok, fail) => reader.readEntries(ok, fail));
    if (batch.length === 0) return out;
    for (const child of batch) out.push(...(await filesOfEntry(child, `${prefix}${entry.name}/`)));
  }
}

// ---- data -----------------------------------------------------------------------------------

let dataInfo: DataInfo | undefined;

async function loadData(file: File, announce = true): Promise<void> {
  $("data-status").textContent = `reading ${file.name}…`;
  dataInfo = undefined;
  updateButtons();
  try {
    const { info } = await ask({ type: "load-data", file }, "data");
    dataInfo = info;
    loadedData = file;
    $("data-status").textContent = `${info.name}: ${info.records} records → ${info.task} (reads ${info.fields.join(", ")})${info.labels ? `\nlabels: ${info.labels.join(", ")}` : ""}${info.notes.length ? `\n${info.notes.join("\n")}` : ""}`;
    if (announce) clearMessage();
  } catch (e) {
    loadedData = undefined;
    $("data-status").textContent = "no data loaded";
    showMessage((e as Error).message);
  }
  updateButtons();
}

// ---- method form ----------------------------------------------------------------------------

let methods: StudioMethod[] = [];

function renderMethodFields(): void {
  const m = methods.find((x) => x.preset === $<HTMLSelectElement>("method-select").value);
  const box = $("method-fields");
  box.replaceChildren();
  if (!m) return;
  for (const f of m.fields) {
    const div = document.createElement("div");
    div.className = "field";
    const id = `field-${f.name}`;
    const preset = m.settings[f.name];
    const shown = preset ?? f.default;
    const label = document.createElement("label");
    label.htmlFor = id;
    label.textContent = f.name;
    let input: HTMLInputElement | HTMLSelectElement;
    if (f.kind === "boolean" || f.kind === "choice") {
      input = document.createElement("select");
      const values = f.kind === "boolean" ? [true, false] : f.values!;
      input.append(new Option(`default (${preset !== undefined ? JSON.stringify(preset) : f.defaultText})`, ""));
      for (const v of values) input.append(new Option(String(v), JSON.stringify(v)));
    } else {
      input = document.createElement("input");
      input.type = f.kind === "integer" || f.kind === "number" ? "number" : "text";
      if (f.kind === "number") input.step = "any";
      if (f.min !== undefined) input.min = String(f.min);
      if (f.max !== undefined) input.max = String(f.max);
      input.placeholder = shown !== undefined && shown !== null ? (typeof shown === "string" ? shown : JSON.stringify(shown)) : f.defaultText;
    }
    input.id = id;
    input.dataset.field = f.name;
    input.dataset.kind = f.kind;
    const help = document.createElement("div");
    help.className = "help";
    help.textContent = `${f.help} — ${f.expected}`;
    div.append(label, input, help);
    box.append(div);
  }
}

/** The fields the user set, as the --peft object; a value that does not parse is an error naming the field. */
function methodSettings(): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const el of $("method-fields").querySelectorAll<HTMLInputElement | HTMLSelectElement>("[data-field]")) {
    const v = el.value.trim();
    if (v === "") continue;
    const name = el.dataset.field!;
    const kind = el.dataset.kind;
    if (kind === "integer" || kind === "number") out[name] = Number(v);
    else if (kind === "string") out[name] = v;
    else if (kind === "boolean" || kind === "choice") out[name] = JSON.parse(v);
    else {
      try {
        out[name] = JSON.parse(v);
      } catch {
        // A module list may be typed as plain names: "query, value".
        if (/^[\w.*|^$()\-\s,]+$/.test(v)) out[name] = v.includes(",") ? v.split(",").map((s) => s.trim()).filter(Boolean) : v;
        else throw new Error(`method setting ${name}: ${JSON.stringify(v)} is not JSON`);
      }
    }
  }
  return out;
}

// ---- training -------------------------------------------------------------------------------

let training = false;
/** The trained adapter (zipped) and report.html, once the worker has packed them. */
let exported: { adapterZip: Uint8Array; report: string } | undefined;
let currentRun: RunRecord | undefined;

function num(id: string): number | undefined {
  const v = $<HTMLInputElement>(id).value.trim();
  return v === "" ? undefined : Number(v);
}

function settingsFromForm(): TrainSettings {
  return {
    method: $<HTMLSelectElement>("method-select").value,
    peft: methodSettings(),
    epochs: num("epochs") ?? 3,
    maxSteps: num("max-steps"),
    batchSize: num("batch-size") ?? 16,
    lr: num("lr") ?? 2e-4,
    schedule: $<HTMLSelectElement>("schedule").value as TrainSettings["schedule"],
    warmupRatio: num("warmup") ?? 0.06,
    weightDecay: 0.01,
    maxLength: num("max-length") ?? 128,
    valSplit: num("val-split") ?? 0.1,
    evalEvery: num("eval-every"),
    seed: num("seed") ?? 42,
  };
}

function settingsToForm(s: TrainSettings): void {
  const set = (id: string, v: number | string | undefined) => ($<HTMLInputElement>(id).value = v === undefined ? "" : String(v));
  $<HTMLSelectElement>("method-select").value = s.method;
  renderMethodFields();
  for (const [k, v] of Object.entries(s.peft)) {
    const el = document.getElementById(`field-${k}`) as HTMLInputElement | null;
    if (el) el.value = el.tagName === "SELECT" ? JSON.stringify(v) : typeof v === "string" ? v : JSON.stringify(v);
  }
  set("epochs", s.epochs);
  set("max-steps", s.maxSteps);
  set("batch-size", s.batchSize);
  set("lr", s.lr);
  $<HTMLSelectElement>("schedule").value = s.schedule;
  set("warmup", s.warmupRatio);
  set("max-length", s.maxLength);
  set("val-split", s.valSplit);
  set("eval-every", s.evalEvery);
  set("seed", s.seed);
}

function setTraining(on: boolean): void {
  training = on;
  updateButtons();
}

function updateButtons(): void {
  const ready = !!modelInfo && !!dataInfo;
  $<HTMLButtonElement>("train").disabled = training || !ready;
  $<HTMLButtonElement>("pause").disabled = !training;
  $<HTMLButtonElement>("cancel").disabled = !training;
  $<HTMLButtonElement>("try-button").disabled = training || !modelInfo;
  // Enabled once the worker has packed the adapter and the report.
  $<HTMLButtonElement>("download-adapter").disabled = training || !exported;
  $<HTMLButtonElement>("download-report").disabled = training || !exported;
}

// Charts: loss (train and eval), learning rate, evaluation metrics.
const chartOptions = (title: string) => ({
  animation: false as const,
  maintainAspectRatio: false,
  parsing: false as const,
  plugins: { title: { display: true, text: title }, legend: { display: true, labels: { boxWidth: 10 } } },
  scales: { x: { type: "linear" as const, title: { display: true, text: "step" } } },
});
const COLORS = ["#2563eb", "#dc6803", "#12b76a", "#7a5af8", "#f04438", "#0ba5ec"];
function lineChart(id: string, title: string): Chart<"line", { x: number; y: number }[]> {
  return new Chart($<HTMLCanvasElement>(id), { type: "line", data: { datasets: [] }, options: chartOptions(title) });
}
const charts = { loss: lineChart("chart-loss", "Loss"), lr: lineChart("chart-lr", "Learning rate"), metric: lineChart("chart-metric", "Evaluation metrics") };

function plot(chart: Chart<"line", { x: number; y: number }[]>, label: string, x: number, y: number): void {
  let ds = chart.data.datasets.find((d) => d.label === label);
  if (!ds) {
    const color = COLORS[chart.data.datasets.length % COLORS.length]!;
    ds = { label, data: [], borderColor: color, backgroundColor: color, pointRadius: 2, borderWidth: 2 };
    chart.data.datasets.push(ds);
  }
  // A resumed run replays from its checkpoint: drop points at or past the step.
  while (ds.data.length && ds.data.at(-1)!.x >= x) ds.data.pop();
  ds.data.push({ x, y });
  chart.update("none");
}

function resetCharts(): void {
  for (const c of Object.values(charts)) {
    c.data.datasets = [];
    c.update("none");
  }
}

/** ETA from this session's pace (steps done since the run started or resumed here). */
let pace: { t0: number; step0: number } | undefined;
function showProgress(step: number, total: number): void {
  const bar = $<HTMLProgressElement>("progress");
  bar.max = total;
  bar.value = step;
  pace ??= { t0: performance.now(), step0: step };
  const done = step - pace.step0;
  const left = total - step;
  let eta = "";
  if (done > 0 && left > 0) {
    const s = ((performance.now() - pace.t0) / 1000 / done) * left;
    eta = ` · ETA ${s >= 90 ? `${Math.floor(s / 60)} min ${Math.round(s % 60)} s` : `${Math.ceil(s)} s`}`;
  }
  $("eta").textContent = `step ${step}/${total}${eta}`;
}

async function startTraining(run: RunRecord, resume: boolean): Promise<void> {
  clearMessage();
  currentRun = run;
  exported = undefined;
  setTraining(true);
  if (!resume) resetCharts();
  pace = undefined;
  $("eta").textContent = resume ? "resuming…" : "building the training graph…";
  await new Promise<void>((finish) => {
    request({ type: "train", run, resume }, (m) => {
      switch (m.type) {
        case "started":
          $("model-status").textContent += `\n${m.trainable}`;
          showProgress(m.resumedAt, m.totalSteps);
          pace = undefined;
          return false;
        case "log": {
          const e = m.entry;
          const step = Number(e.step);
          for (const [k, v] of Object.entries(e)) {
            if (typeof v !== "number" || k === "step" || k === "epoch") continue;
            if (k === "loss") plot(charts.loss, "train loss", step, v);
            else if (k === "eval_loss") plot(charts.loss, "eval loss", step, v);
            else if (k === "lr") plot(charts.lr, "lr", step, v);
            else if (k.startsWith("eval_") && !/runtime|per_second/.test(k)) plot(charts.metric, k.slice(5), step, v);
          }
          return false;
        }
        case "progress":
          showProgress(m.step, m.totalSteps);
          return false;
        case "paused":
          showMessage(`Paused at step ${m.step}. The run is saved in this browser: resume it below, even after a reload.`, "info");
          break;
        case "done":
          void markDone(run.id);
          void showResults();
          break;
        case "error":
          showMessage(m.message);
          break;
        default:
          return false;
      }
      finish();
      return true;
    });
  });
  setTraining(false);
  await listRuns();
}

// ---- runs in OPFS ---------------------------------------------------------------------------

async function runsDir(): Promise<FileSystemDirectoryHandle> {
  const root = await navigator.storage.getDirectory();
  return (await root.getDirectoryHandle(STUDIO_DIR, { create: true })).getDirectoryHandle(RUNS, { create: true });
}

async function writeFile(dir: FileSystemDirectoryHandle, name: string, data: Blob | string): Promise<void> {
  const w = await (await dir.getFileHandle(name, { create: true })).createWritable();
  await w.write(data);
  await w.close();
}

async function saveRun(run: RunRecord, data: File): Promise<void> {
  const dir = await (await runsDir()).getDirectoryHandle(run.id, { create: true });
  await writeFile(dir, `data-${data.name}`, data);
  await writeFile(dir, "run.json", JSON.stringify(run));
}

async function markDone(id: string): Promise<void> {
  const dir = await (await runsDir()).getDirectoryHandle(id);
  await writeFile(dir, "done", new Date().toISOString());
}

async function discardRun(id: string): Promise<void> {
  await (await runsDir()).removeEntry(id, { recursive: true }).catch(() => undefined);
}

/** Unfinished runs (a run.json and no done marker), each with Resume and Discard. */
async function listRuns(): Promise<void> {
  const box = $("runs");
  box.replaceChildren();
  let dir: FileSystemDirectoryHandle;
  try {
    dir = await runsDir();
  } catch {
    return; // no OPFS (a private window): runs are not kept
  }
  for await (const [id, handle] of dir as unknown as AsyncIterable<[string, FileSystemHandle]>) {
    if (handle.kind !== "directory" || (currentRun?.id === id && training)) continue;
    const d = handle as FileSystemDirectoryHandle;
    const has = async (n: string) => d.getFileHandle(n).then(() => true, () => false);
    if (!(await has("run.json")) || (await has("done"))) continue;
    const run = JSON.parse(await (await (await d.getFileHandle("run.json")).getFile()).text()) as RunRecord;
    const row = document.createElement("div");
    row.className = "run";
    const text = document.createElement("span");
    text.textContent = `unfinished: ${run.settings.method} on ${run.model.name}, ${run.dataName} (${new Date(run.started).toLocaleString()})`;
    const resume = document.createElement("button");
    resume.textContent = "Resume";
    resume.className = "resume";
    resume.dataset.run = id;
    resume.onclick = () => void resumeRun(run, d);
    const discard = document.createElement("button");
    discard.textContent = "Discard";
    discard.onclick = () => void discardRun(id).then(listRuns);
    row.append(text, resume, discard);
    box.append(row);
  }
}

async function resumeRun(run: RunRecord, dir: FileSystemDirectoryHandle): Promise<void> {
  if (training) return;
  if (run.model.kind === "files" && loadedModel?.name !== run.model.name) {
    showMessage(`This run trained ${run.model.name}, a folder from this computer: pick or drop that folder again, then press Resume.`);
    return;
  }
  if (run.model.kind === "shipped" && (loadedModel?.kind !== "shipped" || loadedModel.name !== run.model.name)) {
    $<HTMLSelectElement>("model-select").value = run.model.name;
    await loadModel({ kind: "shipped", name: run.model.name });
    if (!modelInfo) return;
  }
  const data = await (await dir.getFileHandle(`data-${run.dataName}`)).getFile();
  await loadData(new File([data], run.dataName), false);
  if (!dataInfo) return;
  settingsToForm(run.settings);
  await startTraining(run, true);
}

// ---- results --------------------------------------------------------------------------------

async function showResults(): Promise<void> {
  try {
    const r = await ask({ type: "export" }, "export");
    exported = r;
    $<HTMLIFrameElement>("report-frame").srcdoc = r.report;
  } catch (e) {
    showMessage((e as Error).message);
  }
  updateButtons();
}

function download(name: string, data: BlobPart, type: string): void {
  const url = URL.createObjectURL(new Blob([data], { type }));
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

let lastPrediction: Prediction | undefined;

function showPrediction(p: Prediction): void {
  lastPrediction = p;
  const out = $("try-output");
  if (p.kind === "classification") out.textContent = p.labels.map((l, i) => `${l.padEnd(12)} ${(p.probabilities[i]! * 100).toFixed(1).padStart(5)}%`).join("\n");
  else if (p.kind === "tags") out.textContent = p.tokens.map((t, i) => `${t}/${p.tags[i]}`).join(" ");
  else if (p.kind === "answer") out.textContent = `${p.answer} (score ${p.score.toFixed(3)})`;
  else out.textContent = p.text;
}

// ---- wiring ---------------------------------------------------------------------------------

function dropZone(id: string, onDrop: (e: DragEvent) => void): void {
  const el = $(id);
  el.addEventListener("dragover", (e) => {
    e.preventDefault();
    el.classList.add("over");
  });
  el.addEventListener("dragleave", () => el.classList.remove("over"));
  el.addEventListener("drop", (e) => {
    e.preventDefault();
    el.classList.remove("over");
    onDrop(e);
  });
}

async function init(): Promise<void> {
  spawnWorker();
  const [catalog, methodList] = await Promise.all([fetch("/api/models").then((r) => r.json() as Promise<{ models: { name: string }[] }>), fetch("/api/methods").then((r) => r.json() as Promise<StudioMethod[]>)]);
  methods = methodList;
  const modelSelect = $<HTMLSelectElement>("model-select");
  modelSelect.append(new Option("choose a model…", ""));
  for (const m of catalog.models) modelSelect.append(new Option(`${m.name} (shipped)`, m.name));
  modelSelect.onchange = () => modelSelect.value && void loadModel({ kind: "shipped", name: modelSelect.value });
  const methodSelect = $<HTMLSelectElement>("method-select");
  for (const m of methods) methodSelect.append(new Option(`${m.preset} (${m.peftType})`, m.preset));
  methodSelect.onchange = renderMethodFields;
  renderMethodFields();

  const modelFiles = (files: File[]) => {
    if (files.length === 0) return;
    // A folder's files arrive as "folder/config.json": the folder's name names the model.
    const name = ((files[0] as File & { webkitRelativePath?: string }).webkitRelativePath || files[0]!.name).split("/")[0] || "model";
    const named = files.map((f) => new File([f], (f as File & { webkitRelativePath?: string }).webkitRelativePath || f.name));
    modelSelect.value = "";
    void loadModel({ kind: "files", name, files: named });
  };
  $<HTMLInputElement>("model-folder").onchange = (e) => modelFiles([...((e.target as HTMLInputElement).files ?? [])]);
  dropZone("model-drop", (e) => {
    const entries = [...(e.dataTransfer?.items ?? [])].map((i) => i.webkitGetAsEntry()).filter((x): x is FileSystemEntry => !!x);
    void Promise.all(entries.map((en) => filesOfEntry(en))).then((lists) => modelFiles(lists.flat()));
  });
  $<HTMLInputElement>("data-file").onchange = (e) => {
    const f = (e.target as HTMLInputElement).files?.[0];
    if (f) void loadData(f);
  };
  dropZone("data-drop", (e) => {
    const f = e.dataTransfer?.files[0];
    if (f) void loadData(f);
  });

  $("train").onclick = () => {
    let settings: TrainSettings;
    try {
      settings = settingsFromForm();
    } catch (e) {
      showMessage((e as Error).message);
      return;
    }
    const run: RunRecord = { id: `run-${Date.now().toString(36)}`, model: { kind: loadedModel!.kind, name: loadedModel!.name }, dataName: loadedData!.name, settings, started: new Date().toISOString() };
    void saveRun(run, loadedData!)
      .catch((e: Error) => showMessage(`The run cannot be saved in this browser (${e.message}); it trains, but cannot be resumed after a reload.`, "info"))
      .then(() => startTraining(run, false));
  };
  $("pause").onclick = () => {
    $<HTMLButtonElement>("pause").disabled = true;
    $("eta").textContent += " · pausing at the next checkpoint…";
    worker.postMessage({ id: nextId++, type: "pause" } satisfies ToWorker);
  };
  $("cancel").onclick = () => {
    // The run stops now: the worker is replaced (training may be mid-step) and the run deleted.
    const run = currentRun;
    currentRun = undefined;
    void (async () => {
      if (training) await workerCrashed("cancelled", true);
      if (run) await discardRun(run.id);
      await listRuns();
    })();
    updateButtons();
  };
  $("try-button").onclick = () => {
    const text = $<HTMLTextAreaElement>("try-text").value;
    $("try-output").textContent = "…";
    ask({ type: "predict", text }, "prediction").then((r) => showPrediction(r.prediction), (e: Error) => ($("try-output").textContent = e.message));
  };
  $("download-adapter").onclick = () => exported && download(`${currentRun?.id ?? "adapter"}-adapter.zip`, exported.adapterZip as Uint8Array<ArrayBuffer>, "application/zip");
  $("download-report").onclick = () => exported && download("report.html", exported.report, "text/html");
  await listRuns();
  // For tests and the curious: the live state.
  (globalThis as { studio?: unknown }).studio = {
    get worker() {
      return worker;
    },
    get run() {
      return currentRun;
    },
    get lastPrediction() {
      return lastPrediction;
    },
    charts,
  };
}

init().catch((e: Error) => showMessage(`The studio could not start: ${e.message}`));
