// Adapter state for every method in one place: graph parameter names (the adapter's name added
// to the tuner's tensor keys), the saved state in Hugging Face PEFT's format (the method's own
// tensors by its key rule, the heads PeftModel trains beside it under the prefix PEFT gives them,
// copies of unchanged weights PEFT also writes), and strict loading (a missing tensor, an
// unconsumed one or a wrong shape is an error that names it).
import { toFloat32 } from "../io/half.js";
import { type Tensor } from "../ir/tensor.js";
import { type PretrainedModel } from "../models/pretrained.js";
import { type ModulesToSave } from "../tuners/modules-to-save.js";
import { AdapterConfigError, MODEL_PREFIX, type Adapter, type TunerDef } from "../tuners/tuner.js";

/**
 * The graph parameter name of an adapter's tensor. Tuners name their tensors without the adapter
 * (`<module path>.lora_A.weight`); the name is added here, so several adapters' tensors coexist in
 * one graph (mixed batches, stacked adapters) and trainer checkpoints key them the same way.
 */
export function paramName(adapter: string, key: string): string {
  return `${adapter}/${key}`;
}

/**
 * Where PEFT saves a head (modules_to_save) for a method. Prompt-learning methods wrap the
 * transformers model directly (peft_model.py: PeftModel.__init__ keeps `self.base_model = model`
 * for them), so their heads are `base_model.classifier.*`; every other tuner wraps it in a
 * BaseTuner whose `model` attribute holds it: `base_model.model.classifier.*`
 * (utils/save_and_load.py get_peft_model_state_dict, "MODULES TO SAVE").
 */
export function headKeyPrefix(def: Pick<TunerDef, "promptLearning">): string {
  return def.promptLearning ? "base_model." : MODEL_PREFIX;
}

/**
 * Keys PEFT writes that carry nothing the adapter trains, with the value PEFT would write:
 * - `bias="all"` takes every state-dict key ending in `.bias` (tuners_utils.py
 *   BaseTuner._get_learnable_bias_state_dict; in 0.14 get_peft_model_state_dict's `"bias" in k`),
 *   which includes both halves of a head's ModulesToSaveWrapper: `<head>.original_module.<rest>`
 *   (the base model's bias) and `<head>.modules_to_save.<rest>` (the trained copy, also saved as
 *   `<head>.<rest>`);
 * - the adapter's own (Adapter.baseKeys), e.g. a LoRA-targeted `embed_tokens`, whose base table
 *   PEFT saves as `<path>.base_layer.weight` (save_and_load.py, "DEAL WITH EMBEDDINGS").
 * Saving writes them; loading accepts them when present and refuses them when they differ from
 * what the adapter computes with (peftjs does not replace base weights from an adapter file).
 */
function echoKeys(model: PretrainedModel, adapter: Adapter, heads: ModulesToSave | undefined, prefix: string): Map<string, () => Tensor> {
  const out = new Map<string, () => Tensor>();
  for (const [peftKey, base] of adapter.baseKeys?.() ?? []) out.set(peftKey, () => model.weight(base));
  if ((adapter.config as { bias?: unknown }).bias !== "all" || !heads) return out;
  for (const [peftKey, key] of heads.loadKeys()) {
    if (!peftKey.endsWith(".bias")) continue;
    const name = peftKey.slice(prefix.length);
    // The wrapper sits at the module modules_to_save names (e.g. RoBERTa's whole `classifier`), the rest of the path below it.
    for (const m of heads.modules) {
      const at = new RegExp(`^((?:.*\\.)?${m.replace(/\./g, "\\.")})\\.(.*)$`).exec(name);
      if (!at) continue;
      out.set(`${prefix}${at[1]}.original_module.${at[2]}`, () => model.weight(name));
      out.set(`${prefix}${at[1]}.modules_to_save.${at[2]}`, () => adapter.tensors.get(key)!);
      break;
    }
  }
  return out;
}

