// `npm run bench -- quant`: the int8 frozen base against float32 on BERT-base-sized models
// (random weights): a 12-layer LoRA r=8 training step (batch 8 x 128, AdamW included), the
// forward pass, and GPT-2-small cached generation (int8 and 4-bit). Variants run interleaved in
// one process, so machine noise hits them alike (min and median printed); peak RSS comes from one
// child process per variant. One JSON line per case.
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs, promisify } from "node:util";
import { AdamW, compile, Generator, int64, loadModel, TrainStep, type Tensor } from "../src/index.js";
import { type Int8Kernel } from "../src/ir/composites/linear.js";
import { type PretrainedModel } from "../src/models/pretrained.js";
import { PeftModel } from "../src/peft/peft-model.js";
import { lowerToOnnx } from "../src/runtime/lower.js";
import { gpt2Shapes, writeBertBase, writeCheckpoint } from "./checkpoints.js";

const exec = promisify(execFile);
const here = fileURLToPath(new URL(".", import.meta.url));
const LORA = { peft_type: "LORA", r: 8, lora_alpha: 16, target_modules: ["query", "value"] } as const;

const stats = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return { min: +s[0]!.toFixed(1), median: +s[Math.floor(s.length / 2)]!.toFixed(1) };
};

/** Bytes of the frozen weights a graph bakes in (what ONNX Runtime is handed), in MB. */
function frozenMb(outputs: Parameters<typeof lowerToOnnx>[0]): number {
  const lowered = lowerToOnnx(outputs);
  return +(lowered.externalData.reduce((a, e) => a + e.data.byteLength, 0) / 2 ** 20).toFixed(1);
}

/** Choose the input-gradient kernel of every int8 linear of a model's graphs (for the comparison). */
function withGradKernel(model: PretrainedModel, gradKernel: Int8Kernel): PretrainedModel {
  const build = model.build.bind(model);
  model.build = (opts = {}) => {
    const built = build(opts);
    for (const node of built.graph.nodes) if (node.op.type === "Int8MatMul") (node.attrs as { gradKernel: string }).gradKernel = gradKernel;
    return built;
  };
  return model;
}

async function loraStep(dir: string, variant: string, threads: number) {
  const base = await loadModel(dir, { task: "sequence-classification", quantize: variant === "fp32" ? undefined : "int8" });
  if (variant === "int8_integer_grad") withGradKernel(base, "integer");
  const peft = PeftModel.create(base, LORA);
  const built = peft.build({ withLoss: true, training: true });
  const step = await TrainStep.create(built.outputs.loss!, { session: { threads } });
  const opt = new AdamW(step.params, { lr: 1e-4 });
  const batch = { input_ids: int64([8, 128], Array.from({ length: 8 * 128 }, (_, i) => 1000 + ((i * 7919) % 20000))) };
  const feeds = peft.prepareInputs(batch, { labels: int64([8], [0, 1, 0, 1, 0, 1, 0, 1]) });
  const weightsMb = frozenMb({ loss: built.outputs.loss! });
  return {
    weightsMb,
    run: async () => {
      const r = await step.run(feeds);
      opt.step(r.grads);
      return r.loss;
    },
    release: () => step.release(),
  };
}

/** Child process: one variant alone, for its peak RSS. */
async function rssCase(dir: string, variant: string, threads: number, iters: number): Promise<void> {
  const s = await loraStep(dir, variant, threads);
  const times: number[] = [];
  for (let i = 0; i <= iters; i++) {
    const t0 = performance.now();
    await s.run();
    if (i) times.push(performance.now() - t0);
  }
  console.log(JSON.stringify({ peak_rss_mb: Math.round(process.resourceUsage().maxRSS / 1024), ms: stats(times).median, weights_mb: s.weightsMb }));
}

async function child(args: string[]): Promise<Record<string, number>> {
  const { stdout } = await exec(process.execPath, ["--import", "tsx", join(here, "quant.ts"), ...args], { maxBuffer: 1 << 20, timeout: 1_800_000 });
  return JSON.parse(stdout.trim().split("\n").pop()!) as Record<string, number>;
}

/** Run `variants` round-robin `iters` times after one warm-up round; per-variant times in ms. */
async function interleave(variants: Record<string, () => Promise<unknown>>, iters: number): Promise<Record<string, number[]>> {
  const times: Record<string, number[]> = Object.fromEntries(Object.keys(variants).map((k) => [k, []]));
  for (let i = 0; i <= iters; i++) {
    for (const [name, f] of Object.entries(variants)) {
      const t0 = performance.now();
      await f();
      if (i) times[name]!.push(performance.now() - t0);
    }
  }
  return times;
}

