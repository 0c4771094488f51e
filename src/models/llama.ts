// The Llama family (Llama 2/3, Qwen2, SmolLM, Mistral): pre-RMSNorm decoder with rotary
// positions (incl. Llama-3 rope scaling), grouped-query attention and a SwiGLU MLP.
import { silu } from "../ir/composites/activations.js";
import { rmsNorm } from "../ir/composites/norms.js";
import { applyRotary, rotaryInverseFrequencies, rotaryTables } from "../ir/composites/rotary.js";
import { type Value } from "../ir/graph.js";
import { add, dropout, gather, mul } from "../ir/ops/index.js";
import { type ModelBuilder } from "./builder.js";
import { tiedDecoder } from "./heads.js";
import { type ModelConfig } from "./config.js";
import { CausalAttention, decoderHead, decoderInputs, lastPosition, lastTokenPool, type DecoderOptions } from "./decoder.js";
import { mergeHeads, splitHeads } from "./layers.js";
import { type ModelGraph, type ModelOutputs, type Task } from "./task.js";

export const LLAMA_TASKS: readonly Task[] = ["base", "causal-lm", "sequence-classification"];

export function llamaInverseFrequencies(cfg: ModelConfig): Float64Array {
  const rs = cfg.ropeScaling;
  if (rs?.rope_type === "llama3") {
    return rotaryInverseFrequencies(cfg.headDim, cfg.ropeTheta, {
      factor: rs.factor,
      low_freq_factor: rs.low_freq_factor ?? 1,
      high_freq_factor: rs.high_freq_factor ?? 4,
      original_max_position_embeddings: rs.original_max_position_embeddings ?? 8192,
    });
  }
  const inv = rotaryInverseFrequencies(cfg.headDim, cfg.ropeTheta);
  return rs?.rope_type === "linear" ? inv.map((f) => f / rs.factor) : inv;
}

export function buildLlama(b: ModelBuilder, cfg: ModelConfig, task: Task, withLoss: boolean, opts: DecoderOptions = {}): ModelGraph {
  const g = b.graph;
  const prefix = b.usePrefix("model.", task === "base");
  const p = (name: string, shape: number[]) => b.param(name, shape);
  const { hidden: H, heads, kvHeads, headDim: D, intermediate: I } = cfg;
  const lin = (path: string, x: Value, out: number, inp: number, bias: boolean) => b.linear(path, x, out, inp, { bias });
  const norm = (path: string, x: Value) => rmsNorm(x, p(`${path}.weight`, [H]), cfg.layerNormEps);
  const drop = (x: Value) => dropout(x, cfg.hiddenDropout, b.training);

  const inputs = decoderInputs(g, opts);
  const table = p(`${prefix}embed_tokens.weight`, [cfg.vocabSize, H]);
  let h = gather(table, inputs.input_ids);
  h = b.hooks.inputEmbeddings?.({ path: `${prefix}embed_tokens`, embeds: h, ids: inputs.input_ids, weight: table }) ?? h;
  const rope = rotaryTables(inputs.position_ids, llamaInverseFrequencies(cfg));
  const attn = new CausalAttention(b, inputs, { kvHeads, headDim: D }, opts);
  // Qwen2 has q/k/v biases but none on o_proj; Llama's attention_bias covers all four.
  const qkvBias = cfg.attentionBias;
  const oBias = cfg.attentionBias && cfg.modelType !== "qwen2";

  for (let i = 0; i < cfg.layers; i++) {
    const L = `${prefix}layers.${i}`;
    const layer = (x: Value): Value => {
      const xn = norm(`${L}.input_layernorm`, x);
      const q = applyRotary(splitHeads(lin(`${L}.self_attn.q_proj`, xn, heads * D, H, qkvBias), heads, D), rope);
      const k = applyRotary(splitHeads(lin(`${L}.self_attn.k_proj`, xn, kvHeads * D, H, qkvBias), kvHeads, D), rope);
      const v = splitHeads(lin(`${L}.self_attn.v_proj`, xn, kvHeads * D, H, qkvBias), kvHeads, D);
      const ctx = mergeHeads(attn.attend(i, `${L}.self_attn`, q, k, v, cfg.attentionDropout), heads, D);
      let a = drop(lin(`${L}.self_attn.o_proj`, ctx, H, heads * D, oBias));
      a = b.hooks.sublayerOutput?.({ path: `${L}.self_attn.o_proj`, layer: i, kind: "attention", y: a, residual: x }) ?? a;
      const h1 = add(x, a);
      const hn = norm(`${L}.post_attention_layernorm`, h1);
      const gated = mul(silu(lin(`${L}.mlp.gate_proj`, hn, I, H, cfg.mlpBias)), lin(`${L}.mlp.up_proj`, hn, I, H, cfg.mlpBias));
      let f = drop(lin(`${L}.mlp.down_proj`, gated, H, I, cfg.mlpBias));
      f = b.hooks.sublayerOutput?.({ path: `${L}.mlp.down_proj`, layer: i, kind: "ffn", y: f, residual: h1 }) ?? f;
      return add(h1, f);
    };
    h = b.checkpointing ? g.checkpoint(L, () => layer(h)) : layer(h);
  }
  h = norm(`${prefix}norm`, h);

  const outputs: ModelOutputs = { last_hidden_state: h };
  if (task === "causal-lm") {
    const head = b.param("lm_head.weight", [cfg.vocabSize, H], cfg.tieWordEmbeddings ? { aliases: [`${prefix}embed_tokens.weight`] } : {});
    const x = opts.lastTokenLogits ? lastPosition(h) : h;
    outputs.logits = tiedDecoder(b, "lm_head", x, head, undefined);
  } else if (task === "sequence-classification") {
    outputs.logits = lastTokenPool(b.linear("score", h, cfg.numLabels, H, { bias: false, head: true }), inputs.attention_mask);
  }
  decoderHead(outputs, inputs, task, withLoss);
  const { unexpected } = b.finish((n) => n.includes("rotary_emb.inv_freq") || (task === "base" && n.startsWith("lm_head")));
  return { graph: g, inputs, outputs, present: attn.present, unexpected, newlyInitialized: [...b.newlyInitialized] };
}
