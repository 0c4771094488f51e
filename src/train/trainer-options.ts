// The Trainer's options as data with a schema: the library API refuses what the CLI refuses
// (a batch size of 0 would loop forever, a negative learning rate trains backwards), and a
// mistyped key is an error that suggests the nearest known one instead of being ignored.
import { z } from "zod";
import { didYouMean } from "../io/did-you-mean.js";

const int = (min: number) => z.int().min(min);
const fn = z.custom<(...args: never[]) => unknown>((v) => typeof v === "function", "a function");

/** Every TrainerOptions field, its type and range (see TrainerOptions for what each means). */
const SCHEMA = z.strictObject({
  outputDir: z.string().min(1),
  epochs: int(1),
  maxSteps: int(1),
  batchSize: int(1),
  gradientAccumulation: int(1),
  lr: z.number().gt(0).finite(),
  weightDecay: z.number().min(0).finite(),
  headLrScale: z.number().min(0).finite(),
  schedule: z.enum(["constant", "linear", "cosine"]),
  warmupRatio: z.number().min(0).lt(1),
  maxGradNorm: z.number().gt(0),
  evalEvery: int(1),
  saveEvery: int(1),
  earlyStopping: z.strictObject({ metric: z.string().min(1), patience: int(1), mode: z.enum(["max", "min"]).optional() }),
  seed: int(0).max(2 ** 32 - 1),
  dropout: z.boolean(),
  gradientCheckpointing: z.boolean(),
  maskedPositionsOnly: z.boolean(),
  threads: int(0),
  logEvery: int(1),
  progress: z.boolean(),
  resume: z.boolean(),
  overwrite: z.boolean(),
  divergence: z.union([z.literal(false), z.strictObject({ factor: z.number().gt(1).finite().optional(), patience: int(1).optional(), minRise: z.number().min(0).finite().optional() })]),
  settings: z.record(z.string(), z.unknown()),
  onLog: fn,
  print: fn,
}).partial().required({ outputDir: true });

/** Keys of the nested option objects, for "did you mean". */
const NESTED_KEYS: Record<string, string[]> = { divergence: ["factor", "patience", "minRise"], earlyStopping: ["metric", "patience", "mode"] };

/**
 * Check options given to the Trainer; throws a RangeError naming the first bad field, e.g.
 * `TrainerOptions.batchSize: expected an integer >= 1, got 0`. Undefined values mean "default".
 */
export function validateTrainerOptions(opts: Readonly<Record<string, unknown>>): void {
  if (typeof opts.outputDir !== "string" || opts.outputDir === "") throw new RangeError(`TrainerOptions.outputDir: expected a non-empty path, got ${JSON.stringify(opts.outputDir)}`);
  const given = Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined));
  const r = SCHEMA.safeParse(given);
  if (r.success) return;
  const issue = r.error.issues[0]!;
  if (issue.code === "unrecognized_keys") {
    const key = issue.keys[0]!;
    const where = issue.path.length ? `TrainerOptions.${issue.path.join(".")}` : "TrainerOptions";
    const known = issue.path.length ? (NESTED_KEYS[String(issue.path[0])] ?? []) : Object.keys(SCHEMA.shape);
    throw new RangeError(`${where}: unknown option "${key}"${didYouMean(key, known)}`);
  }
  const path = issue.path.join(".");
  let value: unknown = given;
  for (const k of issue.path) value = (value as Record<PropertyKey, unknown> | undefined)?.[k as PropertyKey];
  const shown = typeof value === "function" ? "a function" : typeof value === "number" || value === undefined ? String(value) : JSON.stringify(value);
  throw new RangeError(`TrainerOptions.${path}: ${issue.message.replace(/^(Too small|Too big|Invalid input|Invalid option): /, "").replace(/, received .*$/, "")}, got ${shown}`);
}
