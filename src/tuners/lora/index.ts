// LoRA's registry row: config (PEFT's LoraConfig), adapters, and combining adapters into one
// (PEFT's add_weighted_adapter).
import { type Adapter, type TunerDef } from "../tuner.js";
import { LoraAdapter } from "./adapter.js";
import { combineLora, type Combination } from "./combine.js";
import { LORA_CONFIG, LORA_INERT_FIELDS, type LoraConfig } from "./config.js";

export { type LoraConfig } from "./config.js";
export { type Combination } from "./combine.js";

export const LORA = {
  peftType: "LORA",
  inertFields: LORA_INERT_FIELDS,
  ...LORA_CONFIG,
  create: (model, config, name) => new LoraAdapter(model, LORA_CONFIG.parseConfig({ ...config }, "LoRA config", model), name),
  /**
   * A new adapter combining LoRA adapters (see combine.ts): its config, and a function that
   * fills the created adapter's A and B.
   */
  combine(adapters: readonly Adapter[], weights: readonly number[], opts: { combination?: Combination; svdRank?: number } = {}) {
    const loras = adapters.map((a) => {
      if (!(a instanceof LoraAdapter)) throw new Error(`add_weighted_adapter: "${a.name}" is not a LoRA adapter`);
      return a;
    });
    const { rank, layers } = combineLora(loras, weights, opts.combination ?? "svd", opts.svdRank);
    const config: Record<string, unknown> = { ...loras[0]!.config, r: rank, lora_alpha: rank, rank_pattern: {}, alpha_pattern: {}, target_modules: [...layers.keys()], layers_to_transform: null, use_rslora: false };
    const fill = (added: Adapter) => {
      for (const [path, { A, B }] of layers) {
        const f = (added as LoraAdapter).factors(path);
        f.A.set(A);
        f.B.set(B);
      }
    };
    return { config, fill };
  },
} satisfies TunerDef<LoraConfig>;
