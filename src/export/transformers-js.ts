// Export a (fine-tuned) model in the layout transformers.js loads as it is: config.json,
// tokenizer files, generation_config.json for decoders and onnx/model.onnx — one graph with the
// inputs transformers.js feeds (encoders: ids, mask, token types; positions computed inside;
// decoders: one graph for the prompt pass and every cached step) and every weight embedded.
import { copyFile, readFile, writeFile, mkdir } from "node:fs/promises";
import { join } from "node:path";
import { writeDirAtomic } from "../io/atomic-dir.js";
import { type Value } from "../ir/graph.js";
import { type PeftModel } from "../peft/peft-model.js";
import { lowerToOnnx } from "../runtime/lower.js";
import { type PretrainedModel } from "../models/pretrained.js";
import { architectureName, type ModelGraph, type Task } from "../models/task.js";
import { embedWeights, type GraphProto } from "./onnx-file.js";
import { quantizeOnnxInt8 } from "./quantize-int8.js";
import { prependVirtualTokens } from "./virtual-tokens.js";

export interface ExportOptions {
  /** Also write onnx/model_quantized.onnx: per-channel int8 weights, activations quantized at run time. */
  quantize?: "int8";
  /** Weights above this many bytes in all go to onnx/model.onnx_data (protobuf stops at 2 GB). */
  externalDataAbove?: number;
}

export interface ExportResult {
  /** Files written, relative to the output folder. */
  files: string[];
  /** The architecture config.json names (the transformers class of the task). */
  architecture: string;
  /** How the adapter went in: folded into the weights, or kept as part of the graph. */
  adapter: "none" | "merged" | "in-graph";
}

/** A model or adapter that cannot be exported; `hint` says what can be. */
export class ExportError extends Error {
  constructor(message: string, readonly hint = "merging methods (LoRA, DoRA, AdaLoRA, IA3, ...), bottleneck and prefix adapters export, and prompt tuning and P-tuning on encoders; prompt tuning and P-tuning on decoders do not") {
    super(message);
  }
}

/** Tasks transformers.js runs from an export, by model family. */
const ENCODER_TASKS: readonly Task[] = ["base", "sequence-classification", "token-classification", "question-answering", "masked-lm"];

/** transformers' tokenizer class by model type, for a tokenizer_config.json that lacks one. */
const TOKENIZER_CLASS: Record<string, string> = { bert: "BertTokenizer", roberta: "RobertaTokenizer", distilbert: "DistilBertTokenizer", gpt2: "GPT2Tokenizer" };

/** Protobuf's hard limit, with room for the graph itself. */
const DEFAULT_EXTERNAL_ABOVE = 1.8 * 2 ** 30;

/**
 * Write `model` (a PretrainedModel, or a PeftModel with its active adapters) to `out` in the
 * transformers.js layout, as one set (an earlier export there is replaced whole). Merging methods
 * (LoRA, DoRA, AdaLoRA, IA3, ...) are folded into the weights; bottleneck and prefix adapters
 * stay in the graph (a prefix's keys/values join each step's cache inside it). Prompt tuning and
 * P-tuning stay in encoder graphs, which put the virtual tokens in front of the text's inside
 * (see virtual-tokens.ts); on decoders they are refused, as cached generation does not run them.
 *
 * @example
 *   const peft = await PeftModel.load(await loadModel("./roberta-base", { task: "sequence-classification" }), "./my-adapter");
 *   await exportForTransformersJs(peft, "./my-model-web");
 *   // then, in transformers.js: await pipeline("text-classification", "/abs/path/my-model-web")
 */
