// BERT and RoBERTa (post-LN encoders with learned positions and token types), with their HF
// heads: sequence/token classification, extractive QA and masked LM.
import { activation } from "../ir/composites/activations.js";
import { scaledDotProductAttention } from "../ir/composites/attention.js";
import { crossEntropy } from "../ir/composites/losses.js";
import { add, dropout, equal, gather, layerNorm, nonZero, not, reshape, squeeze, tanh } from "../ir/ops/index.js";
import { type Value } from "../ir/graph.js";
import { type ModelBuilder } from "./builder.js";
import { type ModelConfig } from "./config.js";
import { questionAnswering, sequenceLoss, tiedDecoder, tokenClassification, tokenLoss } from "./heads.js";
import { additiveMask, firstToken, flattenTokens, mergeHeads, positionsFromMask, splitHeads } from "./layers.js";
import { type ModelGraph, type ModelInputs, type ModelOutputs, type Task } from "./task.js";

export const BERT_TASKS: readonly Task[] = ["base", "sequence-classification", "token-classification", "question-answering", "masked-lm"];

/** Build a BERT/RoBERTa graph. `prefix` is "bert." / "roberta." for task models, "" for the base model. */
/**
 * `positionsInGraph`: take only the inputs transformers.js feeds (export): positions come from the
 * mask inside the graph (after `offset` cached positions), and a model with one token type
 * (RoBERTa) takes no token_type_ids.
 */
