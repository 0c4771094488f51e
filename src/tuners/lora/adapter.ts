// LoRA (Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models"): a frozen linear
// layer W gains a trainable low-rank update, y = W x + (alpha / r) B A dropout(x), with A [r, in]
// and B [out, r]; B starts at zero so the model is unchanged at init. DoRA (Liu et al. 2024)
// rescales each output unit by a trainable magnitude over the norm of the updated weight.
import { linear } from "../../ir/composites/linear.js";
import { type Value } from "../../ir/graph.js";
import { add, div, dropout, gather, matmul, mul, reduceSum, sigmoid, sqrt, stopGradient, sub, transpose } from "../../ir/ops/index.js";
import { fillNormal, seededRandom } from "../../ir/random.js";
import { type Tensor } from "../../ir/tensor.js";
import { type EmbeddingHook, type LinearHook } from "../../models/hooks.js";
import { type PretrainedModel } from "../../models/pretrained.js";
import { isTargeted, patternValue, targetedLinears } from "../targets.js";
import { AdapterConfigError, MODEL_PREFIX, type Adapter, type HookContext } from "../tuner.js";
import { type LoraConfig } from "./config.js";
import { ModulesToSave, paramsOfModules } from "../modules-to-save.js";

interface LoraLayer {
  path: string;
  layout: "linear" | "conv1d";
  r: number;
  scaling: number;
  inFeatures: number;
  outFeatures: number;
}

const f32 = (shape: number[], fill?: (d: Float32Array) => void): Tensor<"float32"> => {
  const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
  fill?.(data);
  return { dtype: "float32", shape, data };
};

export class LoraAdapter implements Adapter<LoraConfig> {
  readonly tensors = new Map<string, Tensor>();
  readonly layers = new Map<string, LoraLayer>();
  private readonly extra: ModulesToSave;

  constructor(
    private readonly model: PretrainedModel,
    readonly config: LoraConfig,
    readonly name: string,
    seed = 0,
  ) {
    const source = `LoRA adapter "${name}"`;
    const rand = seededRandom(seed + 1);
    for (const l of model.modules().linear.filter((l) => isTargeted(config, l.path))) {
      const r = patternValue(config.rank_pattern, l.path, config.r);
      const alpha = patternValue(config.alpha_pattern, l.path, config.lora_alpha);
      if (r > Math.min(l.inFeatures, l.outFeatures)) {
        throw new AdapterConfigError(`${source}: rank ${r} is larger than layer ${l.path} allows (in ${l.inFeatures}, out ${l.outFeatures}); lower r or rank_pattern for it`);
      }
      const layer: LoraLayer = { path: l.path, layout: l.layout, r, scaling: config.use_rslora ? alpha / Math.sqrt(r) : alpha / r, inFeatures: l.inFeatures, outFeatures: l.outFeatures };
      this.layers.set(l.path, layer);
      // A: kaiming-uniform with a = sqrt(5), i.e. U(-1/sqrt(in), 1/sqrt(in)) (nn.Linear's default), or N(0, 1/r).
      const bound = 1 / Math.sqrt(l.inFeatures);
      const a = f32([r, l.inFeatures], (d) => (config.init_lora_weights === "gaussian" ? fillNormal(d, 1 / r, seed * 7919 + this.layers.size) : d.forEach((_, i) => (d[i] = (rand() * 2 - 1) * bound))));
      const b = f32([l.outFeatures, r], (d) => (config.init_lora_weights === false ? d.forEach((_, i) => (d[i] = (rand() * 2 - 1) * bound)) : undefined));
      this.tensors.set(this.key(l.path, "lora_A"), a);
      this.tensors.set(this.key(l.path, "lora_B"), b);
      // lora_bias: lora_B is nn.Linear(r, out, bias=True), its bias zero at init (PEFT lora/layer.py update_layer, reset_lora_parameters).
      if (config.lora_bias) this.tensors.set(this.loraBiasKey(l.path), f32([l.outFeatures]));
      if (config.use_dora) this.tensors.set(this.magnitudeKey(l.path), f32([l.outFeatures], (d) => d.set(rowNorms(this.baseWeight(layer), layer.layout))));
      if (config.use_gating) {
        this.tensors.set(this.gateKey(l.path, "weight"), f32([1, l.inFeatures]));
        this.tensors.set(this.gateKey(l.path, "bias"), f32([1]));
      }
    }
    // LoRA on the input embedding (PEFT's lora.Embedding): A [r, vocab], B [hidden, r].
    const emb = model.modules().embeddings;
    if (emb && config.target_modules !== "all-linear" && isTargeted(config, emb.path)) {
      if (config.lora_bias) throw new AdapterConfigError(`${source}: lora_bias is not supported for embedding layers (${emb.path}), as in PEFT (lora.Embedding)`);
      const r = patternValue(config.rank_pattern, emb.path, config.r);
      const alpha = patternValue(config.alpha_pattern, emb.path, config.lora_alpha);
      this.embedding = { path: emb.path, r, scaling: config.use_rslora ? alpha / Math.sqrt(r) : alpha / r, vocab: emb.vocab, hidden: emb.hidden };
      // PEFT initializes the embedding's A to zeros and B normally (the transpose of Linear's rule).
      this.tensors.set(this.embKey("A"), f32([r, emb.vocab]));
      this.tensors.set(this.embKey("B"), f32([emb.hidden, r], (d) => fillNormal(d, 1, seed * 31 + 7)));
    } else if (this.layers.size === 0) {
      targetedLinears(config, model.modules(), "LoRA", source); // throws, listing close names
    }
    // PEFT sets fan_in_fan_out from the layer type it wraps (lora/model.py _create_new_module:
    // True for transformers' Conv1D, False for nn.Linear) and saves the corrected config.
    const layouts = new Set([...this.layers.values()].map((l) => l.layout));
    if (layouts.size === 1) config.fan_in_fan_out = layouts.has("conv1d");
    // Trained biases. "all": every bias of the model, LayerNorms included; "lora_only": those of
    // the LoRA-wrapped layers. A wrapped layer's bias lives on its base layer, so PEFT saves it as
    // `<path>.base_layer.bias` (tuners_utils.py BaseTuner._get_learnable_bias_state_dict). Heads in
    // modules_to_save keep their own trained copy (PeftModel's).
    const params = [...model.modules().params.keys()];
    const inHead = new Set(paramsOfModules(model, config.modules_to_save ?? []));
    const biases = config.bias === "all" ? params.filter((n) => n.endsWith(".bias") && !inHead.has(n)) : config.bias === "lora_only" ? [...this.layers.keys()].map((p) => `${p}.bias`).filter((n) => params.includes(n)) : [];
    const saveKey = (n: string) => {
      const module = n.slice(0, -".bias".length);
      return `${MODEL_PREFIX}${this.layers.has(module) ? `${module}.base_layer.bias` : n}`;
    };
    this.extra = new ModulesToSave(model, [], biases, saveKey);
    for (const [k, t] of this.extra.tensors) this.tensors.set(k, t);
  }

