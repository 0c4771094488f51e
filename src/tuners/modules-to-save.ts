// Base-model parameters an adapter trains and saves in full: PEFT's `modules_to_save` (e.g. a
// classification head), LoRA's `bias`, BitFit, LayerNorm tuning and full fine-tuning. Each
// adapter trains its own copy, so disabling or switching adapters restores the base model.
import { toFloat32 } from "../io/half.js";
import { conv1d, linear } from "../ir/composites/linear.js";
import { type Value } from "../ir/graph.js";
import { add, mul, sub } from "../ir/ops/index.js";
import { type Tensor } from "../ir/tensor.js";
import { type LinearHook } from "../models/hooks.js";
import { type PretrainedModel } from "../models/pretrained.js";
import { AdapterConfigError, MODEL_PREFIX, type HookContext } from "./tuner.js";

/** Parameter names of the model whose module path matches `module` (PEFT's `(^|.*\.)m($|\..*)`). */
export function paramsOfModules(model: PretrainedModel, modules: readonly string[]): string[] {
  const res = modules.map((m) => new RegExp(`(^|.*\\.)${m.replace(/\./g, "\\.")}($|\\..*)`));
  return [...model.modules().params.keys()].filter((name) => res.some((re) => re.test(name.slice(0, name.lastIndexOf(".")))));
}

export class ModulesToSave {
  /** Tensor key (`<module>.modules_to_save.<param>`, PEFT's in-memory name without the adapter's) by base parameter name. */
  private readonly keys = new Map<string, string>();
  readonly tensors = new Map<string, Tensor>();
  /** Covered parameters outside linear layers (norms, embeddings): not selectable per row. */
  private readonly nonLinear: string[];

  constructor(
    model: PretrainedModel,
    /** Module names whose parameters are trained in full (PEFT wraps each such module in a ModulesToSaveWrapper). */
    readonly modules: readonly string[],
    extraParams: readonly string[] = [],
    /** State-dict key of a base parameter (default PEFT's `base_model.model.<name>`). */
    private readonly saveKey: (name: string) => string = (name) => `${MODEL_PREFIX}${name}`,
  ) {
    const names = new Set([...paramsOfModules(model, modules), ...extraParams.filter((n) => model.modules().params.has(n))]);
    const linearWeights = new Set(model.modules().linear.flatMap((l) => [`${l.path}.weight`, `${l.path}.bias`]));
    this.nonLinear = [...names].filter((n) => !linearWeights.has(n));
    for (const name of names) {
      const key = `${name.slice(0, name.lastIndexOf("."))}.modules_to_save.${name.slice(name.lastIndexOf(".") + 1)}`;
      const src = toFloat32(model.weight(name));
      this.keys.set(name, key);
      this.tensors.set(key, { dtype: "float32", shape: [...src.shape], data: Float32Array.from(src.data) });
    }
  }

  /** Base parameter names covered. */
  get names(): string[] {
    return [...this.keys.keys()];
  }

  /** The trained copy in place of a base parameter (whole-batch mode). */
  parameter(name: string, ctx: HookContext): Value | undefined {
    if (ctx.rowGate) {
      if (this.nonLinear.length) throw new AdapterConfigError(`adapters that train ${this.nonLinear.slice(0, 3).join(", ")} cannot share a batch with other adapters (mixed-adapter batches)`);
      return undefined;
    }
    const key = this.keys.get(name);
    return key ? ctx.bind(key) : undefined;
  }

  /** Mixed batches: rows of this adapter go through its copy of a linear module (e.g. the head). */
  linear(h: LinearHook, ctx: HookContext): Value | undefined {
    const key = this.keys.get(`${h.path}.weight`);
    const bias = this.keys.get(`${h.path}.bias`);
    if (!ctx.rowGate || (!key && !bias)) return undefined;
    const W = key ? ctx.bind(key) : h.weight;
    const b = bias ? ctx.bind(bias) : h.bias;
    const own = h.layout === "conv1d" ? conv1d(h.x, W, b) : linear(h.x, W, b);
    const base = h.base(h.x);
    const gate = ctx.rowGate(own);
    return add(mul(own, gate), mul(base, sub(1, gate)));
  }

  /** PEFT state-dict key -> tensor key. */
  loadKeys(): Map<string, string> {
    return new Map([...this.keys].map(([name, key]) => [this.saveKey(name), key]));
  }

  mergedWeights(): Map<string, Tensor> {
    return new Map([...this.keys].map(([name, key]) => [name, this.tensors.get(key)!]));
  }
}
