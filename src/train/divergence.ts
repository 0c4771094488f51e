// The divergence guard: notices a training loss that has run away (a learning rate far too high,
// a poisoned batch) and says so, instead of training on to the end and saving a broken adapter.

/**
 * When a run counts as diverged. The rule, checked after every optimizer step:
 *
 *   smoothed = bias-corrected exponential moving average of the step loss (weight 0.9 on the past,
 *              as fastai's learning-rate finder smooths it)
 *   best     = the lowest smoothed loss so far
 *   rising   = smoothed > factor * best  and  smoothed > best + minRise
 *
 * The run has diverged after `patience` rising steps in a row. `minRise` keeps a loss that has
 * nearly reached zero (0.002 -> 0.01) from counting; a NaN or infinite loss is divergence at once.
 */
export interface DivergenceOptions {
  /** How many times its best the smoothed loss must reach (default 4, fastai's LR finder's stop). */
  factor?: number;
  /** Rising steps in a row before stopping (default 5). */
  patience?: number;
  /** And by at least this much, in loss units (default 1: one nat for cross-entropy). */
  minRise?: number;
}

export const DIVERGENCE_DEFAULTS: Required<DivergenceOptions> = { factor: 4, patience: 5, minRise: 1 };

const BETA = 0.9;

/** The guard's state: plain numbers, saved in a checkpoint so a resumed run judges alike. */
export interface DivergenceState {
  /** Steps observed. */
  steps: number;
  /** The moving average before bias correction. */
  average: number;
  /** Lowest smoothed loss so far (null before the first step). */
  best: number | null;
  /** Rising steps in a row. */
  streak: number;
}

export class DivergenceGuard {
  readonly opts: Required<DivergenceOptions>;
  /** False when the guard is switched off (`divergence: false`): it then never stops a run. */
  readonly enabled: boolean;
  state: DivergenceState = { steps: 0, average: 0, best: null, streak: 0 };

  constructor(opts: DivergenceOptions | false | undefined) {
    this.enabled = opts !== false;
    this.opts = opts === false ? { ...DIVERGENCE_DEFAULTS, patience: Infinity } : { ...DIVERGENCE_DEFAULTS, ...opts };
    const { factor, patience, minRise } = this.opts;
    if (!(factor > 1)) throw new RangeError(`divergence.factor must be > 1, got ${factor}`);
    if (!(patience >= 1)) throw new RangeError(`divergence.patience must be >= 1, got ${patience}`);
    if (!(minRise >= 0)) throw new RangeError(`divergence.minRise must be >= 0, got ${minRise}`);
  }

  get smoothed(): number {
    return this.state.average / (1 - BETA ** this.state.steps);
  }

  /**
   * Record one step's loss. Returns why the run has diverged, or undefined while it has not.
   * (A non-finite loss is reported by the caller before it gets here.)
   */
  observe(loss: number): string | undefined {
    const s = this.state;
    s.steps++;
    s.average = BETA * s.average + (1 - BETA) * loss;
    const smoothed = this.smoothed;
    const { factor, minRise, patience } = this.opts;
    const rising = s.best !== null && smoothed > factor * s.best && smoothed > s.best + minRise;
    s.streak = rising ? s.streak + 1 : 0;
    if (s.best === null || smoothed < s.best) s.best = smoothed;
    if (s.streak >= patience) {
      return `the smoothed loss rose to ${smoothed.toPrecision(4)}, over ${factor}x its best ${s.best.toPrecision(4)}, for ${s.streak} steps in a row`;
    }
    return undefined;
  }

  /** Whether the loss is currently rising (a state not to save as "last good"). */
  get rising(): boolean {
    return this.enabled && this.state.streak > 0;
  }
}
