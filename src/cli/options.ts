// Every command-line option, declared once: type, range, default and help text. Commander's flags
// are generated from these declarations, and flags and --config files (JSON or YAML) validate
// through the same zod schema, so `--lr -1` and `lr: -1` in a file fail alike, and an unknown key
// is an error that suggests the nearest known one.
import { readFile } from "node:fs/promises";
import { Option, type Command } from "commander";
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import { didYouMean } from "../io/did-you-mean.js";
import { TASKS } from "../models/task.js";
import { type DataTask } from "../train/data.js";

/** A bad option value: one line naming the option (and its config file), expected and actual. */
export class OptionError extends Error {
  constructor(message: string, readonly hint: string) {
    super(message);
  }
}

/** One option: its schema (type, range, presence), help, and how its flag text becomes a value. */
export interface OptionSpec<Out = unknown> {
  // any: the input side differs per option (a list also takes "a,b" in a config file).
  schema: z.ZodType<Out, any>;
  help: string;
  /** What a valid value looks like, in errors: "an integer >= 1". */
  expected: string;
  /** The flag's value placeholder (`--lr <rate>`); absent for on/off switches. */
  arg?: string;
  /** Flag text -> value; a repeated flag folds into `previous`. Text that does not convert is kept as is, for the schema to reject. */
  fromFlag?: (text: string, previous: unknown) => unknown;
  /** Shown in the help. */
  defaultValue?: unknown;
  /** Said in the help after the text, e.g. the range. */
  note?: string;
}

export type OptionSpecs = Record<string, OptionSpec>;
/** The validated options of a command (defaults applied). */
export type Options<T extends OptionSpecs> = { [K in keyof T]: T[K] extends OptionSpec<infer O> ? O : never };

type Presence<T> = { required: true } | { default: T } | { required?: false; default?: undefined };
type Present<T, P> = P extends { required: true } ? T : P extends { default: T } ? T : T | undefined;

// any: as in OptionSpec.schema.
function finish<T, P extends Presence<T>>(schema: z.ZodType<T, any>, presence: P, spec: Omit<OptionSpec, "schema">): OptionSpec<Present<T, P>> {
  const s = "default" in presence && presence.default !== undefined ? schema.default(presence.default as never) : "required" in presence && presence.required ? schema : schema.optional();
  return { ...spec, schema: s as z.ZodType<Present<T, P>>, ...("default" in presence && presence.default !== undefined ? { defaultValue: presence.default } : {}) };
}

interface Range {
  /** Inclusive bounds. */
  min?: number;
  max?: number;
  /** Exclusive bounds. */
  gt?: number;
  lt?: number;
}

const rangeText = (r: Range) =>
  [r.min !== undefined && `>= ${r.min}`, r.gt !== undefined && `> ${r.gt}`, r.max !== undefined && `<= ${r.max}`, r.lt !== undefined && `< ${r.lt}`].filter(Boolean).join(" and ");

/** Flag text -> number; text that is not one stays text, and the schema names it. */
const toNumber = (text: string) => (text.trim() !== "" && Number.isFinite(Number(text)) ? Number(text) : text);

function numeric<P extends Presence<number>>(integer: boolean, range: Range & P, help: string, arg: string): OptionSpec<Present<number, P>> {
  let s: z.ZodNumber = integer ? z.int() : z.number();
  if (range.min !== undefined) s = s.min(range.min);
  if (range.gt !== undefined) s = s.gt(range.gt);
  if (range.max !== undefined) s = s.max(range.max);
  if (range.lt !== undefined) s = s.lt(range.lt);
  const bounds = rangeText(range);
  const kind = integer ? "an integer" : "a number";
  return finish(s, range, { help, arg, expected: bounds ? `${kind} ${bounds}` : kind, note: `${integer ? "integer" : "number"}${bounds ? ` ${bounds}` : ""}`, fromFlag: toNumber });
}

