// A method's config declared once, as data: each field's PEFT name, type, default (a constant, or
// computed from the model and the fields before it), range and help text. Parsing and validation
// (errors name the file, the field, the expected and the actual value), the adapter_config.json
// PEFT reads, the known-field set behind "did you mean", and the CLI's `peftjs methods` listing
// are all derived from the declaration (registry rows carry it as `TunerDef.fields`).
//
//   const FIELDS = {
//     r: integer({ min: 1, default: 8, help: "rank of the update BA" }),
//     bias: oneOf(["none", "all"], { default: "none", help: "which biases train" }),
//   } satisfies ConfigFields;
//   const config = declareConfig("LORA", FIELDS);  // { fields, parseConfig, toJSON }
import { z } from "zod";
import { type PretrainedModel } from "../models/pretrained.js";
import { AdapterConfigError, type BaseConfig } from "./tuner.js";

/** What a computed default sees. */
export interface DefaultContext {
  /** The model the adapter is for; absent when a config is read without one. */
  readonly model?: PretrainedModel;
  /** The fields declared before this one, parsed. */
  readonly config: Readonly<Record<string, unknown>>;
  /** The config as given. */
  readonly json: Readonly<Record<string, unknown>>;
  /** Names the config in errors (the file, or the call). */
  readonly source: string;
}

/** One config field. `T` is its parsed type. */
export interface FieldSpec<T = unknown> {
  /** Accepts a given value (anything but null or absent, which take the default). */
  readonly schema: z.ZodType;
  /** What a valid value looks like, in errors and listings: "an integer >= 1". */
  readonly expected: string;
  /** The value when absent or null: a constant, or computed from the context. None (or a computed undefined): the field is required. */
  readonly default?: T | ((ctx: DefaultContext) => T | undefined);
  /** How a computed default reads in listings ("the model's hidden size"). */
  readonly defaultText?: string;
  readonly help: string;
  /**
   * How adapter_config.json writes it: always (a field of PEFT's config class, the default), only
   * when it differs from the default (a peftjs extension PEFT does not read, so PEFT can load
   * every config that does not use it), or a function of the parsed config.
   */
  readonly write?: "always" | "unless-default" | ((value: T, config: Readonly<Record<string, unknown>>) => unknown);
  /** Parses a given value itself instead of `schema` (a nested config, an alias to resolve, a value to normalize). */
  readonly parse?: (value: unknown, source: string, ctx: DefaultContext) => T;
  /** Phantom: carries T. */
  readonly __type?: T;
}

// `any`: a table of fields of different types; each field's own type is kept by ConfigFields' users through `satisfies`.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type ConfigFields = Readonly<Record<string, FieldSpec<any>>>;

/** The parsed config a declaration describes. */
export type ConfigOfFields<F extends ConfigFields> = { -readonly [K in keyof F]: F[K] extends FieldSpec<infer T> ? T : never };

interface Common<D> {
  help: string;
  default?: D | ((ctx: DefaultContext) => D | undefined);
  defaultText?: string;
  write?: FieldSpec<D>["write"];
}

interface Range {
  min?: number;
  max?: number;
  /** Exclusive bounds. */
  gt?: number;
  lt?: number;
}

const rangeText = (r: Range) => [r.min !== undefined && `>= ${r.min}`, r.gt !== undefined && `> ${r.gt}`, r.max !== undefined && `<= ${r.max}`, r.lt !== undefined && `< ${r.lt}`].filter(Boolean).join(" and ");

function numeric(kind: "int" | "number", r: Range): { schema: z.ZodNumber; expected: string } {
  let s = kind === "int" ? z.int() : z.number();
  if (r.min !== undefined) s = s.min(r.min);
  if (r.gt !== undefined) s = s.gt(r.gt);
  if (r.max !== undefined) s = s.max(r.max);
  if (r.lt !== undefined) s = s.lt(r.lt);
  const bounds = rangeText(r);
  return { schema: s, expected: `${kind === "int" ? "an integer" : "a number"}${bounds ? ` ${bounds}` : ""}` };
}

