// GPT-2: pre-LN decoder with learned positions, fused c_attn and Conv1D ([in, out]) weights.
import { activation } from "../ir/composites/activations.js";
import { type Value } from "../ir/graph.js";
import { add, dropout, gather, layerNorm, split } from "../ir/ops/index.js";
import { type ModelBuilder } from "./builder.js";
import { tiedDecoder } from "./heads.js";
import { type ModelConfig } from "./config.js";
import { CausalAttention, decoderHead, decoderInputs, lastPosition, lastTokenPool, type DecoderOptions } from "./decoder.js";
import { mergeHeads, splitHeads } from "./layers.js";
import { type ModelGraph, type ModelOutputs, type Task } from "./task.js";

export const GPT2_TASKS: readonly Task[] = ["base", "causal-lm", "sequence-classification"];

export function buildGpt2(b: ModelBuilder, cfg: ModelConfig, task: Task, withLoss: boolean, opts: DecoderOptions = {}): ModelGraph {
  const g = b.graph;
  const prefix = b.usePrefix("transformer.", task === "base");
  const p = (name: string, shape: number[]) => b.param(name, shape);
  const H = cfg.hidden;
  const drop = (x: Value) => dropout(x, cfg.hiddenDropout, b.training);
  const ln = (path: string, x: Value) => layerNorm(x, p(`${path}.weight`, [H]), p(`${path}.bias`, [H]), cfg.layerNormEps);
  const conv = (path: string, x: Value, inp: number, out: number) => {
    // Bind under the task-model name (aliases cover base checkpoints), then apply the hook.
    p(`${path}.weight`, [inp, out]);
    p(`${path}.bias`, [out]);
    return b.conv1d(path, x, inp, out);
  };

  const inputs = decoderInputs(g, opts);
  const wte = p(`${prefix}wte.weight`, [cfg.vocabSize, H]);
  let words = gather(wte, inputs.input_ids);
  words = b.hooks.inputEmbeddings?.({ path: `${prefix}wte`, embeds: words, ids: inputs.input_ids, weight: wte }) ?? words;
  let h = drop(add(words, gather(p(`${prefix}wpe.weight`, [cfg.maxPositions, H]), inputs.position_ids)));

  const attn = new CausalAttention(b, inputs, { kvHeads: cfg.heads, headDim: cfg.headDim }, opts);
  for (let i = 0; i < cfg.layers; i++) {
    const L = `${prefix}h.${i}`;
    const layer = (x: Value): Value => {
      const [q, k, v] = split(conv(`${L}.attn.c_attn`, ln(`${L}.ln_1`, x), H, 3 * H), [H, H, H], -1).map((t) => splitHeads(t, cfg.heads, cfg.headDim));
      const ctx = mergeHeads(attn.attend(i, `${L}.attn`, q!, k!, v!, cfg.attentionDropout), cfg.heads, cfg.headDim);
      let a = drop(conv(`${L}.attn.c_proj`, ctx, H, H));
      a = b.hooks.sublayerOutput?.({ path: `${L}.attn.c_proj`, layer: i, kind: "attention", y: a, residual: x }) ?? a;
      const h1 = add(x, a);
      let f = drop(conv(`${L}.mlp.c_proj`, activation(cfg.activation, conv(`${L}.mlp.c_fc`, ln(`${L}.ln_2`, h1), H, cfg.intermediate)), cfg.intermediate, H));
      f = b.hooks.sublayerOutput?.({ path: `${L}.mlp.c_proj`, layer: i, kind: "ffn", y: f, residual: h1 }) ?? f;
      return add(h1, f);
    };
    h = b.checkpointing ? g.checkpoint(L, () => layer(h)) : layer(h);
  }
  h = ln(`${prefix}ln_f`, h);

  const outputs: ModelOutputs = { last_hidden_state: h };
  if (task === "causal-lm") {
    const head = b.param("lm_head.weight", [cfg.vocabSize, H], { aliases: [`${prefix}wte.weight`] });
    const x = opts.lastTokenLogits ? lastPosition(h) : h;
    outputs.logits = tiedDecoder(b, "lm_head", x, head, undefined);
  } else if (task === "sequence-classification") {
    outputs.logits = lastTokenPool(b.linear("score", h, cfg.numLabels, H, { bias: false, head: true }), inputs.attention_mask);
  }
  decoderHead(outputs, inputs, task, withLoss);
  const { unexpected } = b.finish((n) => n.endsWith(".attn.bias") || n.endsWith(".attn.masked_bias") || (task === "base" && n.startsWith("lm_head")));
  return { graph: g, inputs, outputs, present: attn.present, unexpected, newlyInitialized: [...b.newlyInitialized] };
}
