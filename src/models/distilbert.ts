// DistilBERT: a 6-layer BERT without token types or pooler, with its own module names.
import { activation } from "../ir/composites/activations.js";
import { scaledDotProductAttention } from "../ir/composites/attention.js";
import { type Value } from "../ir/graph.js";
import { add, dropout, gather, layerNorm, relu } from "../ir/ops/index.js";
import { type ModelBuilder } from "./builder.js";
import { type ModelConfig } from "./config.js";
import { questionAnswering, sequenceLoss, tiedDecoder, tokenClassification, tokenLoss } from "./heads.js";
import { additiveMask, firstToken, mergeHeads, positionsFromMask, splitHeads } from "./layers.js";
import { type ModelGraph, type ModelInputs, type ModelOutputs, type Task } from "./task.js";

export const DISTILBERT_TASKS: readonly Task[] = ["base", "sequence-classification", "token-classification", "question-answering", "masked-lm"];

/** `positionsInGraph`: positions 0..seq-1 computed inside the graph (export; see buildBert). */
export function buildDistilBert(b: ModelBuilder, cfg: ModelConfig, task: Task, withLoss: boolean, positionsInGraph?: { offset: number }): ModelGraph {
  const g = b.graph;
  const prefix = b.usePrefix("distilbert.", task === "base");
  const p = (name: string, shape: number[]) => b.param(name, shape);
  const H = cfg.hidden;
  const drop = (x: Value) => dropout(x, cfg.hiddenDropout, b.training);
  const lin = (path: string, x: Value, out: number, inp: number) => b.linear(path, x, out, inp);
  const ln = (path: string, x: Value) => layerNorm(x, p(`${path}.weight`, [H]), p(`${path}.bias`, [H]), cfg.layerNormEps);

  const attentionMask = g.input("attention_mask", "int64", ["batch", "seq"]);
  const inputs: ModelInputs = {
    input_ids: g.input("input_ids", "int64", ["batch", "seq"]),
    attention_mask: attentionMask,
    position_ids: positionsInGraph ? positionsFromMask(attentionMask, undefined, positionsInGraph.offset) : g.input("position_ids", "int64", ["batch", "seq"]),
  };
  const emb = `${prefix}embeddings`;
  const table = p(`${emb}.word_embeddings.weight`, [cfg.vocabSize, H]);
  let words = gather(table, inputs.input_ids);
  words = b.hooks.inputEmbeddings?.({ path: `${emb}.word_embeddings`, embeds: words, ids: inputs.input_ids, weight: table }) ?? words;
  let h = drop(ln(`${emb}.LayerNorm`, add(words, gather(p(`${emb}.position_embeddings.weight`, [cfg.maxPositions, H]), inputs.position_ids))));
  const mask = additiveMask(inputs.attention_mask);

  for (let i = 0; i < cfg.layers; i++) {
    const L = `${prefix}transformer.layer.${i}`;
    const layer = (x: Value): Value => {
      const q = splitHeads(lin(`${L}.attention.q_lin`, x, H, H), cfg.heads, cfg.headDim);
      let k = splitHeads(lin(`${L}.attention.k_lin`, x, H, H), cfg.heads, cfg.headDim);
      let v = splitHeads(lin(`${L}.attention.v_lin`, x, H, H), cfg.heads, cfg.headDim);
      let m: Value | undefined = mask;
      const kv = b.hooks.keyValue?.({ path: `${L}.attention`, layer: i, k, v, mask: m });
      if (kv) ({ k, v, mask: m } = kv);
      const ctx = mergeHeads(scaledDotProductAttention(q, k, v, { mask: m, dropout: { ratio: cfg.attentionDropout, training: b.training } }), cfg.heads, cfg.headDim);
      let a = lin(`${L}.attention.out_lin`, ctx, H, H);
      a = b.hooks.sublayerOutput?.({ path: `${L}.attention.out_lin`, layer: i, kind: "attention", y: a, residual: x, norm: (t) => ln(`${L}.sa_layer_norm`, t) }) ?? a;
      const n1 = ln(`${L}.sa_layer_norm`, add(a, x));
      const h1 = b.hooks.blockOutput?.({ path: `${L}.attention.out_lin`, layer: i, kind: "attention", output: n1 }) ?? n1;
      let f = drop(lin(`${L}.ffn.lin2`, activation(cfg.activation, lin(`${L}.ffn.lin1`, h1, cfg.intermediate, H)), H, cfg.intermediate));
      f = b.hooks.sublayerOutput?.({ path: `${L}.ffn.lin2`, layer: i, kind: "ffn", y: f, residual: h1, norm: (t) => ln(`${L}.output_layer_norm`, t) }) ?? f;
      const n2 = ln(`${L}.output_layer_norm`, add(f, h1));
      return b.hooks.blockOutput?.({ path: `${L}.ffn.lin2`, layer: i, kind: "ffn", output: n2 }) ?? n2;
    };
    h = b.checkpointing ? g.checkpoint(L, () => layer(h)) : layer(h);
  }

  const outputs: ModelOutputs = { last_hidden_state: h };
  if (task === "sequence-classification") {
    const pooled = drop(relu(b.linear("pre_classifier", firstToken(h), H, H, { head: true })));
    outputs.logits = b.linear("classifier", pooled, cfg.numLabels, H, { head: true });
    if (withLoss) outputs.loss = sequenceLoss(outputs.logits, inputs);
  } else if (task === "token-classification") {
    tokenClassification(b, drop(h), cfg.numLabels, inputs, outputs, withLoss);
  } else if (task === "question-answering") {
    questionAnswering(b, drop(h), inputs, outputs, withLoss);
  } else if (task === "masked-lm") {
    const t = layerNorm(activation(cfg.activation, b.linear("vocab_transform", h, H, H)), b.param("vocab_layer_norm.weight", [H]), b.param("vocab_layer_norm.bias", [H]), 1e-12);
    const decoder = b.param("vocab_projector.weight", [cfg.vocabSize, H], { aliases: [`${emb}.word_embeddings.weight`] });
    outputs.logits = tiedDecoder(b, "vocab_projector", t, decoder, b.param("vocab_projector.bias", [cfg.vocabSize]));
    if (withLoss) outputs.loss = tokenLoss(outputs.logits, inputs);
  }
  const { unexpected } = b.finish((n) => n.endsWith("position_ids") || (task !== "masked-lm" && n.startsWith("vocab_")));
  return { graph: g, inputs, outputs, present: {}, unexpected, newlyInitialized: [...b.newlyInitialized] };
}
