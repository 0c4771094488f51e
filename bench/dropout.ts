// `npm run bench -- dropout`: the cost of peftjs's hashed dropout masks (a pure function of a
// per-step key) against ONNX's Dropout op (masks from ORT's per-session generator, what peftjs
// lowered to before) and against no dropout, in one process: a LoRA training step of a
// BERT-base-shaped encoder stack with dropout where BERT has it (attention probabilities,
// attention output, FFN output), and each dropout site alone (forward + backward).
// Prints one JSON line per case with min and median milliseconds and the ratio to ONNX Dropout.
import { parseArgs } from "node:util";
import { gradients } from "../src/autodiff/gradients.js";
import { gelu } from "../src/ir/composites/activations.js";
import { Graph, type OpDef, type Value } from "../src/ir/graph.js";
import {
  add, cast, concat, DROPOUT_KEY, dropout, gemm, layerNorm, matmul, mul, reshape, shapeOf, slice, softmax, sumAll, transpose,
} from "../src/ir/ops/index.js";
import { type Tensor } from "../src/ir/tensor.js";
import { compile } from "../src/runtime/session.js";
import { TrainStep } from "../src/train/train-step.js";
import { BERT_BASE_STACK, isLoraName, paddingMask, stackParamShapes } from "./engine-stack.js";
import { stats } from "./measure.js";
import { randomF32 } from "../test/helpers.js";

/** The old lowering, kept here only as the baseline: ONNX Dropout (training mode), mask as output 1. */
const OnnxDropout: OpDef<{ ratio: number }> = {
  type: "Dropout",
  attrs: { ratio: "float" },
  infer: (inputs) => [{ dtype: inputs[0]!.dtype, shape: inputs[0]!.shape }, { dtype: "bool", shape: inputs[0]!.shape }],
  lower: (node, ctx) => ({ opType: "Dropout", inputs: [ctx.name(node.inputs[0]), ctx.scalar("float32", (node.attrs as { ratio: number }).ratio), ctx.scalar("bool", 1)] }),
  grad: ({ outputs: [, m], dy: [g], attrs: { ratio } }) => [mul(mul(g!, cast(m!, g!.dtype)), 1 / (1 - ratio))],
};

type Kind = "none" | "onnx" | "hashed";
const drop = (kind: Kind, x: Value, ratio: number): Value =>
  kind === "none" ? x : kind === "hashed" ? dropout(x, ratio, true) : x.graph.apply(OnnxDropout, [x], { ratio })[0]!;

/** The engine benchmark's stack with BERT's three dropout sites per layer. */
function stack(kind: Kind, layers: number) {
  const cfg = { ...BERT_BASE_STACK, layers };
  const g = new Graph();
  const { hidden: h, heads } = cfg;
  const x = g.input("x", "float32", ["batch", "seq", h]);
  const mask = g.input("mask", "float32", ["batch", 1, 1, "seq"]);
  const batchSeq = slice(shapeOf(x), [0], [2], [0]);
  const toHeads = (t: Value) => transpose(reshape(t, concat([batchSeq, g.int64s([heads, h / heads])], 0)), [0, 2, 1, 3]);
  let hs: Value = reshape(x, [-1, h]);
  let seed = 1;
  for (let i = 0; i < cfg.layers; i++) {
    const shapes = stackParamShapes(cfg, i);
    const p = (n: string) => {
      const name = `layer.${i}.${n}`;
      return g.param(name, randomF32(shapes[name]!, seed++, -0.05, 0.05), { trainable: isLoraName(name) });
    };
    const lin = (t: Value, w: string, b: string) => gemm(t, p(w), { transB: 1 }, p(b));
    const lora = (t: Value, which: string) => mul(gemm(gemm(t, p(`lora_A_${which}`), { transB: 1 }), p(`lora_B_${which}`), { transB: 1 }), cfg.alpha / cfg.r);
    const q = toHeads(add(lin(hs, "Wq", "bq"), lora(hs, "q")));
    const k = toHeads(lin(hs, "Wk", "bk"));
    const v = toHeads(add(lin(hs, "Wv", "bv"), lora(hs, "v")));
    const probs = drop(kind, softmax(add(mul(matmul(q, transpose(k, [0, 1, 3, 2])), 1 / Math.sqrt(h / heads)), mask), -1), 0.1);
    const ctx = reshape(transpose(matmul(probs, v), [0, 2, 1, 3]), [-1, h]);
    const h1 = layerNorm(add(drop(kind, lin(ctx, "Wo", "bo"), 0.1), hs), p("ln1_w"), p("ln1_b"), cfg.eps);
    hs = layerNorm(add(drop(kind, lin(gelu(lin(h1, "Wi", "bi")), "Wo2", "bo2"), 0.1), h1), p("ln2_w"), p("ln2_b"), cfg.eps);
  }
  const target = g.constant(randomF32([1, h], 999));
  return { loss: sumAll(mul(hs, target)) };
}


