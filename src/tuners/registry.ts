// The one table of PEFT methods, and the presets users pick them by. Each row is the single
// source of its method's config: its `fields` declaration (config-schema.ts: PEFT field names,
// types, defaults, ranges, help) from which parseConfig / toJSON are derived, and inertFields for
// PEFT fields it does not implement; PeftModel.create, adapter loading, config files, the CLI's
// --peft settings and its `peftjs methods` listing all go through it. Adding a method: its folder
// under src/tuners/, one row here, and its row in the shared conformance suite (a meta-test
// checks that the suite covers every row and preset).
import { LORA } from "./lora/index.js";
import { adaloraTuner } from "./adalora/index.js";
import { BOTTLENECK } from "./bottleneck/index.js";
import { hybridTuner } from "./hybrid/index.js";
import { IA3 } from "./ia3/index.js";
import { PREFIX_TUNING } from "./prefix/index.js";
import { P_TUNING, PROMPT_TUNING } from "./prompt/index.js";
import { BITFIT, FULL, LN_TUNING, TOP_K_LAYERS } from "./selective/index.js";
import { COMMON_FIELDS, defaultText, type FieldSpec } from "./config-schema.js";
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

/** A row's config type. */
export type ConfigOf<K extends TunerName> = (typeof TUNERS)[K] extends TunerDef<infer C> ? C : never;

/** Fields every config may carry besides its method's (PEFT's PeftConfig; modules_to_save). */
type CommonField = "peft_type" | "task_type" | "base_model_name_or_path" | "inference_mode" | "revision" | "auto_mapping" | "peft_version" | "modules_to_save";

/**
 * A config as users write it: a peft_type and any of its method's fields. Written as an object
 * literal with a known peft_type, a field the method lacks is a type error
 * (`{ peft_type: "LORA", rank: 16 }`: "rank" is not a LORA field); configs read from files are
 * checked the same way at run time (src/peft/config-check.ts).
 */
export type PeftConfigInput = { peft_type: string } & Record<string, unknown>;

/**
 * Makes unknown fields of a config literal with a known peft_type a type error at the field
 * (use as `config: T & { peft_type: K } & KnownFields<K, T>`; K keeps the literal peft_type).
 */
export type KnownFields<K, T> = K extends TunerName
  ? [Exclude<keyof T, keyof ConfigOf<K> | CommonField>] extends [never]
    ? unknown
    : { [F in Exclude<keyof T, keyof ConfigOf<K> | CommonField>]: `"${F & string}" is not a ${K} config field` }
  : unknown;

/**
 * Method presets by the names users type (CLI --method, config files): a row and its settings.
 * Each has a conformance row (test/tuners.test.ts checks).
 */
export const PRESETS = {
  lora: { peft_type: "LORA", r: 8, lora_alpha: 16 },
  dora: { peft_type: "LORA", r: 8, lora_alpha: 16, use_dora: true },
  adalora: { peft_type: "ADALORA", init_r: 12, target_r: 8, lora_alpha: 16 },
  ia3: { peft_type: "IA3" },
  houlsby: { peft_type: "BOTTLENECK", variant: "double_seq_bn" },
  pfeiffer: { peft_type: "BOTTLENECK", variant: "seq_bn" },
  parallel: { peft_type: "BOTTLENECK", variant: "par_bn" },
  prefix: { peft_type: "PREFIX_TUNING", num_virtual_tokens: 20 },
  "p-tuning-v2": { peft_type: "PREFIX_TUNING", num_virtual_tokens: 20, prefix_projection: false },
  prompt: { peft_type: "PROMPT_TUNING", num_virtual_tokens: 20 },
  "p-tuning": { peft_type: "P_TUNING", num_virtual_tokens: 20 },
  hybrid: { peft_type: "HYBRID", lora: { r: 8, lora_alpha: 16 }, adapter: { variant: "par_bn" } },
  bitfit: { peft_type: "BITFIT" },
  "ln-tuning": { peft_type: "LN_TUNING" },
  "top-k": { peft_type: "TOP_K_LAYERS", k: 2 },
  full: { peft_type: "FULL" },
} as const satisfies Record<string, { peft_type: TunerName } & Record<string, unknown>>;

export type PresetName = keyof typeof PRESETS;

/**
 * The generic CLI settings (--r, --lora-alpha, --target-modules, ...) under each method's own
 * field names: AdaLoRA's rank is init_r; the hybrid's LoRA settings sit under "lora" and its
 * reduction factor under "adapter".
 */
export function presetConfig(preset: string, settings: Readonly<Record<string, unknown>>): PeftConfigInput {
  const base = (PRESETS as Record<string, PeftConfigInput>)[preset];
  if (!base) throw new Error(`unknown method "${preset}"; methods: ${Object.keys(PRESETS).join(", ")}`);
  const c: Record<string, unknown> = structuredClone(base);
  const set = (path: string[], v: unknown) => {
    if (v === undefined) return;
    let o = c;
    for (const k of path.slice(0, -1)) o = (o[k] ??= {}) as Record<string, unknown>;
    o[path.at(-1)!] = v;
  };
  const nested = base.peft_type === "HYBRID";
  for (const [k, v] of Object.entries(settings)) {
    if (k === "r" && base.peft_type === "ADALORA") set(["init_r"], v);
    else if (nested && ["r", "lora_alpha", "lora_dropout", "target_modules"].includes(k)) set(["lora", k], v);
    else if (nested && k === "reduction_factor") set(["adapter", k], v);
    else set([k], v);
  }
  return c as PeftConfigInput;
}

export function tunerFor(peftType: unknown, source: string): TunerDef {
  const def = (TUNERS as Record<string, TunerDef>)[String(peftType)];
  if (!def) throw new Error(`${source}: unknown peft_type ${JSON.stringify(peftType)}; supported: ${Object.keys(TUNERS).join(", ")}`);
  return def;
}

/** One field of a method, as `peftjs methods` lists it. */
export interface FieldDoc {
  name: string;
  /** What it takes: "an integer >= 1". */
  expected: string;
  default: string;
  help: string;
}

/** A method's own fields, then PeftConfig's that users set (modules_to_save), from its declaration. */
export function fieldDocs(peftType: TunerName): FieldDoc[] {
  const def: TunerDef = TUNERS[peftType];
  const doc = ([name, f]: readonly [string, Pick<FieldSpec, "expected" | "help" | "default" | "defaultText">]): FieldDoc => ({ name, expected: f.expected, default: defaultText(f), help: f.help });
  const common = def.promptLearning ? [] : [["modules_to_save", COMMON_FIELDS.modules_to_save] as const];
  return [...Object.entries(def.fields), ...common].map(doc);
}

/** The presets (CLI --method names) of each method. */
export function presetsOf(peftType: TunerName): PresetName[] {
  return (Object.keys(PRESETS) as PresetName[]).filter((p) => PRESETS[p].peft_type === peftType);
}
