// The shared conformance suite: every PEFT method x every architecture family goes through the
// same checks (identity at init where promised, parameter counts by hand, one step lowers the
// loss, gradients against finite differences, save/load, merge, mixed-adapter batches).
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { readSafetensors, writeSafetensors } from "../src/io/safetensors.js";
import { seededRandom } from "../src/ir/random.js";
import { int64, type Tensor } from "../src/ir/tensor.js";
import { type ModelConfig } from "../src/models/config.js";
import { loadModel, type PretrainedModel } from "../src/models/pretrained.js";
import { type Task } from "../src/models/task.js";
import { PeftModel, type PeftConfigInput } from "../src/peft/peft-model.js";
import { compile } from "../src/runtime/session.js";
import { TrainStep } from "../src/train/train-step.js";
import { PRESETS, TUNERS, type PresetName } from "../src/tuners/registry.js";

const FIXTURES = join(import.meta.dirname, "fixtures", "models");
const ARCHS: { name: string; task: Task }[] = [
  { name: "bert-tiny", task: "sequence-classification" },
  { name: "gpt2-tiny", task: "causal-lm" },
  { name: "llama-tiny", task: "causal-lm" },
];

interface Inv {
  cfg: ModelConfig;
  linear: Map<string, { in: number; out: number }>;
  params: Map<string, readonly number[]>;
  embeddings: { path: string; hidden: number; vocab: number } | undefined;
  sublayers: { path: string; kind: "attention" | "ffn"; hidden: number }[];
}
const size = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);
const sumParams = (inv: Inv, pick: (name: string) => boolean) => [...inv.params].filter(([n]) => pick(n)).reduce((a, [, s]) => a + size(s), 0);
const linearSum = (inv: Inv, suffixes: string[], f: (l: { in: number; out: number }) => number) => [...inv.linear].filter(([p]) => suffixes.some((s) => p.endsWith(`.${s}`))).reduce((a, [, l]) => a + f(l), 0);
/** The head PEFT trains for the task (classifier for sequence classification). */
const head = (inv: Inv, task: Task) => (task === "sequence-classification" ? sumParams(inv, (n) => /^classifier\.|^score\./.test(n)) : 0);

interface MethodCase {
  /** Names the case in test titles: "LORA dora on gpt2-tiny". */
  variant: string;
  /** Registry presets (CLI --method names) this case runs: its config is the presets' settings, then `config`'s (test sizes). */
  presets?: PresetName[];
  config: (m: PretrainedModel) => Record<string, unknown>;
  /**
   * The exact state dict PEFT itself would save for this config (keys -> shapes), by PEFT's rules
   * (see the KEY RULES below), from the model's Hugging Face parameter names and shapes.
   */
  keys: (inv: Inv, task: Task) => Keys;
  /** Why the reload is equal only to float rounding, when it is (PEFT saves a reparameterized prompt). */
  reloadTolerance?: { value: number; why: string };
  /** Why the finite-difference check does not apply, when it does not. */
  noGradCheck?: string;
  /** Architectures the case applies to (default all), with the reason for leaving others out. */
  only?: { archs: string[]; why: string };
  /** Trainable parameters computed by hand from the config and the model's shapes. */
  expected: (inv: Inv, task: Task) => number;
  identityAtInit: boolean;
  /** Merged equals unmerged; `except` lists architectures where merging is refused, with why. */
  mergeable: boolean | { except: string[]; why: string };
  mixable: boolean;
}

/** A case's config: its presets' settings, then its own (test sizes). */
const configOf = (c: MethodCase, m: PretrainedModel): PeftConfigInput => Object.assign({}, ...(c.presets ?? []).map((p) => PRESETS[p]), c.config(m)) as PeftConfigInput;

/** Linear layers "all-linear" covers: every one but the output heads. */
const allLinear = (inv: Inv) => [...inv.linear].filter(([p]) => !/(^|\.)(lm_head|classifier|score|qa_outputs)($|\.)/.test(p));
const attnTargets = (t: string) => (t === "bert" || t === "roberta" ? ["query", "value"] : t === "gpt2" ? ["c_attn"] : ["q_proj", "v_proj"]);
const ffTarget = (t: string) => (t === "bert" || t === "roberta" ? "output.dense" : t === "gpt2" ? "mlp.c_proj" : "down_proj");

