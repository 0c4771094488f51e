// Learning-rate schedules with linear warmup, as transformers' get_*_schedule_with_warmup.

export type ScheduleKind = "constant" | "linear" | "cosine";

export interface ScheduleOptions {
  kind: ScheduleKind;
  /** Peak learning rate (reached at the end of warmup). */
  lr: number;
  /** Optimizer steps of linear warmup from 0 (default 0). */
  warmupSteps?: number;
  /** Total optimizer steps (required for linear and cosine decay). */
  totalSteps?: number;
}

/**
 * The learning rate at optimizer step `step` (0-based: the rate used for the update that step
 * makes). Warmup: lr * step / warmup. Then constant; linear to 0 at totalSteps; or half a cosine
 * to 0 at totalSteps.
 */
export function learningRate(opts: ScheduleOptions, step: number): number {
  const warmup = opts.warmupSteps ?? 0;
  if (step < warmup) return (opts.lr * step) / Math.max(1, warmup);
  if (opts.kind === "constant") return opts.lr;
  const total = opts.totalSteps;
  if (total === undefined || total <= warmup) throw new RangeError(`a ${opts.kind} schedule needs totalSteps > warmupSteps (got ${total} and ${warmup})`);
  const progress = Math.min(1, (step - warmup) / (total - warmup));
  return opts.kind === "linear" ? opts.lr * (1 - progress) : opts.lr * 0.5 * (1 + Math.cos(Math.PI * progress));
}