/** An integer option, e.g. `integer({ min: 1, default: 16 }, "examples per batch")`. */
export const integer = <P extends Presence<number>>(range: Range & P, help: string, arg = "<n>") => numeric(true, range, help, arg);
/** A real-valued option, e.g. `number({ gt: 0, default: 2e-4 }, "peak learning rate", "<rate>")`. */
export const number = <P extends Presence<number>>(range: Range & P, help: string, arg = "<x>") => numeric(false, range, help, arg);

/** A non-empty string (a path, a model id, a prompt when `allowEmpty`). */
export function text<P extends Presence<string>>(presence: P & { allowEmpty?: boolean }, help: string, arg: string): OptionSpec<Present<string, P>> {
  return finish(presence.allowEmpty ? z.string() : z.string().min(1), presence, { help, arg, expected: presence.allowEmpty ? "a string" : "a non-empty string" });
}

/** One of a fixed set of values. */
export function choice<const V extends string, P extends Presence<V>>(values: readonly V[], presence: P, help: string, arg: string): OptionSpec<Present<V, P>> {
  return finish(z.enum(values as [V, ...V[]]), presence, { help, arg, expected: `one of ${values.join(", ")}`, note: values.join(" | ") });
}

/** An on/off switch (`--resume`; `resume: true` in a config file). */
export function flag(help: string): OptionSpec<boolean | undefined> {
  return finish(z.boolean(), {}, { help, expected: "true or false" });
}

/** A list: comma-separated after one flag (`--target-modules q,v`), or the words after a variadic flag (`--text a b`); an array or a comma-separated string in a config file. */
export function list<P extends Presence<string[]>>(presence: P & { variadic?: boolean }, help: string, arg: string): OptionSpec<Present<string[], P>> {
  const split = (s: string) => s.split(",").map((x) => x.trim()).filter(Boolean);
  const schema = z.preprocess((v) => (typeof v === "string" && !presence.variadic ? split(v) : v), z.array(presence.variadic ? z.string() : z.string().min(1)).min(1)) as unknown as z.ZodType<string[]>;
  // A comma list stays text here: the schema splits it, and an error shows it as typed.
  const fromFlag = presence.variadic ? (t: string, prev: unknown) => [...(Array.isArray(prev) ? (prev as string[]) : []), t] : (t: string) => t;
  return finish(schema, presence, { help, arg: presence.variadic ? `${arg.slice(0, -1)}...>` : arg, expected: presence.variadic ? "one or more values" : "a non-empty comma-separated list (or an array)", fromFlag });
}

/** `--peft key=value` (repeatable, JSON values): an object of extra settings; an object in a config file. */
export function keyValues(help: string): OptionSpec<Record<string, unknown> | undefined> {
  const fromFlag = (t: string, prev: unknown) => {
    const i = t.indexOf("=");
    // Kept as text (and kept when later flags follow): the schema reports "expected key=value pairs, got ...".
    if (i <= 0 || typeof prev === "string") return typeof prev === "string" ? prev : t;
    let value: unknown = t.slice(i + 1);
    try {
      value = JSON.parse(value as string);
    } catch {
      // a plain string
    }
    return { ...(prev && typeof prev === "object" ? prev : {}), [t.slice(0, i)]: value };
  };
  return finish(z.record(z.string(), z.unknown()), {}, { help, arg: "<key=value>", expected: "key=value pairs (an object in a config file)", fromFlag });
}

const TASK_NAMES = TASKS as readonly (typeof TASKS)[number][];