export async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      layers: { type: "string", default: "12" },
      iters: { type: "string", default: "4" },
      "forward-iters": { type: "string", default: "8" },
      "new-tokens": { type: "string", default: "32" },
      threads: { type: "string", default: "2" },
      cases: { type: "string", default: "lora,forward,generate" },
    },
  });
  const [L, iters, fIters, N, threads] = [values.layers, values.iters, values["forward-iters"], values["new-tokens"], values.threads].map(Number) as [number, number, number, number, number];
  const cases = new Set(values.cases.split(","));
  const root = mkdtempSync(join(tmpdir(), "peftjs-bench-quant-"));
  try {
    const bertDir = join(root, "bert");
    await writeBertBase(bertDir, L);

    if (cases.has("lora")) {
      const variants = ["fp32", "int8", "int8_integer_grad"];
      const steps = Object.fromEntries(await Promise.all(variants.map(async (v) => [v, await loraStep(bertDir, v, threads)] as const)));
      const times = await interleave(Object.fromEntries(variants.map((v) => [v, steps[v]!.run])), iters);
      for (const s of Object.values(steps)) await s.release();
      const rss: Record<string, Record<string, number>> = {};
      for (const v of ["fp32", "int8"]) rss[v] = await child(["--rss-case", v, "--dir", bertDir, "--threads", String(threads), "--iters", "2"]);
      const [f, q, qi] = [stats(times.fp32!), stats(times.int8!), stats(times.int8_integer_grad!)];
      console.log(JSON.stringify({
        case: "lora_step_int8_base", layers: L, batch: 8, seq: 128,
        int8_ms: q.median, fp32_ms: f.median, ratio: +(q.median / f.median).toFixed(3),
        int8_ms_min: q.min, fp32_ms_min: f.min, ratio_min: +(q.min / f.min).toFixed(3),
        int8_integer_grad_ms: qi.median, int8_integer_grad_ratio: +(qi.median / f.median).toFixed(3),
        weights_mb_int8: steps.int8!.weightsMb, weights_mb_fp32: steps.fp32!.weightsMb,
        peak_rss_mb_int8: rss.int8!.peak_rss_mb, peak_rss_mb_fp32: rss.fp32!.peak_rss_mb,
      }));
    }

    if (cases.has("forward")) {
      const ids = int64([8, 128], Array.from({ length: 8 * 128 }, (_, i) => (i * 7919) % 30522));
      const runs: Record<string, () => Promise<unknown>> = {};
      const mb: Record<string, number> = {};
      for (const v of ["fp32", "int8"] as const) {
        const model = await loadModel(bertDir, { quantize: v === "int8" ? "int8" : undefined });
        const out = model.build().outputs.last_hidden_state!;
        const fwd = await compile({ out }, { threads });
        mb[v] = frozenMb({ out });
        const feeds: Record<string, Tensor> = model.prepareInputs({ input_ids: ids });
        runs[v] = () => fwd.run(feeds);
      }
      const times = await interleave(runs, fIters);
      const [f, q] = [stats(times.fp32!), stats(times.int8!)];
      console.log(JSON.stringify({ case: "bert_forward_int8", layers: L, batch: 8, seq: 128, int8_ms: q.median, fp32_ms: f.median, ratio: +(q.median / f.median).toFixed(3), int8_ms_min: q.min, fp32_ms_min: f.min, ratio_min: +(q.min / f.min).toFixed(3), weights_mb_int8: mb.int8, weights_mb_fp32: mb.fp32 }));
    }

    if (cases.has("generate")) {
      const gptDir = join(root, "gpt2");
      await writeCheckpoint(gptDir, { model_type: "gpt2", n_embd: 768, n_layer: L, n_head: 12, vocab_size: 50257, n_positions: 1024, layer_norm_epsilon: 1e-5, activation_function: "gelu_new" }, gpt2Shapes(L, 768, 50257, 1024));
      const prompt = Array.from({ length: 8 }, (_, i) => (i * 37) % 50257);
      const gens: Record<string, Generator> = {};
      const weightsMb: Record<string, number> = {};
      for (const v of ["fp32", "int8", "int4"] as const) {
        const model = await loadModel(gptDir, { task: "causal-lm", quantize: v === "fp32" ? undefined : v });
        const out = model.build({ decoder: { lastTokenLogits: true } }).outputs.logits!;
        weightsMb[v] = frozenMb({ out });
        gens[v] = await Generator.create(model, { session: { threads } });
        await gens[v]!.generate([prompt], { maxNewTokens: 4, stopTokens: [] });
      }
      const times = await interleave(Object.fromEntries(Object.entries(gens).map(([v, g]) => [v, () => g.generate([prompt], { maxNewTokens: N, stopTokens: [] })])), 2);
      const f = stats(times.fp32!);
      for (const v of ["int8", "int4"] as const) {
        const q = stats(times[v]!);
        // tokens_per_s_ratio: quantized tokens/s over float32 tokens/s (above 1: faster).
        console.log(JSON.stringify({ case: `gpt2_generate_${v}`, layers: L, new_tokens: N, tokens_per_s: +((N * 1000) / q.median).toFixed(2), tokens_per_s_fp32: +((N * 1000) / f.median).toFixed(2), tokens_per_s_ratio: +(f.median / q.median).toFixed(3), tokens_per_s_ratio_best: +(f.min / q.min).toFixed(3), weights_mb: weightsMb[v], weights_mb_fp32: weightsMb.fp32 }));
      }
      for (const g of Object.values(gens)) await g.release();
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

// Child-process entry: `quant.ts --rss-case fp32|int8 --dir <checkpoint> ...`
if (process.argv.includes("--rss-case")) {
  const { values } = parseArgs({ args: process.argv.slice(2), options: { "rss-case": { type: "string" }, dir: { type: "string" }, threads: { type: "string" }, iters: { type: "string" } } });
  await rssCase(values.dir!, values["rss-case"]!, Number(values.threads), Number(values.iters));
}
