// Adapter + LoRA in one adapter (UniPELT, Mao et al. 2022, "UniPELT: A Unified Framework for
// Parameter-Efficient Language Model Tuning"): LoRA on attention projections and a bottleneck
// adapter after sublayers, trained together; with `gates`, each module's contribution is scaled
// by a learned sigmoid gate of its input, as in UniPELT. (Any two adapters can also be active
// together through PeftModel.setAdapter([...]); this packages the pair as one.)
import { type Tensor } from "../../ir/tensor.js";
import { composeHooks } from "../../models/hooks.js";
import { type PretrainedModel } from "../../models/pretrained.js";
import { BottleneckAdapter, parseBottleneckConfig, type BottleneckConfig } from "../bottleneck/index.js";
import { LoraAdapter } from "../lora/adapter.js";
import { loraConfigToJSON, parseLoraConfig, type LoraConfig } from "../lora/config.js";
import { AdapterConfigError, field, isBool, type Adapter, type BaseConfig, type HookContext, type TunerDef } from "../tuner.js";

export interface HybridConfig extends BaseConfig {
  peft_type: "HYBRID";
  lora: LoraConfig;
  adapter: BottleneckConfig;
  /** Learned per-module sigmoid gates (UniPELT). */
  gates: boolean;
}

function parse(json: Readonly<Record<string, unknown>>, source: string, model?: PretrainedModel): HybridConfig {
  const gates = field(json, "gates", false, isBool, "a boolean", source);
  const sub = (k: string) => {
    const v = json[k];
    if (v !== undefined && (typeof v !== "object" || v === null)) throw new AdapterConfigError(`${source}: "${k}" must be an object`);
    return (v ?? {}) as Record<string, unknown>;
  };
  return {
    peft_type: "HYBRID",
    gates,
    lora: parseLoraConfig({ ...sub("lora"), use_gating: gates, modules_to_save: json.modules_to_save }, `${source} (lora)`, model?.config.modelType),
    adapter: parseBottleneckConfig({ variant: "seq_bn", ...sub("adapter"), use_gating: gates }, `${source} (adapter)`),
    modules_to_save: (json.modules_to_save as string[] | undefined) ?? null,
    base_model_name_or_path: (json.base_model_name_or_path as string | undefined) ?? null,
    task_type: (json.task_type as string | undefined) ?? null,
    inference_mode: false,
  };
}

export class HybridAdapter implements Adapter<HybridConfig> {
  readonly tensors = new Map<string, Tensor>();
  private readonly lora: LoraAdapter;
  private readonly bottleneck: BottleneckAdapter;

  constructor(model: PretrainedModel, readonly config: HybridConfig, readonly name: string) {
    this.lora = new LoraAdapter(model, config.lora, name);
    this.bottleneck = new BottleneckAdapter(model, { ...config.adapter, modules_to_save: null }, name);
    for (const a of [this.lora, this.bottleneck]) for (const [k, t] of a.tensors) this.tensors.set(k, t);
  }

  hooks(ctx: HookContext) {
    return composeHooks([this.lora.hooks(ctx), this.bottleneck.hooks(ctx)]);
  }

  stateKeys(): Map<string, string> {
    return new Map([...this.lora.stateKeys(), ...this.bottleneck.stateKeys()]);
  }

  beforeLoad(file: ReadonlyMap<string, Tensor>): void {
    this.bottleneck.beforeLoad(file);
  }
}

export const HYBRID: TunerDef<HybridConfig> = {
  peftType: "HYBRID",
  parseConfig: parse,
  toJSON: (c) => ({
    peft_type: "HYBRID", gates: c.gates, lora: loraConfigToJSON(c.lora), adapter: (BOTTLENECK_JSON(c.adapter)), task_type: c.task_type ?? null,
    base_model_name_or_path: c.base_model_name_or_path ?? null, modules_to_save: c.modules_to_save ?? null,
  }),
  create: (model, config, name) => new HybridAdapter(model, parse({ ...config, lora: config.lora, adapter: config.adapter }, "hybrid config", model), name),
};

function BOTTLENECK_JSON(c: BottleneckConfig): Record<string, unknown> {
  return { variant: c.variant, mh_adapter: c.mh_adapter, output_adapter: c.output_adapter, reduction_factor: c.reduction_factor, non_linearity: c.non_linearity, original_ln_before: c.original_ln_before, is_parallel: c.is_parallel, scaling: c.scaling, init_weights: c.init_weights, leave_out: c.leave_out, train_layer_norms: c.train_layer_norms };
}