// KEY RULES: the state dict PEFT's save_pretrained writes (huggingface/peft; 0.14 where it differs).
// - Tuners that wrap the transformers model in a BaseTuner save `base_model.model.<module path>.<param>`
//   with the adapter name removed (utils/save_and_load.py get_peft_model_state_dict, "REMOVE ADAPTER NAME").
// - Prompt-learning methods wrap the transformers model directly (peft_model.py PeftModel.__init__), so
//   their heads are `base_model.<head>.*`; the prompt is one tensor `prompt_embeddings` [n, token_dim]
//   (peft_model.py get_prompt_embedding_to_save; prefix tuning: token_dim = layers * 2 * kv_heads * head_dim).
// - Heads: PeftModelForSequenceClassification / ForTokenClassification add "classifier", "score" and
//   PeftModelForQuestionAnswering "qa_outputs" to modules_to_save; a ModulesToSaveWrapper's copy is saved
//   under the module's own name (utils/other.py ModulesToSaveWrapper.adapter_state_dict).
// - LoRA (tuners/lora/layer.py update_layer): lora_A.weight [r, in], lora_B.weight [out, r], lora_B.bias
//   [out] with lora_bias; DoRA lora_magnitude_vector [out] (lora/model.py _get_adapter_state_dict drops
//   ".weight"); embeddings lora_embedding_A [r, vocab], lora_embedding_B [hidden, r]. bias="all": every key
//   ending in ".bias" (tuners_utils.py BaseTuner._get_learnable_bias_state_dict), a wrapped layer's as
//   `<path>.base_layer.bias`, a head's wrapper as `<head>.original_module.<rest>` and
//   `<head>.modules_to_save.<rest>` besides `<head>.<rest>`; "lora_only": the wrapped layers' base_layer.bias
//   (0.14 looked for `<path>.bias`, which a wrapped layer no longer has, and saved none).
// - AdaLoRA (tuners/adalora/layer.py): lora_A [r, in], lora_B [out, r], lora_E [r, 1], no ".weight".
// - IA3 (tuners/ia3/layer.py): ia3_l [out, 1], or [1, in] for feed-forward modules.
// - LN tuning (tuners/ln_tuning/layer.py): `<norm>.ln_tuning_layers.<param>`; its head plain.
// peftjs-only methods (bottleneck, hybrid, BitFit, top-k, full) follow the same prefixes: AdapterHub's
// `<module>.adapters.<name>.*` for bottleneck adapters (the module: BERT/RoBERTa's
// `<layer>.attention.output` / `<layer>.output`, which are AdapterHub's adapter layers in
// models/bert/mixin_bert.py; `<layer>.attention_adapters` / `<layer>.output_adapters` for DistilBERT,
// GPT-2 and Llama, mixin_distilbert.py / mixin_gpt2.py / mixin_llama.py), `base_model.model.<param>`
// for trained base parameters.
type Keys = Map<string, readonly number[]>;
const P = "base_model.model.";
const HEADS: Partial<Record<Task, string[]>> = { "sequence-classification": ["classifier", "score"], "token-classification": ["classifier", "score"], "question-answering": ["qa_outputs"] };
const inModules = (name: string, modules: readonly string[]) => modules.some((m) => new RegExp(`(^|\\.)${m}\\.`).test(name));
const headKeys = (inv: Inv, task: Task, prefix = P): Keys => new Map([...inv.params].filter(([n]) => inModules(n, HEADS[task] ?? [])).map(([n, s]) => [prefix + n, s]));
const loraKeys = (inv: Inv, paths: string[], r: (p: string) => number, opts: { dora?: boolean; loraBias?: boolean } = {}): Keys => {
  const out: Keys = new Map();
  for (const p of paths) {
    const l = inv.linear.get(p)!;
    out.set(`${P}${p}.lora_A.weight`, [r(p), l.in]).set(`${P}${p}.lora_B.weight`, [l.out, r(p)]);
    if (opts.loraBias) out.set(`${P}${p}.lora_B.bias`, [l.out]);
    if (opts.dora) out.set(`${P}${p}.lora_magnitude_vector`, [l.out]);
  }
  return out;
};
const linearsEnding = (inv: Inv, suffixes: string[]) => [...inv.linear.keys()].filter((p) => suffixes.some((s) => p.endsWith(`.${s}`)));
const merge = (...maps: Keys[]) => new Map(maps.flatMap((m) => [...m]));
const NORM = /(LayerNorm|ln_\d|ln_f|layernorm|\.norm)\.(weight|bias)$/;
/** AdapterHub's adapter module for a sublayer (see above). */
const adapterModule = (inv: Inv, s: { path: string; kind: "attention" | "ffn" }) => {
  if (inv.cfg.modelType === "bert" || inv.cfg.modelType === "roberta") return s.path;
  const layer = /^(.*\.\d+)\./.exec(s.path)![1];
  return `${layer}.${s.kind === "attention" ? "attention" : "output"}_adapters`;
};
const bottleneckKeys = (inv: Inv, mh: boolean, H: (h: number) => number, opts: { lnBefore?: boolean; lnAfter?: boolean } = {}): Keys => {
  const out: Keys = new Map();
  for (const s of inv.sublayers) {
    if (s.kind === "attention" && !mh) continue;
    const b = H(s.hidden);
    const k = `${adapterModule(inv, s)}.adapters.default.`;
    // modeling.py Adapter.__init__: ln_before's LayerNorm is adapter_norm_before and adapter_down.0 (the Linear moves to adapter_down.1).
    const down = opts.lnBefore ? "adapter_down.1" : "adapter_down.0";
    out.set(`${k}${down}.weight`, [b, s.hidden]).set(`${k}${down}.bias`, [b]).set(`${k}adapter_up.weight`, [s.hidden, b]).set(`${k}adapter_up.bias`, [s.hidden]);
    if (opts.lnBefore) for (const n of ["adapter_norm_before", "adapter_down.0"]) out.set(`${k}${n}.weight`, [s.hidden]).set(`${k}${n}.bias`, [s.hidden]);
    if (opts.lnAfter) out.set(`${k}adapter_norm_after.weight`, [s.hidden]).set(`${k}adapter_norm_after.bias`, [s.hidden]);
  }
  return out;
};
const paramKeys = (inv: Inv, pick: (n: string) => boolean): Keys => new Map([...inv.params].filter(([n]) => pick(n)).map(([n, s]) => [P + n, s]));

