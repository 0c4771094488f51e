// `npm run bench -- tuners`: what parameter-efficient methods buy on a BERT-base-sized model
// (batch 8, seq 128): training-step time and peak RSS of full fine-tuning vs LoRA, Houlsby
// adapters, prefix tuning, prompt tuning and BitFit, and batch-1 inference latency of the base
// model vs LoRA unmerged / merged vs adapters. Each case runs in its own process (own peak RSS).
// One JSON line per case, with ratios against full fine-tuning / the base model.
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs, promisify } from "node:util";
import { AdamW, compile, int64, loadModel, TrainStep } from "../src/index.js";
import { PeftModel, type PeftConfigInput } from "../src/peft/peft-model.js";
import { writeBertBase } from "./checkpoints.js";
import { peakRssMb } from "./measure.js";

const run = promisify(execFile);
const here = fileURLToPath(new URL(".", import.meta.url));

const METHODS: Record<string, PeftConfigInput> = {
  full: { peft_type: "FULL" },
  lora: { peft_type: "LORA", r: 8, lora_alpha: 16, target_modules: ["query", "value"] },
  houlsby: { peft_type: "BOTTLENECK", variant: "double_seq_bn", reduction_factor: 16 },
  prefix: { peft_type: "PREFIX_TUNING", num_virtual_tokens: 20 },
  prompt: { peft_type: "PROMPT_TUNING", num_virtual_tokens: 20 },
  bitfit: { peft_type: "BITFIT" },
};

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** One case, in this process: prints a JSON line. */
async function runCase(dir: string, kind: "train" | "infer", method: string, opts: { batch: number; seq: number; iters: number; threads: number; frozenInitializers: boolean }): Promise<void> {
  const base = await loadModel(dir, { task: "sequence-classification" });
  const ids = Array.from({ length: opts.batch * opts.seq }, (_, i) => 1000 + ((i * 7919) % 20000));
  const batch = { input_ids: int64([opts.batch, opts.seq], ids) };
  const labels = int64([opts.batch], Array.from({ length: opts.batch }, (_, i) => i % 2));
  const peft = method === "base" ? undefined : PeftModel.create(base, METHODS[method]!);
  const times: number[] = [];
  let createMs = 0;
  const updates: number[] = [];
  if (kind === "train") {
    const t0 = performance.now();
    const step = await TrainStep.create(peft!.build({ withLoss: true, training: true }).outputs.loss!, { session: { threads: opts.threads, ...(opts.frozenInitializers ? { frozenWeightsAsInputs: false } : {}) } });
    createMs = performance.now() - t0;
    // The optimizer is part of a training step: its time and its state (two float32 moments).
    const opt = new AdamW(step.params, { lr: 1e-4 });
    const feeds = peft!.prepareInputs(batch, { labels });
    for (let i = 0; i <= opts.iters; i++) {
      const s = performance.now();
      const r = await step.run(feeds);
      const u = performance.now();
      opt.step(r.grads);
      if (i) {
        times.push(performance.now() - s);
        updates.push(performance.now() - u);
      }
    }
  } else {
    // All inference variants in one process, runs interleaved, so machine noise hits them alike.
    const variants: [string, ReturnType<typeof base.build>, Record<string, import("../src/index.js").Tensor>][] = [];
    const lora = PeftModel.create(base, METHODS.lora!);
    const houlsby = PeftModel.create(base, METHODS.houlsby!);
    for (const t of [...lora.adapters.get("default")!.tensors.values(), ...houlsby.adapters.get("default")!.tensors.values()]) (t.data as Float32Array).forEach((v, i, d) => (d[i] = v + 0.01 * Math.sin(i)));
    const merged = lora.mergeAndUnload();
    variants.push(["base", base.build(), base.prepareInputs(batch)], ["lora_unmerged", lora.build(), lora.prepareInputs(batch)], ["lora_merged", merged.build(), merged.prepareInputs(batch)], ["houlsby", houlsby.build(), houlsby.prepareInputs(batch)]);
    const sessions = await Promise.all(variants.map(([, b]) => compile({ logits: b.outputs.logits! }, { threads: opts.threads })));
    const byVariant = variants.map(() => [] as number[]);
    for (let i = 0; i <= opts.iters; i++) {
      for (let v = 0; v < variants.length; v++) {
        const s = performance.now();
        await sessions[v]!.run(variants[v]![2]);
        if (i) byVariant[v]!.push(performance.now() - s);
      }
    }
    console.log(JSON.stringify(Object.fromEntries(variants.map(([name], v) => [name, +median(byVariant[v]!).toFixed(2)]))));
    return;
  }
  const counts = peft?.countParameters();
  console.log(JSON.stringify({ ms: +median(times).toFixed(1), ms_min: +Math.min(...times).toFixed(1), update_ms: +median(updates).toFixed(1), session_create_ms: Math.round(createMs), peak_rss_mb: peakRssMb(), trainable: counts?.trainable ?? 0, all: counts?.all ?? 0 }));
}

