// Bottleneck adapters: down-projection -> nonlinearity -> up-projection, placed around a
// transformer sublayer. Houlsby et al. 2019 ("Parameter-Efficient Transfer Learning for NLP"):
// after attention and after the FFN (AdapterHub's `double_seq_bn`). Pfeiffer et al. 2020
// (AdapterFusion): after the FFN only, reading LN(sublayer + residual) (`seq_bn`). He et al. 2022
// ("Towards a Unified View of Parameter-Efficient Transfer Learning"): parallel to the sublayer,
// fed with its input and scaled (`par_bn`).
//
// Computed as AdapterHub's `adapters` v1.1 does (src/adapters/methods/modeling.py Adapter /
// ParallelAdapter pre_forward, forward, post_forward; methods/bottleneck.py
// BottleneckLayer.bottleneck_layer_forward), with the model's LayerNorm after the residual add on
// post-LN models (BERT, RoBERTa, DistilBERT) and none on pre-LN ones (GPT-2, Llama: their blocks
// call the adapter layer with layer_norm=None). Tensors are named as AdapterHub names them:
// `<module>.adapters.<name>.adapter_down.0.weight`, the module the BERT family's
// `...attention.output` / `...output`, `<layer>.attention_adapters` / `<layer>.output_adapters`
// elsewhere (models/*/mixin_*.py).
import { activation } from "../../ir/composites/activations.js";
import { linear } from "../../ir/composites/linear.js";
import { type Value } from "../../ir/graph.js";
import { add, layerNorm, mul, neg, relu, sigmoid, sub, tanh } from "../../ir/ops/index.js";
import { fillNormal, seededRandom } from "../../ir/random.js";
import { type Tensor } from "../../ir/tensor.js";
import { type BlockOutputHook, type LinearHook, type SublayerHook } from "../../models/hooks.js";
import { type PretrainedModel } from "../../models/pretrained.js";
import { ModulesToSave, paramsOfModules } from "../modules-to-save.js";
import { AdapterConfigError, type Adapter, type HookContext, type TunerDef } from "../tuner.js";
import { BOTTLENECK_CONFIG, BOTTLENECK_INERT, bottleneckSize, type BottleneckConfig } from "./config.js";

export { BOTTLENECK_PRESETS, parseBottleneckConfig, type BottleneckConfig } from "./config.js";

/** nn.LayerNorm's default epsilon (the adapter's own ln_before / ln_after). */
const ADAPTER_LN_EPS = 1e-5;

interface Site {
  /** AdapterHub's module path of the adapter layer. */
  module: string;
  hidden: number;
  bottleneck: number;
}

/**
 * AdapterHub's module for a sublayer hook: BERT/RoBERTa's BertSelfOutput / BertOutput are the
 * adapter layers themselves (bert/mixin_bert.py); DistilBERT, GPT-2 and Llama blocks own
 * `attention_adapters` and `output_adapters` (mixin_distilbert.py, mixin_gpt2.py, mixin_llama.py).
 */
export function adapterModule(path: string, kind: "attention" | "ffn"): string {
  const m = /^(.*\.\d+)\.(.+)$/.exec(path);
  if (!m) throw new Error(`bottleneck adapter: cannot find the layer in sublayer path "${path}"`);
  if (m[2] === "attention.output" || m[2] === "output") return path;
  return `${m[1]}.${kind === "attention" ? "attention_adapters" : "output_adapters"}`;
}

/** The adapter's nonlinearity (modeling.py Activation_Function_Class). */
function nonLinearity(name: string, x: Value): Value {
  switch (name) {
    case "tanh":
      return tanh(x);
    case "sigmoid":
      return sigmoid(x);
    case "linear":
      return x;
    case "leakyrelu":
    case "leaky_relu":
      // torch's leaky_relu, negative_slope 0.01.
      return sub(relu(x), mul(relu(neg(x)), 0.01));
    default:
      return activation(name, x);
  }
}

export class BottleneckAdapter implements Adapter<BottleneckConfig> {
  readonly tensors = new Map<string, Tensor>();
  /** Adapter layers by sublayer hook path. */
  readonly sites = new Map<string, Site>();
  private readonly extra: ModulesToSave;