// Options several commands share, declared once.
const model = text({ required: true }, "checkpoint directory or hub repo id", "<dir|repo>");
const adapter = text({}, "adapter directory", "<dir>");
const task = <const V extends (typeof TASKS)[number]>(help: string, tasks: readonly V[] = TASK_NAMES as readonly V[]) => choice(tasks, {}, help, "<task>");
/** The tasks examples are built for from data files (train, eval) and those predict prints. */
const DATA_TASKS = ["sequence-classification", "token-classification", "question-answering", "causal-lm"] as const satisfies readonly DataTask[];
const PREDICT_TASKS = ["sequence-classification", "token-classification", "question-answering"] as const;
const threads = integer({ min: 1 }, "CPU threads (default: all cores)");
const batchSize = integer({ min: 1, default: 16 }, "examples per batch");
const docStride = integer({ min: 0 }, "QA: tokens shared by the overlapping windows a long context is cut into (default min(128, half a window))");
const seed = (value: number, help = "random seed") => integer({ min: 0, max: 2 ** 32 - 1, default: value }, help);
const quantize = choice(["int8"], {}, "store the frozen base's linear weights in int8 (per output channel; activations quantized at run time): ~4x less weight memory, faster GEMMs; heads, norms, embeddings and adapters stay float32", "<kind>");
const quantizeInference = choice(["int8", "int4"], {}, "store the frozen base's linear weights in int8 (per output channel; activations quantized at run time) or int4 (blocks of 32, ONNX Runtime's MatMulNBits); heads, norms, embeddings and adapters stay float32", "<kind>");
const config = text({}, "options from a JSON or YAML file (keys as the flags, e.g. `batch-size: 8`); flags given here win", "<file>");

/** `metric:patience`, e.g. `f1:3` (patience 3 when left out); loss is minimized, other metrics maximized. */
const earlyStopping = {
  schema: z
    .string()
    .regex(/^[A-Za-z_][\w.]*(:[1-9]\d*)?$/)
    .transform((s) => {
      const [metric, patience] = s.split(":");
      return { metric: metric!, patience: Number(patience ?? 3), mode: metric === "loss" || metric?.endsWith("_loss") ? ("min" as const) : ("max" as const) };
    })
    .optional(),
  help: "stop when a metric has not improved for `patience` evaluations, e.g. f1:3",
  arg: "<metric:patience>",
  expected: "metric:patience with patience an integer >= 1, e.g. f1:3",
} satisfies OptionSpec;

/** `factor:patience`, e.g. `4:5` (the trainer's divergence guard), or `off`. */
const divergence = {
  schema: z
    .union([z.literal("off"), z.string().regex(/^\d+(\.\d+)?:[1-9]\d*$/)])
    .transform((s) => {
      if (s === "off") return false as const;
      const [factor, patience] = s.split(":").map(Number);
      return { factor: factor!, patience: patience! };
    })
    .refine((d) => d === false || d.factor > 1)
    .optional(),
  help: "stop when the smoothed loss stays above factor x its best (and 1 above it) for patience steps; off disables (default 4:5)",
  arg: "<factor:patience|off>",
  expected: "factor:patience with factor > 1 and patience an integer >= 1 (e.g. 4:5), or off",
} satisfies OptionSpec;

