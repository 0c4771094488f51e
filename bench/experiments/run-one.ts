// One run of the methods experiment, in its own process so that its peak memory is its own:
// fine-tune one method on one task with one seed under the fixed budget, evaluate, and print
// one line `RESULT <json>`. Usage: node --import tsx bench/experiments/run-one.ts '<json RunSpec>'
import { execFile } from "node:child_process";
import { rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { type QuantizeKind } from "../../src/ir/quantize.js";
import { loadModel, PretrainedModel } from "../../src/models/pretrained.js";
import { PeftModel, ADAPTER_WEIGHTS } from "../../src/peft/peft-model.js";
import { classificationExamples } from "../../src/train/data.js";
import { Trainer } from "../../src/train/trainer.js";
import { headLrScale, METHOD_GRID, SHIPPED_DECODER, taskData, type Budget } from "./grid.js";

export interface RunSpec {
  method: string;
  task: string;
  seed: number;
  budget: Budget;
  /** Scratch directory for the run's checkpoints (removed afterwards). */
  workDir: string;
  model?: string;
  threads?: number;
  /** Override the method's learning rate (for learning-rate sweeps). */
  lr?: number;
  /** Load the base with its frozen linears quantized (bench/quant-accuracy.ts). */
  quantize?: QuantizeKind;
}

export interface RunResult {
  method: string;
  family: string;
  task: string;
  seed: number;
  /** The learning rate of the method's parameters. */
  lr?: number;
  trainable: number;
  all: number;
  trainablePercent: number;
  accuracy: number;
  f1: number;
  rocAuc: number | null;
  evalLoss: number;
  finalTrainLoss: number;
  /** Mean optimizer-step time after the first step. */
  stepMs: number;
  /** Peak resident memory of the run's process. */
  peakRssMb: number;
  adapterBytes: number;
}

/** Train one run and keep what it trained (the ablation evaluates the trained model further). */
export async function trainRun(spec: RunSpec): Promise<{ result: RunResult; peft: PeftModel; trainer: Trainer }> {
  const method = METHOD_GRID.find((m) => m.name === spec.method);
  if (!method) throw new RangeError(`unknown method "${spec.method}"; methods: ${METHOD_GRID.map((m) => m.name).join(", ")}`);
  const { budget } = spec;
  const lr = spec.lr ?? method.lr;
  const data = taskData(spec.task, budget.trainPerClass, budget.validationPerClass);
  const pretrained = await loadModel(spec.model ?? SHIPPED_DECODER, { task: "sequence-classification", quantize: spec.quantize });
  const model = method.fromScratch ? PretrainedModel.fromConfig(pretrained.config.raw, pretrained.tokenizer, "sequence-classification", spec.workDir) : pretrained;
  (model.config as { numLabels: number }).numLabels = data.labels.length;
  const encode = (records: typeof data.train) => classificationExamples(records, model.tokenizer!, { maxLength: budget.maxLength, labelNames: data.labels }).examples;
  const peft = PeftModel.create(model, method.config);
  peft.warn = () => undefined;
  const { trainable, all } = peft.countParameters();
  const out = join(spec.workDir, `${spec.task}-${spec.method.replace(/[^\w.-]+/g, "_")}-${spec.seed}`);
  await rm(out, { recursive: true, force: true });
  const stamps: { step: number; at: number }[] = [];
  let finalTrainLoss = NaN;
  const trainer = new Trainer(peft, encode(data.train), encode(data.validation), {
    outputDir: out, maxSteps: budget.steps, batchSize: budget.batchSize, lr, headLrScale: headLrScale(method, lr), warmupRatio: 0.1, schedule: "linear",
    // One evaluation, after the last step.
    evalEvery: budget.steps + 1, seed: spec.seed, threads: spec.threads ?? 0, logEvery: 10, progress: false, print: () => undefined,
    onLog: (e) => {
      if (typeof e.loss === "number" && e.eval_loss === undefined) {
        stamps.push({ step: e.step, at: performance.now() });
        finalTrainLoss = e.loss;
      }
    },
  });
  const r = await trainer.train();
  const first = stamps[0]!;
  const last = stamps[stamps.length - 1]!;
  const adapterBytes = (await stat(join(r.adapterDir, ADAPTER_WEIGHTS))).size;
  await rm(out, { recursive: true, force: true });
  const m = r.finalMetrics;
  const result: RunResult = {
    method: method.name, family: method.family, task: spec.task, seed: spec.seed, lr, trainable, all, trainablePercent: (100 * trainable) / all,
    accuracy: m.accuracy!, f1: m.f1!, rocAuc: m.roc_auc ?? null, evalLoss: m.loss!, finalTrainLoss,
    stepMs: last.step > first.step ? (last.at - first.at) / (last.step - first.step) : NaN,
    peakRssMb: process.resourceUsage().maxRSS / 1024, adapterBytes,
  };
  return { result, peft, trainer };
}

export async function runOne(spec: RunSpec): Promise<RunResult> {
  return (await trainRun(spec)).result;
}

/** One run in a child process of its own (its peak memory is its own). */
export async function runInChild(spec: RunSpec): Promise<RunResult> {
  const { stdout } = await promisify(execFile)(process.execPath, ["--import", "tsx", fileURLToPath(import.meta.url), JSON.stringify(spec)], { maxBuffer: 1 << 24 });
  const line = stdout.split("\n").find((l) => l.startsWith("RESULT "));
  if (!line) throw new Error(`run ${JSON.stringify({ method: spec.method, task: spec.task, seed: spec.seed })} printed no result:\n${stdout}`);
  return JSON.parse(line.slice(7)) as RunResult;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const spec = JSON.parse(process.argv[2] ?? "{}") as RunSpec;
  process.stdout.write(`RESULT ${JSON.stringify(await runOne(spec))}\n`);
}
