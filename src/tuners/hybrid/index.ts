// Adapter + LoRA in one adapter (UniPELT, Mao et al. 2022, "UniPELT: A Unified Framework for
// Parameter-Efficient Language Model Tuning"): LoRA on attention projections and a bottleneck
// adapter after sublayers, trained together; with `gates`, each module's contribution is scaled
// by a learned sigmoid gate of its input, as in UniPELT. (Any two adapters can also be active
// together through PeftModel.setAdapter([...]); this packages the pair as one.) The registry
// builds this row from the LoRA and bottleneck rows, so this folder imports neither.
import { type Tensor } from "../../ir/tensor.js";
import { composeHooks } from "../../models/hooks.js";
import { type PretrainedModel } from "../../models/pretrained.js";
import { AdapterConfigError, field, isBool, MODEL_PREFIX, type Adapter, type BaseConfig, type HookContext, type TunerDef } from "../tuner.js";

export interface HybridConfig<L extends BaseConfig = BaseConfig, B extends BaseConfig = BaseConfig> extends BaseConfig {
  peft_type: "HYBRID";
  lora: L;
  adapter: B;
  /** Learned per-module sigmoid gates (UniPELT). */
  gates: boolean;
}

export class HybridAdapter<L extends BaseConfig = BaseConfig, B extends BaseConfig = BaseConfig> implements Adapter<HybridConfig<L, B>> {
  readonly tensors = new Map<string, Tensor>();

  constructor(
    readonly config: HybridConfig<L, B>,
    readonly name: string,
    private readonly parts: readonly Adapter[],
  ) {
    for (const a of parts) for (const [k, t] of a.tensors) this.tensors.set(k, t);
  }

  hooks(ctx: HookContext) {
    return composeHooks(this.parts.map((p) => p.hooks(ctx)));
  }

  stateKeys(): Map<string, string> {
    return new Map(this.parts.flatMap((p) => [...(p.stateKeys?.() ?? [...p.tensors.keys()].map((k) => [`${MODEL_PREFIX}${k}`, k] as const))]));
  }

  beforeLoad(file: ReadonlyMap<string, Tensor>): void {
    for (const p of this.parts) p.beforeLoad?.(file);
  }
}

/** The hybrid row from LoRA's and the bottleneck adapter's rows. */
export function hybridTuner<L extends BaseConfig, B extends BaseConfig>(lora: TunerDef<L>, bottleneck: TunerDef<B>): TunerDef<HybridConfig<L, B>> {
  const parse = (json: Readonly<Record<string, unknown>>, source: string, model?: PretrainedModel): HybridConfig<L, B> => {
    const gates = field(json, "gates", false, isBool, "a boolean", source);
    const sub = (k: string) => {
      const v = json[k];
      if (v !== undefined && (typeof v !== "object" || v === null)) throw new AdapterConfigError(`${source}: "${k}" must be an object`);
      return (v ?? {}) as Record<string, unknown>;
    };
    return {
      peft_type: "HYBRID",
      gates,
      // The LoRA part skips the heads (modules_to_save); PeftModel trains them once for the whole adapter.
      lora: lora.parseConfig({ ...sub("lora"), use_gating: gates, modules_to_save: json.modules_to_save }, `${source} (lora)`, model),
      adapter: bottleneck.parseConfig({ variant: "seq_bn", ...sub("adapter"), use_gating: gates }, `${source} (adapter)`, model),
      modules_to_save: (json.modules_to_save as string[] | undefined) ?? null,
      base_model_name_or_path: (json.base_model_name_or_path as string | undefined) ?? null,
      task_type: (json.task_type as string | undefined) ?? null,
      inference_mode: false,
    };
  };
  const strip = ({ peft_type: _, ...rest }: Record<string, unknown>) => rest;
  return {
    peftType: "HYBRID",
    parts: { lora: lora as unknown as TunerDef, adapter: bottleneck as unknown as TunerDef },
    parseConfig: parse,
    toJSON: (c) => ({
      peft_type: "HYBRID", gates: c.gates, lora: strip(lora.toJSON(c.lora)), adapter: strip(bottleneck.toJSON(c.adapter)), task_type: c.task_type ?? null,
      base_model_name_or_path: c.base_model_name_or_path ?? null, modules_to_save: c.modules_to_save ?? null,
    }),
    create: (model, config, name) => {
      const c = parse({ ...config }, "hybrid config", model);
      return new HybridAdapter(c, name, [lora.create(model, c.lora, name), bottleneck.create(model, { ...c.adapter, modules_to_save: null }, name)]);
    },
  };
}