/** The options of every command; `methods` are the PEFT method names `--method` takes. */
export function commandOptions(methods: readonly string[]) {
  return {
    train: {
      model,
      data: text({ required: true }, "training data (.jsonl or .csv): text + label (classification), tokens + tags (tagging), question + context + answers (QA), or text (language modeling)", "<file>"),
      eval: text({}, "evaluation data (default: --val-split of the training data)", "<file>"),
      valSplit: number({ min: 0, lt: 1, default: 0.1 }, "held-out fraction when --eval is not given (0: none)", "<fraction>"),
      task: task(`the task (default: guessed from the data's fields)`, DATA_TASKS),
      method: choice(methods, { default: "lora" }, "PEFT method (`peftjs methods` lists each one's fields)", "<name>"),
      output: text({ default: "peftjs-output" }, "output directory", "<dir>"),
      overwrite: flag("replace the output directory's earlier run (otherwise an existing output is refused unless --resume)"),
      resume: flag("continue from <output>/checkpoint-last"),
      epochs: integer({ min: 1, default: 3 }, "training epochs"),
      maxSteps: integer({ min: 1 }, "optimizer steps (overrides --epochs)"),
      batchSize,
      gradAccum: integer({ min: 1, default: 1 }, "batches per optimizer step"),
      lr: number({ gt: 0, default: 2e-4 }, "peak learning rate", "<rate>"),
      headLrScale: number({ min: 0, default: 1 }, "learning-rate multiplier for the task head"),
      weightDecay: number({ min: 0, default: 0.01 }, "AdamW weight decay", "<w>"),
      schedule: choice(["linear", "cosine", "constant"], { default: "linear" }, "learning-rate schedule", "<kind>"),
      warmupRatio: number({ min: 0, lt: 1, default: 0.06 }, "fraction of steps warming up", "<r>"),
      maxLength: integer({ min: 1 }, "truncate inputs to this many tokens; default 128, or the model's positions when fewer"),
      docStride,
      evalEvery: integer({ min: 1 }, "evaluate every n steps (default: each epoch)"),
      earlyStopping,
      divergence,
      seed: seed(42),
      threads,
      quantize,
      gradientCheckpointing: flag("recompute activations in the backward pass"),
      r: integer({ min: 1 }, "LoRA rank"),
      loraAlpha: number({ gt: 0 }, "LoRA alpha", "<a>"),
      loraDropout: number({ min: 0, lt: 1 }, "LoRA dropout", "<p>"),
      targetModules: list({}, "modules to adapt, comma-separated (or all-linear)", "<list>"),
      modulesToSave: list({}, "modules trained in full and saved, comma-separated", "<list>"),
      numVirtualTokens: integer({ min: 1 }, "prompt / prefix length"),
      reductionFactor: number({ gt: 0 }, "bottleneck adapter reduction factor", "<n>"),
      format: choice(["peft", "adapterhub"], { default: "peft" }, "the final adapter's layout: Hugging Face PEFT's, or AdapterHub's (bottleneck adapters; its model.load_adapter reads it)", "<layout>"),
      peft: keyValues("any field of the method, JSON values (repeatable; `peftjs methods <name>` lists them)"),
      config,
    },
    eval: {
      model,
      data: text({ required: true }, "evaluation data (.jsonl or .csv)", "<file>"),
      adapter,
      task: task("task (default: the adapter's, else guessed from the data)", DATA_TASKS),
      maxLength: integer({ min: 1 }, "truncate inputs to this many tokens; default 128, or the model's positions when fewer"),
      docStride,
      batchSize,
      quantize: quantizeInference,
      config,
    },
    predict: {
      model,
      adapter,
      task: task("default: the adapter's, else guessed from the data", PREDICT_TASKS),
      text: list({ variadic: true }, "texts to classify, or to tag word by word (split on whitespace)", "<text>"),
      question: text({ allowEmpty: true }, "a question about --context", "<text>"),
      context: text({ allowEmpty: true }, "the passage --question is about", "<text>"),
      data: text({}, "a .jsonl/.csv file: text (classification), tokens (tagging), or question + context (QA)", "<file>"),
      maxLength: integer({ min: 1 }, "truncate inputs (QA: the window length); default the longest the model takes, at most 512"),
      docStride,
      batchSize,
      threads,
      quantize: quantizeInference,
      config,
    },
    generate: {
      model,
      prompt: text({ required: true, allowEmpty: true }, "prompt", "<text>"),
      adapter,
      maxNewTokens: integer({ min: 1, default: 64 }, "tokens to generate"),
      temperature: number({ min: 0, default: 0 }, "sampling temperature; 0 = greedy", "<t>"),
      topK: integer({ min: 1 }, "sample from the k most likely tokens", "<k>"),
      topP: number({ gt: 0, max: 1 }, "nucleus sampling threshold", "<p>"),
      seed: seed(0, "sampling seed"),
      quantize: quantizeInference,
      config,
    },
    merge: {
      model: text({ required: true }, "base checkpoint directory or hub repo id", "<dir|repo>"),
      adapter: text({ required: true }, "adapter directory", "<dir>"),
      output: text({ required: true }, "where to write the merged checkpoint (not the model's or the adapter's folder)", "<dir>"),
      task: task("the adapter's task (default: recorded in the adapter, else the bare model)"),
      config,
    },
    export: {
      model: text({ required: true }, "base checkpoint directory or hub repo id", "<dir|repo>"),
      adapter: text({}, "adapter directory (merged into the weights; default: the model as it is)", "<dir>"),
      output: text({ required: true }, "where to write the transformers.js folder (not the model's or the adapter's folder)", "<dir>"),
      task: task("head to export (default: recorded in the adapter, else config.json's architectures)"),
      quantize: choice(["int8"], {}, "also write onnx/model_quantized.onnx: int8 weights per channel, activations quantized at run time", "<kind>"),
      config,
    },
    demo: {
      model: text({}, "encoder checkpoint (default: the one shipped in models/encoder-mini)", "<dir>"),
      output: text({ default: "peftjs-demo" }, "where adapters and reports go", "<dir>"),
      perClass: integer({ min: 1, default: 400 }, "examples per class"),
      epochs: integer({ min: 1, default: 4 }, "epochs"),
      threads,
      config,
    },
    pretrain: {
      kind: choice(["encoder", "decoder"], { required: true }, "model kind", "<kind>"),
      output: text({ required: true }, "checkpoint directory to write", "<dir>"),
      corpus: list({ variadic: true }, "text files (.txt, or .jsonl with a text field); default: the built-in corpus (Moby-Dick + State of the Union addresses before 1900)", "<file>"),
      vocabSize: integer({ min: 300, default: 8192 }, "BPE vocabulary size (the 256 bytes, special tokens, then merges)"),
      hidden: integer({ min: 1, default: 256 }, "hidden size (a multiple of --heads)"),
      layers: integer({ min: 1, default: 4 }, "transformer layers"),
      heads: integer({ min: 1, default: 4 }, "attention heads"),
      steps: integer({ min: 1, default: 600 }, "optimizer steps"),
      batchSize: integer({ min: 1, default: 32 }, "128-token blocks per step"),
      lr: number({ gt: 0 }, "peak learning rate (default 5e-4 encoder, 1e-3 decoder)", "<rate>"),
      warmupRatio: number({ min: 0, lt: 1 }, "fraction of steps warming up (default 0.1 encoder, 0.05 decoder)", "<r>"),
      seed: seed(1),
      threads,
      resume: flag("continue an interrupted run from <output>/pretraining/checkpoint-last (give the same options)"),
      overwrite: flag("replace an earlier run in <output> (otherwise one is refused unless --resume)"),
      config,
    },
    "quantize-adapter": {
      adapter: text({ required: true }, "float32 adapter directory (PEFT layout)", "<dir>"),
      output: text({ required: true }, "where to write the INT8 adapter (adapter_model.int8.safetensors; a peftjs format Python PEFT cannot read)", "<dir>"),
      config,
    },
    info: {
      adapter,
      task: task("head to inspect (default: the adapter's task, else the bare model)"),
      config,
    },
  } as const satisfies Record<string, OptionSpecs>;
}

