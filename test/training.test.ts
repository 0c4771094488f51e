// End to end through the public API: a small MLP and a 2-layer transformer classifier train to
// near-zero loss on toy tasks.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import {
  AdamW, DROPOUT_KEY, Graph, TrainStep, add, crossEntropy, dropout, gather, gelu, int64, layerNorm, linear, reduceMean, relu, reshape,
  scaledDotProductAttention, seededRandom, transpose, type Tensor, type Value,
} from "../src/index.js";
import { dropoutKey } from "../src/train/train-step.js";
import { randomF32 } from "./helpers.js";
import { ModelProto } from "../src/runtime/onnx-schema.js";

const init = (shape: number[], seed: number, scale: number): Tensor => {
  const t = randomF32(shape, seed, -scale, scale);
  return t;
};

describe("training through the public API", () => {
  it("an MLP learns XOR-like data to near-zero loss", async () => {
    const rand = seededRandom(7);
    const n = 64;
    const xs = new Float32Array(n * 2);
    const ys: number[] = [];
    for (let i = 0; i < n; i++) {
      const a = rand() < 0.5 ? -1 : 1;
      const b = rand() < 0.5 ? -1 : 1;
      xs[2 * i] = a + (rand() - 0.5) * 0.2;
      xs[2 * i + 1] = b + (rand() - 0.5) * 0.2;
      ys.push(a * b > 0 ? 1 : 0);
    }
    const g = new Graph();
    const x = g.input("x", "float32", ["batch", 2]);
    const y = g.input("y", "int64", ["batch"]);
    const w1 = g.param("w1", init([16, 2], 1, 1), { trainable: true });
    const b1 = g.param("b1", init([16], 2, 0.1), { trainable: true });
    const w2 = g.param("w2", init([2, 16], 3, 0.5), { trainable: true });
    const b2 = g.param("b2", init([2], 4, 0.1), { trainable: true });
    const loss = crossEntropy(linear(relu(linear(x, w1, b1)), w2, b2), y);
    const step = await TrainStep.create(loss, { session: { threads: 1 } });
    const opt = new AdamW(step.params, { lr: 0.05, weightDecay: 0 });
    const feeds = { x: { dtype: "float32" as const, shape: [n, 2], data: xs }, y: int64([n], ys) };
    let first = NaN;
    let last = NaN;
    for (let i = 0; i < 200; i++) {
      const r = await step.run(feeds);
      if (i === 0) first = r.loss;
      last = r.loss;
      opt.step(r.grads);
    }
    assert.ok(first > 0.5, `initial loss ${first} should be near ln 2`);
    assert.ok(last < 0.02, `final loss ${last} should be near zero`);
    await step.release();
  });

  it("a 2-layer transformer classifier learns a token-presence task", async () => {
    const vocab = 8;
    const seq = 6;
    const hidden = 16;
    const heads = 2;
    const n = 48;
    const rand = seededRandom(11);
    const ids: number[] = [];
    const labels: number[] = [];
    for (let i = 0; i < n; i++) {
      const has = i % 2 === 0;
      const row = Array.from({ length: seq }, () => 1 + Math.floor(rand() * (vocab - 2))); // tokens 1..6
      if (has) row[Math.floor(rand() * seq)] = 7;
      ids.push(...row);
      labels.push(has ? 1 : 0);
    }
    const g = new Graph();
    const inputIds = g.input("input_ids", "int64", ["batch", seq]);
    const y = g.input("labels", "int64", ["batch"]);
    let seed = 100;
    const p = (name: string, shape: number[], scale = 0.3) => g.param(name, init(shape, seed++, scale), { trainable: true });
    const ones = (name: string, size: number) => g.param(name, { dtype: "float32", shape: [size], data: new Float32Array(size).fill(1) }, { trainable: true });
    const zeros = (name: string, size: number) => g.param(name, { dtype: "float32", shape: [size], data: new Float32Array(size) }, { trainable: true });
    const pos = p("pos", [1, seq, hidden]);
    let h: Value = add(gather(p("emb", [vocab, hidden]), inputIds), pos);
    const split = (t: Value) => transpose(reshape(t, [0, 0, heads, hidden / heads]), [0, 2, 1, 3]);
    for (let l = 0; l < 2; l++) {
      const q = split(linear(h, p(`l${l}.q`, [hidden, hidden]), zeros(`l${l}.qb`, hidden)));
      const k = split(linear(h, p(`l${l}.k`, [hidden, hidden]), zeros(`l${l}.kb`, hidden)));
      const v = split(linear(h, p(`l${l}.v`, [hidden, hidden]), zeros(`l${l}.vb`, hidden)));
      const ctx = reshape(transpose(scaledDotProductAttention(q, k, v), [0, 2, 1, 3]), [0, 0, hidden]);
      h = layerNorm(add(h, linear(ctx, p(`l${l}.o`, [hidden, hidden]))), ones(`l${l}.ln1`, hidden), zeros(`l${l}.ln1b`, hidden));
      const f = linear(gelu(linear(h, p(`l${l}.fi`, [32, hidden]), zeros(`l${l}.fib`, 32))), p(`l${l}.fo`, [hidden, 32]));
      h = layerNorm(add(h, f), ones(`l${l}.ln2`, hidden), zeros(`l${l}.ln2b`, hidden));
    }
    const pooled = reduceMean(h, [1], false);
    const loss = crossEntropy(linear(pooled, p("cls", [2, hidden]), zeros("clsb", 2)), y);
    const step = await TrainStep.create(loss, { session: { threads: 1 } });
    const opt = new AdamW(step.params, { lr: 0.01, weightDecay: 0 });
    const feeds = { input_ids: int64([n, seq], ids), labels: int64([n], labels) };
    let last = NaN;
    for (let i = 0; i < 150 && !(last < 0.01); i++) {
      const r = await step.run(feeds);
      last = r.loss;
      opt.step(r.grads);
    }
    assert.ok(last < 0.05, `final loss ${last} should be near zero`);
    await step.release();
  });

  it("with dropout, a TrainStep draws a key per run from its seed: same seed, same run; a fed key wins", async () => {
    const build = async (seed: number) => {
      const g = new Graph();
      const x = g.input("x", "float32", [8, 4]);
      const y = g.input("y", "int64", [8]);
      const w = g.param("w", init([3, 4], 5, 0.5), { trainable: true });
      return TrainStep.create(crossEntropy(linear(dropout(x, 0.5, true), w), y), { session: { threads: 1 }, seed });
    };
    const feeds = { x: init([8, 4], 6, 1), y: int64([8], [0, 1, 2, 0, 1, 2, 0, 1]) };
    const losses = async (step: TrainStep, n: number, key?: (i: number) => Tensor) => {
      const out: number[] = [];
      for (let i = 0; i < n; i++) out.push((await step.run(key ? { ...feeds, [DROPOUT_KEY]: key(i) } : feeds)).loss);
      return out;
    };
    const [a, b, c] = [await build(1), await build(1), await build(2)];
    const la = await losses(a, 4);
    assert.deepEqual(await losses(b, 4), la, "same seed: the same masks, run by run");
    assert.notDeepEqual(await losses(c, 4), la, "another seed: other masks");
    assert.ok(new Set(la).size > 1, "a new mask each run");
    const fed = await build(3);
    assert.deepEqual(await losses(fed, 4, (i) => dropoutKey(1, i)), la, "the keys TrainStep draws are dropoutKey(seed, run)");
    await Promise.all([a, b, c, fed].map((s) => s.release()));
  });

  it("a TrainStep feeds frozen weights in place by default, with the loss and gradients of ORT-owned initializers", async () => {
    const g = new Graph();
    const x = g.input("x", "float32", ["batch", 16]);
    const y = g.input("y", "int64", ["batch"]);
    const frozen = g.param("base.weight", init([16, 16], 1, 0.5));
    const a = g.param("lora_A", init([4, 16], 2, 0.5), { trainable: true });
    const b = g.param("lora_B", init([2, 4], 3, 0.5), { trainable: true });
    const loss = crossEntropy(linear(linear(relu(linear(x, frozen)), a), b), y);
    const dir = mkdtempSync(join(tmpdir(), "peftjs-frozen-"));
    try {
      const inPlace = await TrainStep.create(loss, { session: { threads: 1, saveModelTo: join(dir, "in-place.onnx") } });
      const owned = await TrainStep.create(loss, { session: { threads: 1, frozenWeightsAsInputs: false, saveModelTo: join(dir, "owned.onnx") } });
      const graphOf = (f: string) => (ModelProto.decode(readFileSync(join(dir, f))) as unknown as { graph: { input: { name: string }[]; initializer: { name: string }[] } }).graph;
      assert.ok(graphOf("in-place.onnx").input.some((i) => i.name === "base.weight"), "the frozen weight is a run input");
      assert.ok(!graphOf("in-place.onnx").initializer.some((i) => i.name === "base.weight"));
      assert.ok(graphOf("owned.onnx").initializer.some((i) => i.name === "base.weight"), "with false it is an initializer");
      assert.deepEqual(inPlace.params.map((p) => p.name), ["lora_A", "lora_B"], "only trainable parameters get gradients");
      const feeds = { x: randomF32([8, 16], 4), y: int64([8], [0, 1, 1, 0, 1, 0, 0, 1]) };
      const r1 = await inPlace.run(feeds);
      const r2 = await owned.run(feeds);
      assert.equal(r1.loss, r2.loss);
      for (const [name, grad] of r2.grads) assert.deepEqual(r1.grads.get(name)!.data, grad.data, name);
      await inPlace.release();
      await owned.release();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
