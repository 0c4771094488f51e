// The studio's Web Worker: the peftjs core on onnxruntime-web. It stages models in the browser's
// file system (the Origin Private File System, through the core's platform layer), reads dropped
// data files with the CLI's parser and task rules, trains with the library's Trainer (checkpoints
// every step in OPFS, so a paused or interrupted run resumes), predicts, and packs the adapter
// (PEFT layout) and report.html for download. One request at a time; every failure is answered
// as an error message naming what failed, and the worker stays usable.
import {
  bestWindows,
  detectTask,
  readFile,
  Generator,
  loadModel,
  methodConfig,
  mountFiles,
  mountUrl,
  parseRecords,
  PeftModel,
  collate,
  decodePredictions,
  PREDICTION_TASKS,
  adapterFiles,
  configureWasm,
  onnxRuntime,
  selectBackend,
  type BackendChoice,
  splitExamples,
  TASK_FIELDS,
  taskExamples,
  Trainer,
  writeStoredZip,
  type DataRecord,
  type DataTask,
  type Example,
  type PretrainedModel,
  type Task,
  type Tensor,
} from "./core.js";
import type { DataInfo, FromWorker, ModelInfo, ModelSource, Prediction, RunRecord, ToWorker } from "./protocol.js";

/** The worker's global scope, typed by what this file uses (the page's tsconfig has the DOM lib, not WebWorker's). */
const scope = self as unknown as { postMessage(m: FromWorker, transfer?: Transferable[]): void; onmessage: ((e: MessageEvent<ToWorker>) => void) | null; crossOriginIsolated: boolean };
const post = (m: FromWorker, transfer: Transferable[] = []) => scope.postMessage(m, transfer);

/** Where the studio keeps its files in OPFS. */
const ROOT = "/studio";
const modelDir = (source: { kind: string; name: string }) => `${ROOT}/models/${source.kind}/${source.name}`;
const runDir = (id: string) => `${ROOT}/runs/${id}`;

interface Loaded {
  source: ModelSource;
  dir: string;
  /** The model as config.json's architectures loads it (for its description). */
  model: PretrainedModel;
}
let loaded: Loaded | undefined;
let data: { name: string; records: DataRecord[]; task: Task } | undefined;
/** The last trained (or training) adapter, for predictions and export. */
let trained: { peft: PeftModel; task: Task; runId: string; labels?: string[] } | undefined;
let pauseRequested = false;
/**
 * Steps between checkpoints in OPFS (each costs about as much as a step of encoder-mini here):
 * a pause waits for the next one, a closed tab loses the steps since the last.
 */
const SAVE_EVERY = 5;

class Paused extends Error {}

/** A one-line message for the page: the error's own message, as the CLI prints it. */
const oneLine = (e: unknown) => (e instanceof Error ? e.message : String(e)).split("\n")[0]!;

/**
 * Make a model's files readable by loadModel under one folder of the core's file system: a
 * shipped model from the studio server (fetched as read), a picked or dropped folder from its
 * File objects (read in place, nothing copied).
 */
async function stageModel(source: ModelSource): Promise<string> {
  const dir = modelDir(source);
  if (source.kind === "shipped") {
    const catalog = (await (await fetch("/api/models")).json()) as { models: { name: string; files: string[] }[] };
    const entry = catalog.models.find((m) => m.name === source.name);
    if (!entry) throw new Error(`${source.name}: not a model this studio ships (${catalog.models.map((m) => m.name).join(", ")})`);
    mountUrl(dir, new URL(`/models/${source.name}/`, location.href).href, entry.files);
    return dir;
  }
  // Files arrive as "<folder>/<name>"; nested folders are not read.
  const top: Record<string, File> = {};
  for (const f of source.files) {
    const parts = f.name.split("/");
    const name = parts.length > 1 ? parts.slice(1).join("/") : parts[0]!;
    if (!name.includes("/")) top[name] = f;
  }
  const names = Object.keys(top);
  const has = () => `(it has ${names.slice(0, 6).join(", ") || "no files"}${names.length > 6 ? ", ..." : ""}); a Hugging Face model folder holds config.json, model.safetensors and tokenizer.json`;
  if (!top["config.json"]) throw new Error(`${source.name}: no config.json in the folder ${has()}`);
  if (!names.some((n) => n.endsWith(".safetensors"))) throw new Error(`${source.name}: no .safetensors weights in the folder ${has()}`);
  mountFiles(dir, top);
  return dir;
}

