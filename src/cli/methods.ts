// The CLI's view of the PEFT methods, generated from the registry's declarations: `peftjs methods`
// lists each method's fields (PEFT's names, what they take, defaults, help), and train's method
// settings (--r, --peft key=value, ...) are checked against them before a model is loaded.
import { AdapterConfigError } from "../tuners/tuner.js";
import { checkConfigInput } from "../peft/config-check.js";
import { fieldDocs, PRESETS, presetConfig, presetsOf, TUNERS, tunerFor, type PeftConfigInput, type TunerName } from "../tuners/registry.js";

/** A usage error with a hint (printed by main as two lines). */
export class MethodSettingsError extends Error {
  constructor(
    message: string,
    readonly hint: string,
  ) {
    super(message);
  }
}

/**
 * The adapter config for a --method preset and its settings, checked against the method's
 * declaration: field names (with "did you mean") and values' types and ranges. `generic` are the
 * shared flags (--r, --lora-alpha, ...), `peft` the --peft key=value pairs; `peftSource` names
 * where those came from in errors (`--peft`, or the config file's key).
 *
 *   methodConfig("lora", { r: 4 }, { lora_dropout: 0.1 }, "--peft"); // { peft_type: "LORA", r: 4, lora_alpha: 16, lora_dropout: 0.1 }
 */
export function methodConfig(method: string, generic: Readonly<Record<string, unknown>>, peft: Readonly<Record<string, unknown>>, peftSource = "--peft"): PeftConfigInput {
  if (!(method in PRESETS)) throw new MethodSettingsError(`unknown method "${method}"`, `methods: ${Object.keys(PRESETS).join(", ")}`);
  const check = (config: PeftConfigInput, source: string) => {
    try {
      checkConfigInput(tunerFor(config.peft_type, source), config, source);
    } catch (e) {
      if (e instanceof AdapterConfigError) throw new MethodSettingsError(e.message, `run "peftjs methods ${method}" for its fields, defaults and help`);
      throw e;
    }
  };
  check(presetConfig(method, generic), `--method ${method}`);
  const config = presetConfig(method, { ...generic, ...peft });
  check(config, peftSource);
  return config;
}

/**
 * `peftjs methods [name]`: every method (or the one a preset or peft_type names) with its presets
 * and fields, from the registry's declarations.
 */
export function methodsListing(name?: string): string[] {
  const types = Object.keys(TUNERS) as TunerName[];
  const preset = name !== undefined ? (PRESETS as Record<string, { peft_type: TunerName }>)[name] : undefined;
  const selected = name === undefined ? types : preset ? [preset.peft_type] : types.filter((t) => t.toLowerCase() === name.toLowerCase());
  if (selected.length === 0) throw new MethodSettingsError(`unknown method "${name}"`, `methods (--method): ${Object.keys(PRESETS).join(", ")}; PEFT types: ${types.join(", ")}`);
  const lines: string[] = [];
  for (const t of selected) {
    const presets = presetsOf(t).map((p) => {
      const { peft_type: _, ...settings } = PRESETS[p] as Record<string, unknown>;
      const shown = Object.entries(settings).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(" ");
      return shown ? `${p} (${shown})` : p;
    });
    if (lines.length) lines.push("");
    lines.push(`${t}${presets.length ? ` — --method ${presets.join(", ")}` : ""}`);
    const docs = fieldDocs(t);
    if (docs.length === 0) lines.push("  no settings");
    for (const f of docs) lines.push(`  ${f.name}: ${f.expected}; default ${f.default}`, `      ${f.help}`);
  }
  if (name === undefined) lines.push("", `Set a field with --peft key=value (JSON values), e.g. peftjs train --method lora --peft lora_dropout=0.1`);
  return lines;
}
