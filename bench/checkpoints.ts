// Random-weight checkpoints in the Hugging Face layout, for benchmarks at real model sizes.
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fillNormal, writeSafetensors, type Tensor } from "../src/index.js";

export async function writeCheckpoint(dir: string, config: Record<string, unknown>, shapes: Record<string, number[]>): Promise<void> {
  await mkdir(dir, { recursive: true });
  const tensors: Record<string, Tensor> = {};
  let seed = 1;
  for (const [name, shape] of Object.entries(shapes)) {
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    if (/LayerNorm\.weight|ln_.*\.weight|norm\.weight$/.test(name)) data.fill(1);
    else if (!/bias|LayerNorm/.test(name)) fillNormal(data, 0.02, seed++);
    tensors[name] = { dtype: "float32", shape, data };
  }
  await writeSafetensors(join(dir, "model.safetensors"), tensors);
  await writeFile(join(dir, "config.json"), JSON.stringify(config));
}

export function bertShapes(L: number, H: number, I: number, V: number, P: number): Record<string, number[]> {
  const s: Record<string, number[]> = {
    "embeddings.word_embeddings.weight": [V, H], "embeddings.position_embeddings.weight": [P, H], "embeddings.token_type_embeddings.weight": [2, H],
    "embeddings.LayerNorm.weight": [H], "embeddings.LayerNorm.bias": [H], "pooler.dense.weight": [H, H], "pooler.dense.bias": [H],
  };
  for (let i = 0; i < L; i++) {
    const p = `encoder.layer.${i}.`;
    for (const [n, out, inp] of [["attention.self.query", H, H], ["attention.self.key", H, H], ["attention.self.value", H, H], ["attention.output.dense", H, H], ["intermediate.dense", I, H], ["output.dense", H, I]] as const) {
      s[`${p}${n}.weight`] = [out, inp];
      s[`${p}${n}.bias`] = [out];
    }
    for (const n of ["attention.output.LayerNorm", "output.LayerNorm"]) {
      s[`${p}${n}.weight`] = [H];
      s[`${p}${n}.bias`] = [H];
    }
  }
  return s;
}

export function gpt2Shapes(L: number, H: number, V: number, P: number): Record<string, number[]> {
  const s: Record<string, number[]> = { "wte.weight": [V, H], "wpe.weight": [P, H], "ln_f.weight": [H], "ln_f.bias": [H] };
  for (let i = 0; i < L; i++) {
    const p = `h.${i}.`;
    for (const [n, inp, out] of [["attn.c_attn", H, 3 * H], ["attn.c_proj", H, H], ["mlp.c_fc", H, 4 * H], ["mlp.c_proj", 4 * H, H]] as const) {
      s[`${p}${n}.weight`] = [inp, out];
      s[`${p}${n}.bias`] = [out];
    }
    for (const n of ["ln_1", "ln_2"]) {
      s[`${p}${n}.weight`] = [H];
      s[`${p}${n}.bias`] = [H];
    }
  }
  return s;
}


/** A BERT-base-shaped checkpoint (random weights) with `layers` layers. */
export async function writeBertBase(dir: string, layers = 12): Promise<void> {
  await writeCheckpoint(dir, { model_type: "bert", hidden_size: 768, num_hidden_layers: layers, num_attention_heads: 12, intermediate_size: 3072, vocab_size: 30522, max_position_embeddings: 512, type_vocab_size: 2, layer_norm_eps: 1e-12, hidden_act: "gelu", num_labels: 2 }, bertShapes(layers, 768, 3072, 30522, 512));
}

/** HuggingFaceTB/SmolLM-135M's config.json (the fields that shape the computation). */
export const SMOLLM_135M = {
  model_type: "llama", architectures: ["LlamaForCausalLM"], hidden_size: 576, num_hidden_layers: 30, num_attention_heads: 9, num_key_value_heads: 3,
  intermediate_size: 1536, vocab_size: 49152, max_position_embeddings: 2048, rms_norm_eps: 1e-5, rope_theta: 10000.0, hidden_act: "silu",
  tie_word_embeddings: true, attention_bias: false, bos_token_id: 0, eos_token_id: 0,
} as const;

/** Tensor shapes of a Llama checkpoint with tied embeddings (no lm_head.weight). */
export function llamaShapes(c: { hidden_size: number; num_hidden_layers: number; num_attention_heads: number; num_key_value_heads: number; intermediate_size: number; vocab_size: number }): Record<string, number[]> {
  const [H, I, kv] = [c.hidden_size, c.intermediate_size, (c.num_key_value_heads * c.hidden_size) / c.num_attention_heads];
  const s: Record<string, number[]> = { "model.embed_tokens.weight": [c.vocab_size, H], "model.norm.weight": [H] };
  for (let i = 0; i < c.num_hidden_layers; i++) {
    const p = `model.layers.${i}.`;
    for (const [n, out, inp] of [["self_attn.q_proj", H, H], ["self_attn.k_proj", kv, H], ["self_attn.v_proj", kv, H], ["self_attn.o_proj", H, H], ["mlp.gate_proj", I, H], ["mlp.up_proj", I, H], ["mlp.down_proj", H, I]] as const) s[`${p}${n}.weight`] = [out, inp];
    for (const n of ["input_layernorm", "post_attention_layernorm"]) s[`${p}${n}.weight`] = [H];
  }
  return s;
}
