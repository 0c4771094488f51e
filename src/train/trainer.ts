// The training loop: batches in, optimizer steps out, with schedules, clipping, gradient
// accumulation, periodic evaluation, early stopping, a divergence guard, checkpoints written as
// whole folders that a killed run resumes from bit for bit, a JSONL log of every metric and a
// live progress bar.
import { appendFile, basename, host, isAbsolute, join, mkdir, readdir, readFile, rm, stat } from "../platform/host.js";
import { createProgressBar } from "../platform/progress-bar.js";
import { recoverDir, writeDirAtomic } from "../io/atomic-dir.js";
import { readSafetensors, writeFileAtomic, writeSafetensors } from "../io/safetensors.js";
import { DROPOUT_KEY } from "../ir/ops/index.js";
import { type Tensor } from "../ir/tensor.js";
import { type PeftModel } from "../peft/peft-model.js";
import { compile, trainingSessionOptions, type CompiledGraph } from "../runtime/session.js";
import { collate, epochBatches, type Example } from "./data.js";
import { bestWindows, decodePredictions, PREDICTION_TASKS, type Prediction } from "./predict.js";
import { validateTrainerOptions } from "./trainer-options.js";
import { DivergenceGuard, type DivergenceOptions, type DivergenceState } from "./divergence.js";
import { clipGradNorm } from "./grad-clip.js";
import { averagePrecision, classificationReport, perplexity, prCurve, rocAuc, rocCurve, squadScores, tokenF1 } from "./metrics.js";
import { AdamW, type ParamGroup } from "./optimizers.js";
import { writeReport, type ReportData } from "./report.js";
import { learningRate, type ScheduleKind } from "./schedule.js";
import { dropoutKey, NonFiniteLossError, TrainStep } from "./train-step.js";

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
  /** Seeds the batch order of every epoch and the dropout masks of every step. */
  seed?: number;
  /** Dropout during training (default on). Its masks are a function of (seed, step, micro-batch): a run, a rerun and a resumed run (same threads) agree bit for bit. */
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
  /**
   * Replace the outputs of a previous run in `outputDir` (transformers' overwrite_output_dir).
   * Without it (or `resume`), an output folder that holds a previous run is refused.
   */
  overwrite?: boolean;
  /** Stop a run whose loss runs away (the rule: {@link DivergenceOptions}); false: never. */
  divergence?: DivergenceOptions | false;
  /** The run's settings as the user gave them (method, hyperparameters, data files, seed), shown in report.html. */
  settings?: Readonly<Record<string, unknown>>;
  /** Every log entry (also written to metrics.jsonl). */
  onLog?: (entry: LogEntry) => void;
  /** Where plain progress lines go when there is no progress bar (default console.log). */
  print?: (line: string) => void;
}

export type LogEntry = { step: number; epoch: number } & Record<string, number | string | number[][] | undefined>;

/** The loss ran away or became NaN/infinite; the message names the last good checkpoint, if any. */
export class TrainingDivergedError extends Error {}

/** A training step failed for another reason (bad input, a runtime error); the message names the step and its examples. */
export class TrainingStepError extends Error {}

/** `outputDir` holds a previous run and neither `resume` nor `overwrite` was given. */
export class OutputExistsError extends Error {}

interface TrainerState {
  step: number;
  epoch: number;
  /** Next micro-batch index within the epoch. */
  batchInEpoch: number;
  bestMetric: number | null;
  bestStep: number | null;
  badEvals: number;
  /** Sum and count of step losses since the last log entry (the entry logs their mean). */
  lossSum: number;
  lossCount: number;
  divergence: DivergenceState;
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
/** Key infix of an adapter's training state (Adapter.trainingState) in the TENSORS file. */
const TRAINING_STATE = "/training_state/";
const METRICS = "metrics.jsonl";
const REPORT = "report.html";
const LAST = "checkpoint-last";
const BEST = "checkpoint-best";
const ADAPTER = "adapter";
/** What a run leaves in its output folder; any of them there means a previous run. */
const RUN_OUTPUTS = [METRICS, LAST, BEST, ADAPTER, REPORT];
/** Adapter weights beyond this magnitude are not a state worth resuming from. */
const MAX_SANE_WEIGHT = 1e6;

/**
 * @example
 *   const trainer = new Trainer(peft, trainExamples, evalExamples, { outputDir: "out", epochs: 3, lr: 2e-4 });
 *   const { finalMetrics } = await trainer.train();
 */
export class Trainer {
  /** Class names for reports (index = label id). */
  labelNames: readonly string[] | undefined;
  readonly opts: Required<Omit<TrainerOptions, "maxSteps" | "evalEvery" | "saveEvery" | "earlyStopping" | "onLog" | "print" | "divergence" | "settings">> & TrainerOptions;
  private readonly padId: number;

