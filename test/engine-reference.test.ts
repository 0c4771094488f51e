// The engine benchmark's LoRA stack against its independent PyTorch implementation
// (bench/reference/engine_torch.py --check, float64): loss and gradients of the LoRA matrices
// and of the stack input.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { it } from "node:test";
import { buildLoraStack } from "../bench/engine-stack.js";
import { gradients } from "../src/autodiff/gradients.js";
import { mul, sumAll } from "../src/ir/ops/index.js";
import { type Tensor } from "../src/ir/tensor.js";
import { compile } from "../src/runtime/session.js";

type Nested = number | Nested[];
const flat = (x: Nested): number[] => (Array.isArray(x) ? x.flatMap(flat) : [x]);
const shapeOf = (x: Nested): number[] => (Array.isArray(x) ? [x.length, ...shapeOf(x[0]!)] : []);
const f64 = (x: Nested): Tensor => ({ dtype: "float64", shape: shapeOf(x), data: Float64Array.from(flat(x)) });

it("LoRA stack: loss and gradients match PyTorch (float64)", async () => {
  const ref = JSON.parse(readFileSync(join(import.meta.dirname, "..", "bench", "reference", "fixtures", "engine_check.json"), "utf8")) as Record<string, Nested> & { config: Record<string, number>; grads: Record<string, Nested>; loss: number };
  const c = ref.config;
  const cfg = { layers: c.L!, hidden: c.H!, heads: c.heads!, ffn: c.ffn!, r: c.r!, alpha: c.alpha!, eps: c.eps!, dtype: "float64" as const };
  const { graph, x, out } = buildLoraStack(cfg, (name) => f64(ref[name]!));
  const G = graph.input("G", "float64", ["batch", "seq", c.H!]);
  const loss = sumAll(mul(out, G));
  const lora = ["lora_A_q", "lora_B_q", "lora_A_v", "lora_B_v"].map((n) => `layer.0.${n}`);
  const grads = gradients(loss, [...lora.map((n) => graph.params.get(n)!.value), x]);
  const step = await compile({ loss, ...Object.fromEntries(grads.map((g, i) => [`g${i}`, g])) }, { threads: 1, optimizationLevel: "basic" });
  const res = await step.run({ x: f64(ref.x!), mask: f64(ref.mask!), G: f64(ref.G!) });
  // GELU's erf runs in float32 in float64 graphs (ORT has no float64 Erf), hence 1e-5, not 1e-9.
  const rel = (a: ArrayLike<number>, b: number[]) => b.reduce((m, v, i) => Math.max(m, Math.abs(Number(a[i]) - v)), 0) / Math.max(...b.map(Math.abs));
  assert.ok(Math.abs(Number(res.loss!.data[0]) - ref.loss) / Math.abs(ref.loss) < 1e-5, `loss ${res.loss!.data[0]} vs ${ref.loss}`);
  [...lora.map((n) => n.slice("layer.0.".length)), "x"].forEach((name, i) => {
    const key = name === "x" ? "x" : `layer.0.${name}`;
    const err = rel(res[`g${i}`]!.data as Float64Array, flat(ref.grads[key]!));
    assert.ok(err < 1e-5, `${key}: relative error ${err}`);
  });
  await step.release();
});