/** An integer, e.g. `integer({ min: 1, default: 8, help: "rank" })`. */
export const integer = (o: Range & Common<number>): FieldSpec<number> => ({ ...numeric("int", o), ...o });
/** A finite number. */
export const number = (o: Range & Common<number>): FieldSpec<number> => ({ ...numeric("number", o), ...o });
export const boolean = (o: Common<boolean>): FieldSpec<boolean> => ({ schema: z.boolean(), expected: "a boolean", ...o });
export const string = (o: Common<string>): FieldSpec<string> => ({ schema: z.string(), expected: "a string", ...o });
/** One of fixed values (strings or booleans, e.g. init_lora_weights: true, false or "gaussian"). */
export function oneOf<const V extends string | boolean>(values: readonly V[], o: Common<V>): FieldSpec<V> {
  const show = values.map((v) => JSON.stringify(v));
  return { schema: z.union(values.map((v) => z.literal(v)) as unknown as [z.ZodLiteral<V>, z.ZodLiteral<V>]), expected: show.length > 1 ? `${show.slice(0, -1).join(", ")} or ${show.at(-1)}` : show[0]!, ...o };
}
export const stringList = (o: Common<string[]>): FieldSpec<string[]> => ({ schema: z.array(z.string()), expected: "a list of strings", ...o });
/** Module names: a regex string matched against the whole module path, or a list of name suffixes (PEFT's target_modules). */
export const modules = (o: Common<string | string[]>): FieldSpec<string | string[]> => ({ schema: z.union([z.string(), z.array(z.string())]), expected: "a regex string or a list of module names", ...o });
/** Values keyed by a regex on the module path (rank_pattern, alpha_pattern). */
export const pattern = (kind: "positive integers" | "numbers", o: Common<Record<string, number>>): FieldSpec<Record<string, number>> => ({
  schema: z.record(z.string(), kind === "numbers" ? z.number() : z.int().min(1)),
  expected: `an object of ${kind}`,
  ...o,
});
/** A field that may be null (its default unless another is given). */
export function nullable<T>(spec: FieldSpec<T>, o: { default?: T | null | ((ctx: DefaultContext) => T | null | undefined); defaultText?: string } = {}): FieldSpec<T | null> {
  return { ...(spec as FieldSpec<T | null>), default: "default" in o ? o.default : null, ...(o.defaultText ? { defaultText: o.defaultText } : {}) };
}
/** A field validated by its own schema (e.g. a list of layer indices). */
export const custom = <T>(schema: z.ZodType, expected: string, o: Common<T>): FieldSpec<T> => ({ schema, expected, ...o });

/** Fields every config has (PEFT's PeftConfig); adapter_config.json writes them around the method's. */
export const COMMON_FIELDS = {
  task_type: nullable(string({ help: "PEFT's task type (SEQ_CLS, CAUSAL_LM, ...); set from the model's head" })),
  base_model_name_or_path: nullable(string({ help: "the base model as the user named it (hub id or path)" })),
  inference_mode: boolean({ default: false, help: "saved true, as PEFT's save_pretrained does" }),
  modules_to_save: nullable(stringList({ help: "modules trained and saved in full besides the adapter (the task's head is added)" })),
} satisfies ConfigFields;

const isDerived = <T>(d: FieldSpec<T>["default"]): d is (ctx: DefaultContext) => T | undefined => typeof d === "function";

/**
 * Parse `json` by a declaration: each field from the config or its default, validated; a field
 * without a value or default is an error naming it.
 */
export function parseFields(fields: ConfigFields, json: Readonly<Record<string, unknown>>, source: string, model?: PretrainedModel): Record<string, unknown> {
  const config: Record<string, unknown> = {};
  const ctx: DefaultContext = { model, config, json, source };
  for (const [key, spec] of Object.entries(fields)) {
    const v = json[key];
    if (v === undefined || v === null) {
      const d = isDerived(spec.default) ? spec.default(ctx) : spec.default;
      if (d === undefined) throw new AdapterConfigError(`${source}: ${key} is required${isDerived(spec.default) ? (model ? ` (no default for model type ${model.config.modelType})` : " (its default comes from the model)") : ""}`);
      config[key] = d;
    } else if (spec.parse) {
      config[key] = spec.parse(v, source, ctx);
    } else {
      if (!spec.schema.safeParse(v).success) throw new AdapterConfigError(`${source}: field "${key}" must be ${spec.expected}, got ${JSON.stringify(v)}`);
      config[key] = v;
    }
  }
  return config;
}