  constructor(model: PretrainedModel, readonly config: BottleneckConfig, readonly name: string) {
    const rand = seededRandom(5);
    const postNorm = model.config.family === "bert" || model.config.family === "distilbert";
    const where = `bottleneck adapter "${name}" on ${model.config.modelType}`;
    if (!postNorm && config.residual_before_ln === "post_add" && !config.is_parallel) {
      throw new AdapterConfigError(`${where}: residual_before_ln "post_add" takes the residual before the model's post-LayerNorm, and this pre-LN model has none (AdapterHub fails on it too)`);
    }
    for (const s of model.modules().sublayers) {
      if (config.leave_out.includes(s.layer)) continue;
      if (s.kind === "attention" ? !config.mh_adapter : !config.output_adapter) continue;
      const bottleneck = bottleneckSize(config, s.layer, s.hidden, where);
      const site: Site = { module: adapterModule(s.path, s.kind), hidden: s.hidden, bottleneck };
      this.sites.set(s.path, site);
      const H = s.hidden;
      const zeros = (shape: number[]): Tensor => ({ dtype: "float32", shape, data: new Float32Array(shape.reduce((a, b) => a * b, 1)) });
      const ones = (n: number): Tensor => ({ dtype: "float32", shape: [n], data: new Float32Array(n).fill(1) });
      // modeling.py Adapter.__init__, by init_weights; biases zero.
      const weight = (shape: [number, number], role: "down" | "up" | "gate"): Tensor => {
        const t = zeros(shape);
        const data = t.data as Float32Array;
        const init = role === "gate" && config.init_weights !== "houlsby" ? "bert" : config.init_weights;
        if (init === "bert") fillNormal(data, 0.02, Math.floor(rand() * 1e9));
        else if (init === "houlsby") for (let i = 0; i < data.length; i++) data[i] = truncatedNormal(rand, 1e-2);
        // mam_adapter: kaiming_uniform_(a=sqrt(5)) on the down projection = U(-1/sqrt(fan_in), 1/sqrt(fan_in)); zero up projection.
        else if (role === "down") for (let i = 0; i < data.length; i++) data[i] = (rand() * 2 - 1) / Math.sqrt(shape[1]);
        return t;
      };
      const down = config.ln_before ? "adapter_down.1" : "adapter_down.0";
      if (config.ln_before) {
        this.tensors.set(this.key(site, "adapter_norm_before.weight"), ones(H));
        this.tensors.set(this.key(site, "adapter_norm_before.bias"), zeros([H]));
      }
      this.tensors.set(this.key(site, `${down}.weight`), weight([bottleneck, H], "down"));
      this.tensors.set(this.key(site, `${down}.bias`), zeros([bottleneck]));
      this.tensors.set(this.key(site, "adapter_up.weight"), weight([H, bottleneck], "up"));
      this.tensors.set(this.key(site, "adapter_up.bias"), zeros([H]));
      if (config.ln_after) {
        this.tensors.set(this.key(site, "adapter_norm_after.weight"), ones(H));
        this.tensors.set(this.key(site, "adapter_norm_after.bias"), zeros([H]));
      }
      if (config.use_gating) {
        this.tensors.set(this.key(site, "gate.weight"), weight([1, H], "gate"));
        this.tensors.set(this.key(site, "gate.bias"), zeros([1]));
      }
    }
    if (this.sites.size === 0) throw new AdapterConfigError(`bottleneck adapter "${name}": no sublayer left to adapt (leave_out ${JSON.stringify(config.leave_out)})`);
    const norms = config.train_layer_norms ? paramsOfModules(model, ["LayerNorm", "layer_norm", "ln_1", "ln_2", "ln_f", "sa_layer_norm", "output_layer_norm", "input_layernorm", "post_attention_layernorm", "norm"]) : [];
    const heads = new Set(paramsOfModules(model, config.modules_to_save ?? []));
    this.extra = new ModulesToSave(model, [], norms.filter((n) => !heads.has(n)));
    for (const [k, t] of this.extra.tensors) this.tensors.set(k, t);
  }

  private key(site: Site, leaf: string): string {
    return `${site.module}.adapter.${leaf}`;
  }

  get trainsBaseParams(): readonly string[] {
    return [];
  }