  /** LoRA on the input embedding, when targeted. */
  embedding: { path: string; r: number; scaling: number; vocab: number; hidden: number } | undefined;

  private embKey(which: "A" | "B"): string {
    return `${this.embedding!.path}.lora_embedding_${which}`;
  }

  private key(path: string, which: "lora_A" | "lora_B"): string {
    return `${path}.${which}.weight`;
  }

  private loraBiasKey(path: string): string {
    return `${path}.lora_B.bias`;
  }

  private gateKey(path: string, leaf: "weight" | "bias"): string {
    return `${path}.lora_gate.${leaf}`;
  }

  private magnitudeKey(path: string): string {
    return `${path}.lora_magnitude_vector`;
  }

  private baseWeight(layer: LoraLayer): Tensor<"float32"> {
    return this.model.weights.get(`${layer.path}.weight`) as Tensor<"float32">;
  }

  /** A, B (flat, [r, in] and [out, r]) and r of one adapted layer. */
  factors(path: string): { A: Float32Array; B: Float32Array; r: number } {
    return { A: this.tensors.get(this.key(path, "lora_A"))!.data as Float32Array, B: this.tensors.get(this.key(path, "lora_B"))!.data as Float32Array, r: this.layers.get(path)!.r };
  }

  hooks(ctx: HookContext) {
    return {
      parameter: (n: string) => this.extra.parameter(n, ctx),
      inputEmbeddings: (h: EmbeddingHook) => {
        const e = this.embedding;
        if (!e || h.path !== e.path) return undefined;
        // Rows of A^T picked by the token ids, then B: [batch, seq, r] @ [r, hidden].
        let delta = mul(matmul(gather(transpose(ctx.bind(this.embKey("A")), [1, 0]), h.ids), transpose(ctx.bind(this.embKey("B")), [1, 0])), e.scaling);
        if (ctx.rowGate) delta = mul(delta, ctx.rowGate(delta));
        return add(h.embeds, delta);
      },
      linear: (hook: LinearHook) => {
        const layer = this.layers.get(hook.path);
        if (!layer) return this.extra.linear(hook, ctx);
        // Trained bias copies (bias = "all" / "lora_only") stay part of the base path.
        const h = { ...hook, base: (x: Value) => this.extra.linear({ ...hook, x }, ctx) ?? hook.base(x) };
        const A = ctx.bind(this.key(h.path, "lora_A"));
        const B = ctx.bind(this.key(h.path, "lora_B"));
        const x = dropout(h.x, this.config.lora_dropout, ctx.training);
        // PEFT: result + lora_B(lora_A(dropout(x))) * scaling, so lora_B's bias is scaled too.
        let delta = mul(linear(linear(x, A), B, this.config.lora_bias ? ctx.bind(this.loraBiasKey(h.path)) : undefined), layer.scaling);
        let y: Value;
        if (this.config.use_dora) {
          // PEFT's DoRA: y = b + m / ||W + s B A||_row * (W x + s B A x), the norm detached.
          const W = layer.layout === "linear" ? h.weight : transpose(h.weight, [1, 0]);
          const merged = add(W, mul(matmul(B, A), layer.scaling));
          const norm = stopGradient(sqrt(reduceSum(mul(merged, merged), [1], false)));
          const scale = div(ctx.bind(this.magnitudeKey(h.path)), norm);
          const noBias = h.bias ? sub(h.base(h.x), h.bias) : h.base(h.x);
          y = mul(add(noBias, delta), scale);
          if (h.bias) y = add(y, h.bias);
          delta = sub(y, h.base(h.x));
        }
        if (this.config.use_gating) delta = mul(delta, sigmoid(linear(h.x, ctx.bind(this.gateKey(h.path, "weight")), ctx.bind(this.gateKey(h.path, "bias")))));
        if (ctx.rowGate) delta = mul(delta, ctx.rowGate(delta));
        return add(h.base(h.x), delta);
      },
    };
  }

