// Engine behaviour: only needed gradients are built, loud errors, checkpoint recomputation,
// dropout, symbolic shapes.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { randomF32, randomF64, maxAbsDiff } from "../../test/helpers.js";
import { gelu } from "../ir/composites/activations.js";
import { linear } from "../ir/composites/linear.js";
import { Graph, type OpDef, type Value } from "../ir/graph.js";
import { add, DROPOUT_KEY, dropout, layerNorm, mul, sumAll } from "../ir/ops/index.js";
import { type Tensor } from "../ir/tensor.js";
import { lowerToOnnx } from "../runtime/lower.js";
import { compile } from "../runtime/session.js";
import { ModelProto } from "../runtime/onnx-schema.js";
import { gradients, MissingGradientError } from "./gradients.js";

function opTypes(outputs: Record<string, Value>): string[] {
  const m = ModelProto.decode(lowerToOnnx(outputs).bytes) as unknown as { graph: { node: { opType: string }[] } };
  return m.graph.node.map((n) => n.opType);
}
const count = (xs: string[], t: string) => xs.filter((x) => x === t).length;
const key = (k: number): Tensor => ({ dtype: "int32", shape: [], data: Int32Array.of(k) });
const values = (t: Tensor) => Array.from(t.data as Float32Array);

/** Two residual blocks (linear -> gelu -> linear -> layer norm), optionally checkpointed. */
function blocks(checkpoint: boolean, dropRatio = 0) {
  const g = new Graph();
  const x = g.input("x", "float32", [3, 8]);
  let h = x;
  for (let l = 0; l < 2; l++) {
    const body = () => {
      const w1 = g.param(`l${l}.w1`, randomF32([16, 8], 10 + l), { trainable: true });
      const w2 = g.param(`l${l}.w2`, randomF32([8, 16], 20 + l));
      const s = g.param(`l${l}.ln`, randomF32([8], 30 + l));
      const inner = dropout(gelu(linear(h, w1)), dropRatio, dropRatio > 0);
      return layerNorm(add(h, linear(inner, w2)), s, undefined);
    };
    h = checkpoint ? g.checkpoint(`layer.${l}`, body) : body();
  }
  const r = g.constant(randomF32([3, 8], 99));
  const loss = sumAll(mul(h, r));
  const params = [...g.params.values()].filter((p) => p.trainable).map((p) => p.value);
  const [dx, ...dws] = gradients(loss, [x, ...params]);
  return { g, loss, dx: dx!, dws: dws as Value[], h };
}