export function buildBert(b: ModelBuilder, cfg: ModelConfig, task: Task, withLoss: boolean, positionsInGraph?: { offset: number }): ModelGraph {
  const g = b.graph;
  const prefix = b.usePrefix(`${cfg.modelType}.`, task === "base");
  const p = (name: string, shape: number[]) => b.param(name, shape);
  const H = cfg.hidden;
  const drop = (x: Value, ratio = cfg.hiddenDropout) => dropout(x, ratio, b.training);

  const attentionMask = g.input("attention_mask", "int64", ["batch", "seq"]);
  const inputs: ModelInputs = {
    input_ids: g.input("input_ids", "int64", ["batch", "seq"]),
    attention_mask: attentionMask,
    position_ids: positionsInGraph ? positionsFromMask(attentionMask, cfg.modelType === "roberta" ? (cfg.padTokenId ?? 1) : undefined, positionsInGraph.offset) : g.input("position_ids", "int64", ["batch", "seq"]),
  };
  if (cfg.typeVocabSize > 1 || (cfg.typeVocabSize === 1 && !positionsInGraph)) inputs.token_type_ids = g.input("token_type_ids", "int64", ["batch", "seq"]);

  // Embeddings
  const emb = `${prefix}embeddings`;
  const table = p(`${emb}.word_embeddings.weight`, [cfg.vocabSize, H]);
  let words = gather(table, inputs.input_ids);
  words = b.hooks.inputEmbeddings?.({ path: `${emb}.word_embeddings`, embeds: words, ids: inputs.input_ids, weight: table }) ?? words;
  let h = add(words, gather(p(`${emb}.position_embeddings.weight`, [cfg.maxPositions, H]), inputs.position_ids));
  if (inputs.token_type_ids) h = add(h, gather(p(`${emb}.token_type_embeddings.weight`, [cfg.typeVocabSize, H]), inputs.token_type_ids));
  // One token type: every token adds its row 0.
  else if (cfg.typeVocabSize === 1) h = add(h, p(`${emb}.token_type_embeddings.weight`, [1, H]));
  h = drop(layerNorm(h, p(`${emb}.LayerNorm.weight`, [H]), p(`${emb}.LayerNorm.bias`, [H]), cfg.layerNormEps));

  const mask = additiveMask(inputs.attention_mask);
  const lin = (path: string, x: Value, out: number, inp: number) => b.linear(path, x, out, inp);
  const ln = (path: string, x: Value) => layerNorm(x, p(`${path}.weight`, [H]), p(`${path}.bias`, [H]), cfg.layerNormEps);

  for (let i = 0; i < cfg.layers; i++) {
    const L = `${prefix}encoder.layer.${i}`;
    const layer = (x: Value): Value => {
      const q = splitHeads(lin(`${L}.attention.self.query`, x, H, H), cfg.heads, cfg.headDim);
      let k = splitHeads(lin(`${L}.attention.self.key`, x, H, H), cfg.heads, cfg.headDim);
      let v = splitHeads(lin(`${L}.attention.self.value`, x, H, H), cfg.heads, cfg.headDim);
      let m: Value | undefined = mask;
      const kv = b.hooks.keyValue?.({ path: `${L}.attention.self`, layer: i, k, v, mask: m });
      if (kv) ({ k, v, mask: m } = kv);
      const ctx = mergeHeads(scaledDotProductAttention(q, k, v, { mask: m, dropout: { ratio: cfg.attentionDropout, training: b.training } }), cfg.heads, cfg.headDim);
      let a = drop(lin(`${L}.attention.output.dense`, ctx, H, H));
      a = b.hooks.sublayerOutput?.({ path: `${L}.attention.output`, layer: i, kind: "attention", y: a, residual: x, norm: (t) => ln(`${L}.attention.output.LayerNorm`, t) }) ?? a;
      const n1 = ln(`${L}.attention.output.LayerNorm`, add(a, x));
      const h1 = b.hooks.blockOutput?.({ path: `${L}.attention.output`, layer: i, kind: "attention", output: n1 }) ?? n1;
      const inter = activation(cfg.activation, lin(`${L}.intermediate.dense`, h1, cfg.intermediate, H));
      let f = drop(lin(`${L}.output.dense`, inter, H, cfg.intermediate));
      f = b.hooks.sublayerOutput?.({ path: `${L}.output`, layer: i, kind: "ffn", y: f, residual: h1, norm: (t) => ln(`${L}.output.LayerNorm`, t) }) ?? f;
      const n2 = ln(`${L}.output.LayerNorm`, add(f, h1));
      return b.hooks.blockOutput?.({ path: `${L}.output`, layer: i, kind: "ffn", output: n2 }) ?? n2;
    };
    h = b.checkpointing ? g.checkpoint(L, () => layer(h)) : layer(h);
  }

  const outputs: ModelOutputs = { last_hidden_state: h };
  const classes = cfg.numLabels;
  if (task === "sequence-classification") {
    if (cfg.modelType === "roberta") {
      const x = drop(firstToken(h));
      const d = tanh(b.linear("classifier.dense", x, H, H, { head: true }));
      outputs.logits = b.linear("classifier.out_proj", drop(d), classes, H, { head: true });
    } else {
      // Like transformers, a checkpoint without a pooler gets a freshly initialized one.
      const pooled = tanh(b.linear(`${prefix}pooler.dense`, firstToken(h), H, H, { head: true }));
      outputs.logits = b.linear("classifier", drop(pooled), classes, H, { head: true });
    }
    if (withLoss) outputs.loss = sequenceLoss(outputs.logits, inputs);
  } else if (task === "token-classification") {
    tokenClassification(b, drop(h), classes, inputs, outputs, withLoss);
  } else if (task === "question-answering") {
    questionAnswering(b, h, inputs, outputs, withLoss);
  } else if (task === "masked-lm") {
    const roberta = cfg.modelType === "roberta";
    const head = roberta ? "lm_head" : "cls.predictions";
    // Only the labelled positions' hidden states go through the head when asked (see BuildOptions).
    let x = h;
    let labels: Value | undefined;
    if (withLoss && b.maskedPositionsOnly) {
      inputs.labels = g.input("labels", "int64", ["batch", "seq"]);
      const flat = reshape(inputs.labels, [-1]);
      const positions = squeeze(nonZero(not(equal(flat, -100))), [0]);
      x = gather(flattenTokens(h), positions, 0);
      labels = gather(flat, positions, 0);
    }
    const t = activation(cfg.activation, b.linear(roberta ? "lm_head.dense" : "cls.predictions.transform.dense", x, H, H));
    const norm = roberta ? "lm_head.layer_norm" : "cls.predictions.transform.LayerNorm";
    const tn = layerNorm(t, b.param(`${norm}.weight`, [H]), b.param(`${norm}.bias`, [H]), cfg.layerNormEps);
    // The decoder is tied to the word embeddings; its bias is `<head>.bias`.
    const decoder = b.param(`${head}.decoder.weight`, [cfg.vocabSize, H], { aliases: [`${emb}.word_embeddings.weight`] });
    const bias = b.param(`${head}.bias`, [cfg.vocabSize], { aliases: [`${head}.decoder.bias`] });
    outputs.logits = tiedDecoder(b, `${head}.decoder`, tn, decoder, bias);
    if (withLoss) outputs.loss = labels ? crossEntropy(outputs.logits, labels) : tokenLoss(outputs.logits, inputs);
  }
  const { unexpected } = b.finish((n) => n.endsWith("position_ids") || (task !== "masked-lm" && (n.startsWith("cls.") || n.startsWith("lm_head."))) || (task === "base" && (n.startsWith("classifier") || n.startsWith("qa_outputs"))));
  return { graph: g, inputs, outputs, present: {}, unexpected, newlyInitialized: [...b.newlyInitialized] };
}
