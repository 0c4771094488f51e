// Which modules a config targets, with PEFT's matching rules (tuners_utils.check_target_module_exists):
// a string is a regex that must match the whole module path; a list matches exact paths or
// path suffixes after a dot; "all-linear" is every linear layer but the output head.
// Patterns from configs run on RE2 (re2js): matching is linear in the path length whatever the
// pattern, so a pattern like "(.*.*)*z" cannot hang loading; RE2 has no backreferences or
// lookaround, and such a pattern is an error that names the field.
import { RE2JS } from "re2js";
import { type ModuleInventory } from "../models/pretrained.js";
import { AdapterConfigError } from "./tuner.js";

export interface TargetSpec {
  target_modules?: string | readonly string[] | null;
  exclude_modules?: string | readonly string[] | null;
  layers_to_transform?: number | readonly number[] | null;
  layers_pattern?: string | readonly string[] | null;
  modules_to_save?: readonly string[] | null;
}

const OUTPUT_HEADS = ["lm_head", "classifier", "score", "qa_outputs", "cls.predictions.decoder", "vocab_projector", "classifier.out_proj", "classifier.dense", "pre_classifier"];

const compiled = new Map<string, RE2JS>();

/**
 * A config pattern compiled with RE2 (cached). `field` names the config field in errors; `user`
 * is the part of `expr` the config supplied (PEFT splices some fields into a larger regex).
 */
function re2(expr: string, field: string, user: string): RE2JS {
  let re = compiled.get(expr);
  if (re) return re;
  try {
    re = RE2JS.compile(expr);
  } catch (e) {
    const why = e instanceof Error ? e.message.replace(/^error parsing regexp: /, "") : String(e);
    throw new AdapterConfigError(
      `${field}: ${JSON.stringify(user)} is not a regular expression peftjs can match (${why}); patterns are matched with RE2, which has no backreferences or lookaround`,
    );
  }
  if (compiled.size > 1000) compiled.clear(); // bound the cache; patterns come from a handful of configs
  compiled.set(expr, re);
  return re;
}

/** Python's `re.fullmatch(pattern, s)`. */
const fullMatch = (pattern: string, s: string, field: string): boolean => re2(pattern, field, pattern).matcher(s).matches();

/** Python's `re.match(prefix + user + suffix, s)` (anchored at the start only); the match or undefined. */
function matchStart(prefix: string, user: string, suffix: string, s: string, field: string) {
  const m = re2(`${prefix}${user}${suffix}`, field, user).matcher(s);
  return m.lookingAt() ? m : undefined;
}

function matchesList(path: string, list: readonly string[]): boolean {
  return list.some((t) => path === t || path.endsWith(`.${t}`));
}

/**
 * Check that every pattern in a config compiles, naming the field of the first that does not;
 * `source` (the file or adapter) prefixes the message. Matching checks them as well, lazily.
 */
export function validateTargetPatterns(spec: TargetSpec & { rank_pattern?: object | null; alpha_pattern?: object | null }, source: string): void {
  try {
    if (typeof spec.target_modules === "string" && spec.target_modules !== "all-linear") re2(spec.target_modules, "target_modules", spec.target_modules);
    if (typeof spec.exclude_modules === "string") re2(spec.exclude_modules, "exclude_modules", spec.exclude_modules);
    for (const m of spec.modules_to_save ?? []) matchStart("(^|.*\\.)", m, "($|\\..*)", "", "modules_to_save");
    const lp = spec.layers_pattern;
    for (const p of typeof lp === "string" ? [lp] : (lp ?? [])) matchStart(".*?\\.", p, "\\.(\\d+)\\.", "", "layers_pattern");
    for (const field of ["rank_pattern", "alpha_pattern"] as const) {
      for (const p of Object.keys(spec[field] ?? {})) matchStart("(.*\\.)?(", p, ")$", "", field);
    }
  } catch (e) {
    if (e instanceof AdapterConfigError) throw new AdapterConfigError(`${source}: ${e.message}`);
    throw e;
  }
}