const CASES: Record<keyof typeof TUNERS, MethodCase[]> = {
  LORA: [
    {
      variant: "plain", presets: ["lora"],
      config: (m) => ({ peft_type: "LORA", r: 2, lora_alpha: 4, target_modules: attnTargets(m.config.modelType) }),
      keys: (inv, task) => merge(loraKeys(inv, linearsEnding(inv, attnTargets(inv.cfg.modelType)), () => 2), headKeys(inv, task)),
      expected: (inv, task) => linearSum(inv, attnTargets(inv.cfg.modelType), (l) => 2 * (l.in + l.out)) + head(inv, task),
      identityAtInit: true, mergeable: true, mixable: true,
    },
    {
      variant: "rslora rank_pattern lora_only bias",
      config: () => ({ peft_type: "LORA", r: 2, lora_alpha: 8, target_modules: "all-linear", use_rslora: true, rank_pattern: { "(layer|h|layers)\\.1\\..*": 3 }, bias: "lora_only" }),
      keys: (inv, task) => {
        const paths = allLinear(inv).map(([p]) => p);
        const biases: Keys = new Map(paths.filter((p) => inv.params.has(`${p}.bias`)).map((p) => [`${P}${p}.base_layer.bias`, [inv.linear.get(p)!.out]]));
        return merge(loraKeys(inv, paths, (p) => (/\.1\./.test(p) ? 3 : 2)), biases, headKeys(inv, task));
      },
      expected: (inv, task) => allLinear(inv).reduce((a, [p, l]) => a + (/\.1\./.test(p) ? 3 : 2) * (l.in + l.out) + (inv.params.has(`${p}.bias`) ? l.out : 0), 0) + head(inv, task),
      identityAtInit: true, mergeable: true, mixable: true,
    },
    {
      variant: "dora", presets: ["dora"],
      config: (m) => ({ peft_type: "LORA", r: 2, lora_alpha: 4, target_modules: attnTargets(m.config.modelType), use_dora: true }),
      keys: (inv, task) => merge(loraKeys(inv, linearsEnding(inv, attnTargets(inv.cfg.modelType)), () => 2, { dora: true }), headKeys(inv, task)),
      expected: (inv, task) => linearSum(inv, attnTargets(inv.cfg.modelType), (l) => 2 * (l.in + l.out) + l.out) + head(inv, task),
      noGradCheck: "DoRA detaches the weight norm (as PEFT does, section 4.3 of the paper), so its gradient is by design not the finite-difference one",
      identityAtInit: true, mergeable: true, mixable: true,
    },
    {
      variant: "embedding",
      config: (m) => ({ peft_type: "LORA", r: 2, lora_alpha: 4, target_modules: [m.modules().embeddings!.path.split(".").pop()!, ...attnTargets(m.config.modelType)] }),
      keys: (inv, task) => {
        const e = inv.embeddings!;
        // A targeted embed_tokens (EMBEDDING_LAYER_NAMES) also saves the base table (save_and_load.py, "DEAL WITH EMBEDDINGS").
        const table: Keys = e.path.endsWith(".embed_tokens") ? new Map([[`${P}${e.path}.base_layer.weight`, [e.vocab, e.hidden]]]) : new Map();
        return merge(new Map([[`${P}${e.path}.lora_embedding_A`, [2, e.vocab]], [`${P}${e.path}.lora_embedding_B`, [e.hidden, 2]]]), table, loraKeys(inv, linearsEnding(inv, attnTargets(inv.cfg.modelType)), () => 2), headKeys(inv, task));
      },
      expected: (inv, task) => 2 * (inv.cfg.vocabSize + inv.cfg.hidden) + linearSum(inv, attnTargets(inv.cfg.modelType), (l) => 2 * (l.in + l.out)) + head(inv, task),
      identityAtInit: true, mergeable: true, mixable: true,
    },
    {
      variant: "lora_bias bias=all",
      config: (m) => ({ peft_type: "LORA", r: 2, lora_alpha: 4, target_modules: attnTargets(m.config.modelType), lora_bias: true, bias: "all" }),
      keys: (inv, task) => {
        const paths = linearsEnding(inv, attnTargets(inv.cfg.modelType));
        const heads = HEADS[task] ?? [];
        const biases: Keys = new Map();
        for (const [n, s] of inv.params) {
          if (!n.endsWith(".bias")) continue;
          const module = n.slice(0, -".bias".length);
          const head = heads.find((h) => n.startsWith(`${h}.`));
          if (head) {
            // Both halves of the head's ModulesToSaveWrapper end in ".bias" too.
            const rest = n.slice(head.length + 1);
            biases.set(`${P}${head}.original_module.${rest}`, s).set(`${P}${head}.modules_to_save.${rest}`, s);
          } else biases.set(`${P}${paths.includes(module) ? `${module}.base_layer` : module}.bias`, s);
        }
        return merge(loraKeys(inv, paths, () => 2, { loraBias: true }), biases, headKeys(inv, task));
      },
      // Every bias trains: LayerNorm copies cannot be selected per row.
      expected: (inv, task) => linearSum(inv, attnTargets(inv.cfg.modelType), (l) => 2 * (l.in + l.out) + l.out) + sumParams(inv, (n) => n.endsWith(".bias") && !/^classifier\.|^score\./.test(n)) + head(inv, task),
      identityAtInit: true, mixable: false,
      mergeable: { except: ["llama-tiny"], why: "Llama's attention projections have no bias to merge lora_bias into (refused, as in PEFT; tested in peft-format.test.ts)" },
    },
  ],
  ADALORA: [
    {
      variant: "plain", presets: ["adalora"],
      keys: (inv, task) => merge(new Map(linearsEnding(inv, attnTargets(inv.cfg.modelType)).flatMap((p) => {
        const l = inv.linear.get(p)!;
        return [[`${P}${p}.lora_A`, [4, l.in]], [`${P}${p}.lora_B`, [l.out, 4]], [`${P}${p}.lora_E`, [4, 1]]] as [string, number[]][];
      })), headKeys(inv, task)),
      config: (m) => ({ peft_type: "ADALORA", init_r: 4, target_r: 2, lora_alpha: 8, target_modules: attnTargets(m.config.modelType), total_step: 10 }),
      expected: (inv, task) => linearSum(inv, attnTargets(inv.cfg.modelType), (l) => 4 * (l.in + l.out + 1)) + head(inv, task),
      identityAtInit: true, mergeable: true, mixable: true,
    },
  ],
  IA3: [
    {
      variant: "default targets", presets: ["ia3"],
      config: () => ({ peft_type: "IA3" }),
      keys: (inv, task) => {
        const t = { bert: ["key", "value", "output.dense"], roberta: ["key", "value", "output.dense"], gpt2: ["c_attn", "mlp.c_proj"], llama: ["k_proj", "v_proj", "down_proj"] }[inv.cfg.modelType as "bert"]!;
        const ff = ffTarget(inv.cfg.modelType);
        return merge(new Map(linearsEnding(inv, t).map((p) => [`${P}${p}.ia3_l`, p.endsWith(`.${ff}`) ? [1, inv.linear.get(p)!.in] : [inv.linear.get(p)!.out, 1]])), headKeys(inv, task));
      },
      expected: (inv, task) => {
        const t = { bert: ["key", "value", "output.dense"], gpt2: ["c_attn", "mlp.c_proj"], llama: ["k_proj", "v_proj", "down_proj"] }[inv.cfg.modelType as "bert"]!;
        return linearSum(inv, t, (l) => l.out) - linearSum(inv, [ffTarget(inv.cfg.modelType)], (l) => l.out - l.in) + head(inv, task);
      },
      identityAtInit: true, mergeable: true, mixable: true,
    },
  ],
  PROMPT_TUNING: [{ variant: "random init", presets: ["prompt"], keys: (inv, task) => merge(new Map([["prompt_embeddings", [3, inv.cfg.hidden]]]), headKeys(inv, task, "base_model.")), config: () => ({ peft_type: "PROMPT_TUNING", num_virtual_tokens: 3 }), expected: (inv, task) => 3 * inv.cfg.hidden + head(inv, task), identityAtInit: false, mergeable: false, mixable: false }],
  P_TUNING: [
    {
      variant: "MLP", presets: ["p-tuning"],
      keys: (inv, task) => merge(new Map([["prompt_embeddings", [3, inv.cfg.hidden]]]), headKeys(inv, task, "base_model.")),
      config: () => ({ peft_type: "P_TUNING", num_virtual_tokens: 3, encoder_hidden_size: 8 }),
      reloadTolerance: { value: 1e-5, why: "the saved prompt is the encoder's output, computed outside the graph" },
      expected: (inv, task) => 3 * inv.cfg.hidden + (inv.cfg.hidden * 8 + 8) + (8 * 8 + 8) + (8 * inv.cfg.hidden + inv.cfg.hidden) + head(inv, task),
      identityAtInit: false, mergeable: false, mixable: false,
    },
    {
      variant: "LSTM",
      keys: (inv, task) => merge(new Map([["prompt_embeddings", [3, inv.cfg.hidden]]]), headKeys(inv, task, "base_model.")),
      config: () => ({ peft_type: "P_TUNING", num_virtual_tokens: 3, encoder_reparameterization_type: "LSTM", encoder_hidden_size: 4, encoder_num_layers: 2 }),
      // Per layer and direction: 4E x in + 4E x E + two 4E biases; then Linear(2E, 2E) and Linear(2E, H).
      expected: (inv, task) => {
        const [H, E] = [inv.cfg.hidden, 4];
        const lstm = 2 * (4 * E * H + 4 * E * E + 8 * E) + 2 * (4 * E * 2 * E + 4 * E * E + 8 * E);
        return 3 * H + lstm + (2 * E * 2 * E + 2 * E) + (2 * E * H + H) + head(inv, task);
      },
      reloadTolerance: { value: 1e-5, why: "the saved prompt is the encoder's output, computed outside the graph" },
      identityAtInit: false, mergeable: false, mixable: false,
    },
  ],
  PREFIX_TUNING: [
    { variant: "p-tuning v2 (no projection)", presets: ["prefix", "p-tuning-v2"], keys: (inv, task) => merge(new Map([["prompt_embeddings", [2, inv.cfg.layers * 2 * inv.cfg.kvHeads * inv.cfg.headDim]]]), headKeys(inv, task, "base_model.")), config: () => ({ peft_type: "PREFIX_TUNING", num_virtual_tokens: 2 }), expected: (inv, task) => 2 * inv.cfg.layers * 2 * inv.cfg.kvHeads * inv.cfg.headDim + head(inv, task), identityAtInit: false, mergeable: false, mixable: false },
    {
      variant: "projection",
      keys: (inv, task) => merge(new Map([["prompt_embeddings", [2, inv.cfg.layers * 2 * inv.cfg.kvHeads * inv.cfg.headDim]]]), headKeys(inv, task, "base_model.")),
      config: () => ({ peft_type: "PREFIX_TUNING", num_virtual_tokens: 2, prefix_projection: true, encoder_hidden_size: 8 }),
      reloadTolerance: { value: 1e-5, why: "the saved prefixes are the projection's output, computed outside the graph" },
      expected: (inv, task) => {
        const kv = inv.cfg.kvHeads * inv.cfg.headDim;
        return 2 * kv + (kv * 8 + 8) + (8 * inv.cfg.layers * 2 * kv + inv.cfg.layers * 2 * kv) + head(inv, task);
      },
      identityAtInit: false, mergeable: false, mixable: false,
    },
  ],
  BOTTLENECK: [
    {
      // Houlsby placement, zero up-projection: exact identity at init; with peftjs's explicit train_layer_norms.
      variant: "houlsby (double_seq_bn) + train_layer_norms", presets: ["houlsby"],
      keys: (inv, task) => merge(bottleneckKeys(inv, true, (h) => h / 8), paramKeys(inv, (n) => NORM.test(n)), headKeys(inv, task)),
      config: () => ({ peft_type: "BOTTLENECK", variant: "double_seq_bn", reduction_factor: 8, init_weights: "mam_adapter", train_layer_norms: true }),
      // Trained LayerNorm copies cannot be selected per row, so no mixed batches here.
      expected: (inv, task) => {
        const H = inv.cfg.hidden;
        const b = H / 8;
        return 2 * inv.cfg.layers * (H * b + b + b * H + H) + sumParams(inv, (n) => /(LayerNorm|ln_\d|ln_f|layernorm|\.norm)\.(weight|bias)$/.test(n)) + head(inv, task);
      },
      identityAtInit: true, mergeable: false, mixable: false,
    },
    {
      // gelu instead of the preset's relu: finite differences across relu kinks are unreliable.
      variant: "pfeiffer (seq_bn)", presets: ["pfeiffer"],
      keys: (inv, task) => merge(bottleneckKeys(inv, false, (h) => h / 4), headKeys(inv, task)),
      config: () => ({ peft_type: "BOTTLENECK", variant: "seq_bn", reduction_factor: 4, non_linearity: "gelu" }),
      expected: (inv, task) => {
        const H = inv.cfg.hidden;
        return inv.cfg.layers * (2 * H * (H / 4) + H / 4 + H) + head(inv, task);
      },
      identityAtInit: false, mergeable: false, mixable: true,
    },
    {
      variant: "parallel (par_bn)", presets: ["parallel"],
      keys: (inv, task) => merge(bottleneckKeys(inv, false, (h) => h / 4), headKeys(inv, task)),
      config: () => ({ peft_type: "BOTTLENECK", variant: "par_bn", reduction_factor: 4, non_linearity: "gelu" }),
      expected: (inv, task) => inv.cfg.layers * (2 * inv.cfg.hidden * (inv.cfg.hidden / 4) + inv.cfg.hidden / 4 + inv.cfg.hidden) + head(inv, task),
      identityAtInit: true, mergeable: false, mixable: true,
    },
    {
      // AdapterHub's other placement options: the adapter's own LayerNorms, its residual taken after the
      // model's LayerNorm and added before its ln_after (modeling.py Adapter.pre_forward / forward).
      variant: "seq_bn ln_before ln_after residual_before_ln=false adapter_residual_before_ln", presets: [],
      keys: (inv, task) => merge(bottleneckKeys(inv, false, (h) => h / 4, { lnBefore: true, lnAfter: true }), headKeys(inv, task)),
      config: () => ({ peft_type: "BOTTLENECK", variant: "seq_bn", reduction_factor: 4, non_linearity: "tanh", ln_before: true, ln_after: true, residual_before_ln: false, adapter_residual_before_ln: true }),
      expected: (inv, task) => {
        const H = inv.cfg.hidden;
        return inv.cfg.layers * (2 * H * (H / 4) + H / 4 + H + 4 * H) + head(inv, task);
      },
      identityAtInit: false, mergeable: false, mixable: true,
    },
    {
      // The adapter's output is the block's (modeling.py post_forward without original_ln_after): no
      // residual after it, and on post-LN models no model LayerNorm either (the blockOutput hook).
      variant: "seq_bn original_ln_after=false", presets: [],
      keys: (inv, task) => merge(bottleneckKeys(inv, false, (h) => h / 4), headKeys(inv, task)),
      config: () => ({ peft_type: "BOTTLENECK", variant: "seq_bn", reduction_factor: 4, non_linearity: "gelu", original_ln_after: false }),
      expected: (inv, task) => {
        const H = inv.cfg.hidden;
        return inv.cfg.layers * (2 * H * (H / 4) + H / 4 + H) + head(inv, task);
      },
      identityAtInit: false, mergeable: false, mixable: true,
    },
    {
      // The adapter's residual is the sum before the model's LayerNorm (Adapter.pre_forward "post_add").
      variant: "seq_bn residual_before_ln=post_add", presets: [],
      keys: (inv, task) => merge(bottleneckKeys(inv, false, (h) => h / 4), headKeys(inv, task)),
      only: { archs: ["bert-tiny"], why: 'residual_before_ln "post_add" needs a post-LN block (refused on pre-LN models, where AdapterHub fails too)' },
      config: () => ({ peft_type: "BOTTLENECK", variant: "seq_bn", reduction_factor: 4, non_linearity: "gelu", residual_before_ln: "post_add" }),
      expected: (inv, task) => {
        const H = inv.cfg.hidden;
        return inv.cfg.layers * (2 * H * (H / 4) + H / 4 + H) + head(inv, task);
      },
      identityAtInit: false, mergeable: false, mixable: true,
    },
    {
      // Houlsby with the Pfeiffer-style input (original_ln_before) and per-layer reduction factors.
      variant: "double_seq_bn original_ln_before reduction_factor map", presets: [],
      keys: (inv, task) => merge(bottleneckKeys(inv, true, (h) => h / 4), headKeys(inv, task)),
      config: () => ({ peft_type: "BOTTLENECK", variant: "double_seq_bn", reduction_factor: { default: 4 }, non_linearity: "gelu", original_ln_before: true }),
      expected: (inv, task) => {
        const H = inv.cfg.hidden;
        return 2 * inv.cfg.layers * (2 * H * (H / 4) + H / 4 + H) + head(inv, task);
      },
      identityAtInit: false, mergeable: false, mixable: true,
    },
  ],
  HYBRID: [
    {
      variant: "gated LoRA + parallel adapter", presets: ["hybrid"],
      keys: (inv, task) => {
        const paths = linearsEnding(inv, attnTargets(inv.cfg.modelType));
        const gates: Keys = new Map(paths.flatMap((p) => [[`${P}${p}.lora_gate.weight`, [1, inv.linear.get(p)!.in]], [`${P}${p}.lora_gate.bias`, [1]]] as [string, number[]][]));
        const adapter = bottleneckKeys(inv, false, (h) => h / 4);
        for (const s of inv.sublayers) if (s.kind === "ffn") adapter.set(`${adapterModule(inv, s)}.adapters.default.gate.weight`, [1, s.hidden]).set(`${adapterModule(inv, s)}.adapters.default.gate.bias`, [1]);
        return merge(loraKeys(inv, paths, () => 2), gates, adapter, headKeys(inv, task));
      },
      config: (m) => ({ peft_type: "HYBRID", gates: true, lora: { r: 2, target_modules: attnTargets(m.config.modelType) }, adapter: { variant: "par_bn", reduction_factor: 4, non_linearity: "gelu" } }),
      expected: (inv, task) => {
        const H = inv.cfg.hidden;
        return linearSum(inv, attnTargets(inv.cfg.modelType), (l) => 2 * (l.in + l.out) + l.in + 1) + inv.cfg.layers * (2 * H * (H / 4) + H / 4 + H + H + 1) + head(inv, task);
      },
      identityAtInit: true, mergeable: false, mixable: true,
    },
  ],
  BITFIT: [{ variant: "all biases", presets: ["bitfit"], keys: (inv, task) => merge(paramKeys(inv, (n) => n.endsWith(".bias")), headKeys(inv, task)), only: { archs: ["bert-tiny", "gpt2-tiny"], why: "Llama has no bias terms (BitFit then fails with a clear error, tested in peft-format.test.ts)" }, config: () => ({ peft_type: "BITFIT" }), expected: (inv, task) => sumParams(inv, (n) => n.endsWith(".bias") && !/^classifier\.|^score\./.test(n)) + head(inv, task), identityAtInit: true, mergeable: true, mixable: false }],
  LN_TUNING: [{
    variant: "every norm", presets: ["ln-tuning"],
    keys: (inv, task) => merge(new Map([...inv.params].filter(([n]) => NORM.test(n) && !inModules(n, HEADS[task] ?? [])).map(([n, s]) => [`${P}${n.slice(0, n.lastIndexOf("."))}.ln_tuning_layers${n.slice(n.lastIndexOf("."))}`, s])), headKeys(inv, task)),
    config: () => ({ peft_type: "LN_TUNING" }), expected: (inv, task) => sumParams(inv, (n) => /(LayerNorm|ln_\d|ln_f|layernorm|\.norm)\.(weight|bias)$/.test(n)) + head(inv, task), identityAtInit: true, mergeable: true, mixable: false }],
  TOP_K_LAYERS: [
    {
      variant: "k=1", presets: ["top-k"],
      keys: (inv, task) => merge(paramKeys(inv, (n) => /\.(layer|h|layers)\.1\./.test(n) || /(^|\.)(ln_f|norm|pooler)\./.test(n)), headKeys(inv, task)),
      config: () => ({ peft_type: "TOP_K_LAYERS", k: 1 }),
      expected: (inv, task) => sumParams(inv, (n) => /\.(layer|h|layers)\.1\./.test(n) || /(^|\.)(ln_f|norm|pooler)\./.test(n)) + (task === "sequence-classification" ? head(inv, task) : 0),
      identityAtInit: true, mergeable: true, mixable: false,
    },    {
      // k = 0: only what follows the layer stack (final norm, pooler) and the head: a linear probe.
      variant: "k=0 (linear probe)",
      keys: (inv, task) => merge(paramKeys(inv, (n) => /(^|\.)(ln_f|norm|pooler)\./.test(n)), headKeys(inv, task)),
      config: () => ({ peft_type: "TOP_K_LAYERS", k: 0 }),
      expected: (inv, task) => sumParams(inv, (n) => /(^|\.)(ln_f|norm|pooler)\./.test(n)) + (task === "sequence-classification" ? head(inv, task) : 0),
      identityAtInit: true, mergeable: true, mixable: false,
    },
  ],
  FULL: [{ variant: "every parameter", presets: ["full"], keys: (inv) => paramKeys(inv, () => true), config: () => ({ peft_type: "FULL" }), expected: (inv) => sumParams(inv, () => true), identityAtInit: true, mergeable: true, mixable: false }],
};

