// The one table of PEFT methods. Adding a method: its folder under src/tuners/, one row here,
// and its row in the shared conformance suite (a meta-test checks the suite covers this table).
import { LoraAdapter } from "./lora/adapter.js";
import { loraConfigToJSON, parseLoraConfig, type LoraConfig } from "./lora/config.js";
import { type TunerDef } from "./tuner.js";

export const TUNERS = {
  LORA: {
    peftType: "LORA",
    parseConfig: (json, source, model) => parseLoraConfig(json, source, model?.config.modelType),
    toJSON: loraConfigToJSON,
    create: (model, config, name) => new LoraAdapter(model, parseLoraConfig({ ...config }, "LoRA config", model.config.modelType), name),
  } satisfies TunerDef<LoraConfig>,
} as const;

export type TunerName = keyof typeof TUNERS;
export type AnyTunerConfig = Parameters<(typeof TUNERS)[TunerName]["toJSON"]>[0];

export function tunerFor(peftType: unknown, source: string): TunerDef {
  const def = (TUNERS as Record<string, TunerDef>)[String(peftType)];
  if (!def) throw new Error(`${source}: unknown peft_type ${JSON.stringify(peftType)}; supported: ${Object.keys(TUNERS).join(", ")}`);
  return def;
}