const kebab = (key: string) => key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
const camel = (key: string) => key.replace(/[-_]([a-z0-9])/g, (_, c: string) => c.toUpperCase());
const flagName = (key: string) => `--${kebab(key)}`;

/** Commander options from the specs: flags, placeholders and help, with no defaults (the schema applies them). */
export function addOptions(cmd: Command, specs: OptionSpecs): Command {
  for (const [key, spec] of Object.entries(specs)) {
    const extras = [spec.note, spec.defaultValue !== undefined && `default ${Array.isArray(spec.defaultValue) ? spec.defaultValue.join(",") : String(spec.defaultValue)}`].filter(Boolean);
    const option = new Option(`${flagName(key)}${spec.arg ? ` ${spec.arg}` : ""}`, `${spec.help}${extras.length ? ` (${extras.join("; ")})` : ""}`);
    if (spec.fromFlag) option.argParser(spec.fromFlag);
    cmd.addOption(option);
  }
  return cmd;
}

/** A flag's name as typed on the command line, e.g. for "did you mean --lr?". */
export const flagNames = (specs: OptionSpecs) => Object.keys(specs).map(flagName);

/** The options read from a config file, keys as written (kebab-case, snake_case or camelCase). */
export interface ConfigFile {
  path: string;
  values: Record<string, unknown>;
}