function inventory(m: PretrainedModel): Inv {
  const mods = m.modules();
  return { cfg: m.config, linear: new Map(mods.linear.map((l) => [l.path, { in: l.inFeatures, out: l.outFeatures }])), params: mods.params, embeddings: mods.embeddings, sublayers: mods.sublayers };
}

/** Perturb every adapter tensor, as if trained, so later checks are not trivially true. */
function perturb(peft: PeftModel, name: string, seed: number): void {
  const rand = seededRandom(seed);
  for (const t of peft.adapters.get(name)!.tensors.values()) (t.data as Float32Array).forEach((v, i, d) => (d[i] = v + (rand() - 0.5) * 0.2));
}

async function batchFor(m: PretrainedModel, task: Task, rows = 2) {
  const texts = ["the cat sat on the mat", "money in the bank", "the dog"].slice(0, rows);
  const b = m.tokenizer!.encodeBatch(texts, { paddingSide: "right" });
  const labels = task === "sequence-classification" ? int64([rows], [2, 0, 1].slice(0, rows)) : b.input_ids;
  return { batch: b, labels };
}

async function run(peft: PeftModel | PretrainedModel, feeds: Record<string, Tensor>, out: "logits" | "loss", extra: { withLoss?: boolean; mixed?: boolean } = {}): Promise<Float32Array> {
  const built = peft instanceof PeftModel ? peft.build({ withLoss: extra.withLoss, mixedAdapters: extra.mixed }) : peft.build({ withLoss: extra.withLoss });
  const step = await compile({ out: built.outputs[out]! }, { threads: 1 });
  const names = new Set(step.inputNames);
  const res = await step.run(Object.fromEntries(Object.entries(feeds).filter(([k]) => names.has(k))));
  await step.release();
  return res.out!.data as Float32Array;
}