  stateKeys(): Map<string, string> {
    const keys = new Map<string, string>();
    for (const path of this.layers.keys()) {
      keys.set(`${MODEL_PREFIX}${path}.lora_A.weight`, this.key(path, "lora_A"));
      keys.set(`${MODEL_PREFIX}${path}.lora_B.weight`, this.key(path, "lora_B"));
      if (this.config.lora_bias) keys.set(`${MODEL_PREFIX}${path}.lora_B.bias`, this.loraBiasKey(path));
      // PEFT keeps DoRA's magnitude as a bare parameter name (lora/model.py _get_adapter_state_dict strips ".weight").
      if (this.config.use_dora) keys.set(`${MODEL_PREFIX}${path}.lora_magnitude_vector`, this.magnitudeKey(path));
      if (this.config.use_gating) for (const leaf of ["weight", "bias"] as const) keys.set(`${MODEL_PREFIX}${path}.lora_gate.${leaf}`, this.gateKey(path, leaf));
    }
    if (this.embedding) for (const w of ["A", "B"] as const) keys.set(`${MODEL_PREFIX}${this.embedding.path}.lora_embedding_${w}`, this.embKey(w));
    if (!this.biasesFromBase) for (const [k, v] of this.extra.loadKeys()) keys.set(k, v);
    return keys;
  }

  /**
   * PEFT 0.14 saved no biases for bias="lora_only" (get_peft_model_state_dict looked for
   * `<path>.bias`, which a wrapped layer no longer has) and, loading such a file, keeps the base
   * biases. A lora_only file without any of them loads the same way; one with only some is refused.
   */
  private biasesFromBase = false;

  beforeLoad(file: ReadonlyMap<string, Tensor>): void {
    const biasKeys = [...this.extra.loadKeys().keys()];
    this.biasesFromBase = this.config.bias === "lora_only" && biasKeys.length > 0 && biasKeys.every((k) => !file.has(k));
  }

  /**
   * A LoRA-targeted `embed_tokens` (or `lm_head`): PEFT's save_embedding_layers="auto" then saves
   * the base table too, as `<path>.base_layer.weight` (utils/save_and_load.py
   * get_peft_model_state_dict, EMBEDDING_LAYER_NAMES; 0.14 and current alike).
   */
  baseKeys(): Map<string, string> {
    const e = this.embedding;
    return e && /(^|\.)(embed_tokens|lm_head)$/.test(e.path) ? new Map([[`${MODEL_PREFIX}${e.path}.base_layer.weight`, `${e.path}.weight`]]) : new Map();
  }