/** The adapter's PEFT keys -> tensor keys: its own rule, or `base_model.model.<key>` for each of its tensors (the heads are PeftModel's). */
function ownKeys(adapter: Adapter, heads: ModulesToSave | undefined): Map<string, string> {
  if (adapter.stateKeys) return adapter.stateKeys();
  const headKeys = new Set(heads?.loadKeys().values());
  return new Map([...adapter.tensors.keys()].filter((k) => !headKeys.has(k)).map((k) => [`${MODEL_PREFIX}${k}`, k]));
}

/** The tensors PEFT's save_pretrained writes for this adapter, by key. */
export function adapterStateDict(model: PretrainedModel, adapter: Adapter, heads: ModulesToSave | undefined, prefix: string): Map<string, Tensor> {
  const sd = new Map<string, Tensor>();
  for (const [peftKey, key] of ownKeys(adapter, heads)) sd.set(peftKey, adapter.savedTensor?.(peftKey) ?? adapter.tensors.get(key)!);
  for (const [peftKey, key] of heads?.loadKeys() ?? []) sd.set(peftKey, adapter.tensors.get(key)!);
  for (const [peftKey, value] of echoKeys(model, adapter, heads, prefix)) sd.set(peftKey, value());
  return sd;
}

/**
 * Load a PEFT state dict into an adapter's tensors. Every expected key must be present with the
 * expected shape, and every tensor in the file must be consumed.
 */
export function loadAdapterState(model: PretrainedModel, adapter: Adapter, heads: ModulesToSave | undefined, prefix: string, file: ReadonlyMap<string, Tensor>, source: string): void {
  adapter.beforeLoad?.(file);
  const expected = new Map([...ownKeys(adapter, heads), ...(heads?.loadKeys() ?? [])]);
  const duplicates = echoKeys(model, adapter, heads, prefix);
  const list = (keys: string[]) => `${keys.slice(0, 5).join(", ")}${keys.length > 5 ? ` (+${keys.length - 5} more)` : ""}`;
  const missing = [...expected.keys()].filter((k) => !file.has(k));
  if (missing.length) throw new AdapterConfigError(`${source}: missing adapter weights ${list(missing)}; was it saved from a different base model or config?`);
  // An empty tensor carries nothing (AdaLoRA saves a module whose every rank was pruned as [0, in]).
  const unused = [...file.keys()].filter((k) => !expected.has(k) && !duplicates.has(k) && file.get(k)!.shape.every((d) => d > 0));
  if (unused.length) {
    throw new AdapterConfigError(`${source}: tensors this ${(adapter.config as { peft_type?: string }).peft_type ?? ""} adapter does not use: ${list(unused)}; loading it without them would compute something else than the adapter was trained to (expected keys like ${list([...expected.keys()].slice(0, 2))})`);
  }
  const check = (key: string, src: Tensor, dst: Tensor) => {
    if (src.shape.length !== dst.shape.length || src.shape.some((d, i) => d !== dst.shape[i])) {
      throw new AdapterConfigError(`${source}: "${key}" has shape [${src.shape.join(", ")}], this base model needs [${dst.shape.join(", ")}] (adapter saved for a different base?)`);
    }
  };
  for (const [peftKey, key] of expected) {
    const src = file.get(peftKey)!;
    const dst = adapter.tensors.get(key)!;
    check(peftKey, src, dst);
    // PEFT saves adapters in their parameters' dtype: float16 / bfloat16 files decode to float32 here.
    (dst.data as Float32Array).set(toFloat32(src).data);
  }
  for (const [peftKey, value] of duplicates) {
    const src = file.get(peftKey);
    if (!src) continue;
    const want = value();
    check(peftKey, src, want);
    const a = toFloat32(src).data;
    const b = toFloat32(want).data;
    // A half-precision file holds the weights rounded: compare at that precision.
    const tol = src.dtype === "float32" ? 1e-6 : src.dtype === "float16" ? 1e-3 : 8e-3;
    for (let i = 0; i < a.length; i++) {
      if (Math.abs(a[i]! - b[i]!) > tol * Math.max(1, Math.abs(b[i]!))) {
        throw new AdapterConfigError(`${source}: "${peftKey}" differs from the weights this adapter computes with (at ${i}: ${a[i]} vs ${b[i]}); the file carries a modified copy of a base or head weight, which peftjs does not apply`);
      }
    }
  }
}
