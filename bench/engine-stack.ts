// The engine benchmark's model: a BERT-base-shaped post-LN encoder stack with LoRA on query and
// value, built with the IR (the backward comes from autodiff). Mirrored exactly by
// bench/reference/engine_torch.py, whose float64 outputs are a test fixture.
import {
  add, concat, gelu, gemm, Graph, layerNorm, mul, reshape, scaledDotProductAttention, shapeOf, slice, transpose,
  type Tensor, type Value,
} from "../src/index.js";

export interface StackConfig {
  layers: number;
  hidden: number;
  heads: number;
  ffn: number;
  /** LoRA rank and alpha (scaling alpha / r). */
  r: number;
  alpha: number;
  eps: number;
  dtype: "float32" | "float64";
}

export const BERT_BASE_STACK: StackConfig = { layers: 4, hidden: 768, heads: 12, ffn: 3072, r: 8, alpha: 16, eps: 1e-12, dtype: "float32" };

/** Shapes of every parameter of layer i, by the names the PyTorch reference uses. */
export function stackParamShapes(cfg: StackConfig, i: number): Record<string, number[]> {
  const { hidden: h, ffn: f, r } = cfg;
  const p = `layer.${i}.`;
  return {
    [p + "Wq"]: [h, h], [p + "bq"]: [h], [p + "Wk"]: [h, h], [p + "bk"]: [h], [p + "Wv"]: [h, h], [p + "bv"]: [h],
    [p + "Wo"]: [h, h], [p + "bo"]: [h], [p + "ln1_w"]: [h], [p + "ln1_b"]: [h], [p + "Wi"]: [f, h], [p + "bi"]: [f],
    [p + "Wo2"]: [h, f], [p + "bo2"]: [h], [p + "ln2_w"]: [h], [p + "ln2_b"]: [h],
    [p + "lora_A_q"]: [r, h], [p + "lora_B_q"]: [h, r], [p + "lora_A_v"]: [r, h], [p + "lora_B_v"]: [h, r],
  };
}

export const isLoraName = (name: string): boolean => name.includes(".lora_");

/**
 * Build the stack on inputs x [batch, seq, hidden] and an additive mask [batch, 1, 1, seq].
 * `weight(name, shape)` supplies each parameter; LoRA matrices are trainable, the rest frozen.
 */
export function buildLoraStack(cfg: StackConfig, weight: (name: string, shape: number[]) => Tensor, opts: { checkpoint?: boolean } = {}) {
  const g = new Graph();
  const { hidden: h, heads } = cfg;
  const x = g.input("x", cfg.dtype, ["batch", "seq", h]);
  const mask = g.input("mask", cfg.dtype, ["batch", 1, 1, "seq"]);
  const batchSeq = slice(shapeOf(x), [0], [2], [0]);
  const headShape = concat([batchSeq, g.int64s([heads, h / heads])], 0);
  const toHeads = (t2: Value) => transpose(reshape(t2, headShape), [0, 2, 1, 3]);
  const scaling = cfg.alpha / cfg.r;

  // Hidden states stay 2-D [batch*seq, hidden] between layers, so every linear is one Gemm.
  let hs: Value = reshape(x, [-1, h]);
  for (let i = 0; i < cfg.layers; i++) {
    const shapes = stackParamShapes(cfg, i);
    const p = (n: string) => {
      const name = `layer.${i}.${n}`;
      return g.param(name, weight(name, shapes[name]!), { trainable: isLoraName(name) });
    };
    const layer = (input: Value): Value => {
      const lin = (t: Value, w: string, b: string) => gemm(t, p(w), { transB: 1 }, p(b));
      const lora = (t: Value, which: string) => mul(gemm(gemm(t, p(`lora_A_${which}`), { transB: 1 }), p(`lora_B_${which}`), { transB: 1 }), scaling);
      const q = toHeads(add(lin(input, "Wq", "bq"), lora(input, "q")));
      const k = toHeads(lin(input, "Wk", "bk"));
      const v = toHeads(add(lin(input, "Wv", "bv"), lora(input, "v")));
      const ctx = reshape(transpose(scaledDotProductAttention(q, k, v, { mask }), [0, 2, 1, 3]), [-1, h]);
      const h1 = layerNorm(add(lin(ctx, "Wo", "bo"), input), p("ln1_w"), p("ln1_b"), cfg.eps);
      const f = lin(gelu(lin(h1, "Wi", "bi")), "Wo2", "bo2");
      return layerNorm(add(f, h1), p("ln2_w"), p("ln2_b"), cfg.eps);
    };
    hs = opts.checkpoint ? g.checkpoint(`layer.${i}`, () => layer(hs)) : layer(hs);
  }
  const out = reshape(hs, concat([batchSeq, g.int64s([h])], 0));
  return { graph: g, x, mask, out };
}

/** Matmul FLOPs of one training step (forward + backward to LoRA params and x). */
export function stepFlops(cfg: StackConfig, batch: number, seq: number): number {
  const t = batch * seq;
  const { hidden: h, ffn: f, r } = cfg;
  const frozen = 2 * t * h * h * 4 + 2 * t * h * f * 2; // q, k, v, o, FFN in/out
  const attention = 2 * 2 * batch * seq * seq * h; // QK^T and PV
  const lora = 2 * (2 * t * h * r * 2); // two adapted projections, two GEMMs each
  // Backward: frozen GEMMs need only dX (1x); attention and LoRA GEMMs need both operands (2x).
  return cfg.layers * (2 * frozen + 3 * attention + 3 * lora);
}

/** A float mask [batch, 1, 1, seq]: the last `padded` positions of every odd row masked. */
export function paddingMask(dtype: "float32" | "float64", batch: number, seq: number, padded: number): Tensor {
  const data = dtype === "float64" ? new Float64Array(batch * seq) : new Float32Array(batch * seq);
  for (let b = 1; b < batch; b += 2) for (let s = seq - padded; s < seq; s++) data[b * seq + s] = -1e9;
  return { dtype, shape: [batch, 1, 1, seq], data };
}