export async function exportForTransformersJs(model: PretrainedModel | PeftModel, out: string, opts: ExportOptions = {}): Promise<ExportResult> {
  const { source, base, labels, adapter, virtualTokens } = resolveSource(model);
  const cfg = base.config;
  const decoder = cfg.family === "gpt2" || cfg.family === "llama";
  if (decoder ? base.task !== "causal-lm" : !ENCODER_TASKS.includes(base.task)) {
    throw new ExportError(`export: ${cfg.modelType} with a ${base.task} head is not exported for transformers.js (${decoder ? "decoders export causal-lm: transformers.js has no sequence- or token-classification class for GPT-2 or Llama models" : `encoders export ${ENCODER_TASKS.join(", ")}`})`);
  }
  if (decoder && virtualTokens > 0) {
    const a = virtualTokenAdapter(model as PeftModel);
    throw new ExportError(`export: adapter "${a.name}" is ${(a.config as { peft_type?: string }).peft_type}, which prepends virtual tokens to the inputs; the cached generation graph transformers.js runs has no place for them (peftjs generate does not run it either), so it is not exported for a decoder`);
  }
  // A prefix adapter's virtual tokens come before the positions of the real ones (as peftjs feeds them).
  const offset = "prefixTokens" in source ? source.prefixTokens : 0;
  const built = decoder ? source.build({ decoder: { cacheAware: true, positionOffset: offset } }) : source.build({ positionsInGraph: { offset } });
  const outputs = graphOutputs(built, decoder);
  const lowered = lowerToOnnx(outputs, {}, `peftjs-${cfg.modelType}`);
  // Prompt methods: the graph makes its placeholders itself; per-token outputs keep the text's tokens only.
  const perToken = base.task === "sequence-classification" ? [] : Object.keys(outputs);
  const virtual = virtualTokens > 0 ? (g: GraphProto) => prependVirtualTokens(g, virtualTokens, perToken) : undefined;
  const embed = (dataFile: string, quantize: boolean) =>
    embedWeights(lowered, {
      externalAbove: opts.externalDataAbove ?? DEFAULT_EXTERNAL_ABOVE, dataFile, rename: decoder ? DECODER_DIMS : ENCODER_DIMS,
      transform: (g) => {
        virtual?.(g);
        if (quantize) quantizeOnnxInt8(g);
      },
    });
  const onnx = embed("model.onnx_data", false);
  const quantized = opts.quantize === "int8" ? embed("model_quantized.onnx_data", true) : undefined;

  const architecture = architectureName(cfg.modelType, base.task);
  const config: Record<string, unknown> = { ...cfg.raw, architectures: [architecture], torch_dtype: "float32" };
  if (labels) Object.assign(config, { num_labels: labels.length, id2label: Object.fromEntries(labels.map((l, i) => [String(i), l])), label2id: Object.fromEntries(labels.map((l, i) => [l, i])) });
  if (decoder) config.use_cache = true;
  const jsConfig: Record<string, unknown> = { dtype: quantized ? "q8" : "fp32" };
  if (onnx.external || quantized?.external) jsConfig.use_external_data_format = true;
  config["transformers.js_config"] = jsConfig;

  const tokenizerConfig = await tokenizerConfigFor(base, virtualTokens);
  const files: string[] = [];
  await writeDirAtomic(out, async (dir) => {
    const put = async (name: string, data: string | Uint8Array) => {
      await writeFile(join(dir, name), data);
      files.push(name);
    };
    await mkdir(join(dir, "onnx"));
    await put("config.json", JSON.stringify(config, null, 2));
    await copyFile(join(base.dir, "tokenizer.json"), join(dir, "tokenizer.json")).then(
      () => files.push("tokenizer.json"),
      () => {
        throw new ExportError(`export: ${base.dir} has no tokenizer.json; transformers.js pipelines need one`);
      },
    );
    await put("tokenizer_config.json", JSON.stringify(tokenizerConfig, null, 2));
    if (decoder) await put("generation_config.json", JSON.stringify(generationConfig(cfg.raw), null, 2));
    for (const [file, w] of [["model.onnx", onnx], ["model_quantized.onnx", quantized]] as const) {
      if (!w) continue;
      await put(`onnx/${file}`, w.model);
      if (w.external) await put(`onnx/${w.external.file}`, w.external.data);
    }
  });
  return { files, architecture, adapter };
}

