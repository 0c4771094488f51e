// Methods that train a subset of the base model's own parameters (each adapter trains a copy,
// so the base stays intact): BitFit (Ben Zaken et al. 2022, all bias terms), LayerNorm tuning
// (Zhao et al. 2023; PEFT's LN_TUNING), top-k layer fine-tuning and full fine-tuning (the
// baselines of Houlsby et al. 2019).
import { type Tensor } from "../../ir/tensor.js";
import { type PretrainedModel } from "../../models/pretrained.js";
import { ModulesToSave, paramsOfModules } from "../modules-to-save.js";
import { layerIndex } from "../targets.js";
import { declareConfig, integer, modules, nullable, type ConfigFields } from "../config-schema.js";
import { AdapterConfigError, MODEL_PREFIX, type Adapter, type BaseConfig, type HookContext, type TunerDef } from "../tuner.js";

export type SelectiveType = "BITFIT" | "LN_TUNING" | "TOP_K_LAYERS" | "FULL";

export interface SelectiveConfig extends BaseConfig {
  peft_type: SelectiveType;
  /** LN_TUNING: the norm modules to tune (default: every normalization layer). */
  target_modules?: string | string[] | null;
  /** LN_TUNING: accepted only as null. */
  exclude_modules?: string | string[] | null;
  /** TOP_K_LAYERS: how many of the last layers to train. */
  k?: number;
}

const NORM_MODULES = ["LayerNorm", "layer_norm", "ln_1", "ln_2", "ln_f", "sa_layer_norm", "output_layer_norm", "input_layernorm", "post_attention_layernorm", "norm", "vocab_layer_norm"];

/** The names in NORM_MODULES this model has modules of. */
function presentNorms(model: PretrainedModel): string[] {
  return NORM_MODULES.filter((m) => paramsOfModules(model, [m]).length > 0);
}

/** The base parameters a selective config trains. */
export function selectedParams(model: PretrainedModel, config: SelectiveConfig): string[] {
  const all = [...model.modules().params.keys()];
  switch (config.peft_type) {
    case "BITFIT":
      return all.filter((n) => n.endsWith(".bias"));
    case "LN_TUNING": {
      const t = config.target_modules ?? NORM_MODULES;
      return typeof t === "string" ? all.filter((n) => new RegExp(`^(?:${t})$`).test(n.slice(0, n.lastIndexOf(".")))) : paramsOfModules(model, t);
    }
    case "FULL":
      return all;
    case "TOP_K_LAYERS": {
      const k = config.k ?? 1;
      const layers = model.config.layers;
      if (k > layers) throw new AdapterConfigError(`TOP_K_LAYERS: k ${k} exceeds the model's ${layers} layers`);
      // The top k layers and everything after the layer stack (final norm, heads); k = 0 trains
      // only that (with a task head in modules_to_save: a linear probe).
      return all.filter((n) => {
        const i = layerIndex(n);
        return i !== undefined ? i >= layers - k : /(^|\.)(ln_f|norm|pooler)\./.test(n) && !/embeddings?\./.test(n);
      });
    }
  }
}

export class SelectiveAdapter implements Adapter<SelectiveConfig> {
  readonly tensors = new Map<string, Tensor>();
  private readonly params: ModulesToSave;
  readonly trainsBaseParams: readonly string[];

  constructor(model: PretrainedModel, readonly config: SelectiveConfig, readonly name: string) {
    const selected = selectedParams(model, config);
    const headOnly = config.peft_type === "TOP_K_LAYERS" && config.k === 0;
    if (selected.length === 0 && !headOnly) throw new AdapterConfigError(`${config.peft_type} adapter "${name}": no parameter of this model is selected${config.peft_type === "LN_TUNING" ? ` (target_modules ${JSON.stringify(config.target_modules)})` : ""}`);
    // LN_TUNING keeps PEFT's key format: <module>.ln_tuning_layers.<param> (ln_tuning/layer.py
    // LNTuningLayer keeps the tuned copy in `ln_tuning_layers`). A head in modules_to_save is
    // PeftModel's, saved plainly as base_model.model.<head>.<param>.
    const saveKey = config.peft_type === "LN_TUNING" ? (n: string) => `${MODEL_PREFIX}${n.slice(0, n.lastIndexOf("."))}.ln_tuning_layers${n.slice(n.lastIndexOf("."))}` : undefined;
    const heads = new Set(paramsOfModules(model, config.modules_to_save ?? []));
    this.params = new ModulesToSave(model, [], selected.filter((n) => !heads.has(n)), saveKey);
    for (const [k, t] of this.params.tensors) this.tensors.set(k, t);
    this.trainsBaseParams = this.params.names;
  }

  hooks(ctx: HookContext) {
    if (ctx.rowGate) throw new AdapterConfigError(`${this.config.peft_type} replaces base weights and cannot share a batch with other adapters (mixed-adapter batches)`);
    return { parameter: (n: string) => this.params.parameter(n, ctx) };
  }

  stateKeys(): Map<string, string> {
    return this.params.loadKeys();
  }

  /** The trained copies are the merged weights. */
  mergedWeights(): Map<string, Tensor> {
    return this.params.mergedWeights();
  }
}

/** Each method's own fields (LN_TUNING's are PEFT's LNTuningConfig, peft/tuners/ln_tuning/config.py; BITFIT, TOP_K_LAYERS and FULL are peftjs's). */
const SELECTIVE_FIELDS: Record<SelectiveType, ConfigFields> = {
  BITFIT: {},
  LN_TUNING: {
    // Written out as PEFT writes its resolved defaults (constants.py TRANSFORMERS_MODELS_TO_LNTUNING_TARGET_MODULES_MAPPING:
    // llama input_layernorm/post_attention_layernorm/norm, gpt2 ln_1/ln_2/ln_f): the norm modules this model has.
    target_modules: nullable(modules({ help: "the norm modules to tune" }), { default: ({ model }) => (model ? presentNorms(model) : null), defaultText: "every normalization layer the model has" }),
    exclude_modules: nullable(modules({ help: "modules left out of target_modules (only null is supported)" })),
  },
  TOP_K_LAYERS: {
    k: integer({ min: 0, default: 1, help: "how many of the last layers to train (0: only what follows the layer stack, with the task head a linear probe)" }),
  },
  FULL: {},
};

function selective(peftType: SelectiveType): TunerDef<SelectiveConfig> {
  const config = declareConfig<SelectiveType, ConfigFields, SelectiveConfig>(peftType, SELECTIVE_FIELDS[peftType], {
    refine: (c, source) => {
      if (c.exclude_modules !== undefined && c.exclude_modules !== null) throw new AdapterConfigError(`${source}: ${peftType} config field "exclude_modules" = ${JSON.stringify(c.exclude_modules)} is not implemented in peftjs (only null is supported)`);
    },
  });
  return {
    peftType,
    ...config,
    create: (model, c, name) => new SelectiveAdapter(model, config.parseConfig({ ...c }, `${peftType} config`, model), name),
  };
}

export const BITFIT = selective("BITFIT");
export const LN_TUNING = selective("LN_TUNING");
export const TOP_K_LAYERS = selective("TOP_K_LAYERS");
export const FULL = selective("FULL");
