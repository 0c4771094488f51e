// The training loop: batches in, optimizer steps out, with schedules, clipping, gradient
// accumulation, periodic evaluation, early stopping, atomic checkpoints that a killed run
// resumes from, a JSONL log of every metric and a live progress bar.
import { appendFile, mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import cliProgress from "cli-progress";
import { readSafetensors, writeFileAtomic, writeSafetensors } from "../io/safetensors.js";
import { type Tensor } from "../ir/tensor.js";
import { type PeftModel } from "../peft/peft-model.js";
import { compile, type CompiledGraph } from "../runtime/session.js";
import { collate, epochBatches, type Example } from "./data.js";
import { bestWindows, decodePredictions, PREDICTION_TASKS, type Prediction } from "./predict.js";
import { clipGradNorm } from "./grad-clip.js";
import { averagePrecision, classificationReport, perplexity, prCurve, rocAuc, rocCurve, squadScores, tokenF1 } from "./metrics.js";
import { AdamW, type ParamGroup } from "./optimizers.js";
import { writeReport, type ReportData } from "./report.js";
import { learningRate, type ScheduleKind } from "./schedule.js";
import { TrainStep } from "./train-step.js";

export interface TrainerOptions {
  /** Where checkpoints, the final adapter, metrics.jsonl and the report go. */
  outputDir: string;
  epochs?: number;
  /** Optimizer steps to take (overrides epochs). */
  maxSteps?: number;
  batchSize?: number;
  /** Micro-batches per optimizer step; gradients are averaged. */
  gradientAccumulation?: number;
  lr?: number;
  weightDecay?: number;
  /** Learning-rate multiplier for the task head (modules_to_save), e.g. 10. */
  headLrScale?: number;
  schedule?: ScheduleKind;
  warmupRatio?: number;
  maxGradNorm?: number;
  /** Evaluate every N optimizer steps (default: once per epoch). */
  evalEvery?: number;
  /** Checkpoint every N optimizer steps (default: at every evaluation). */
  saveEvery?: number;
  earlyStopping?: { metric: string; patience: number; mode?: "max" | "min" };
  seed?: number;
  /** Dropout during training (default on); off makes runs bit-reproducible across resumes. */
  dropout?: boolean;
  gradientCheckpointing?: boolean;
  /** Masked LM: the LM head runs only at labelled positions (same loss, less compute). */
  maskedPositionsOnly?: boolean;
  threads?: number;
  logEvery?: number;
  /** Live progress bar (default: when stdout is a terminal); plain log lines otherwise. */
  progress?: boolean;
  /** Resume from `outputDir/checkpoint-last` when it exists. */
  resume?: boolean;
  /** Every log entry (also written to metrics.jsonl). */
  onLog?: (entry: LogEntry) => void;
  /** Where plain progress lines go when there is no progress bar (default console.log). */
  print?: (line: string) => void;
}

export type LogEntry = { step: number; epoch: number } & Record<string, number | string | number[][] | undefined>;

export class TrainingDivergedError extends Error {}

interface TrainerState {
  step: number;
  epoch: number;
  /** Next micro-batch index within the epoch. */
  batchInEpoch: number;
  bestMetric: number | null;
  bestStep: number | null;
  badEvals: number;
}

export interface TrainResult {
  steps: number;
  finalMetrics: Record<string, number>;
  bestMetric: number | null;
  bestStep: number | null;
  stoppedEarly: boolean;
  adapterDir: string;
}

const STATE = "trainer_state.json";
const OPTIMIZER = "optimizer.safetensors";
const TENSORS = "adapter_tensors.safetensors";

/**
 * @example
 *   const trainer = new Trainer(peft, trainExamples, evalExamples, { outputDir: "out", epochs: 3, lr: 2e-4 });
 *   const { finalMetrics } = await trainer.train();
 */
export class Trainer {
  /** Class names for reports (index = label id). */
  labelNames: readonly string[] | undefined;
  readonly opts: Required<Omit<TrainerOptions, "maxSteps" | "evalEvery" | "saveEvery" | "earlyStopping" | "onLog" | "print">> & TrainerOptions;
  private readonly padId: number;

  constructor(
    readonly model: PeftModel,
    readonly trainExamples: readonly Example[],
    readonly evaluation: readonly Example[] | undefined,
    opts: TrainerOptions,
  ) {
    if (trainExamples.length === 0) throw new RangeError("Trainer: no training examples");
    this.opts = {
      epochs: 3, batchSize: 16, gradientAccumulation: 1, lr: 2e-4, weightDecay: 0.01, headLrScale: 1, schedule: "linear", warmupRatio: 0.06, maxGradNorm: 1,
      seed: 42, dropout: true, gradientCheckpointing: false, maskedPositionsOnly: false, threads: 0, logEvery: 10, progress: Boolean(process.stdout.isTTY), resume: false, ...opts,
    };
    const tok = model.base.tokenizer;
    this.padId = tok?.padTokenId ?? tok?.eosTokenId ?? 0;
  }

  private get batchesPerEpoch(): number {
    return Math.ceil(this.trainExamples.length / this.opts.batchSize);
  }

  get totalSteps(): number {
    return this.opts.maxSteps ?? Math.ceil(this.batchesPerEpoch / this.opts.gradientAccumulation) * this.opts.epochs;
  }

  private feeds(examples: readonly Example[]): Record<string, Tensor> {
    const { input_ids, attention_mask, token_type_ids, ...targets } = collate(examples, this.padId);
    return this.model.prepareInputs({ input_ids, attention_mask, token_type_ids }, targets as Record<string, Tensor>);
  }

  private async log(entry: LogEntry): Promise<void> {
    await appendFile(join(this.opts.outputDir, "metrics.jsonl"), `${JSON.stringify(entry)}\n`);
    this.opts.onLog?.(entry);
  }

  async train(): Promise<TrainResult> {
    const o = this.opts;
    await mkdir(o.outputDir, { recursive: true });
    const session = o.threads ? { threads: o.threads } : {};
    const step = await TrainStep.create(this.model.build({ withLoss: true, training: o.dropout, gradientCheckpointing: o.gradientCheckpointing, maskedPositionsOnly: o.maskedPositionsOnly }).outputs.loss!, { session });
    const heads = new Set(step.params.filter((p) => p.name.includes(".modules_to_save.")));
    const groups: ParamGroup[] = [{ params: step.params.filter((p) => !heads.has(p)) }, { params: [...heads], lrScale: o.headLrScale }].filter((g) => g.params.length > 0);
    const opt = new AdamW(groups, { lr: o.lr, weightDecay: o.weightDecay });
    const schedule = { kind: o.schedule, lr: o.lr, warmupSteps: Math.round(o.warmupRatio * this.totalSteps), totalSteps: this.totalSteps };
    let state: TrainerState = { step: 0, epoch: 0, batchInEpoch: 0, bestMetric: null, bestStep: null, badEvals: 0 };
    if (o.resume) {
      state = (await this.restore(opt)) ?? state;
      (o.print ?? console.log)(state.step > 0 ? `resumed from ${join(o.outputDir, "checkpoint-last")} at step ${state.step}` : `no checkpoint in ${o.outputDir} to resume from; starting at step 0`);
    }
    const evaluator = this.evaluation ? await compile(this.evalOutputs(), session) : undefined;

    const bar = o.progress ? new cliProgress.SingleBar({ format: "{bar} {percentage}% | step {value}/{total} | loss {loss} | lr {lr} | {tps} tok/s | ETA {eta_formatted}", hideCursor: true }, cliProgress.Presets.shades_classic) : undefined;
    bar?.start(this.totalSteps, state.step, { loss: "-", lr: "-", tps: "-" });
    let stoppedEarly = false;
    let lastMetrics: Record<string, number> = {};
    const t0 = performance.now();
    let tokens = 0;
    try {
      outer: while (state.step < this.totalSteps) {
        const batches = epochBatches(this.trainExamples, o.batchSize, o.seed, state.epoch);
        while (state.batchInEpoch < batches.length && state.step < this.totalSteps) {
          const micro = batches.slice(state.batchInEpoch, state.batchInEpoch + o.gradientAccumulation);
          let loss = 0;
          let grads: Map<string, Tensor> | undefined;
          for (const b of micro) {
            const examples = b.map((i) => this.trainExamples[i]!);
            tokens += examples.reduce((n, e) => n + e.ids.length, 0);
            let r;
            try {
              r = await step.run(this.feeds(examples));
            } catch (e) {
              throw this.diverged(state.step, (e as Error).message);
            }
            loss += r.loss / micro.length;
            // The run's gradient arrays are fresh, so they are scaled and summed in place: no copy
            // of (for full fine-tuning) every weight's gradient per step.
            if (micro.length > 1) for (const g of r.grads.values()) (g.data as Float32Array).forEach((x, i, d) => (d[i] = x / micro.length));
            if (!grads) grads = r.grads;
            else for (const [k, g] of r.grads) (grads.get(k)!.data as Float32Array).forEach((x, i, d) => (d[i] = x + (g.data[i] as number)));
          }
          const norm = clipGradNorm(grads!.values(), o.maxGradNorm);
          if (!Number.isFinite(norm)) throw this.diverged(state.step, `gradient norm is ${norm}`);
          opt.lr = learningRate(schedule, state.step);
          opt.step(grads!);
          this.model.afterStep(state.step + 1, grads!);
          state.step++;
          state.batchInEpoch += micro.length;
          const seconds = (performance.now() - t0) / 1000;
          bar?.update(state.step, { loss: loss.toFixed(4), lr: opt.lr.toExponential(2), tps: Math.round(tokens / seconds) });
          if (state.step % o.logEvery === 0 || state.step === 1) {
            const entry = { step: state.step, epoch: state.epoch, loss, lr: opt.lr, grad_norm: norm, tokens_per_s: tokens / seconds };
            if (!bar) (o.print ?? console.log)(`step ${state.step}/${this.totalSteps} loss ${loss.toFixed(4)} lr ${opt.lr.toExponential(2)} ${Math.round(tokens / seconds)} tok/s`);
            await this.log(entry);
          }
          const endOfEpoch = state.batchInEpoch >= batches.length;
          const evalDue = evaluator && (o.evalEvery ? state.step % o.evalEvery === 0 : endOfEpoch);
          if (evalDue) {
            lastMetrics = await this.evaluate(evaluator);
            await this.log({ step: state.step, epoch: state.epoch, ...prefixed(lastMetrics) });
            const es = o.earlyStopping;
            const metric = es ? lastMetrics[es.metric] : undefined;
            if (es && metric === undefined) throw new RangeError(`early stopping metric "${es.metric}" is not computed; available: ${Object.keys(lastMetrics).join(", ")}`);
            const better = metric !== undefined && (state.bestMetric === null || ((es!.mode ?? "max") === "max" ? metric > state.bestMetric : metric < state.bestMetric));
            if (better) {
              state.bestMetric = metric!;
              state.bestStep = state.step;
              state.badEvals = 0;
            } else if (es) state.badEvals++;
            if (endOfEpoch) [state.epoch, state.batchInEpoch] = [state.epoch + 1, 0];
            await this.checkpoint(state, opt, better ? "checkpoint-best" : undefined);
            if (es && state.badEvals >= es.patience) {
              stoppedEarly = true;
              break outer;
            }
            continue;
          }
          if (endOfEpoch) [state.epoch, state.batchInEpoch] = [state.epoch + 1, 0];
          if (o.saveEvery && state.step % o.saveEvery === 0) await this.checkpoint(state, opt);
        }
        if (state.batchInEpoch >= batches.length) [state.epoch, state.batchInEpoch] = [state.epoch + 1, 0];
      }
    } finally {
      bar?.stop();
      await step.release();
    }
    await this.checkpoint(state, opt);
    if (evaluator) {
      lastMetrics = await this.evaluate(evaluator);
      await this.log({ step: state.step, epoch: state.epoch, ...prefixed(lastMetrics) });
      await evaluator.release();
    }
    const adapterDir = join(o.outputDir, "adapter");
    await this.model.save(adapterDir);
    const log = (await readFile(join(o.outputDir, "metrics.jsonl"), "utf8")).trim().split("\n").filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
    await writeReport(join(o.outputDir, "report.html"), { title: `${this.model.base.dir} · ${this.model.activeAdapters.join(", ")}`, log, finalMetrics: lastMetrics, labels: this.labelNames, ...this.lastEvaluation });
    return { steps: state.step, finalMetrics: lastMetrics, bestMetric: state.bestMetric, bestStep: state.bestStep, stoppedEarly, adapterDir };
  }

  private diverged(step: number, why: string): TrainingDivergedError {
    return new TrainingDivergedError(`training diverged at step ${step + 1}: ${why}. The last good checkpoint is ${join(this.opts.outputDir, "checkpoint-last")} (resume with a lower learning rate or stronger clipping)`);
  }

  private evalOutputs() {
    const built = this.model.build({ withLoss: true, maskedPositionsOnly: this.opts.maskedPositionsOnly });
    const out: Record<string, import("../ir/graph.js").Value> = { loss: built.outputs.loss! };
    for (const k of ["logits", "start_logits", "end_logits"] as const) if (built.outputs[k]) out[k] = built.outputs[k];
    return out;
  }

  /** Details of the last evaluation, for the report. */
  lastEvaluation: Pick<ReportData, "confusion" | "roc" | "pr"> = {};

  /** Loss and the task's metrics on the evaluation examples. */
  async evaluate(compiled?: CompiledGraph): Promise<Record<string, number>> {
    if (!this.evaluation) return {};
    const session = compiled ?? (await compile(this.evalOutputs(), this.opts.threads ? { threads: this.opts.threads } : {}));
    const task = this.model.base.task;
    let lossSum = 0;
    let count = 0;
    const labels: number[] = [];
    const preds: number[] = [];
    const scores: number[] = [];
    const spans: [Example, Prediction][] = [];
    let em = 0;
    let f1 = 0;
    for (const b of epochBatches(this.evaluation, this.opts.batchSize, 0, 0, { shuffle: false })) {
      const examples = b.map((i) => this.evaluation![i]!);
      const out = await session.run(this.feeds(examples));
      lossSum += Number(out.loss!.data[0]) * examples.length;
      count += examples.length;
      if (!PREDICTION_TASKS.includes(task)) continue; // language modeling: loss (perplexity) only
      decodePredictions(this.model, examples, out).forEach((p, r) => {
        const e = examples[r]!;
        if ("probabilities" in p) {
          preds.push(p.label);
          labels.push(e.label!);
          if (p.probabilities.length === 2) scores.push(p.probabilities[1]!);
        } else if ("tokenLabels" in p) {
          e.tokenLabels!.forEach((y, t) => (labels.push(y), preds.push(p.tokenLabels[t]!)));
        } else spans.push([e, p]);
      });
    }
    // QA: one answer per record, from its best window.
    const best = bestWindows(spans.map(([e]) => e), spans.map(([, p]) => p));
    for (const [i, p] of best) {
      const sc = squadScores(p.answer, spans[i]![0].answers ?? []);
      em += sc.exactMatch;
      f1 += sc.f1;
    }
    if (!compiled) await session.release();
    const loss = lossSum / count;
    const metrics: Record<string, number> = { loss };
    if (task === "sequence-classification") {
      const r = classificationReport(labels, preds, this.model.base.config.numLabels);
      Object.assign(metrics, { accuracy: r.accuracy, precision: r.precision, recall: r.recall, f1: r.f1 });
      this.lastEvaluation = { confusion: r.confusion };
      if (scores.length) {
        Object.assign(metrics, { roc_auc: rocAuc(labels, scores), pr_auc: averagePrecision(labels, scores) });
        this.lastEvaluation.roc = rocCurve(labels, scores);
        this.lastEvaluation.pr = prCurve(labels, scores);
      }
    } else if (task === "token-classification") {
      // The "O" tag is the outside class when the labels are named; otherwise id 0.
      const outside = this.labelNames?.includes("O") ? this.labelNames.indexOf("O") : 0;
      const r = tokenF1(labels, preds, outside);
      let kept = 0;
      let right = 0;
      labels.forEach((y, i) => y !== -100 && (kept++, preds[i] === y && right++));
      Object.assign(metrics, { token_f1: r.f1, token_precision: r.precision, token_recall: r.recall, token_accuracy: kept ? right / kept : 0 });
    } else if (task === "causal-lm") {
      metrics.perplexity = perplexity(loss);
    } else if (task === "question-answering") {
      Object.assign(metrics, { exact_match: (100 * em) / best.length, f1: (100 * f1) / best.length });
    }
    return metrics;
  }

  /** Write checkpoint-last atomically (a temp directory renamed over it); optionally copy it as `alsoAs`. */
  private async checkpoint(state: TrainerState, opt: AdamW, alsoAs?: string): Promise<void> {
    const dir = join(this.opts.outputDir, "checkpoint-last");
    const tmp = `${dir}.tmp-${process.pid}`;
    await rm(tmp, { recursive: true, force: true });
    await this.model.save(tmp);
    const { step, moments } = opt.state();
    await writeSafetensors(join(tmp, OPTIMIZER), moments, { step: String(step) });
    // Every adapter tensor as trained (PEFT's files may hold derived tensors, e.g. P-tuning's
    // encoder output), so a resumed run continues exactly.
    const tensors = new Map<string, Tensor>();
    for (const [name, adapter] of this.model.adapters) for (const [k, t] of adapter.tensors) tensors.set(`${name}/${k}`, t);
    await writeSafetensors(join(tmp, TENSORS), tensors);
    await writeFileAtomic(join(tmp, STATE), JSON.stringify(state, null, 2));
    // Swap in the new checkpoint: the old one is removed only after the new one is complete.
    const old = `${dir}.old-${process.pid}`;
    await rename(dir, old).catch(() => undefined);
    await rename(tmp, dir);
    await rm(old, { recursive: true, force: true });
    if (alsoAs) {
      const best = join(this.opts.outputDir, alsoAs);
      await rm(best, { recursive: true, force: true });
      await this.model.save(best);
      await writeFile(join(best, STATE), JSON.stringify(state, null, 2));
    }
  }

  /** Restore adapters, optimizer and loop state from checkpoint-last, if there is one. */
  private async restore(opt: AdamW): Promise<TrainerState | undefined> {
    const dir = join(this.opts.outputDir, "checkpoint-last");
    let state: TrainerState;
    try {
      state = JSON.parse(await readFile(join(dir, STATE), "utf8")) as TrainerState;
    } catch {
      return undefined;
    }
    const saved = await readSafetensors(join(dir, TENSORS));
    for (const [name, adapter] of this.model.adapters) {
      for (const [k, t] of adapter.tensors) {
        const key = `${name}/${k}`;
        if (!saved.tensors.has(key)) throw new RangeError(`${join(dir, TENSORS)}: no tensor "${key}"; the checkpoint is from a different adapter setup`);
        (t.data as Float32Array).set(saved.get(key).data as Float32Array);
      }
    }
    const o = await readSafetensors(join(dir, OPTIMIZER));
    opt.loadState({ step: Number(o.metadata.step), moments: new Map(o.names().map((n) => [n, o.get(n)])) }, join(dir, OPTIMIZER));
    return state;
  }
}

function prefixed(m: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(m).map(([k, v]) => [`eval_${k}`, v]));
}
