// Pretraining small models from scratch on a text corpus: a byte-level BPE tokenizer trained on
// the corpus, then a RoBERTa-style encoder (masked LM) or a GPT-2-style decoder (causal LM)
// trained on 128-token blocks. Output is a Hugging Face checkpoint directory.
import { join, rm, writeFile } from "../platform/host.js";
import { trainByteLevelBpe } from "../io/bpe-trainer.js";
import { Tokenizer } from "../io/tokenizer.js";
import { seededRandom } from "../ir/random.js";
import { PretrainedModel } from "../models/pretrained.js";
import { PeftModel } from "../peft/peft-model.js";
import { splitExamples, type Example } from "./data.js";
import { Trainer } from "./trainer.js";

export interface PretrainOptions {
  kind: "encoder" | "decoder";
  texts: readonly string[];
  outputDir: string;
  vocabSize?: number;
  hidden?: number;
  layers?: number;
  heads?: number;
  /** Tokens per training sequence. */
  block?: number;
  steps?: number;
  batchSize?: number;
  /** Peak learning rate (default: 5e-4 for the post-LN encoder, 1e-3 for the decoder). */
  lr?: number;
  /** Fraction of steps warming up (default 0.1 encoder, 0.05 decoder). */
  warmupRatio?: number;
  seed?: number;
  threads?: number;
  /** Checkpoint every N steps (default: a twentieth of the run, at least 10). */
  saveEvery?: number;
  /**
   * Continue an interrupted run from `outputDir/pretraining/checkpoint-last` (same options and
   * corpus: the tokenizer, blocks and masks are rebuilt deterministically from them).
   */
  resume?: boolean;
  /** Replace an earlier run in `outputDir` (otherwise one is refused unless `resume`). */
  overwrite?: boolean;
  print?: (line: string) => void;
  /** Description of the corpus, recorded with the model. */
  corpus?: string;
  /** The command that ran this pretraining, recorded with the model. */
  command?: string;
}

/** Cut the concatenated token stream into blocks; for the encoder, wrap each in <s> ... </s>. */
function blocks(ids: readonly number[], size: number, wrap: [number, number] | undefined): number[][] {
  const inner = wrap ? size - 2 : size;
  const out: number[][] = [];
  for (let s = 0; s + inner <= ids.length; s += inner) {
    const b = ids.slice(s, s + inner);
    out.push(wrap ? [wrap[0], ...b, wrap[1]] : b);
  }
  return out;
}

/** BERT's masking: 15% of tokens are predicted; of those 80% become <mask>, 10% random, 10% kept. */
function maskedExample(ids: readonly number[], rand: () => number, mask: number, vocab: number, special: ReadonlySet<number>): Example {
  const input = [...ids];
  const labels = ids.map(() => -100);
  ids.forEach((id, i) => {
    if (special.has(id) || rand() >= 0.15) return;
    labels[i] = id;
    const r = rand();
    if (r < 0.8) input[i] = mask;
    else if (r < 0.9) input[i] = Math.floor(rand() * vocab);
  });
  return { ids: input, typeIds: input.map(() => 0), tokenLabels: labels };
}

export interface PretrainResult {
  dir: string;
  parameters: number;
  steps: number;
  finalTrainLoss: number;
  finalEvalLoss: number;
  seconds: number;
}

