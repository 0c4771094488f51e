// `npm run bench -- quant`: the int8 frozen base against float32 on BERT-base-sized models
// (random weights): a 12-layer LoRA r=8 training step (batch 8 x 128, AdamW included), the
// forward pass, and GPT-2-small cached generation (int8 and 4-bit). Variants run interleaved in
// one process, so machine noise hits them alike (min and median printed); peak RSS comes from one
// child process per variant. The SmolLM-135M-sized LoRA step (its real config, random weights)
// runs float32 and int8 each in its own process against a PyTorch float32 reference
// (bench/reference/llama_lora_torch.py) on the same checkpoint, rounds alternating. One JSON line
// per case.
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs, promisify } from "node:util";
import { AdamW, compile, fillNormal, Generator, Graph, int64, int8MatMul, linear, loadModel, TrainStep, type SessionOptions, type Tensor } from "../src/index.js";
import { type Int8Kernel } from "../src/ir/composites/linear.js";
import { int8Storage, quantizeInt8, transposeInt8, zeroPoints } from "../src/ir/quantize.js";
import { type PretrainedModel } from "../src/models/pretrained.js";
import { PeftModel } from "../src/peft/peft-model.js";
import { lowerToOnnx } from "../src/runtime/lower.js";
import { gpt2Shapes, llamaShapes, SMOLLM_135M, writeBertBase, writeCheckpoint } from "./checkpoints.js";
import { peakRssMb, stats } from "./measure.js";

const exec = promisify(execFile);
const here = fileURLToPath(new URL(".", import.meta.url));
const LORA = { peft_type: "LORA", r: 8, lora_alpha: 16, target_modules: ["query", "value"] } as const;
const PYTHON = "/usr/bin/python3";

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

/** BERT-base LoRA step variants: the base's storage, the int8 input-gradient kernel, session options. */
// `initializers`: the frozen weights handed to ORT as (prepacked) initializers, the default
// before a training step fed them in place (SessionOptions.frozenWeightsAsInputs).
const LORA_VARIANTS: Record<string, { quantize?: "int8"; gradKernel?: Int8Kernel; session?: SessionOptions }> = {
  fp32: {},
  fp32_initializers: { session: { frozenWeightsAsInputs: false } },
  fp32_pattern: { session: { memoryPattern: true } },
  fp32_no_arena: { session: { memoryArena: false } },
  int8: { quantize: "int8" },
  int8_dequantize_grad: { quantize: "int8", gradKernel: "dequantize" },
  int8_initializers: { quantize: "int8", session: { frozenWeightsAsInputs: false } },
};

async function loraStep(dir: string, variant: string, threads: number) {
  const v = LORA_VARIANTS[variant];
  if (!v) throw new Error(`unknown LoRA step variant "${variant}" (${Object.keys(LORA_VARIANTS).join(", ")})`);
  const base = await loadModel(dir, { task: "sequence-classification", quantize: v.quantize });
  if (v.gradKernel) withGradKernel(base, v.gradKernel);
  const peft = PeftModel.create(base, LORA);
  const built = peft.build({ withLoss: true, training: true });
  const step = await TrainStep.create(built.outputs.loss!, { session: { threads, ...v.session } });
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
  console.log(JSON.stringify({ peak_rss_mb: peakRssMb(), ms: stats(times).median, weights_mb: s.weightsMb }));
}

/** A SmolLM-sized variant: the frozen base's storage and the ORT session options it runs with. */
const SMOLLM_VARIANTS: Record<string, { quantize?: "int8"; session?: SessionOptions }> = {
  fp32: {},
  int8: { quantize: "int8" },
  fp32_initializers: { session: { frozenWeightsAsInputs: false } },
  int8_initializers: { quantize: "int8", session: { frozenWeightsAsInputs: false } },
};

