// The one table of PEFT methods. Adding a method: its folder under src/tuners/, one row here,
// and its row in the shared conformance suite (a meta-test checks the suite covers this table).
import { LORA } from "./lora/index.js";
import { adaloraTuner } from "./adalora/index.js";
import { BOTTLENECK } from "./bottleneck/index.js";
import { hybridTuner } from "./hybrid/index.js";
import { IA3 } from "./ia3/index.js";
import { PREFIX_TUNING } from "./prefix/index.js";
import { P_TUNING, PROMPT_TUNING } from "./prompt/index.js";
import { BITFIT, FULL, LN_TUNING, TOP_K_LAYERS } from "./selective/index.js";
import { type TunerDef } from "./tuner.js";

export const TUNERS = {
  LORA,
  ADALORA: adaloraTuner(LORA),
  IA3,
  PROMPT_TUNING,
  P_TUNING,
  PREFIX_TUNING,
  BOTTLENECK,
  HYBRID: hybridTuner(LORA, BOTTLENECK),
  BITFIT,
  LN_TUNING,
  TOP_K_LAYERS,
  FULL,
  // `any`: each row has its own config type; the table only promises that every row is a TunerDef.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
} as const satisfies Record<string, TunerDef<any>>;

export type TunerName = keyof typeof TUNERS;

export function tunerFor(peftType: unknown, source: string): TunerDef {
  const def = (TUNERS as Record<string, TunerDef>)[String(peftType)];
  if (!def) throw new Error(`${source}: unknown peft_type ${JSON.stringify(peftType)}; supported: ${Object.keys(TUNERS).join(", ")}`);
  return def;
}