function describe(model: PretrainedModel, name: string): ModelInfo {
  const c = model.config;
  const parameters = [...model.modules().params.values()].reduce((a, s) => a + s.reduce((x, y) => x * y, 1), 0);
  return { name, modelType: c.modelType, layers: c.layers, hidden: c.hidden, parameters, tasks: [...model.supportedTasks] };
}

/** The model's support for the data's task, with the CLI's message when the data's fields chose a task the model cannot build. */
function checkTask(model: PretrainedModel, task: Task, dataName: string, records: readonly DataRecord[]): void {
  if (model.supportedTasks.includes(task)) return;
  const fields = [...new Set(records.flatMap((r) => Object.keys(r)))].map((f) => `"${f}"`).join(", ");
  const why = task === "causal-lm" ? `no "label" field (the records have ${fields}), so the task was guessed as ${task}` : `the records' fields (${fields}) make the task ${task}`;
  throw new Error(`${dataName}: ${why}, which ${loaded!.source.name} (${model.config.modelType}) does not build (it builds ${model.supportedTasks.join(", ")})`);
}

async function onLoadModel(id: number, source: ModelSource): Promise<void> {
  const dir = await stageModel(source);
  const model = await loadModel(dir);
  loaded = { source, dir, model };
  trained = undefined;
  post({ id, type: "model", info: describe(model, source.name) });
}

async function onLoadData(id: number, file: File): Promise<void> {
  const records = parseRecords(new Uint8Array(await file.arrayBuffer()), file.name);
  const notes: string[] = [];
  const { task } = detectTask(records, { source: file.name, note: (s) => notes.push(s) });
  let labels: string[] | undefined;
  if (loaded) {
    checkTask(loaded.model, task, file.name, records);
    // Tokenize once now, so a record the task cannot read is reported at the drop, as the CLI would at the start.
    if (loaded.model.tokenizer) labels = taskExamples(task, records, loaded.model.tokenizer, { maxLength: Math.min(128, loaded.model.maxInputLength), source: file.name }).labels;
  }
  data = { name: file.name, records, task };
  const present = (k: string) => records.some((r) => r[k] !== undefined);
  const spec = TASK_FIELDS[task as DataTask];
  const fields = spec ? [...spec.inputs, ...spec.targets].filter(present) : [];
  const info: DataInfo = { name: file.name, records: records.length, task, fields: [...new Set(fields)], notes, ...(labels ? { labels } : {}) };
  post({ id, type: "data", info });
}

