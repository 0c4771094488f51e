// Field names of an adapter config, checked against its method's declared fields (the registry
// row's `fields`, config-schema.ts) before the config is parsed: an unknown field is an error that suggests the nearest known one (`rank` -> `r`), a
// PEFT field peftjs does not implement is accepted only at a value that changes nothing.
import { nearestName } from "../io/did-you-mean.js";
import { checkFieldValues, COMMON_FIELDS } from "../tuners/config-schema.js";
import { AdapterConfigError, type TunerDef } from "../tuners/tuner.js";

/** Fields of PEFT's PeftConfig that describe the file, not the computation (config.py PeftConfigMixin / PeftConfig). */
const INFORMATIONAL = ["peft_type", "task_type", "base_model_name_or_path", "inference_mode", "revision", "auto_mapping", "peft_version"];

/** Heads PeftModel adds for a task; a prompt-learning config may name them (older peftjs files did). */
const TASK_HEADS = ["classifier", "score", "qa_outputs"];

/** The known name closest to `name`: a usual synonym (`rank` for `r`), else the nearest by edit distance. */
export function didYouMean(name: string, known: Iterable<string>): string | undefined {
  const SYNONYMS: Record<string, string> = { rank: "r", alpha: "lora_alpha", dropout: "lora_dropout", targets: "target_modules", target: "target_modules" };
  const all = [...known];
  const syn = SYNONYMS[name];
  return syn && all.includes(syn) ? syn : nearestName(name, all);
}

/** Every field name a method's config accepts: its declared fields (config-schema.ts), PeftConfig's, and the PEFT fields it accepts inertly. */
export function knownFields(def: TunerDef): Set<string> {
  return new Set([...INFORMATIONAL, ...Object.keys(COMMON_FIELDS), ...Object.keys(def.fields), ...(def.knownAliases ?? []), ...Object.keys(def.inertFields ?? {})]);
}

/**
 * Reject unknown fields (with a suggestion) and PEFT fields set to something peftjs does not
 * compute. `source` names the file or the call in the error.
 */
export function checkConfigFields(def: TunerDef, config: Readonly<Record<string, unknown>>, source: string): void {
  const known = knownFields(def);
  for (const [k, v] of Object.entries(config)) {
    if (v === undefined) continue;
    if (def.promptLearning && k === "modules_to_save") {
      // PEFT's PromptLearningConfig has no modules_to_save: the task's head is added by PeftModel.
      const extra = Array.isArray(v) ? v.filter((m) => !TASK_HEADS.includes(m as string)) : v === null ? [] : [v];
      if (extra.length) throw new AdapterConfigError(`${source}: ${def.peftType} has no modules_to_save (PEFT's prompt-learning configs train only the task's head beside the prompt); got ${JSON.stringify(v)}`);
      continue;
    }
    if (!known.has(k)) {
      const hint = didYouMean(k, known);
      // The list names the method's own fields, not PEFT's informational or unimplemented ones.
      const own = [...known].filter((f) => !INFORMATIONAL.includes(f) && !(f in (def.inertFields ?? {})) && !(def.promptLearning && f === "modules_to_save")).sort();
      throw new AdapterConfigError(`${source}: unknown ${def.peftType} config field "${k}"${hint ? `; did you mean "${hint}"?` : ""} (${def.peftType} fields: ${own.join(", ")})`);
    }
    const part = def.parts?.[k];
    if (part && typeof v === "object" && v !== null && !Array.isArray(v)) checkConfigFields(part, { peft_type: part.peftType, ...(v as Record<string, unknown>) }, `${source} (${k})`);
    const inert = def.inertFields?.[k];
    if (inert && !inert.test(v)) throw new AdapterConfigError(`${source}: ${def.peftType} config field "${k}" = ${JSON.stringify(v)} changes what the adapter computes, and peftjs does not implement it (${inert.means})`);
  }
}

/**
 * Field names (with suggestions) and the given values' types and ranges, without a model: what
 * can be checked before one is loaded (the CLI's --peft settings). Nested parts are checked the
 * same way.
 */
export function checkConfigInput(def: TunerDef, config: Readonly<Record<string, unknown>>, source: string): void {
  checkConfigFields(def, config, source);
  checkFieldValues(def.fields, config, source);
  for (const [k, part] of Object.entries(def.parts ?? {})) {
    const v = config[k];
    if (typeof v === "object" && v !== null && !Array.isArray(v)) checkFieldValues(part.fields, v as Record<string, unknown>, `${source} (${k})`);
  }
}