  hooks(ctx: HookContext) {
    const { config } = this;
    // modeling.py Adapter.forward / ParallelAdapter.forward up to the residual: the scaled up-projection (gated).
    const bottleneck = (site: Site, x: Value): Value => {
      const p = (leaf: string) => ctx.bind(this.key(site, leaf));
      let h = x;
      if (config.ln_before) h = layerNorm(h, p("adapter_norm_before.weight"), p("adapter_norm_before.bias"), ADAPTER_LN_EPS);
      const down = config.ln_before ? "adapter_down.1" : "adapter_down.0";
      let up = linear(nonLinearity(config.non_linearity, linear(h, p(`${down}.weight`), p(`${down}.bias`))), p("adapter_up.weight"), p("adapter_up.bias"));
      if (config.scaling !== 1) up = mul(up, config.scaling);
      if (config.use_gating) up = mul(up, sigmoid(linear(x, p("gate.weight"), p("gate.bias"))));
      return up;
    };
    const normAfter = (site: Site, x: Value) => layerNorm(x, ctx.bind(this.key(site, "adapter_norm_after.weight")), ctx.bind(this.key(site, "adapter_norm_after.bias")), ADAPTER_LN_EPS);
    /**
     * What the sublayer's output becomes. The model then adds the residual (and applies its
     * post-LN), which is AdapterHub's post_forward with original_ln_after; without it the block's
     * output is the adapter's: on pre-LN models the residual the model adds is taken off again,
     * on post-LN ones the adapter's output replaces the block's LayerNorm output (blockOutput).
     */
    const adapted = (site: Site, h: SublayerHook): Value => {
      let out: Value;
      if (config.is_parallel) {
        // ParallelAdapter: pre_forward feeds the sublayer's input; post_forward adds the sublayer's output.
        let up = bottleneck(site, h.residual);
        if (config.ln_after) up = normAfter(site, up);
        out = add(up, h.y);
      } else {
        // Adapter.pre_forward: the adapter's input and its residual.
        let x = h.y;
        let sum: Value | undefined;
        if (config.original_ln_before) {
          sum = add(h.y, h.residual);
          x = h.norm ? h.norm(sum) : sum;
        }
        const residual = config.residual_before_ln === true ? h.y : config.residual_before_ln === "post_add" ? sum! : x;
        // Adapter.forward: the residual before or after ln_after.
        out = bottleneck(site, x);
        if (config.adapter_residual_before_ln) out = add(out, residual);
        if (config.ln_after) out = normAfter(site, out);
        if (!config.adapter_residual_before_ln) out = add(out, residual);
      }
      return out;
    };
    const replaced = (site: Site, h: SublayerHook): Value => (config.original_ln_after ? adapted(site, h) : sub(adapted(site, h), h.residual));
    // Post-LN blocks with original_ln_after false: the adapter's output, by sublayer path, until the block ends.
    const blockOutputs = new Map<string, Value>();
    const gated = (base: Value, y: Value) => (ctx.rowGate ? add(base, mul(sub(y, base), ctx.rowGate(base))) : y);
    return {
      parameter: (n: string) => this.extra.parameter(n, ctx),
      linear: (h: LinearHook) => this.extra.linear(h, ctx),
      sublayerOutput: (h: SublayerHook) => {
        const site = this.sites.get(h.path);
        if (!site) return undefined;
        if (!config.original_ln_after && h.norm) {
          // modeling.py post_forward without original_ln_after: neither the residual nor the block's LayerNorm.
          blockOutputs.set(h.path, adapted(site, h));
          return undefined;
        }
        // Mixed batches: rows of other adapters keep the sublayer's own output.
        return gated(h.y, replaced(site, h));
      },
      blockOutput: (h: BlockOutputHook) => {
        const out = blockOutputs.get(h.path);
        if (!out) return undefined;
        blockOutputs.delete(h.path);
        return gated(h.output, out);
      },
    };
  }

  /** AdapterHub's keys carry the adapter's name: ours when saving, the file's when loading. */
  private fileName: string | undefined;

  stateKeys(): Map<string, string> {
    const keys = new Map<string, string>();
    const inFile = `.adapters.${this.fileName ?? this.name}.`;
    for (const k of this.tensors.keys()) {
      if (!k.includes(".adapter.")) continue;
      keys.set(k.replace(".adapter.", inFile), k);
      // AdapterHub registers the ln_before LayerNorm twice (adapter_norm_before and adapter_down.0), so its state dict holds both.
      if (k.endsWith(".adapter.adapter_norm_before.weight") || k.endsWith(".adapter.adapter_norm_before.bias")) keys.set(k.replace(".adapter.", inFile).replace("adapter_norm_before", "adapter_down.0"), k);
    }
    for (const [k, v] of this.extra.loadKeys()) keys.set(k, v);
    return keys;
  }

  beforeLoad(file: ReadonlyMap<string, Tensor>): void {
    this.fileName = [...file.keys()].map((k) => /\.adapters\.([^.]+)\./.exec(k)?.[1]).find(Boolean);
  }
}

/** N(0, std) truncated to [-2 std, 2 std] (rejection sampling), like torch's trunc_normal_. */
function truncatedNormal(rand: () => number, std: number): number {
  for (;;) {
    const z = Math.sqrt(-2 * Math.log(Math.max(rand(), 1e-12))) * Math.cos(2 * Math.PI * rand());
    if (Math.abs(z) <= 2) return z * std;
  }
}

export const BOTTLENECK: TunerDef<BottleneckConfig> = {
  peftType: "BOTTLENECK",
  inertFields: BOTTLENECK_INERT,
  // AdapterHub's files nest the fields under "config".
  knownAliases: ["config"],
  ...BOTTLENECK_CONFIG,
  create: (model, config, name) => new BottleneckAdapter(model, BOTTLENECK_CONFIG.parseConfig({ ...config }, "bottleneck config"), name),
};