async function onTrain(id: number, run: RunRecord, resume: boolean): Promise<void> {
  if (!loaded) throw new Error("choose a model first");
  if (!data) throw new Error("drop a data file first");
  const s = run.settings;
  const { task } = detectTask(data.records, { source: data.name });
  const model = await loadModel(loaded.dir, { task });
  // adapter_config.json's base_model_name_or_path: the model as the user knows it, not its mount point.
  model.nameOrPath = loaded.source.kind === "shipped" ? `models/${loaded.source.name}` : loaded.source.name;
  checkTask(model, task, data.name, data.records);
  if (!model.tokenizer) throw new Error(`${loaded.source.name} has no tokenizer.json; the studio needs the model's tokenizer to read text data`);
  const maxLength = Math.min(s.maxLength, model.maxInputLength);
  const all = taskExamples(task, data.records, model.tokenizer, { maxLength, source: data.name });
  if (all.labels) (model.config as { numLabels: number }).numLabels = all.labels.length;
  const peft = PeftModel.create(model, methodConfig(s.method, {}, s.peft, "method settings"));
  if (all.labels) peft.labels.set("default", all.labels);
  let train: Example[] = all.examples;
  let evaluation: Example[] | undefined;
  if (s.valSplit > 0 && train.length > 1) ({ train, validation: evaluation } = splitExamples(train, s.valSplit, s.seed));
  trained = { peft, task, runId: run.id, labels: all.labels };
  const lines: string[] = [];
  peft.printTrainableParameters((l) => lines.push(l));
  pauseRequested = false;
  const resumedAt = resume ? await checkpointStep(run.id) : 0;
  const trainer = new Trainer(peft, train, evaluation, {
    outputDir: runDir(run.id),
    epochs: s.epochs,
    maxSteps: s.maxSteps,
    batchSize: s.batchSize,
    lr: s.lr,
    schedule: s.schedule,
    warmupRatio: s.warmupRatio,
    weightDecay: s.weightDecay,
    evalEvery: s.evalEvery,
    seed: s.seed,
    logEvery: 1,
    saveEvery: SAVE_EVERY,
    progress: false,
    resume,
    overwrite: !resume,
    print: () => undefined,
    settings: { model: loaded.source.name, data: data.name, eval: evaluation ? `${s.valSplit} of the data` : "none", task, method: s.method, ...s.peft, epochs: s.epochs, max_steps: s.maxSteps, batch_size: s.batchSize, lr: s.lr, schedule: s.schedule, warmup_ratio: s.warmupRatio, weight_decay: s.weightDecay, max_length: maxLength, seed: s.seed },
    onLog: (entry) => {
      const isStep = typeof entry.loss === "number";
      // A pause stops the run at a step whose predecessor was checkpointed (checked before the
      // entry is shown): the trainer writes a checkpoint every SAVE_EVERY steps, after the log.
      if (isStep && pauseRequested && ((entry.step - 1) % SAVE_EVERY === 0 || entry.step - 1 === resumedAt)) throw new Paused(`paused at step ${entry.step - 1}`);
      post({ id, type: "log", entry: Object.fromEntries(Object.entries(entry).filter(([, v]) => typeof v === "number" || typeof v === "string")) as Record<string, number | string> });
      if (isStep) post({ id, type: "progress", step: entry.step, totalSteps: trainer.totalSteps });
    },
  });
  trainer.labelNames = all.labels;
  post({ id, type: "started", totalSteps: trainer.totalSteps, resumedAt, trainable: lines.join(" ") });
  try {
    const result = await trainer.train();
    post({ id, type: "done", finalMetrics: result.finalMetrics, steps: result.steps });
  } catch (e) {
    if (!(e instanceof Paused || (e as Error).cause instanceof Paused)) throw e;
    post({ id, type: "paused", step: await checkpointStep(run.id) });
  }
}

/** The step of a run's last checkpoint (0 when it has none). */
async function checkpointStep(runId: string): Promise<number> {
  try {
    return (JSON.parse(await readFile(`${runDir(runId)}/checkpoint-last/trainer_state.json`, "utf8")) as { step: number }).step;
  } catch {
    return 0;
  }
}