const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);

describe("PEFT methods x architectures (conformance)", () => {
  it("every registered tuner and every preset is in the suite", () => {
    assert.deepEqual(Object.keys(TUNERS).filter((k) => !(k in CASES)), []);
    for (const [k, cases] of Object.entries(CASES)) assert.ok(cases.length > 0, k);
    const covered = Object.entries(CASES).flatMap(([method, cases]) => cases.flatMap((c) => (c.presets ?? []).map((p) => [p, method] as const)));
    assert.deepEqual(Object.keys(PRESETS).filter((p) => !covered.some(([q]) => q === p)), [], "presets without a conformance row");
    for (const [p, method] of covered) assert.equal(PRESETS[p].peft_type, method, `preset ${p} runs under its own method`);
    const names = Object.entries(CASES).flatMap(([m, cases]) => cases.map((c) => `${m} ${c.variant}`));
    assert.equal(new Set(names).size, names.length, "case names are unique");
  });

  for (const [method, cases] of Object.entries(CASES)) {
    for (const c of cases) {
      for (const arch of ARCHS) {
        if (c.only && !c.only.archs.includes(arch.name)) {
          it.skip(`${method} ${c.variant} on ${arch.name}: ${c.only.why}`);
          continue;
        }
        it(`${method} ${c.variant} on ${arch.name}`, async () => {
          const model = await loadModel(join(FIXTURES, arch.name), { task: arch.task });
          const peft = PeftModel.create(model, configOf(c, model));
          const { batch, labels } = await batchFor(model, arch.task);
          const feeds = peft.prepareInputs(batch, { labels });

          // Parameter count, by hand.
          assert.equal(peft.countParameters().trainable, c.expected(inventory(model), arch.task), "trainable parameters");

          // Identity at init.
          const baseLogits = await run(model, model.prepareInputs(batch), "logits");
          const initLogits = await run(peft, feeds, "logits");
          if (c.identityAtInit) assert.ok(maxDiff(baseLogits, initLogits) < 1e-5, `identity at init (max diff ${maxDiff(baseLogits, initLogits)})`);

          // Gradients against finite differences (float32: a directional derivative along a random direction).
          perturb(peft, "default", 1);
          const step = await TrainStep.create(peft.build({ withLoss: true }).outputs.loss!, { session: { threads: 1 } });
          const checkGrad = !c.noGradCheck;
          const trainable = [...peft.trainableTensors().keys()].sort();
          assert.deepEqual(step.params.map((p) => p.name).sort(), trainable, "the graph trains exactly the adapter tensors");
          const r0 = await step.run(feeds);
          const rand = seededRandom(9);
          const dirs = new Map(step.params.map((p) => [p.name, Float32Array.from(p.data as Float32Array, () => rand() - 0.5)]));
          // A unit direction, so the finite-difference step is small in parameter space.
          const len = Math.sqrt([...dirs.values()].reduce((a, d) => a + d.reduce((s, x) => s + x * x, 0), 0));
          for (const d of dirs.values()) d.forEach((x, i) => (d[i] = x / len));
          const shift = (s: number) => step.params.forEach((p) => (p.data as Float32Array).forEach((_, i, d) => (d[i]! += s * dirs.get(p.name)![i]!)));
          const eps = 1e-2;
          shift(eps);
          const lp = (await step.run(feeds)).loss;
          shift(-2 * eps);
          const lm = (await step.run(feeds)).loss;
          shift(eps);
          const numeric = (lp - lm) / (2 * eps);
          let analytic = 0;
          for (const p of step.params) r0.grads.get(p.name)!.data.forEach((g, i) => (analytic += (g as number) * dirs.get(p.name)![i]!));
          if (checkGrad) assert.ok(Math.abs(numeric - analytic) <= 2e-2 * Math.max(1e-2, Math.abs(numeric)), `directional derivative ${analytic} vs finite differences ${numeric}`);

          // One SGD step lowers the loss.
          const norm2 = [...r0.grads.values()].reduce((a, g) => a + Array.from(g.data as Float32Array).reduce((s, x) => s + x * x, 0), 0);
          const lr = 0.05 / Math.sqrt(norm2 + 1e-12);
          for (const p of step.params) (p.data as Float32Array).forEach((_, i, d) => (d[i]! -= lr * (r0.grads.get(p.name)!.data[i] as number)));
          assert.ok((await step.run(feeds)).loss < r0.loss, "one step lowers the loss");
          await step.release();

          // Save -> load reproduces outputs exactly.
          const trained = await run(peft, feeds, "logits");
          const dir = mkdtempSync(join(tmpdir(), "peftjs-adapter-"));
          await peft.save(dir);
          const config = JSON.parse(readFileSync(join(dir, "adapter_config.json"), "utf8"));
          assert.equal(config.peft_type, method);
          const loaded = await PeftModel.load(model, dir);
          const reloaded = await run(loaded, loaded.prepareInputs(batch, { labels }), "logits");
          if (c.reloadTolerance) assert.ok(maxDiff(reloaded, trained) < c.reloadTolerance.value, `save/load round trip (${c.reloadTolerance.why})`);
          else assert.deepEqual(Array.from(reloaded), Array.from(trained), "save/load round trip");

          // Merged equals unmerged.
          if (c.mergeable === true || (c.mergeable && !c.mergeable.except.includes(arch.name))) {
            const merged = peft.mergeAndUnload({ safe: true });
            const mergedLogits = await run(merged, merged.prepareInputs(batch), "logits");
            assert.ok(maxDiff(mergedLogits, trained) < 1e-5, `merged vs unmerged (max diff ${maxDiff(mergedLogits, trained)})`);
          }

          // Mixed-adapter batches: each row equals a run with its adapter alone (or the base).
          if (c.mixable) {
            peft.addAdapter("other", configOf(c, model));
            perturb(peft, "other", 2);
            const three = await batchFor(model, arch.task, 3);
            const rowsFeeds = { ...peft.prepareInputs(three.batch), adapter_index: int64([3], [0, 1, -1]) };
            peft.setAdapter(["default", "other"]);
            const mixed = await run(peft, rowsFeeds, "logits", { mixed: true });
            const per = mixed.length / 3;
            const single = async (names: string[] | null) => {
              if (names) peft.setAdapter(names);
              return names ? run(peft, peft.prepareInputs(three.batch), "logits") : peft.withAdaptersDisabled(() => run(peft, peft.prepareInputs(three.batch), "logits"));
            };
            const expectRows = [await single(["default"]), await single(["other"]), await single(null)];
            expectRows.forEach((full, r) => {
              const d = maxDiff(mixed.subarray(r * per, (r + 1) * per), full.subarray(r * per, (r + 1) * per));
              assert.ok(d < 1e-5, `mixed batch row ${r} (max diff ${d})`);
            });
          }
        });
      }
    }
  }
});

