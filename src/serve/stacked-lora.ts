// One graph for rows of many LoRA adapters, with the cost of one: each adapted layer holds every
// adapter's A and B stacked ([adapters + 1, r, in] / [adapters + 1, out, r], scaling folded into
// B, ranks zero-padded, the last slot zeros = the base model), and each row gathers its own pair
// by `adapter_index` before two batched MatMuls, as Punica's SGMV and S-LoRA do, in standard ONNX
// ops (Gather, MatMul). The task head each adapter trains (modules_to_save: classifier, score,
// qa_outputs) is stacked the same way. The gated mixed graph of PeftModel computes every adapter
// on every row instead; it remains the path for methods this file does not cover.
import { type Graph, type Value } from "../ir/graph.js";
import { add, gather, matmul, reshape, transpose } from "../ir/ops/index.js";
import { type Tensor } from "../ir/tensor.js";
import { type LinearHook } from "../models/hooks.js";
import { type PretrainedModel } from "../models/pretrained.js";
import { type ModelGraph } from "../models/task.js";
import { type Adapter } from "../tuners/tuner.js";

const HEADS = ["classifier", "score", "qa_outputs"];
const LORA_KEY = /^(.+)\.lora_([AB])\.weight$/;
const HEAD_KEY = /^(.+)\.modules_to_save\.(weight|bias)$/;

/** Plain LoRA whose update is B A x * scaling on Linear layers, with at most a Linear task head. */
export function isStackable(adapter: Adapter): boolean {
  const c = adapter.config as Record<string, unknown>;
  if (c.peft_type !== "LORA" || c.use_dora || c.lora_bias || c.use_gating || (c.bias ?? "none") !== "none") return false;
  if (Object.keys((c.rank_pattern as object | null) ?? {}).length || Object.keys((c.alpha_pattern as object | null) ?? {}).length) return false;
  for (const key of adapter.tensors.keys()) {
    const head = HEAD_KEY.exec(key);
    if (!LORA_KEY.test(key) && !(head && HEADS.includes(head[1]!))) return false;
  }
  return true;
}

/** The base model's graph where rows pick their adapter among `adapters` (index = adapters.length: none). */
export function buildStacked(model: PretrainedModel, adapters: readonly Adapter[]): ModelGraph {
  const n = adapters.length;
  let index: Value | undefined;
  const rowIndex = (g: Graph) => (index ??= g.input("adapter_index", "int64", ["batch"]));
  const frozen = (g: Graph, name: string, t: Tensor) => g.params.get(name)?.value ?? g.param(name, t, { trainable: false });
  const scaling = (a: Adapter) => {
    const c = a.config as { r: number; lora_alpha: number; use_rslora?: boolean };
    return c.use_rslora ? c.lora_alpha / Math.sqrt(c.r) : c.lora_alpha / c.r;
  };

  const loraLayer = (h: LinearHook): Value | undefined => {
    const factors = adapters.map((a) => ({ A: a.tensors.get(`${h.path}.lora_A.weight`), B: a.tensors.get(`${h.path}.lora_B.weight`), s: scaling(a) }));
    const present = factors.filter((f) => f.A && f.B);
    if (present.length === 0) return undefined;
    const rank = Math.max(...present.map((f) => f.A!.shape[0]!));
    const inDim = present[0]!.A!.shape[1]!;
    const outDim = present[0]!.B!.shape[0]!;
    const A = new Float32Array((n + 1) * rank * inDim);
    const B = new Float32Array((n + 1) * outDim * rank);
    factors.forEach((f, i) => {
      if (!f.A || !f.B) return;
      const r = f.A.shape[0]!;
      A.set(f.A.data as Float32Array, i * rank * inDim); // rows r..rank stay zero
      const b = f.B.data as Float32Array;
      for (let o = 0; o < outDim; o++) for (let k = 0; k < r; k++) B[i * outDim * rank + o * rank + k] = b[o * r + k]! * f.s;
    });
    const g = h.x.graph;
    const idx = rowIndex(g);
    const As = gather(frozen(g, `stacked/${h.path}.lora_A`, { dtype: "float32", shape: [n + 1, rank, inDim], data: A }), idx); // [batch, r, in]
    const Bs = gather(frozen(g, `stacked/${h.path}.lora_B`, { dtype: "float32", shape: [n + 1, outDim, rank], data: B }), idx); // [batch, out, r]
    const x3 = h.x.rank === 3 ? h.x : reshape(h.x, [-1, 1, inDim]);
    let delta = matmul(matmul(x3, transpose(As, [0, 2, 1])), transpose(Bs, [0, 2, 1]));
    if (h.x.rank !== 3) delta = reshape(delta, [-1, outDim]);
    return add(h.base(h.x), delta);
  };

  const headLayer = (h: LinearHook): Value | undefined => {
    if (!HEADS.includes(h.path) || !adapters.some((a) => a.tensors.has(`${h.path}.modules_to_save.weight`))) return undefined;
    const baseW = model.weight(`${h.path}.weight`);
    const baseB = model.weight(`${h.path}.bias`);
    const [outDim, inDim] = baseW.shape as [number, number];
    const W = new Float32Array((n + 1) * outDim * inDim);
    const b = new Float32Array((n + 1) * outDim);
    [...adapters.map((a) => [a.tensors.get(`${h.path}.modules_to_save.weight`), a.tensors.get(`${h.path}.modules_to_save.bias`)] as const), [baseW, baseB] as const].forEach(([w, bias], i) => {
      W.set(((w ?? baseW) as Tensor).data as Float32Array, i * outDim * inDim);
      b.set(((bias ?? baseB) as Tensor).data as Float32Array, i * outDim);
    });
    const g = h.x.graph;
    const idx = rowIndex(g);
    const Ws = gather(frozen(g, `stacked/${h.path}.weight`, { dtype: "float32", shape: [n + 1, outDim, inDim], data: W }), idx);
    const bs = gather(frozen(g, `stacked/${h.path}.bias`, { dtype: "float32", shape: [n + 1, outDim], data: b }), idx); // [batch, out]
    const x3 = h.x.rank === 3 ? h.x : reshape(h.x, [-1, 1, inDim]);
    const y = add(matmul(x3, transpose(Ws, [0, 2, 1])), reshape(bs, [-1, 1, outDim]));
    return h.x.rank === 3 ? y : reshape(y, [-1, outDim]);
  };

  return model.build({ hooks: { linear: (h) => headLayer(h) ?? loraLayer(h) } });
}