async function onPredict(id: number, text: string): Promise<void> {
  if (!trained) throw new Error("train a model first: predictions use the trained adapter");
  const { peft, task } = trained;
  const tok = peft.base.tokenizer!;
  let prediction: Prediction;
  if (task === "causal-lm") {
    const gen = await Generator.create(peft);
    const ids: number[] = [];
    await gen.generate([text], { maxNewTokens: 32, temperature: 0, onToken: (t: number) => void ids.push(t) });
    await gen.release();
    prediction = { kind: "text", text: text + tok.decode(ids, { skipSpecialTokens: true }) };
  } else if (PREDICTION_TASKS.includes(task)) {
    // QA: the first line is the question, the rest the context; tagging: words split on whitespace.
    const [question = "", ...rest] = text.split("\n");
    const record: DataRecord = task === "question-answering" ? { question, context: rest.join("\n") } : task === "token-classification" ? { tokens: text.split(/\s+/).filter(Boolean) } : { text };
    const { examples } = taskExamples(task, [record], tok, { maxLength: Math.min(512, peft.base.maxInputLength), source: "input", labelled: false, labelNames: trained.labels });
    // One forward pass (as predict() runs it), keeping the logits for the page.
    const { input_ids, attention_mask, token_type_ids } = collate(examples, tok.padTokenId ?? tok.eosTokenId ?? 0);
    const out = (await peft.forward({ input_ids, attention_mask, token_type_ids })) as Record<string, Tensor>;
    const predictions = decodePredictions(peft, examples, out);
    const names = trained.labels ?? [];
    const p = predictions[0]!;
    if (task === "question-answering") {
      const [, best] = bestWindows(examples, predictions)[0]!;
      prediction = { kind: "answer", answer: best.answer, score: best.score };
    } else if ("probabilities" in p) prediction = { kind: "classification", labels: p.probabilities.map((_, i) => names[i] ?? String(i)), probabilities: p.probabilities, logits: Array.from(out.logits!.data as Float32Array) };
    else if ("tokenLabels" in p) {
      const firsts = examples[0]!.tokenLabels!.flatMap((y, t) => (y === -100 ? [] : [t]));
      const words = record.tokens as string[];
      prediction = { kind: "tags", tokens: words, tags: words.map((_, w) => (w < firsts.length ? (names[p.tokenLabels[firsts[w]!]!] ?? "?") : "?")) };
    } else throw new Error(`no prediction for task ${task}`);
  } else throw new Error(`the studio does not predict for task ${task}`);
  post({ id, type: "prediction", prediction });
}

async function onExport(id: number): Promise<void> {
  if (!trained) throw new Error("train a model first");
  // The files peft.save writes (adapter_config.json, adapter_model.safetensors, labels.json), zipped in a folder "adapter".
  const files = await adapterFiles(trained.peft);
  const names = Object.keys(files).sort();
  const adapterZip = writeStoredZip(names.map((n) => [`adapter/${n}`, files[n]!] as const));
  const report = await readFile(`${runDir(trained.runId)}/report.html`, "utf8");
  post({ id, type: "export", adapterZip, report, files: names }, [adapterZip.buffer]);
}

scope.onmessage = (e) => {
  const m = e.data;
  if (m.type === "pause") {
    pauseRequested = true;
    return;
  }
  if (m.type === "crash") {
    // Thrown outside every handler: the page sees the worker's error event, as for a bug here.
    setTimeout(() => {
      throw new Error("the worker crashed (a crash the page asked for)");
    });
    return;
  }
  // Sessions are built after the backend is chosen (a request can arrive before that).
  const work = backend.then(() => (m.type === "load-model" ? onLoadModel(m.id, m.source) : m.type === "load-data" ? onLoadData(m.id, m.file) : m.type === "train" ? onTrain(m.id, m.run, m.resume) : m.type === "predict" ? onPredict(m.id, m.text) : onExport(m.id)));
  work.catch((err: unknown) => post({ id: m.id, type: "error", message: oneLine(err) }));
};

// wasm threads need a cross-origin isolated page (the studio server sends the headers); the wasm
// files are served beside the bundle.
const threads = scope.crossOriginIsolated ? Math.max(1, Math.min(4, navigator.hardwareConcurrency || 1)) : 1;
configureWasm({ threads, wasmPaths: new URL("/", location.href).href });
// WebGPU when the browser has a hardware adapter, else wasm (selectBackend says why).
const backend = selectBackend().catch((e: unknown): BackendChoice => ({ backend: "wasm", reason: oneLine(e) }));
void backend.then((b) => {
  const which = b.backend === "webgpu" ? `WebGPU on ${b.adapter}` : `wasm; ${b.reason}`;
  post({ type: "ready", backend: `onnxruntime-web ${onnxRuntime().env.versions?.web ?? ""} (${which})`.replace("  ", " "), threads, isolated: scope.crossOriginIsolated });
});
