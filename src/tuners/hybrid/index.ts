// Adapter + LoRA in one adapter (UniPELT, Mao et al. 2022, "UniPELT: A Unified Framework for
// Parameter-Efficient Language Model Tuning"): LoRA on attention projections and a bottleneck
// adapter after sublayers, trained together; with `gates`, each module's contribution is scaled
// by a learned sigmoid gate of its input, as in UniPELT. (Any two adapters can also be active
// together through PeftModel.setAdapter([...]); this packages the pair as one.) The registry
// builds this row from the LoRA and bottleneck rows, so this folder imports neither.
import { type Tensor } from "../../ir/tensor.js";
import { composeHooks } from "../../models/hooks.js";
import { z } from "zod";
import { boolean, declareConfig, type ConfigFields, type DefaultContext, type FieldSpec } from "../config-schema.js";
import { AdapterConfigError, MODEL_PREFIX, type Adapter, type BaseConfig, type HookContext, type TunerDef } from "../tuner.js";

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
  const object = (v: unknown, key: string, source: string): Record<string, unknown> => {
    if (typeof v !== "object" || v === null || Array.isArray(v)) throw new AdapterConfigError(`${source}: field "${key}" must be an object (a ${key === "lora" ? "LORA" : "BOTTLENECK"} config), got ${JSON.stringify(v)}`);
    return v as Record<string, unknown>;
  };
  const strip = ({ peft_type: _, ...rest }: Record<string, unknown>) => rest;
  // The parts share the gates; the LoRA part skips the heads (modules_to_save): PeftModel trains them once for the whole adapter.
  const loraPart = (v: Record<string, unknown>, source: string, ctx: DefaultContext) => lora.parseConfig({ ...v, use_gating: ctx.config.gates, modules_to_save: ctx.json.modules_to_save }, `${source} (lora)`, ctx.model);
  const adapterPart = (v: Record<string, unknown>, source: string, ctx: DefaultContext) => bottleneck.parseConfig({ variant: "seq_bn", ...v, use_gating: ctx.config.gates }, `${source} (adapter)`, ctx.model);
  const fields = {
    gates: boolean({ default: false, help: "learned per-module sigmoid gates on each part's contribution (UniPELT)" }),
    lora: {
      schema: z.record(z.string(), z.unknown()),
      expected: "an object (a LORA config)",
      help: "the LoRA part: LORA's fields (see its listing)",
      defaultText: "LORA's defaults",
      default: (ctx: DefaultContext) => loraPart({}, ctx.source, ctx),
      parse: (v: unknown, source: string, ctx: DefaultContext) => loraPart(object(v, "lora", source), source, ctx),
      write: (v: L) => strip(lora.toJSON(v)),
    } satisfies FieldSpec<L>,
    adapter: {
      schema: z.record(z.string(), z.unknown()),
      expected: "an object (a BOTTLENECK config)",
      help: "the bottleneck part: BOTTLENECK's fields (see its listing)",
      defaultText: "a seq_bn adapter",
      default: (ctx: DefaultContext) => adapterPart({}, ctx.source, ctx),
      parse: (v: unknown, source: string, ctx: DefaultContext) => adapterPart(object(v, "adapter", source), source, ctx),
      write: (v: B) => strip(bottleneck.toJSON(v)),
    } satisfies FieldSpec<B>,
  } satisfies ConfigFields;
  const config = declareConfig<"HYBRID", typeof fields, HybridConfig<L, B>>("HYBRID", fields, {
    refine: (c) => ({ ...c, inference_mode: false }),
    layout: (own, c) => ({ peft_type: "HYBRID", ...own, task_type: c.task_type ?? null, base_model_name_or_path: c.base_model_name_or_path ?? null, modules_to_save: c.modules_to_save ?? null }),
  });
  return {
    peftType: "HYBRID",
    parts: { lora: lora as unknown as TunerDef, adapter: bottleneck as unknown as TunerDef },
    ...config,
    create: (model, c, name) => {
      const parsed = config.parseConfig({ ...c }, "hybrid config", model);
      return new HybridAdapter(parsed, name, [lora.create(model, parsed.lora, name), bottleneck.create(model, { ...parsed.adapter, modules_to_save: null }, name)]);
    },
  };
}