/** Every architecture and task the expected-keys table covers. */
const KEY_ARCHS: { name: string; task: Task }[] = [
  ...(["bert-tiny", "roberta-tiny"] as const).flatMap((name) => (["sequence-classification", "token-classification", "question-answering"] as const).map((task) => ({ name, task }))),
  { name: "gpt2-tiny", task: "causal-lm" },
  { name: "llama-tiny", task: "causal-lm" }, // grouped-query: 2 key/value heads for 4 query heads
];

/**
 * The fields of PEFT's config class per method (0.14: config.py PeftConfig / PromptLearningConfig,
 * tuners/<method>/config.py; peft_version from later versions, a version notice in 0.14): a saved
 * config must not carry others, or PEFT warns "Unexpected keyword arguments".
 */
const PEFT_COMMON = ["peft_type", "task_type", "base_model_name_or_path", "revision", "inference_mode", "auto_mapping", "peft_version"];
const PROMPT_LEARNING = [...PEFT_COMMON, "num_virtual_tokens", "token_dim", "num_transformer_submodules", "num_attention_heads", "num_layers"];
const LORA_FIELDS = [...PEFT_COMMON, "r", "target_modules", "exclude_modules", "lora_alpha", "lora_dropout", "fan_in_fan_out", "bias", "use_rslora", "modules_to_save", "init_lora_weights", "layers_to_transform", "layers_pattern", "rank_pattern", "alpha_pattern", "megatron_config", "megatron_core", "loftq_config", "eva_config", "use_dora", "layer_replication", "runtime_config", "lora_bias"];
const PEFT_FIELDS: Partial<Record<string, string[]>> = {
  LORA: LORA_FIELDS,
  ADALORA: [...LORA_FIELDS, "target_r", "init_r", "tinit", "tfinal", "deltaT", "beta1", "beta2", "orth_reg_weight", "total_step"],
  IA3: [...PEFT_COMMON, "target_modules", "exclude_modules", "feedforward_modules", "fan_in_fan_out", "modules_to_save", "init_ia3_weights"],
  PROMPT_TUNING: [...PROMPT_LEARNING, "prompt_tuning_init", "prompt_tuning_init_text", "tokenizer_name_or_path", "tokenizer_kwargs"],
  P_TUNING: [...PROMPT_LEARNING, "encoder_reparameterization_type", "encoder_hidden_size", "encoder_num_layers", "encoder_dropout"],
  PREFIX_TUNING: [...PROMPT_LEARNING, "encoder_hidden_size", "prefix_projection"],
  LN_TUNING: [...PEFT_COMMON, "target_modules", "exclude_modules", "modules_to_save"],
};