/** The declared fields as adapter_config.json writes them, in declaration order. */
export function fieldsToJSON(fields: ConfigFields, config: Readonly<Record<string, unknown>>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, spec] of Object.entries(fields)) {
    const v = config[key] ?? null;
    if (typeof spec.write === "function") out[key] = spec.write(v, config);
    else if (spec.write === "unless-default") {
      if (!isDerived(spec.default) && JSON.stringify(v) !== JSON.stringify(spec.default ?? null)) out[key] = v;
    } else out[key] = v;
  }
  return out;
}

/** How a declaration is turned into a row's config functions. */
export interface ConfigOptions<C> {
  /** PEFT's prompt-learning configs have no modules_to_save field. */
  promptLearning?: boolean;
  /** Rewrites the config before its fields are read (AdapterHub nests them under "config"). */
  prepare?: (json: Readonly<Record<string, unknown>>, source: string) => Readonly<Record<string, unknown>>;
  /** Rules across fields, and values that depend on the model (PEFT's `__post_init__`); may return a changed config. */
  refine?: (config: C, source: string, model: PretrainedModel | undefined, json: Readonly<Record<string, unknown>>) => C | void;
  /** Arranges adapter_config.json from the method's written fields (default: PEFT's layout, PeftConfig's fields around the method's). */
  layout?: (fields: Record<string, unknown>, config: C) => Record<string, unknown>;
}

export type DeclaredConfig<P extends string, F extends ConfigFields> = ConfigOfFields<F> & Omit<BaseConfig, keyof F> & { peft_type: P };

/**
 * A row's `fields`, `parseConfig` and `toJSON` from its declaration. Besides the method's fields,
 * every config parses PeftConfig's (COMMON_FIELDS).
 */
export function declareConfig<const P extends string, F extends ConfigFields, C extends BaseConfig & { peft_type: P } = DeclaredConfig<P, F>>(peftType: P, fields: F, opts: ConfigOptions<C> = {}) {
  const parseConfig = (given: Readonly<Record<string, unknown>>, source: string, model?: PretrainedModel): C => {
    const json = opts.prepare?.(given, source) ?? given;
    const parsed = { peft_type: peftType, ...parseFields({ ...COMMON_FIELDS, ...fields }, json, source, model) } as unknown as C;
    return opts.refine?.(parsed, source, model, json) ?? parsed;
  };
  const toJSON = (c: C): Record<string, unknown> => {
    const own = fieldsToJSON(fields, c as unknown as Record<string, unknown>);
    if (opts.layout) return opts.layout(own, c);
    return {
      peft_type: peftType,
      task_type: c.task_type ?? null,
      base_model_name_or_path: c.base_model_name_or_path ?? null,
      inference_mode: c.inference_mode ?? false,
      ...own,
      ...(opts.promptLearning ? {} : { modules_to_save: c.modules_to_save ?? null }),
      revision: null,
    };
  };
  return { fields, parseConfig, toJSON };
}

/**
 * Check the values a config gives against their fields' types and ranges, without a model (the
 * CLI checks `--peft` settings before loading one; parsing with the model checks the rest).
 */
export function checkFieldValues(fields: ConfigFields, json: Readonly<Record<string, unknown>>, source: string): void {
  for (const [key, v] of Object.entries(json)) {
    const spec = fields[key];
    if (!spec || v === undefined || v === null) continue;
    if (!spec.schema.safeParse(v).success) throw new AdapterConfigError(`${source}: field "${key}" must be ${spec.expected}, got ${JSON.stringify(v)}`);
  }
}

/** A field's default as a listing shows it. */
export function defaultText(spec: Pick<FieldSpec, "default" | "defaultText">): string {
  if (spec.defaultText) return spec.defaultText;
  if (isDerived(spec.default)) return "computed";
  return spec.default === undefined ? "required" : JSON.stringify(spec.default);
}