  /** W + s B A for every adapted layer (DoRA: rescaled per output unit), by base parameter name. */
  mergedWeights(weight: (name: string) => Tensor): Map<string, Tensor> {
    if (this.config.use_gating) throw new AdapterConfigError(`LoRA adapter "${this.name}": gated updates depend on the input and cannot be merged`);
    const out = new Map<string, Tensor>();
    for (const layer of this.layers.values()) {
      const name = `${layer.path}.weight`;
      const W = weight(name);
      const A = this.tensors.get(this.key(layer.path, "lora_A"))!.data as Float32Array;
      const B = this.tensors.get(this.key(layer.path, "lora_B"))!.data as Float32Array;
      const { inFeatures: I, outFeatures: O, r, scaling } = layer;
      const merged = Float32Array.from(W.data as Float32Array);
      const at = (o: number, i: number) => (layer.layout === "linear" ? o * I + i : i * O + o);
      for (let o = 0; o < O; o++) {
        for (let i = 0; i < I; i++) {
          let s = 0;
          for (let k = 0; k < r; k++) s += B[o * r + k]! * A[k * I + i]!;
          merged[at(o, i)]! += scaling * s;
        }
      }
      if (this.config.use_dora) {
        const m = this.tensors.get(this.magnitudeKey(layer.path))!.data as Float32Array;
        const norms = rowNorms({ dtype: "float32", shape: W.shape, data: merged }, layer.layout);
        for (let o = 0; o < O; o++) for (let i = 0; i < I; i++) merged[at(o, i)]! *= m[o]! / norms[o]!;
      }
      out.set(name, { dtype: "float32", shape: W.shape, data: merged });
      if (this.config.lora_bias) {
        // The base bias gains scaling * lora_B.bias (PEFT lora/layer.py Linear.merge; 0.14 added it unscaled, unlike its forward).
        const biasName = `${layer.path}.bias`;
        if (!this.model.modules().params.has(biasName)) throw new AdapterConfigError(`LoRA adapter "${this.name}": cannot merge lora_bias into ${layer.path}, which has no bias (as in PEFT)`);
        const base = this.extra.mergedWeights().get(biasName) ?? weight(biasName);
        const b = this.tensors.get(this.loraBiasKey(layer.path))!.data as Float32Array;
        out.set(biasName, { dtype: "float32", shape: base.shape, data: Float32Array.from(base.data as Float32Array, (v, o) => v + scaling * b[o]!) });
      }
    }
    if (this.embedding) {
      // The table [vocab, hidden] gains s (B A)^T.
      const { path, r, vocab, hidden, scaling } = this.embedding;
      const name = `${path}.weight`;
      const W = weight(name);
      const A = this.tensors.get(this.embKey("A"))!.data as Float32Array;
      const B = this.tensors.get(this.embKey("B"))!.data as Float32Array;
      const merged = Float32Array.from(W.data as Float32Array);
      for (let v = 0; v < vocab; v++) for (let h = 0; h < hidden; h++) {
        let d = 0;
        for (let k = 0; k < r; k++) d += B[h * r + k]! * A[k * vocab + v]!;
        merged[v * hidden + h]! += scaling * d;
      }
      out.set(name, { dtype: "float32", shape: W.shape, data: merged });
      // An output head tied to this table keeps the original weights (the update applies to the
      // input lookup only), so the merged model computes what the adapter did.
      for (const head of TIED_HEADS) if (!this.model.weights.has(head)) out.set(head, W);
    }
    for (const [k, t] of this.extra.mergedWeights()) if (!out.has(k)) out.set(k, t);
    return out;
  }
}

/** Output heads that transformers ties to the input embeddings, by architecture. */
const TIED_HEADS = ["lm_head.weight", "cls.predictions.decoder.weight", "lm_head.decoder.weight", "vocab_projector.weight"];

/** L2 norm of each output unit's weights. */
function rowNorms(W: Tensor, layout: "linear" | "conv1d"): Float32Array {
  const [a, b] = W.shape as [number, number];
  const [O, I] = layout === "linear" ? [a, b] : [b, a];
  const d = W.data as Float32Array;
  const out = new Float32Array(O);
  for (let o = 0; o < O; o++) {
    let s = 0;
    for (let i = 0; i < I; i++) {
      const v = layout === "linear" ? d[o * I + i]! : d[i * O + o]!;
      s += v * v;
    }
    out[o] = Math.sqrt(s);
  }
  return out;
}
