// Named hook points: where tuners attach to a model without touching model code. Every name
// is the Hugging Face module path (e.g. `bert.encoder.layer.3.attention.self.query`), so PEFT's
// `target_modules` matching works unchanged.
import { type Graph, type Value } from "../ir/graph.js";

export interface LinearHook {
  /** HF module path of the layer. */
  path: string;
  x: Value;
  weight: Value;
  bias: Value | undefined;
  /** "linear": weight [out, in] (nn.Linear); "conv1d": weight [in, out] (GPT-2 Conv1D). */
  layout: "linear" | "conv1d";
  /** The layer as the base model computes it. */
  base: (x: Value) => Value;
}

export interface SublayerHook {
  /** HF module path of the sublayer's output projection (e.g. `...layer.3.output`). */
  path: string;
  layer: number;
  kind: "attention" | "ffn";
  /** Sublayer output before the residual add. */
  y: Value;
  /** The residual stream the output is added to. */
  residual: Value;
  /** The layer norm applied after the residual add (post-LN models), to reproduce AdapterHub's placements. */
  norm?: (x: Value) => Value;
}

/** A post-LN block's output, LN(sublayer output + residual), under the same path as its SublayerHook. */
export interface BlockOutputHook {
  path: string;
  layer: number;
  kind: "attention" | "ffn";
  output: Value;
}

export interface KeyValueHook {
  /** HF module path of the attention module. */
  path: string;
  layer: number;
  /** [batch, kvHeads, seq, headDim]. */
  k: Value;
  v: Value;
  /** Additive mask [batch, 1, 1|q, seq] (0 = attend), if any. */
  mask: Value | undefined;
}

export interface KeyValueResult {
  k: Value;
  v: Value;
  mask: Value | undefined;
  prefix?: number;
}

export interface EmbeddingHook {
  path: string;
  /** [batch, seq, hidden] input embeddings (after the lookup, before positions are added). */
  embeds: Value;
  /** The token ids looked up, [batch, seq]. */
  ids: Value;
  /** The embedding table [vocab, hidden]. */
  weight: Value;
}

/**
 * Hooks a tuner supplies. Each returns a replacement or undefined to keep the base behaviour.
 */
export interface ModelHooks {
  /** Supply a parameter in place of the checkpoint's (a trained copy: heads, biases, full FT). */
  parameter?: (name: string, graph: Graph) => Value | undefined;
  linear?: (h: LinearHook) => Value | undefined;
  sublayerOutput?: (h: SublayerHook) => Value | undefined;
  /** Replace a post-LN block's output (an adapter whose output skips the model's residual and LayerNorm). */
  blockOutput?: (h: BlockOutputHook) => Value | undefined;
  /**
   * Replace keys/values (and their mask). `prefix` counts positions prepended to the keys that
   * every query may attend to (prefix tuning), so causal masks shift past them.
   */
  keyValue?: (h: KeyValueHook) => KeyValueResult | undefined;
  inputEmbeddings?: (h: EmbeddingHook) => Value | undefined;
}

/** Apply several hook sets in order (e.g. LoRA and adapters together). */
export function composeHooks(list: readonly ModelHooks[]): ModelHooks {
  return {
    parameter: (name, graph) => {
      for (const hooks of list) {
        const v = hooks.parameter?.(name, graph);
        if (v) return v;
      }
      return undefined;
    },
    linear: (h) => {
      let base = h.base;
      for (const hooks of list) {
        if (!hooks.linear) continue;
        const inner = base;
        const hooked = (x: Value) => hooks.linear!({ ...h, x, base: inner }) ?? inner(x);
        base = hooked;
      }
      return base(h.x);
    },
    sublayerOutput: (h) => list.reduce((y, hooks) => hooks.sublayerOutput?.({ ...h, y }) ?? y, h.y),
    blockOutput: (h) => list.reduce((o, hooks) => hooks.blockOutput?.({ ...h, output: o }) ?? o, h.output),
    keyValue: (h) =>
      list.reduce<KeyValueResult>(
        (kv, hooks) => {
          const next = hooks.keyValue?.({ ...h, k: kv.k, v: kv.v, mask: kv.mask });
          return next ? { ...next, prefix: (kv.prefix ?? 0) + (next.prefix ?? 0) } : kv;
        },
        { k: h.k, v: h.v, mask: h.mask },
      ),
    inputEmbeddings: (h) => list.reduce((e, hooks) => hooks.inputEmbeddings?.({ ...h, embeds: e }) ?? e, h.embeds),
  };
}