export async function pretrain(opts: PretrainOptions): Promise<PretrainResult> {
  const { kind, outputDir } = opts;
  const vocabSize = opts.vocabSize ?? 8192;
  const block = opts.block ?? 128;
  const hidden = opts.hidden ?? 256;
  const layers = opts.layers ?? 4;
  const heads = opts.heads ?? 4;
  const seed = opts.seed ?? 1;
  const print = opts.print ?? console.log;
  const started = performance.now();

  const specials = kind === "encoder" ? ["<s>", "<pad>", "</s>", "<unk>", "<mask>"] : ["<|endoftext|>"];
  const trained = trainByteLevelBpe(opts.texts, { vocabSize, specialTokens: specials, postProcessor: kind === "encoder" ? "roberta" : "none", modelMaxLength: block });
  if (kind === "decoder") Object.assign(trained.config, { bos_token: "<|endoftext|>", eos_token: "<|endoftext|>", pad_token: "<|endoftext|>" });
  const tokenizer = Tokenizer.fromJSON(trained.tokenizer, trained.config);
  const vocab = tokenizer.vocabSize;
  print(`tokenizer: ${vocab} tokens`);

  const config =
    kind === "encoder"
      ? { model_type: "roberta", architectures: ["RobertaForMaskedLM"], vocab_size: vocab, hidden_size: hidden, num_hidden_layers: layers, num_attention_heads: heads, intermediate_size: 4 * hidden, hidden_act: "gelu", max_position_embeddings: block + 2, type_vocab_size: 1, layer_norm_eps: 1e-5, hidden_dropout_prob: 0.1, attention_probs_dropout_prob: 0.1, pad_token_id: 1, bos_token_id: 0, eos_token_id: 2, initializer_range: 0.02, tie_word_embeddings: true }
      : { model_type: "gpt2", architectures: ["GPT2LMHeadModel"], vocab_size: vocab, n_embd: hidden, n_layer: layers, n_head: heads, n_positions: block, activation_function: "gelu_new", layer_norm_epsilon: 1e-5, resid_pdrop: 0.1, embd_pdrop: 0.1, attn_pdrop: 0.1, bos_token_id: 0, eos_token_id: 0, initializer_range: 0.02, tie_word_embeddings: true };
  const task = kind === "encoder" ? "masked-lm" : "causal-lm";
  const model = PretrainedModel.fromConfig(config, tokenizer, task, outputDir);

  const stream = opts.texts.flatMap((t) => tokenizer.encode(t, { addSpecialTokens: false }).ids.concat(kind === "decoder" ? [0] : []));
  const sequences = blocks(stream, block, kind === "encoder" ? [0, 2] : undefined);
  const rand = seededRandom(seed);
  const special = new Set([0, 1, 2, 3, 4]);
  const steps = opts.steps ?? 600;
  const batchSize = opts.batchSize ?? 32;
  const split = splitExamples(sequences, 0.02, seed);
  // BERT's duplication: the encoder sees each block with a different random mask in each copy,
  // as many copies as the run has epochs (at most 10), instead of one fixed mask repeated.
  const copies = kind === "encoder" ? Math.min(10, Math.max(1, Math.ceil((steps * batchSize) / split.train.length))) : 1;
  const toExamples = (blocks: number[][], n: number): Example[] =>
    Array.from({ length: n }, () => blocks.map((ids) => (kind === "encoder" ? maskedExample(ids, rand, 4, vocab, special) : { ids, typeIds: ids.map(() => 0), tokenLabels: ids }))).flat();
  const train = toExamples(split.train, copies);
  const validation = toExamples(split.validation, 1);
  print(`corpus: ${stream.length} tokens -> ${split.train.length} training blocks of ${block}${copies > 1 ? ` (${copies} differently masked copies)` : ""}, ${validation.length} held out`);

  const peft = PeftModel.create(model, { peft_type: "FULL" });
  const parameters = peft.countParameters().trainable;
  print(`model: ${config.model_type}, ${parameters.toLocaleString("en-US")} parameters`);
  // Post-LN encoders collapse at the decoder's rate (every position the same unigram guess), so
  // the encoder warms up longer to a lower peak.
  const lr = opts.lr ?? (kind === "encoder" ? 5e-4 : 1e-3);
  const warmupRatio = opts.warmupRatio ?? (kind === "encoder" ? 0.1 : 0.05);
  const trainer = new Trainer(peft, train, validation, {
    outputDir: join(outputDir, "pretraining"), maxSteps: steps, batchSize, lr, schedule: "cosine", warmupRatio, maskedPositionsOnly: kind === "encoder",
    weightDecay: 0.01, evalEvery: Math.max(50, Math.floor(steps / 10)), saveEvery: opts.saveEvery ?? Math.max(10, Math.floor(steps / 20)), seed, threads: opts.threads ?? 0, logEvery: 10, print, progress: false, resume: opts.resume ?? false, overwrite: opts.overwrite ?? false,
  });
  let lastLoss = NaN;
  trainer.opts.onLog = (e) => void (typeof e.loss === "number" && (lastLoss = e.loss));
  const result = await trainer.train();
  // Keep the run's log and report; the training checkpoints are as large as the model copies.
  for (const d of ["checkpoint-last", "checkpoint-best", "adapter"]) await rm(join(outputDir, "pretraining", d), { recursive: true, force: true });
  const merged = peft.mergeAndUnload();
  await merged.save(outputDir, { dtype: "float16", tokenizerFiles: { "tokenizer.json": trained.tokenizer, "tokenizer_config.json": trained.config } });
  const record: PretrainResult = { dir: outputDir, parameters, steps: result.steps, finalTrainLoss: lastLoss, finalEvalLoss: result.finalMetrics.loss ?? NaN, seconds: (performance.now() - started) / 1000 };
  // `seconds` is this process's time: a resumed run records only its own part.
  await writeFile(join(outputDir, "pretraining.json"), JSON.stringify({ ...record, resumed: opts.resume ?? false, command: opts.command, corpus: opts.corpus ?? "", config: { vocabSize: vocab, hidden, layers, heads, block, batchSize, lr, warmupRatio, maskedCopies: copies, seed } }, null, 2));
  return record;
}