describe("autodiff engine", () => {
  it("builds no weight gradient for frozen parameters", () => {
    const build = (trainable: boolean) => {
      const g = new Graph();
      const x = g.input("x", "float32", ["batch", 4]);
      const w = g.param("w", randomF32([3, 4], 1), { trainable });
      const loss = sumAll(linear(x, w));
      const wrt = trainable ? [x, w] : [x];
      const grads = gradients(loss, wrt);
      return opTypes({ loss, ...Object.fromEntries(grads.map((v, i) => [`g${i}`, v])) });
    };
    assert.equal(count(build(false), "Gemm"), 2, "frozen: forward and dX = dY W only");
    assert.equal(count(build(true), "Gemm"), 3, "trainable: forward, dX and dW");
  });

  it("gives zeros for values the output does not depend on", async () => {
    const g = new Graph();
    const x = g.input("x", "float32", [2]);
    const unused = g.input("u", "float32", [3]);
    const [gx, gu] = gradients(sumAll(mul(x, x)), [x, unused]);
    const out = await (await compile({ gx: gx!, gu: gu! })).run({ x: { dtype: "float32", shape: [2], data: Float32Array.of(1, 2) }, u: randomF32([3], 1) });
    assert.deepEqual(Array.from(out.gx!.data as Float32Array), [2, 4]);
    assert.deepEqual(Array.from(out.gu!.data as Float32Array), [0, 0, 0]);
  });

  it("fails loudly, naming the op, when a rule is missing", () => {
    const NoRule: OpDef = { type: "MyCustomOp", attrs: {}, infer: (i) => [{ dtype: i[0]!.dtype, shape: i[0]!.shape }] };
    const g = new Graph();
    const x = g.input("x", "float32", [2]);
    const y = g.apply(NoRule, [x])[0]!;
    assert.throws(() => gradients(sumAll(y), [x]), (e: Error) => e instanceof MissingGradientError && /MyCustomOp/.test(e.message));
  });

  it("rejects a non-scalar output without a seed", () => {
    const g = new Graph();
    const x = g.input("x", "float32", [2]);
    assert.throws(() => gradients(mul(x, 2), [x]), /not a scalar/);
  });

  it("shape errors name the op and the shapes", () => {
    const g = new Graph();
    const a = g.input("a", "float32", [2, 3]);
    const b = g.input("b", "float32", [4]);
    assert.throws(() => add(a, b), /Add\(float32\[2, 3\], float32\[4\]\).*do not broadcast/);
    const w = g.param("w", randomF32([5, 7], 1));
    assert.throws(() => linear(a, w), /last dim 3.*expects 7/);
  });

  it("gradient checkpointing recomputes segments and gives the same gradients", async () => {
    const feeds = { x: randomF32([3, 8], 5) };
    const run = async (checkpoint: boolean) => {
      const { loss, dx, dws } = blocks(checkpoint);
      const outputs = { loss, dx, dw0: dws[0]!, dw1: dws[1]! };
      const ops = opTypes(outputs);
      const out = await (await compile(outputs, { threads: 1 })).run(feeds);
      return { out, ops };
    };
    const plain = await run(false);
    const ckpt = await run(true);
    for (const k of ["loss", "dx", "dw0", "dw1"]) assert.ok(maxAbsDiff(plain.out[k]!.data as Float32Array, ckpt.out[k]!.data as Float32Array) < 1e-5, k);
    // The forward of the first layer (Gemms, Gelu, LayerNormalization) appears again in the
    // backward; the last layer's backward follows its forward directly and is not recomputed.
    assert.equal(count(plain.ops, "LayerNormalization"), 2);
    assert.equal(count(ckpt.ops, "LayerNormalization"), 3);
    assert.equal(count(ckpt.ops, "Gelu"), 3);
  });

  it("dropout: checkpoint recomputation draws the forward mask again; gradients follow the mask", async () => {
    const feeds = { x: randomF32([3, 8], 5), [DROPOUT_KEY]: key(11) };
    const run = async (checkpoint: boolean, ratio: number) => {
      const { loss, dx, dws } = blocks(checkpoint, ratio);
      return (await compile({ loss, dx, dw0: dws[0]! }, { threads: 1 })).run(feeds);
    };
    const [plain, ckpt, ref] = [await run(false, 0.5), await run(true, 0.5), await run(false, 0)];
    assert.notEqual(Number(plain.loss!.data[0]), Number(ref.loss!.data[0]), "dropout changed the output");
    // The mask is a function of the key: recomputed in the backward pass, it is the same mask.
    for (const k of ["loss", "dx", "dw0"]) assert.ok(maxAbsDiff(plain[k]!.data as Float32Array, ckpt[k]!.data as Float32Array) < 1e-5, k);
    // On a linear function the gradient must be exactly mask * scale.
    const g = new Graph();
    const x = g.input("x", "float32", [1000]);
    const y = dropout(x, 0.25, true);
    const [gx] = gradients(sumAll(y), [x]);
    const r = await (await compile({ y, gx: gx! })).run({ x: { dtype: "float32", shape: [1000], data: new Float32Array(1000).fill(1) }, [DROPOUT_KEY]: key(3) });
    const yv = r.y!.data as Float32Array;
    const gv = r.gx!.data as Float32Array;
    let kept = 0;
    for (let i = 0; i < 1000; i++) {
      assert.ok(Math.abs(yv[i]! - gv[i]!) < 1e-6, "gradient equals mask * scale for y = dropout(x) with x = 1");
      if (yv[i] !== 0) kept++;
      assert.ok(yv[i] === 0 || Math.abs(yv[i]! - 1 / 0.75) < 1e-6);
    }
    assert.ok(kept > 700 && kept < 800, `kept ${kept} of 1000 at ratio 0.25`);
    assert.equal(dropout(x, 0.25, false), x, "eval mode is the identity");
  });

  it("dropout masks are a pure function of (key, site, position), in any session", async () => {
    const build = () => {
      const g = new Graph();
      const x = g.input("x", "float32", ["batch", 64]);
      return { a: dropout(x, 0.5, true), b: dropout(x, 0.5, true) }; // two sites
    };
    const ones = (rows: number): Tensor => ({ dtype: "float32", shape: [rows, 64], data: new Float32Array(rows * 64).fill(1) });
    const [s1, s2] = [await compile(build(), { threads: 1 }), await compile(build(), { threads: 2 })];
    const first = await s1.run({ x: ones(4), [DROPOUT_KEY]: key(7) });
    const again = await s2.run({ x: ones(4), [DROPOUT_KEY]: key(7) });
    assert.deepEqual(values(again.a!), values(first.a!), "same key, another session: the same mask");
    assert.notDeepEqual(values(first.b!), values(first.a!), "another site: another mask");
    const next = await s1.run({ x: ones(4), [DROPOUT_KEY]: key(8) });
    assert.notDeepEqual(values(next.a!), values(first.a!), "another key: another mask");
    // A position's mask does not depend on the batch size (the symbolic dim is counted at run time).
    const wider = await s1.run({ x: ones(6), [DROPOUT_KEY]: key(7) });
    assert.deepEqual(values(wider.a!).slice(0, 4 * 64), values(first.a!));
    // Neighbouring masks are not correlated: agreement of two independent fair coins is ~1/2.
    let same = 0;
    const [ma, mn] = [values(wider.a!), values(next.a!)];
    for (let i = 0; i < ma.length; i++) same += Number((ma[i] === 0) === (mn[i] === 0));
    assert.ok(same > 0.35 * ma.length && same < 0.65 * ma.length, `masks of consecutive keys agree on ${same} of ${ma.length}`);
    await Promise.all([s1.release(), s2.release()]);
  });

  it("dropout lowers to ops that ONNX Runtime Web's WebGPU has (no Dropout, random or int64 arithmetic ops)", () => {
    const g = new Graph();
    const x = g.input("x", "float32", ["batch", "seq", 8]);
    const ops = opTypes({ y: dropout(x, 0.1, true) });
    for (const t of ["Dropout", "RandomUniformLike", "RandomUniform", "ConstantOfShape", "Size", "NonZero", "Range"]) assert.equal(count(ops, t), 0, `${t} in ${ops.join(", ")}`);
  });

  it("one compiled graph serves several batch sizes (symbolic dims)", async () => {
    const g = new Graph();
    const x = g.input("x", "float64", ["batch", "seq", 4]);
    const w = g.param("w", randomF64([3, 4], 1), { trainable: true });
    const y = linear(x, w);
    assert.deepEqual(y.shape, ["batch", "seq", 3]);
    const [dw, dx] = gradients(sumAll(mul(y, y)), [w, x]);
    assert.deepEqual(dx!.shape, ["batch", "seq", 4]);
    const step = await compile({ y, dw: dw!, dx: dx! });
    for (const [b, s] of [[1, 2], [3, 5]] as const) {
      const out = await step.run({ x: randomF64([b, s, 4], b) });
      assert.deepEqual(out.y!.shape, [b, s, 3]);
      assert.deepEqual(out.dx!.shape, [b, s, 4]);
    }
    await assert.rejects(step.run({ x: randomF64([2, 4], 1) }), /input "x": expected shape \[batch, seq, 4\], got \[2, 4\]/);
    await assert.rejects(step.run({}), /missing input "x"/);
  });
});