/** PEFT's rule for one module path (tuners_utils.check_target_module_exists). */
export function isTargeted(spec: TargetSpec, path: string): boolean {
  const ex = spec.exclude_modules;
  if (ex && (typeof ex === "string" ? fullMatch(ex, path, "exclude_modules") : matchesList(path, ex))) return false;
  if (spec.modules_to_save?.some((m) => matchStart("(^|.*\\.)", m, "($|\\..*)", path, "modules_to_save"))) return false;
  const t = spec.target_modules;
  if (!t) return false;
  if (t === "all-linear") return !OUTPUT_HEADS.some((h) => path === h || path.endsWith(`.${h}`) || path.startsWith(`${h}.`));
  if (typeof t === "string") return fullMatch(t, path, "target_modules");
  if (!matchesList(path, t)) return false;
  const layers = spec.layers_to_transform;
  if (layers === undefined || layers === null || (Array.isArray(layers) && layers.length === 0)) return true;
  const lp = spec.layers_pattern;
  const patterns = lp ? (typeof lp === "string" ? [lp] : lp) : [];
  // Lazy .*? takes the first numbered segment (the layer index), as PEFT does.
  const m = patterns.length ? patterns.map((p) => matchStart(".*?\\.", p, "\\.(\\d+)\\.", path, "layers_pattern")).find(Boolean) : matchStart("", ".*?\\.[^.]*\\.(\\d+)\\.", "", path, "layers_pattern");
  if (!m) return false;
  const idx = Number(m.group(1));
  return typeof layers === "number" ? idx === layers : layers.includes(idx);
}

function editDistance(a: string, b: string): number {
  const d = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = d[0]!;
    d[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = d[j]!;
      d[j] = Math.min(d[j]! + 1, d[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return d[b.length]!;
}

/**
 * The linear layers a config targets. Matching nothing is an error that lists the closest
 * module names the model does have.
 */
export function targetedLinears(spec: TargetSpec, inventory: ModuleInventory, method: string, source: string): ModuleInventory["linear"] {
  validateTargetPatterns(spec, source);
  const hits = inventory.linear.filter((l) => isTargeted(spec, l.path));
  if (hits.length === 0) {
    const suffixes = [...new Set(inventory.linear.map((l) => l.path.split(".").slice(-2).join(".")).concat(inventory.linear.map((l) => l.path.split(".").pop()!)))];
    const wanted = typeof spec.target_modules === "string" ? [spec.target_modules] : [...(spec.target_modules ?? [])];
    const close = wanted.flatMap((w) => suffixes.map((s) => [s, editDistance(w, s)] as const)).sort((a, b) => a[1] - b[1]).slice(0, 5).map(([s]) => s);
    throw new AdapterConfigError(
      `${source}: ${method} target_modules ${JSON.stringify(spec.target_modules)} match no linear layer of this model; closest module names: ${[...new Set(close)].join(", ")} (all: ${[...new Set(inventory.linear.map((l) => l.path.split(".").pop()))].join(", ")})`,
    );
  }
  return hits;
}

/** PEFT's per-module override lookup for rank_pattern / alpha_pattern (other.get_pattern_key: `re.match(rf"(.*\.)?({key})$", name)`). */
export function patternValue<T>(patterns: Readonly<Record<string, T>> | null | undefined, path: string, fallback: T, field = "rank_pattern/alpha_pattern"): T {
  if (!patterns) return fallback;
  for (const [p, v] of Object.entries(patterns)) if (matchStart("(.*\\.)?(", p, ")$", path, field)) return v;
  return fallback;
}

/** PEFT's default LoRA targets per model type (utils/constants.py). */
export const DEFAULT_LORA_TARGETS: Readonly<Record<string, string[]>> = {
  bert: ["query", "value"], roberta: ["query", "value"], distilbert: ["q_lin", "v_lin"], gpt2: ["c_attn"],
  llama: ["q_proj", "v_proj"], mistral: ["q_proj", "v_proj"], qwen2: ["q_proj", "v_proj"],
};

/** PEFT's default IA3 targets and their feed-forward subset. */
export const DEFAULT_IA3_TARGETS: Readonly<Record<string, { target: string[]; feedforward: string[] }>> = {
  bert: { target: ["key", "value", "output.dense"], feedforward: ["output.dense"] },
  roberta: { target: ["key", "value", "output.dense"], feedforward: ["output.dense"] },
  distilbert: { target: ["k_lin", "v_lin", "lin2"], feedforward: ["lin2"] },
  gpt2: { target: ["c_attn", "mlp.c_proj"], feedforward: ["mlp.c_proj"] },
  llama: { target: ["k_proj", "v_proj", "down_proj"], feedforward: ["down_proj"] },
  mistral: { target: ["k_proj", "v_proj", "down_proj"], feedforward: ["down_proj"] },
  qwen2: { target: ["q_proj", "v_proj", "down_proj"], feedforward: ["down_proj"] },
};

/** The transformer layer index in a parameter or module path (`...layer.3.`, `h.3.`, `layers.3.`). */
export function layerIndex(path: string): number | undefined {
  const m = /(?:^|\.)(?:layer|layers|h)\.(\d+)\./.exec(`${path}.`);
  return m ? Number(m[1]) : undefined;
}
