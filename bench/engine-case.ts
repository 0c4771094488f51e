// One engine benchmark case, run in its own process so that its peak RSS is its own.
// Prints one JSON line. Usage: engine-case.ts --layers 4 --batch 8 --seq 128 [--checkpoint]
import { parseArgs } from "node:util";
import { TrainStep, fillNormal, mul, sumAll, type Tensor } from "../src/index.js";
import { BERT_BASE_STACK, buildLoraStack, paddingMask, stepFlops } from "./engine-stack.js";
import { peakRssMb } from "./measure.js";

const { values } = parseArgs({
  options: {
    layers: { type: "string", default: "4" },
    batch: { type: "string", default: "8" },
    seq: { type: "string", default: "128" },
    iters: { type: "string", default: "10" },
    warmup: { type: "string", default: "2" },
    threads: { type: "string", default: "2" },
    checkpoint: { type: "boolean", default: false },
    "no-prepacking": { type: "boolean", default: false },
    profile: { type: "string" },
  },
});
const layers = Number(values.layers);
const batch = Number(values.batch);
const seq = Number(values.seq);
const cfg = { ...BERT_BASE_STACK, layers };

function normal(shape: number[], seed: number, std: number): Tensor<"float32"> {
  const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
  fillNormal(data, std, seed);
  return { dtype: "float32", shape, data };
}

let seed = 1;
const { x, out } = buildLoraStack(cfg, (name, shape) => {
  if (name.endsWith("ln1_w") || name.endsWith("ln2_w")) return { dtype: "float32", shape, data: new Float32Array(shape[0]!).fill(1) };
  if (name.endsWith("_b") && name.includes(".ln")) return { dtype: "float32", shape, data: new Float32Array(shape[0]!) };
  return normal(shape, seed++, 0.02);
}, { checkpoint: values.checkpoint });
const upstream = out.graph.input("G", "float32", ["batch", "seq", cfg.hidden]);

const loss = sumAll(mul(out, upstream));

const rssBefore = process.memoryUsage().rss;
const t0 = performance.now();
const step = await TrainStep.create(loss, { inputGradients: [x], session: { threads: Number(values.threads), prepacking: !values["no-prepacking"], profilePrefix: values.profile } });
const createMs = performance.now() - t0;

const feeds = { x: normal([batch, seq, cfg.hidden], 4242, 1), mask: paddingMask("float32", batch, seq, 16), G: normal([batch, seq, cfg.hidden], 9999, 1) };
const times: number[] = [];
for (let i = 0; i < Number(values.warmup) + Number(values.iters); i++) {
  const s = performance.now();
  await step.run(feeds);
  if (i >= Number(values.warmup)) times.push(performance.now() - s);
}
times.sort((a, b) => a - b);
const median = times[Math.floor(times.length / 2)]!;
const gemms = step.compiled.opCounts.Gemm ?? 0;
// Per layer: forward 6 frozen + 4 LoRA GEMMs; backward 6 dX-only frozen + 8 LoRA (both operands);
// checkpointing recomputes the 10 forward GEMMs of every layer but the last. A frozen weight
// gradient would add 6 per layer.
const expectedGemms = layers * 24 + (values.checkpoint ? (layers - 1) * 10 : 0);
console.log(
  JSON.stringify({
    layers,
    batch,
    seq,
    checkpoint: values.checkpoint,
    peftjs_ms: +median.toFixed(1),
    peftjs_ms_min: +times[0]!.toFixed(1),
    session_create_ms: +createMs.toFixed(0),
    rss_before_compile_mb: +(rssBefore / 2 ** 20).toFixed(0),
    peak_rss_mb: peakRssMb(),
    gemm_nodes: gemms,
    frozen_weight_grads_absent: gemms === expectedGemms,
    flops_per_step: stepFlops(cfg, batch, seq),
  }),
);
if (values.profile) step.compiled.endProfiling();
await step.release();