/** The graph to export, the base it came from, the label names and how the adapter is carried. */
function resolveSource(model: PretrainedModel | PeftModel): { source: PretrainedModel | PeftModel; base: PretrainedModel; labels: readonly string[] | undefined; adapter: ExportResult["adapter"]; virtualTokens: number } {
  if (!("adapters" in model)) {
    const names = model.config.raw.id2label;
    return { source: model, base: model, labels: labelsOf(names), adapter: "none", virtualTokens: 0 };
  }
  const active = model.activeAdapters.map((n) => model.adapters.get(n)!);
  const labels = model.labelNames() ?? labelsOf(model.base.config.raw.id2label);
  if (active.length === 0) return { source: model.base, base: model.base, labels, adapter: "none", virtualTokens: 0 };
  if (active.every((a) => a.mergedWeights)) return { source: model.mergeAndUnload({ safe: true }), base: model.base, labels, adapter: "merged", virtualTokens: 0 };
  return { source: model, base: model.base, labels, adapter: "in-graph", virtualTokens: model.virtualTokens };
}

/** The active adapter that prepends virtual tokens (prompt tuning, P-tuning). */
function virtualTokenAdapter(model: PeftModel) {
  const active = model.activeAdapters.map((n) => model.adapters.get(n)!);
  return active.find((x) => ((x as { virtualTokens?: number }).virtualTokens ?? 0) > 0) ?? active[0]!;
}

function labelsOf(id2label: unknown): string[] | undefined {
  if (!id2label || typeof id2label !== "object") return undefined;
  const entries = Object.entries(id2label as Record<string, unknown>).map(([k, v]) => [Number(k), String(v)] as const);
  return entries.sort((a, b) => a[0] - b[0]).map(([, v]) => v);
}

/** Output names as transformers.js reads them: the head's, or `present.{i}.key|value` beside decoders' logits. */
function graphOutputs(built: ModelGraph, decoder: boolean): Record<string, Value> {
  const o = built.outputs;
  if (decoder) return { logits: o.logits!, ...built.present };
  if (o.start_logits && o.end_logits) return { start_logits: o.start_logits, end_logits: o.end_logits };
  return o.logits ? { logits: o.logits } : { last_hidden_state: o.last_hidden_state };
}

// Dimension names transformers.js resolves when it makes the empty cache of the first pass
// (`batch_size`; any other name becomes 0, as the past length must).
const ENCODER_DIMS: Record<string, string> = { batch: "batch_size", seq: "sequence_length" };
const DECODER_DIMS: Record<string, string> = { ...ENCODER_DIMS, past: "past_sequence_length" };

/** tokenizer_config.json with what transformers.js needs: the class, the longest input, the special tokens. */
async function tokenizerConfigFor(model: PretrainedModel, virtualTokens: number): Promise<Record<string, unknown>> {
  let own: Record<string, unknown> = {};
  try {
    own = JSON.parse(await readFile(join(model.dir, "tokenizer_config.json"), "utf8")) as Record<string, unknown>;
  } catch {
    /* synthesized below */
  }
  const cfg: Record<string, unknown> = { ...own };
  cfg.tokenizer_class ??= TOKENIZER_CLASS[model.config.modelType] ?? "PreTrainedTokenizerFast";
  if (typeof cfg.model_max_length !== "number" || cfg.model_max_length > 1e15) cfg.model_max_length = Number.isFinite(model.maxInputLength) ? model.maxInputLength : model.config.maxPositions;
  // Virtual tokens take positions in front of the text's.
  if (virtualTokens > 0) cfg.model_max_length = Math.min(cfg.model_max_length as number, (Number.isFinite(model.maxInputLength) ? model.maxInputLength : model.config.maxPositions) - virtualTokens);
  const tok = model.tokenizer;
  if (tok) {
    for (const [key, id] of [["pad_token", tok.padTokenId], ["bos_token", tok.bosTokenId], ["eos_token", tok.eosTokenId]] as const) {
      if (cfg[key] === undefined && id !== undefined) cfg[key] = tok.decode([id], { skipSpecialTokens: false });
    }
  }
  return cfg;
}

/** generation_config.json: the token ids generation starts, stops and pads with. */
function generationConfig(raw: Record<string, unknown>): Record<string, unknown> {
  const g: Record<string, unknown> = {};
  for (const key of ["bos_token_id", "eos_token_id", "pad_token_id"]) if (raw[key] !== undefined && raw[key] !== null) g[key] = raw[key];
  return g;
}