describe("PEFT state-dict keys: method x architecture x task (expected-keys table, both directions)", () => {
  const models = new Map<string, Promise<PretrainedModel>>();
  const model = (name: string, task: Task) => {
    const k = `${name}/${task}`;
    if (!models.has(k)) models.set(k, loadModel(join(FIXTURES, name), { task }));
    return models.get(k)!;
  };
  const show = (m: ReadonlyMap<string, readonly number[]>) => [...m].map(([k, s]) => `${k} [${s.join(", ")}]`).sort();

  for (const [method, cases] of Object.entries(CASES)) {
    for (const c of cases) {
      for (const arch of KEY_ARCHS) {
        const title = `${method} ${c.variant} on ${arch.name} (${arch.task})`;
        // `only` leaves out architectures the method cannot be created on (BitFit without biases).
        if (c.only && !c.only.archs.includes(arch.name) && !["bert-tiny", "roberta-tiny"].includes(arch.name)) {
          it.skip(`${title}: ${c.only!.why}`);
          continue;
        }
        it(title, async () => {
          const m = await model(arch.name, arch.task);
          const expected = c.keys(inventory(m), arch.task);
          const peft = PeftModel.create(m, configOf(c, m));
          // peftjs saves exactly PEFT's keys and shapes.
          const saved = new Map([...peft.stateDict()].map(([k, t]) => [k, t.shape] as const));
          assert.deepEqual(show(saved), show(expected));
          // A file with exactly those keys loads; one missing or one extra key is an error naming it.
          const dir = mkdtempSync(join(tmpdir(), "peftjs-keys-"));
          await peft.save(dir);
          // The config is what PEFT's save_pretrained writes: only its class's fields, inference_mode true,
          // fan_in_fan_out as PEFT corrects it for GPT-2's Conv1D (lora/model.py, ia3/model.py _create_new_module).
          const cfg = JSON.parse(readFileSync(join(dir, "adapter_config.json"), "utf8")) as Record<string, unknown>;
          const fields = PEFT_FIELDS[method];
          if (fields) assert.deepEqual(Object.keys(cfg).filter((k) => !fields.includes(k)), [], `fields PEFT's ${method} config lacks`);
          assert.equal(cfg.inference_mode, true);
          if ("fan_in_fan_out" in cfg) assert.equal(cfg.fan_in_fan_out, arch.name === "gpt2-tiny", "fan_in_fan_out");
          if (method === "ADALORA") assert.equal(cfg.r, 8, "AdaLoRA writes LoraConfig's default r (PEFT warns on any other)");
          // PEFT writes LN tuning's resolved default targets (utils/constants.py TRANSFORMERS_MODELS_TO_LNTUNING_TARGET_MODULES_MAPPING).
          const lnDefaults: Record<string, string[]> = { "gpt2-tiny": ["ln_1", "ln_2", "ln_f"], "llama-tiny": ["input_layernorm", "post_attention_layernorm", "norm"] };
          if (method === "LN_TUNING" && lnDefaults[arch.name]) assert.deepEqual(cfg.target_modules, lnDefaults[arch.name]);
          const file = join(dir, "adapter_model.safetensors");
          const tensors = await readSafetensors(file);
          const all = new Map(tensors.names().map((n) => [n, tensors.get(n)]));
          await PeftModel.load(m, dir);
          // Copies of unchanged base weights (a targeted embed_tokens' table, a head wrapper's biases under bias="all") may be absent.
          const [first] = [...expected.keys()].filter((k) => !/\.base_layer\.weight$|\.original_module\.|\.modules_to_save\./.test(k)).sort();
          const without = new Map(all);
          without.delete(first!);
          await writeSafetensors(file, without);
          await assert.rejects(PeftModel.load(m, dir), (e: Error) => e.message.includes("missing adapter weights") && e.message.includes(first!));
          const extra = new Map(all).set(`${P}not.a.module.lora_A.weight`, { dtype: "float32", shape: [1], data: new Float32Array(1) });
          await writeSafetensors(file, extra);
          await assert.rejects(PeftModel.load(m, dir), (e: Error) => e.message.includes("does not use") && e.message.includes(`${P}not.a.module.lora_A.weight`));
        });
      }
    }
  }
});
