// `npm run bench -- models`: a BERT-base-sized encoder forward (batch 8, seq 128) and greedy
// generation with the KV cache of a GPT-2-small-sized decoder (batch 1, 128 new tokens), on
// random weights written as Hugging Face checkpoints, against an independent PyTorch reference
// that reads the same files. One JSON line per case.
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs, promisify } from "node:util";
import { compile, Generator, int64, loadModel } from "../src/index.js";
import { gpt2Shapes, writeBertBase, writeCheckpoint } from "./checkpoints.js";
import { peakRssMb } from "./measure.js";

const run = promisify(execFile);
const here = fileURLToPath(new URL(".", import.meta.url));
const PYTHON = "/usr/bin/python3";

async function torchReference(args: string[]): Promise<Record<string, unknown> | undefined> {
  if (!existsSync(PYTHON)) return undefined;
  try {
    const { stdout } = await run(PYTHON, [join(here, "reference", "models_torch.py"), ...args], { env: { ...process.env, OMP_WAIT_POLICY: "PASSIVE" }, maxBuffer: 1 << 20, timeout: 1_800_000 });
    return JSON.parse(stdout.trim().split("\n").pop()!) as Record<string, unknown>;
  } catch (e) {
    console.error(`note: PyTorch reference unavailable (${(e as Error).message.split("\n")[0]})`);
    return undefined;
  }
}

export async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      layers: { type: "string", default: "12" },
      batch: { type: "string", default: "8" },
      seq: { type: "string", default: "128" },
      "new-tokens": { type: "string", default: "128" },
      iters: { type: "string", default: "5" },
      threads: { type: "string", default: "2" },
    },
  });
  const [L, B, S, N, iters, threads] = [values.layers, values.batch, values.seq, values["new-tokens"], values.iters, values.threads].map(Number) as [number, number, number, number, number, number];
  const root = mkdtempSync(join(tmpdir(), "peftjs-bench-models-"));
  try {
    const bertDir = join(root, "bert");
    const gptDir = join(root, "gpt2");
    await writeBertBase(bertDir, L);
    await writeCheckpoint(gptDir, { model_type: "gpt2", n_embd: 768, n_layer: L, n_head: 12, vocab_size: 50257, n_positions: 1024, layer_norm_epsilon: 1e-5, activation_function: "gelu_new" }, gpt2Shapes(L, 768, 50257, 1024));
    const common = ["--batch", String(B), "--seq", String(S), "--iters", String(iters), "--threads", String(threads), "--new-tokens", String(N)];
    const ref = await torchReference(["--bert", bertDir, "--gpt2", gptDir, ...common]);

    // Encoder forward, same inputs as the reference: random ids (its generator), last 16 positions of odd rows padded.
    const bert = await loadModel(bertDir);
    let t0 = performance.now();
    const fwd = await compile({ out: bert.build().outputs.last_hidden_state }, { threads });
    const createMs = performance.now() - t0;
    const ids = Array.from({ length: B * S }, (_, i) => (i * 7919) % 30522);
    const mask = Array.from({ length: B * S }, (_, i) => (Math.floor(i / S) % 2 === 1 && i % S >= S - 16 ? 0 : 1));
    const feeds = bert.prepareInputs({ input_ids: int64([B, S], ids), attention_mask: int64([B, S], mask) });
    const times: number[] = [];
    for (let i = 0; i <= iters; i++) {
      t0 = performance.now();
      await fwd.run(feeds);
      if (i) times.push(performance.now() - t0);
    }
    await fwd.release();
    times.sort((a, b) => a - b);
    const ms = times[Math.floor(times.length / 2)]!;
    const torchMs = ref?.torch_ms as number | undefined;
    console.log(JSON.stringify({ case: `bert_base_forward_L${L}_b${B}_s${S}`, peftjs_ms: +ms.toFixed(1), torch_ms: torchMs ?? null, ratio: torchMs ? +(ms / torchMs).toFixed(3) : null, session_create_ms: Math.round(createMs), peak_rss_mb: peakRssMb() }));

    // Decoder generation with the cache.
    const gpt = await loadModel(gptDir, { task: "causal-lm" });
    const gen = await Generator.create(gpt, { session: { threads } });
    const prompt = Array.from({ length: 8 }, (_, i) => (i * 37) % 50257);
    await gen.generate([prompt], { maxNewTokens: 4, stopTokens: [] });
    t0 = performance.now();
    const { tokens } = await gen.generate([prompt], { maxNewTokens: N, stopTokens: [] });
    const tps = N / ((performance.now() - t0) / 1000);
    await gen.release();
    const torchTps = ref?.torch_tokens_per_s as number | undefined;
    const same = ref ? JSON.stringify(tokens[0]!.slice(0, 16)) === JSON.stringify(ref.torch_tokens) : null;
    console.log(JSON.stringify({ case: `gpt2_small_generate_L${L}_${N}tok`, peftjs_tokens_per_s: +tps.toFixed(2), torch_tokens_per_s: torchTps ?? null, ratio: torchTps ? +(tps / torchTps).toFixed(3) : null, same_tokens_as_torch: same }));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}