async function child(args: string[]): Promise<Record<string, number>> {
  const { stdout } = await run(process.execPath, ["--import", "tsx", join(here, "tuners.ts"), ...args], { maxBuffer: 1 << 20, timeout: 1_800_000 });
  return JSON.parse(stdout.trim().split("\n").pop()!) as Record<string, number>;
}

export async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      layers: { type: "string", default: "12" },
      batch: { type: "string", default: "8" },
      seq: { type: "string", default: "128" },
      iters: { type: "string", default: "3" },
      "infer-iters": { type: "string", default: "20" },
      threads: { type: "string", default: "2" },
      methods: { type: "string", default: Object.keys(METHODS).join(",") },
    },
  });
  const root = mkdtempSync(join(tmpdir(), "peftjs-bench-tuners-"));
  try {
    const dir = join(root, "bert");
    await writeBertBase(dir, Number(values.layers));
    const common = ["--threads", values.threads];
    let full: Record<string, number> | undefined;
    const cases: [string, string, string[]][] = values.methods.split(",").map((m) => [m, m, []]);
    // The default step feeds frozen weights in place; ORT-owned prepacked initializers (the default
    // before) for comparison. (Turning ORT's arena off on top of the default saved nothing:
    // 1629 vs 1552 MB peak at 1.18x the time.)
    cases.push(["lora_initializers", "lora", ["--frozen-initializers"]]);
    for (const [label, method, flags] of cases) {
      const r = await child(["--case", "train", "--method", method, "--dir", dir, "--batch", values.batch, "--seq", values.seq, "--iters", values.iters, ...flags, ...common]);
      full ??= method === "full" ? r : undefined;
      console.log(JSON.stringify({
        case: `train_${label}`, step_ms: r.ms, optimizer_ms: r.update_ms, peak_rss_mb: r.peak_rss_mb, trainable_params: r.trainable, trainable_pct: +((100 * r.trainable!) / r.all!).toFixed(4),
        time_vs_full: full ? +(r.ms! / full.ms!).toFixed(3) : null, rss_vs_full: full ? +(r.peak_rss_mb! / full.peak_rss_mb!).toFixed(3) : null, session_create_ms: r.session_create_ms,
      }));
    }
    const inf = await child(["--case", "infer", "--method", "base", "--dir", dir, "--batch", "1", "--seq", values.seq, "--iters", values["infer-iters"], ...common]);
    for (const [name, ms] of Object.entries(inf)) console.log(JSON.stringify({ case: `infer_b1_${name}`, ms, vs_base: +(ms / inf.base!).toFixed(3) }));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

// Child-process entry: `tuners.ts --case train|infer --method <m> --dir <checkpoint> ...` (only when
// this file is the program: bench/run.ts imports every bench, and `bench -- web` has a --case too).
if (process.argv[1] === fileURLToPath(import.meta.url) && process.argv.includes("--case")) {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: {
      case: { type: "string" }, method: { type: "string" }, dir: { type: "string" }, batch: { type: "string" }, seq: { type: "string" }, iters: { type: "string" }, threads: { type: "string" },
      "frozen-initializers": { type: "boolean", default: false },
    },
  });
  await runCase(values.dir!, values.case as "train" | "infer", values.method!, { batch: Number(values.batch), seq: Number(values.seq), iters: Number(values.iters), threads: Number(values.threads), frozenInitializers: values["frozen-initializers"] });
}