/** Child process: one SmolLM-sized LoRA step variant alone (batch x seq causal LM, AdamW). */
async function smollmCase(dir: string, variant: string, o: { threads: number; iters: number; batch: number; seq: number }): Promise<void> {
  const v = SMOLLM_VARIANTS[variant];
  if (!v) throw new Error(`--smollm-case: unknown variant "${variant}" (${Object.keys(SMOLLM_VARIANTS).join(", ")})`);
  const peft = PeftModel.create(await loadModel(dir, { task: "causal-lm", quantize: v.quantize }), { peft_type: "LORA", r: 8, lora_alpha: 16, target_modules: ["q_proj", "v_proj"] });
  const built = peft.build({ withLoss: true, training: true });
  let t0 = performance.now();
  const step = await TrainStep.create(built.outputs.loss!, { session: { threads: o.threads, ...v.session } });
  const createMs = performance.now() - t0;
  const opt = new AdamW(step.params, { lr: 1e-4 });
  const vocab = SMOLLM_135M.vocab_size;
  // The token ids the PyTorch reference uses: (i * 7919 + 13) % vocab.
  const ids = int64([o.batch, o.seq], Array.from({ length: o.batch * o.seq }, (_, i) => (i * 7919 + 13) % vocab));
  const feeds = peft.prepareInputs({ input_ids: ids }, { labels: ids });
  const times: number[] = [];
  let firstLoss: number | undefined;
  for (let i = 0; i <= o.iters; i++) {
    t0 = performance.now();
    const r = await step.run(feeds);
    opt.step(r.grads);
    firstLoss ??= r.loss;
    if (i) times.push(performance.now() - t0);
  }
  const peak = peakRssMb();
  await step.release();
  const t = stats(times);
  console.log(JSON.stringify({ ms: t.median, ms_min: t.min, peak_rss_mb: peak, first_loss: +firstLoss!.toFixed(5), session_create_ms: Math.round(createMs), weights_mb: frozenMb({ loss: built.outputs.loss! }) }));
}

/** The PyTorch float32 reference on the same checkpoint; undefined (with a note) without torch. */
async function torchLlamaStep(dir: string, o: { threads: number; iters: number; batch: number; seq: number }): Promise<Record<string, number> | undefined> {
  if (!existsSync(PYTHON)) return undefined;
  try {
    const args = [join(here, "reference", "llama_lora_torch.py"), "--dir", dir, "--batch", String(o.batch), "--seq", String(o.seq), "--iters", String(o.iters), "--threads", String(o.threads)];
    const { stdout } = await exec(PYTHON, args, { env: { ...process.env, OMP_WAIT_POLICY: "PASSIVE" }, maxBuffer: 1 << 20, timeout: 1_800_000 });
    return JSON.parse(stdout.trim().split("\n").pop()!) as Record<string, number>;
  } catch (e) {
    console.error(`note: PyTorch reference unavailable (${(e as Error).message.split("\n")[0]})`);
    return undefined;
  }
}

/**
 * One frozen linear y = x W^T (x [m, k], W [n, k]) on one thread: float32 Gemm against the int8
 * kernels as the graphs use them (forward: DynamicQuantizeLinear + MatMulInteger; input
 * gradient: int8 GEMM against q^T, or DequantizeLinear + Gemm). Times in ms, interleaved.
 */
