// Base-model parameters an adapter trains and saves in full: PEFT's `modules_to_save` (e.g. a
// classification head), LoRA's `bias`, BitFit, LayerNorm tuning and full fine-tuning. Each
// adapter trains its own copy, so disabling or switching adapters restores the base model.
import { toFloat32 } from "../io/half.js";
import { type Value } from "../ir/graph.js";
import { type Tensor } from "../ir/tensor.js";
import { type PretrainedModel } from "../models/pretrained.js";
import { MODEL_PREFIX, type HookContext } from "./tuner.js";

/** Parameter names of the model whose module path matches `module` (PEFT's `(^|.*\.)m($|\..*)`). */
export function paramsOfModules(model: PretrainedModel, modules: readonly string[]): string[] {
  const res = modules.map((m) => new RegExp(`(^|.*\\.)${m.replace(/\./g, "\\.")}($|\\..*)`));
  return [...model.modules().params.keys()].filter((name) => res.some((re) => re.test(name.slice(0, name.lastIndexOf(".")))));
}

export class ModulesToSave {
  /** In-graph key (`<module>.modules_to_save.<param>`) by base parameter name. */
  private readonly keys = new Map<string, string>();
  readonly tensors = new Map<string, Tensor>();

  constructor(
    model: PretrainedModel,
    modules: readonly string[],
    extraParams: readonly string[] = [],
  ) {
    const names = new Set([...paramsOfModules(model, modules), ...extraParams.filter((n) => model.modules().params.has(n))]);
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

  parameter(name: string, ctx: HookContext): Value | undefined {
    const key = this.keys.get(name);
    return key ? ctx.bind(key) : undefined;
  }

  stateDict(): Map<string, Tensor> {
    return new Map([...this.keys].map(([name, key]) => [`${MODEL_PREFIX}${name}`, this.tensors.get(key)!]));
  }

  /** State-dict key -> in-graph key. */
  loadKeys(): Map<string, string> {
    return new Map([...this.keys].map(([name, key]) => [`${MODEL_PREFIX}${name}`, key]));
  }

  mergedWeights(): Map<string, Tensor> {
    return new Map([...this.keys].map(([name, key]) => [name, this.tensors.get(key)!]));
  }
}