  constructor(
    readonly model: PeftModel,
    readonly trainExamples: readonly Example[],
    readonly evaluation: readonly Example[] | undefined,
    opts: TrainerOptions,
  ) {
    if (trainExamples.length === 0) throw new RangeError("Trainer: no training examples");
    validateTrainerOptions(opts as unknown as Record<string, unknown>);
    this.opts = {
      epochs: 3, batchSize: 16, gradientAccumulation: 1, lr: 2e-4, weightDecay: 0.01, headLrScale: 1, schedule: "linear", warmupRatio: 0.06, maxGradNorm: 1,
      seed: 42, dropout: true, gradientCheckpointing: false, maskedPositionsOnly: false, threads: 0, logEvery: 10, progress: host.stdoutIsTTY, resume: false, overwrite: false, ...opts,
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
    await appendFile(join(this.opts.outputDir, METRICS), `${JSON.stringify(entry)}\n`);
    this.opts.onLog?.(entry);
  }

  private print(line: string): void {
    (this.opts.print ?? console.log)(line);
  }

  /** Step of the newest checkpoint-last on disk (written or resumed from by this run). */
  private lastGoodStep: number | undefined;

  async train(): Promise<TrainResult> {
    const o = this.opts;
    await this.prepareOutput();
    const session = o.threads ? { threads: o.threads } : {};
    const step = await TrainStep.create(this.model.build({ withLoss: true, training: o.dropout, gradientCheckpointing: o.gradientCheckpointing, maskedPositionsOnly: o.maskedPositionsOnly }).outputs.loss!, { session, seed: o.seed });
    const heads = new Set(step.params.filter((p) => p.name.includes(".modules_to_save.")));
    const groups: ParamGroup[] = [{ params: step.params.filter((p) => !heads.has(p)) }, { params: [...heads], lrScale: o.headLrScale }].filter((g) => g.params.length > 0);
    const opt = new AdamW(groups, { lr: o.lr, weightDecay: o.weightDecay });
    const schedule = { kind: o.schedule, lr: o.lr, warmupSteps: Math.round(o.warmupRatio * this.totalSteps), totalSteps: this.totalSteps };
    const guard = new DivergenceGuard(o.divergence);
    let state: TrainerState = { step: 0, epoch: 0, batchInEpoch: 0, bestMetric: null, bestStep: null, badEvals: 0, lossSum: 0, lossCount: 0, divergence: guard.state };
    if (o.resume) {
      const restored = await this.restore(opt);
      if (restored) {
        // (Checkpoints of older versions lack the log and guard fields; they start fresh.)
        state = { ...state, ...restored };
        state.divergence = guard.state = restored.divergence ?? guard.state;
        this.lastGoodStep = state.step;
      }
      this.print(restored ? `resumed from ${join(o.outputDir, LAST)} at step ${state.step}` : `no checkpoint in ${o.outputDir} to resume from; starting at step 0`);
      await this.truncateLog(state.step);
    }
    // Evaluation batches are training-sized: where the runtime allows, the session reads the
    // frozen weights the step reads, with no copy of its own.
    const evaluator = this.evaluation ? await compile(this.evalOutputs(), trainingSessionOptions(session)) : undefined;

    const bar = o.progress ? createProgressBar("{bar} {percentage}% | step {value}/{total} | loss {loss} | lr {lr} | {tps} tok/s | ETA {eta_formatted}") : undefined;
    bar?.start(this.totalSteps, state.step, { loss: "-", lr: "-", tps: "-" });
    let stoppedEarly = false;
    let lastMetrics: Record<string, number> = {};
    const t0 = performance.now();
    let tokens = 0;
    // The batch order of the epoch in progress (recomputed when the epoch changes).
    let batches: number[][] = [];
    let batchesOf = -1;
    try {
      while (state.step < this.totalSteps) {
        if (batchesOf !== state.epoch) [batches, batchesOf] = [epochBatches(this.trainExamples, o.batchSize, o.seed, state.epoch), state.epoch];
        if (state.batchInEpoch >= batches.length) {
          [state.epoch, state.batchInEpoch] = [state.epoch + 1, 0]; // (a checkpoint from a run with more examples)
          continue;
        }
        const epoch = state.epoch;
        const micro = batches.slice(state.batchInEpoch, state.batchInEpoch + o.gradientAccumulation);
        let loss = 0;
        let grads: Map<string, Tensor> | undefined;
        for (const [m, b] of micro.entries()) {
          const examples = b.map((i) => this.trainExamples[i]!);
          tokens += examples.reduce((n, e) => n + e.ids.length, 0);
          let r;
          try {
            r = await step.run({ ...this.feeds(examples), [DROPOUT_KEY]: dropoutKey(o.seed, state.step, m) });
          } catch (e) {
            if (e instanceof NonFiniteLossError) throw this.diverged(state.step, `a non-finite loss (${e.loss})`);
            throw new TrainingStepError(`training step ${state.step + 1} (epoch ${epoch + 1}) failed on ${describeBatch(b, this.trainExamples)}: ${(e as Error).message}`, { cause: e });
          }
          loss += r.loss / micro.length;
          // The run's gradient arrays are fresh, so they are scaled and summed in place: no copy
          // of (for full fine-tuning) every weight's gradient per step.
          if (micro.length > 1) for (const g of r.grads.values()) (g.data as Float32Array).forEach((x, i, d) => (d[i] = x / micro.length));
          if (!grads) grads = r.grads;
          else for (const [k, g] of r.grads) (grads.get(k)!.data as Float32Array).forEach((x, i, d) => (d[i] = x + (g.data[i] as number)));
        }
        const norm = clipGradNorm(grads!.values(), o.maxGradNorm);
        if (!Number.isFinite(norm)) throw this.diverged(state.step, `the gradient norm is ${norm}`);
        const runaway = guard.observe(loss);
        if (runaway) throw this.diverged(state.step, runaway);
        opt.lr = learningRate(schedule, state.step);
        opt.step(grads!);
        this.model.afterStep(state.step + 1, grads!);
        state.step++;
        state.batchInEpoch += micro.length;
        state.lossSum += loss;
        state.lossCount++;
        // The epoch rolls over as soon as its last batch is used, so the next step (in this run
        // or a resumed one) takes the next epoch's order.
        const endOfEpoch = state.batchInEpoch >= batches.length;
        if (endOfEpoch) [state.epoch, state.batchInEpoch] = [epoch + 1, 0];
        const seconds = (performance.now() - t0) / 1000;
        bar?.update(state.step, { loss: loss.toFixed(4), lr: opt.lr.toExponential(2), tps: Math.round(tokens / seconds) });
        if (state.step % o.logEvery === 0 || state.step === 1) {
          // The mean over the steps since the last entry (transformers' Trainer logs the same).
          const mean = state.lossSum / state.lossCount;
          [state.lossSum, state.lossCount] = [0, 0];
          const entry = { step: state.step, epoch, loss: mean, lr: opt.lr, grad_norm: norm, tokens_per_s: tokens / seconds };
          if (!bar) this.print(`step ${state.step}/${this.totalSteps} loss ${mean.toFixed(4)} lr ${opt.lr.toExponential(2)} ${Math.round(tokens / seconds)} tok/s`);
          await this.log(entry);
        }
        const evalDue = evaluator && (o.evalEvery ? state.step % o.evalEvery === 0 : endOfEpoch);
        if (evalDue) {
          lastMetrics = await this.evaluate(evaluator);
          await this.log({ step: state.step, epoch, ...prefixed(lastMetrics) });
          const es = o.earlyStopping;
          const metric = es ? lastMetrics[es.metric] : undefined;
          if (es && metric === undefined) throw new RangeError(`early stopping metric "${es.metric}" is not computed; available: ${Object.keys(lastMetrics).join(", ")}`);
          const better = metric !== undefined && (state.bestMetric === null || ((es!.mode ?? "max") === "max" ? metric > state.bestMetric : metric < state.bestMetric));
          if (better) {
            state.bestMetric = metric!;
            state.bestStep = state.step;
            state.badEvals = 0;
          } else if (es) state.badEvals++;
          await this.checkpoint(state, opt, guard, better);
          if (es && state.badEvals >= es.patience) {
            stoppedEarly = true;
            break;
          }
        } else if (o.saveEvery && state.step % o.saveEvery === 0) await this.checkpoint(state, opt, guard);
      }
    } finally {
      bar?.stop();
      await step.release();
    }
    await this.checkpoint(state, opt, guard);
    if (evaluator) {
      lastMetrics = await this.evaluate(evaluator);
      await this.log({ step: state.step, epoch: state.epoch, ...prefixed(lastMetrics) });
      await evaluator.release();
    }
    const adapterDir = join(o.outputDir, ADAPTER);
    await writeDirAtomic(adapterDir, (staging) => this.model.save(staging));
    await writeReport(join(o.outputDir, REPORT), { title: `${modelName(this.model)} · ${this.model.activeAdapters.join(", ")}`, settings: o.settings, log: await this.readLog(), finalMetrics: lastMetrics, labels: this.labelNames, ...this.lastEvaluation });
    return { steps: state.step, finalMetrics: lastMetrics, bestMetric: state.bestMetric, bestStep: state.bestStep, stoppedEarly, adapterDir };
  }

  /**
   * Make the output folder ready: finish or undo the folder swaps of a killed run, then refuse a
   * folder that holds a previous run unless resuming it or told to overwrite it.
   */
  private async prepareOutput(): Promise<void> {
    const o = this.opts;
    await mkdir(o.outputDir, { recursive: true });
    for (const d of [LAST, BEST, ADAPTER]) for (const done of await recoverDir(join(o.outputDir, d))) this.print(`cleaned up after a killed run: ${done}`);
    // Temp files of writeFileAtomic (metrics.jsonl rewritten on resume, report.html) that a kill left.
    for (const f of await readdir(o.outputDir)) {
      if (!/^(metrics\.jsonl|report\.html)\.tmp-\d+-[0-9a-f]+$/.test(f)) continue;
      await rm(join(o.outputDir, f), { force: true });
      this.print(`cleaned up after a killed run: removed ${join(o.outputDir, f)}`);
    }
    const present = (await Promise.all(RUN_OUTPUTS.map(async (f) => ((await exists(join(o.outputDir, f))) ? f : undefined)))).filter((f) => f !== undefined);
    if (present.length === 0 || o.resume) return;
    if (!o.overwrite) {
      throw new OutputExistsError(`${o.outputDir} holds a previous run (${present.join(", ")}); resume it (--resume), replace it (--overwrite) or choose another output folder`);
    }
    for (const f of present) await rm(join(o.outputDir, f), { recursive: true, force: true });
    this.print(`overwriting the previous run in ${o.outputDir}`);
  }

  /** The log entries on disk (a line cut short by a kill is skipped). */
  private async readLog(): Promise<Record<string, unknown>[]> {
    let text: string;
    try {
      text = await readFile(join(this.opts.outputDir, METRICS), "utf8");
    } catch {
      return [];
    }
    return text.split("\n").flatMap((l) => {
      try {
        return l.trim() ? [JSON.parse(l) as Record<string, unknown>] : [];
      } catch {
        return [];
      }
    });
  }

  /** A resumed run drops what the killed run logged after its checkpoint: it logs those steps again. */
  private async truncateLog(step: number): Promise<void> {
    const path = join(this.opts.outputDir, METRICS);
    if (!(await exists(path))) return;
    const kept = (await this.readLog()).filter((e) => typeof e.step === "number" && e.step <= step);
    await writeFileAtomic(path, kept.map((e) => `${JSON.stringify(e)}\n`).join(""));
  }

  private diverged(step: number, why: string): TrainingDivergedError {
    const dir = join(this.opts.outputDir, LAST);
    const where = this.lastGoodStep !== undefined
      ? `The last good checkpoint is ${dir} (step ${this.lastGoodStep}); resume from it with a lower learning rate or stronger gradient clipping`
      : "No checkpoint was saved before it; lower the learning rate or clip gradients harder";
    return new TrainingDivergedError(`training diverged at step ${step + 1}: ${why}. ${where}`);
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
    const session = compiled ?? (await compile(this.evalOutputs(), trainingSessionOptions(this.opts.threads ? { threads: this.opts.threads } : {})));
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

  /**
   * Write checkpoint-last (and checkpoint-best when `best`) as whole folders, each swapped in at
   * once. A state that is not worth resuming from (a rising loss, non-finite or huge weights) is
   * not written: checkpoint-last keeps the last good one.
   */
  private async checkpoint(state: TrainerState, opt: AdamW, guard: DivergenceGuard, best = false): Promise<void> {
    const bad = this.unsound(guard);
    if (bad) {
      this.print(`step ${state.step}: not saved as a checkpoint (${bad}); ${this.lastGoodStep === undefined ? "no checkpoint yet" : `${LAST} stays at step ${this.lastGoodStep}`}`);
      return;
    }
    const stateJson = JSON.stringify(state, null, 2);
    await writeDirAtomic(join(this.opts.outputDir, LAST), async (dir) => {
      await this.model.save(dir);
      const { step, moments } = opt.state();
      await writeSafetensors(join(dir, OPTIMIZER), moments, { step: String(step) });
      // Every adapter tensor as trained (PEFT's files may hold derived tensors, e.g. P-tuning's
      // encoder output), so a resumed run continues exactly.
      const tensors = new Map<string, Tensor>();
      for (const [name, adapter] of this.model.adapters) {
        for (const [k, t] of adapter.tensors) tensors.set(`${name}/${k}`, t);
        for (const [k, t] of adapter.trainingState?.() ?? []) tensors.set(`${name}${TRAINING_STATE}${k}`, t);
      }
      await writeSafetensors(join(dir, TENSORS), tensors);
      await writeFileAtomic(join(dir, STATE), stateJson);
    });
    this.lastGoodStep = state.step;
    if (best) {
      await writeDirAtomic(join(this.opts.outputDir, BEST), async (dir) => {
        await this.model.save(dir);
        await writeFileAtomic(join(dir, STATE), stateJson);
      });
    }
  }

  /** Why the current state should not become "last good" (undefined: it is sound). */
  private unsound(guard: DivergenceGuard): string | undefined {
    if (guard.rising) return `the loss is rising: smoothed ${guard.smoothed.toPrecision(4)}, best ${guard.state.best?.toPrecision(4)}`;
    for (const [name, adapter] of this.model.adapters) {
      for (const [k, t] of adapter.tensors) {
        for (const x of t.data as Float32Array) {
          if (!(Math.abs(x) <= MAX_SANE_WEIGHT)) return `adapter "${name}" tensor ${k} holds ${x}`;
        }
      }
    }
    return undefined;
  }

  /** Restore adapters, optimizer and loop state from checkpoint-last, if there is one. */
  private async restore(opt: AdamW): Promise<TrainerState | undefined> {
    const dir = join(this.opts.outputDir, LAST);
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
      const prefix = `${name}${TRAINING_STATE}`;
      const own = new Map(saved.names().filter((n) => n.startsWith(prefix)).map((n) => [n.slice(prefix.length), saved.get(n)]));
      if (adapter.loadTrainingState) adapter.loadTrainingState(own, join(dir, TENSORS));
    }
    const o = await readSafetensors(join(dir, OPTIMIZER));
    opt.loadState({ step: Number(o.metadata.step), moments: new Map(o.names().map((n) => [n, o.get(n)])) }, join(dir, OPTIMIZER));
    return state;
  }
}

const exists = (path: string) => stat(path).then(() => true, () => false);

/** The model as the user named it (a hub id, or a folder's name rather than a path of this machine). */
function modelName(model: PeftModel): string {
  const name = model.base.nameOrPath ?? model.base.dir;
  return isAbsolute(name) || name.startsWith(".") ? basename(name) : name;
}

/** Which training examples a batch holds (positions in the training set), for error messages. */
function describeBatch(indices: readonly number[], examples: readonly Example[]): string {
  const more = indices.length > 8 ? `, ... (${indices.length} in all)` : "";
  const sources = indices.slice(0, 8).map((i) => examples[i]?.source);
  if (sources.every((x) => x !== undefined)) return `${sources.join(", ")}${more}`;
  return `training examples ${indices.slice(0, 8).join(", ")}${more} (positions in the training set)`;
}

function prefixed(m: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(m).map(([k, v]) => [`eval_${k}`, v]));
}