async function gemmCase(m: number, k: number, n: number, iters: number): Promise<Record<string, number>> {
  const normal = (size: number, seed: number) => {
    const d = new Float32Array(size);
    fillNormal(d, 0.02, seed);
    return d;
  };
  const w: Tensor = { dtype: "float32", shape: [n, k], data: normal(n * k, 1) };
  const q = transposeInt8(quantizeInt8(w, 0));
  const runs: Record<string, () => Promise<unknown>> = {};
  const variants: [string, (g: Graph) => { y: ReturnType<Graph["input"]>; rows: number; cols: number }][] = [
    ["fp32", (g) => ({ y: linear(g.input("x", "float32", [m, k]), g.param("w", w)), rows: m, cols: k })],
    ...(["integer", "dequantize"] as const).flatMap((kernel) => [0, 1].map((transB) => [`int8_${kernel}${transB ? "_grad" : ""}`, (g: Graph) => {
      const [rows, cols] = transB ? [m, n] : [m, k];
      const wq = { q: g.param("q", { dtype: "uint8", shape: [k, n], data: int8Storage(q.q) }), scale: g.param("scale", { dtype: "float32", shape: [n], data: q.scale }), zeroPoint: g.param("zp", { dtype: "uint8", shape: [n], data: zeroPoints(n) }), kernel };
      return { y: int8MatMul(g.input("x", "float32", [rows, cols]), wq, transB), rows, cols };
    }] as [string, (g: Graph) => { y: ReturnType<Graph["input"]>; rows: number; cols: number }])),
  ];
  for (const [name, build] of variants) {
    const { y, rows, cols } = build(new Graph());
    const c = await compile({ y }, { threads: 1 });
    const x: Tensor = { dtype: "float32", shape: [rows, cols], data: normal(rows * cols, 2) };
    runs[name] = () => c.run({ x });
  }
  const times = await interleave(runs, iters);
  return Object.fromEntries(Object.entries(times).map(([k2, t]) => [k2, stats(t).min]));
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
      cases: { type: "string", default: "gemm,lora,forward,generate,smollm" },
      "lora-variants": { type: "string", default: "fp32,int8,int8_dequantize_grad,fp32_initializers" },
      "smollm-variants": { type: "string", default: "fp32,int8" },
      "smollm-iters": { type: "string", default: "3" },
      "smollm-layers": { type: "string", default: String(SMOLLM_135M.num_hidden_layers) },
      rounds: { type: "string", default: "1" },
    },
  });
  const [L, iters, fIters, N, threads] = [values.layers, values.iters, values["forward-iters"], values["new-tokens"], values.threads].map(Number) as [number, number, number, number, number];
  const cases = new Set(values.cases.split(","));
  const root = mkdtempSync(join(tmpdir(), "peftjs-bench-quant-"));
  try {
    const bertDir = join(root, "bert");
    await writeBertBase(bertDir, L);

    if (cases.has("gemm")) {
      // The kernels alone, one thread, on BERT-base's linear shapes (batch 8 x 128 rows).
      for (const [m, k, n] of [[1024, 768, 768], [1024, 768, 3072], [1024, 3072, 768]] as const) {
        const t = await gemmCase(m, k, n, 10);
        console.log(JSON.stringify({ case: "gemm_int8_vs_fp32", m, k, n, threads: 1, ms_min: t, int8_forward_ratio: +(t.int8_integer! / t.fp32!).toFixed(3), int8_grad_integer_ratio: +(t.int8_integer_grad! / t.fp32!).toFixed(3), int8_grad_dequantize_ratio: +(t.int8_dequantize_grad! / t.fp32!).toFixed(3) }));
      }
    }

    if (cases.has("lora")) {
      const variants = values["lora-variants"].split(",");
      for (const v of ["fp32", "int8"]) if (!variants.includes(v)) throw new Error(`--lora-variants must include ${v}`);
      const steps: Record<string, Awaited<ReturnType<typeof loraStep>>> = {};
      for (const v of variants) steps[v] = await loraStep(bertDir, v, threads);
      const times = await interleave(Object.fromEntries(variants.map((v) => [v, steps[v]!.run])), iters);
      for (const s of Object.values(steps)) await s.release();
      const rss: Record<string, Record<string, number>> = {};
      for (const v of variants) rss[v] = await child(["--rss-case", v, "--dir", bertDir, "--threads", String(threads), "--iters", "2"]);
      const [f, q] = [stats(times.fp32!), stats(times.int8!)];
      // Frozen weights handed to ONNX Runtime, split: the linears the int8 base quantizes, and the rest (embeddings, pooler, norms, biases) that stays float32.
      const linearMb = (L * 4 * (4 * 768 * 768 + 2 * 768 * 3072)) / 2 ** 20;
      const others = Object.fromEntries(variants.filter((v) => v !== "fp32" && v !== "int8").map((v) => {
        const t = stats(times[v]!);
        return [v, { ms: t.median, ms_min: t.min, ratio_to_fp32: +(t.median / f.median).toFixed(3), ratio_to_fp32_min: +(t.min / f.min).toFixed(3), peak_rss_mb: rss[v]!.peak_rss_mb }];
      }));
      console.log(JSON.stringify({
        case: "lora_step_int8_base", layers: L, batch: 8, seq: 128,
        int8_ms: q.median, fp32_ms: f.median, ratio: +(q.median / f.median).toFixed(3),
        int8_ms_min: q.min, fp32_ms_min: f.min, ratio_min: +(q.min / f.min).toFixed(3),
        weights_mb_int8: steps.int8!.weightsMb, weights_mb_fp32: steps.fp32!.weightsMb, weights_ratio: +(steps.int8!.weightsMb / steps.fp32!.weightsMb).toFixed(3),
        linear_weights_mb_fp32: +linearMb.toFixed(1), linear_weights_mb_int8: +(steps.int8!.weightsMb - (steps.fp32!.weightsMb - linearMb)).toFixed(1),
        linear_weights_ratio: +((steps.int8!.weightsMb - (steps.fp32!.weightsMb - linearMb)) / linearMb).toFixed(3),
        peak_rss_mb_int8: rss.int8!.peak_rss_mb, peak_rss_mb_fp32: rss.fp32!.peak_rss_mb, variants: others,
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

    if (cases.has("smollm")) {
      const dir = join(root, "smollm");
      const config = { ...SMOLLM_135M, num_hidden_layers: Number(values["smollm-layers"]) };
      await writeCheckpoint(dir, config, llamaShapes(config));
      const o = { threads, iters: Number(values["smollm-iters"]), batch: 4, seq: 256 };
      const variants = values["smollm-variants"].split(",");
      const runs: Record<string, Record<string, number>[]> = Object.fromEntries(["torch", ...variants].map((v) => [v, []]));
      // Rounds alternate PyTorch and each variant, one process each (its own peak RSS).
      for (let round = 0; round < Number(values.rounds); round++) {
        const ref = await torchLlamaStep(dir, o);
        if (ref) runs.torch!.push(ref);
        for (const v of variants) {
          runs[v]!.push(await child(["--smollm-case", v, "--dir", dir, "--threads", String(threads), "--iters", String(o.iters), "--batch", String(o.batch), "--seq", String(o.seq)]));
        }
      }
      const best = (rs: Record<string, number>[], k: string) => Math.min(...rs.map((r) => r[k]!));
      const torchMs = runs.torch!.length ? best(runs.torch!, "torch_ms") : undefined;
      const torchMin = runs.torch!.length ? best(runs.torch!, "torch_ms_min") : undefined;
      for (const v of variants) {
        const rs = runs[v]!;
        const [ms, msMin] = [best(rs, "ms"), best(rs, "ms_min")];
        console.log(JSON.stringify({
          case: "smollm135m_lora_step", quantize: SMOLLM_VARIANTS[v]!.quantize ?? "none", variant: v, layers: config.num_hidden_layers, batch: o.batch, seq: o.seq,
          peftjs_ms: ms, torch_ms: torchMs ?? null, ratio: torchMs ? +(ms / torchMs).toFixed(3) : null,
          peftjs_ms_min: msMin, torch_ms_min: torchMin ?? null, ratio_min: torchMin ? +(msMin / torchMin).toFixed(3) : null,
          peak_rss_mb: best(rs, "peak_rss_mb"), torch_peak_rss_mb: runs.torch!.length ? best(runs.torch!, "torch_peak_rss_mb") : null,
          weights_mb: rs[0]!.weights_mb, first_loss: rs[0]!.first_loss, torch_first_loss: runs.torch![0]?.torch_first_loss ?? null, session_create_ms: rs[0]!.session_create_ms,
        }));
      }
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

// Child-process entries: `quant.ts --rss-case fp32|int8 --dir <checkpoint> ...`,
// `quant.ts --smollm-case <variant> --dir <checkpoint> ...`
if (process.argv.includes("--rss-case")) {
  const { values } = parseArgs({ args: process.argv.slice(2), options: { "rss-case": { type: "string" }, dir: { type: "string" }, threads: { type: "string" }, iters: { type: "string" } } });
  await rssCase(values.dir!, values["rss-case"]!, Number(values.threads), Number(values.iters));
}
if (process.argv.includes("--smollm-case")) {
  const { values } = parseArgs({ args: process.argv.slice(2), options: { "smollm-case": { type: "string" }, dir: { type: "string" }, threads: { type: "string" }, iters: { type: "string" }, batch: { type: "string" }, seq: { type: "string" } } });
  await smollmCase(values.dir!, values["smollm-case"]!, { threads: Number(values.threads), iters: Number(values.iters), batch: Number(values.batch), seq: Number(values.seq) });
}