/** Read a JSON (.json) or YAML (anything else) file of options. */
export async function readConfigFile(path: string): Promise<ConfigFile> {
  const text = await readFile(path, "utf8").catch((e: Error) => {
    throw new OptionError(`cannot read config file ${path}: ${e.message}`, "pass a JSON or YAML file with --config");
  });
  let v: unknown;
  try {
    v = path.endsWith(".json") ? JSON.parse(text) : parseYaml(text);
  } catch (e) {
    throw new OptionError(`${path}: ${(e as Error).message.split("\n")[0]}`, "the config file holds the same options as the flags, e.g. `epochs: 3`");
  }
  if (v === null || v === undefined) v = {}; // an empty file
  if (typeof v !== "object" || Array.isArray(v)) throw new OptionError(`${path}: expected an object of options (key: value), got ${Array.isArray(v) ? "a list" : JSON.stringify(v)}`, "the config file holds the same options as the flags, e.g. `epochs: 3`");
  return { path, values: v as Record<string, unknown> };
}

const show = (v: unknown): string => {
  if (v === undefined) return "nothing";
  if (typeof v === "string") return JSON.stringify(v);
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
};

const SOURCES = new WeakMap<object, Map<string, string>>();

/**
 * Validate a command's options: `flags` (as commander parsed them; only those typed) over the
 * config file's values, defaults applied. Throws one-line OptionErrors naming the option, where it
 * came from, and the expected and actual value.
 *
 *   const o = parseOptions(commandOptions(["lora"]).train, { model: "m", data: "d.jsonl", lr: 0.01 });
 *   o.epochs; // 3
 */
export function parseOptions<T extends OptionSpecs>(specs: T, flags: Record<string, unknown>, file?: ConfigFile): Options<T> {
  const fromFile = new Map<string, string>(); // option key -> the key as written in the file
  const values: Record<string, unknown> = {};
  for (const [written, v] of Object.entries(file?.values ?? {})) {
    const key = camel(written);
    if (key === "config") throw new OptionError(`${file!.path}: "${written}": a config file cannot name another config file`, "merge the two files");
    if (!(key in specs)) {
      const style = written.includes("_") ? (k: string) => kebab(k).replace(/-/g, "_") : written.includes("-") || /^[a-z0-9]+$/.test(written) ? kebab : (k: string) => k;
      throw new OptionError(`${file!.path}: unknown option "${written}"${didYouMean(written, Object.keys(specs), (k) => `"${style(k)}"`)}`, `options of this command: ${Object.keys(specs).filter((k) => k !== "config").map(kebab).join(", ")}`);
    }
    fromFile.set(key, written);
    values[key] = v;
  }
  for (const [key, v] of Object.entries(flags)) {
    if (v === undefined) continue;
    values[key] = v;
    fromFile.delete(key);
  }
  const schema = z.strictObject(Object.fromEntries(Object.entries(specs).map(([k, s]) => [k, s.schema])));
  const result = schema.safeParse(values);
  if (result.success) {
    SOURCES.set(result.data, new Map(Object.keys(values).map((k) => [k, fromFile.has(k) ? `${file!.path}: ${fromFile.get(k)}` : flagName(k)])));
    return result.data as Options<T>;
  }
  const issue = result.error.issues[0]!;
  const key = String(issue.path[0] ?? "");
  const spec = specs[key];
  if (!spec) throw new OptionError(issue.message, "run the command with --help");
  const written = fromFile.get(key);
  const where = written !== undefined ? `${file!.path}: ${written}` : flagName(key);
  if (values[key] === undefined) throw new OptionError(`missing option ${flagName(key)} (${spec.help})`, `pass ${flagName(key)}${spec.arg ? ` ${spec.arg}` : ""}, or set ${kebab(key)} in a --config file`);
  throw new OptionError(`${where}: expected ${spec.expected}, got ${show(values[key])}`, `${flagName(key)}: ${spec.help}`);
}

/** The validated options of a commander command: its flags over its --config file. */
export async function commandValues<T extends OptionSpecs>(cmd: Command, specs: T): Promise<Options<T>> {
  const flags = cmd.opts();
  const path = flags.config;
  return parseOptions(specs, flags, typeof path === "string" ? await readConfigFile(path) : undefined);
}

/** Where a validated option's value came from: `--max-length`, `run.yaml: max-length`, or undefined for a default. */
export function sourceOf(options: object, key: string): string | undefined {
  return SOURCES.get(options)?.get(key);
}