/** Time `iters` runs of each kind, interleaved so that load on the machine hits all alike. */
async function timeKinds(run: Record<Kind, (i: number) => Promise<unknown>>, iters: number): Promise<Record<Kind, number[]>> {
  const times: Record<Kind, number[]> = { none: [], onnx: [], hashed: [] };
  for (const k of Object.keys(run) as Kind[]) await run[k](-1); // warm-up
  for (let i = 0; i < iters; i++) {
    for (const k of Object.keys(run) as Kind[]) {
      const t0 = performance.now();
      await run[k](i);
      times[k].push(performance.now() - t0);
    }
  }
  return times;
}

function report(name: string, times: Record<Kind, number[]>): void {
  const [none, onnx, hashed] = [stats(times.none, 2), stats(times.onnx, 2), stats(times.hashed, 2)];
  console.log(JSON.stringify({
    case: name, none_ms: none, onnx_dropout_ms: onnx, hashed_ms: hashed,
    hashed_vs_onnx: { min: +(hashed.min / onnx.min).toFixed(3), median: +(hashed.median / onnx.median).toFixed(3) },
    dropout_cost_ms: { onnx: +(onnx.median - none.median).toFixed(2), hashed: +(hashed.median - none.median).toFixed(2) },
  }));
}

const key = (i: number): Tensor => ({ dtype: "int32", shape: [], data: Int32Array.of(i) });

export async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      batch: { type: "string", default: "8" },
      seq: { type: "string", default: "128" },
      iters: { type: "string", default: "10" },
      threads: { type: "string", default: "2" },
      layers: { type: "string", default: "2" },
    },
  });
  const [batch, seq, iters, threads, layers] = [values.batch, values.seq, values.iters, values.threads, values.layers].map(Number) as [number, number, number, number, number];
  const { hidden, heads } = BERT_BASE_STACK;

  // Each site alone: y = dropout(x), loss = sum(y * r), outputs loss and dx.
  for (const shape of [[batch, seq, hidden], [batch, heads, seq, seq]]) {
    const run = {} as Record<Kind, (i: number) => Promise<unknown>>;
    const x = randomF32(shape, 1);
    for (const kind of ["none", "onnx", "hashed"] as Kind[]) {
      const g = new Graph();
      const xv = g.input("x", "float32", shape);
      const loss = sumAll(mul(drop(kind, mul(xv, 1), 0.1), g.constant(randomF32(shape.slice(-1), 2))));
      const [dx] = gradients(loss, [xv]);
      const c = await compile({ loss, dx: dx! }, { threads });
      run[kind] = (i) => c.run({ x, [DROPOUT_KEY]: key(i) });
    }
    report(`site [${shape.join(", ")}] forward+backward`, await timeKinds(run, iters * 3));
  }

  // A training step of the stack.
  const run = {} as Record<Kind, (i: number) => Promise<unknown>>;
  const feeds = { x: randomF32([batch, seq, hidden], 3), mask: paddingMask("float32", batch, seq, 16) };
  for (const kind of ["none", "onnx", "hashed"] as Kind[]) {
    const step = await TrainStep.create(stack(kind, layers).loss, { session: { threads } });
    run[kind] = (i) => step.run({ ...feeds, [DROPOUT_KEY]: key(i) });
  }
  report(`LoRA step, ${layers}-layer BERT-base stack, batch ${batch} seq ${seq}`, await timeKinds(run, iters));
}
