// `npm run bench -- serve`: the multi-adapter server under load, one JSON line per configuration.
// classify: a BERT-base-shaped encoder (hidden 768, --layers 12, random weights) serves N distinct
// LoRA adapters (r=8 on query/value, each with its own 2-class head); C concurrent clients send R
// classify requests (--seq tokens each) spread uniformly over the adapters. generate: a
// GPT-2-small-shaped decoder (hidden 768, --generate-layers 12, random weights, the tiny fixture's
// tokenizer) with N LoRA adapters (r=8 on c_attn); C clients, greedy, --new-tokens each. Then, for
// both, the same load against a server that runs one request at a time (--max-batch 1): the
// batching gain; and serve_profile, the base model's time per row at batch 1 and batch C without
// the server (the ceiling on what batching can gain). Each server runs in a child process (its
// clients here do not share its event loop); peak_rss_mb is that process's peak RSS (VmHWM: model,
// sessions, adapters, warm-up and load). Compared servers are up together and take turns
// (--rounds rounds each), so the machine's load hits both alike: each N-adapter server against
// the 1-adapter one, the batching server against the one-at-a-time one. Latencies are
// client-side over loopback.
// Smaller runs: --adapters 1,8 --layers 2 --generate-layers 2 --endpoints classify.
import { spawn } from "node:child_process";
import { copyFile, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { type Value } from "../src/ir/graph.js";
import { int64, type Tensor } from "../src/ir/tensor.js";
import { loadModel, type PretrainedModel } from "../src/models/pretrained.js";
import { PeftModel } from "../src/peft/peft-model.js";
import { compile } from "../src/runtime/session.js";
import { createServer } from "../src/serve/server.js";
import { LoraStack } from "../src/serve/stacked-lora.js";
import { classificationExamples, collate } from "../src/train/data.js";
import { seededRandom } from "../src/ir/random.js";
import { bertShapes, gpt2Shapes, writeCheckpoint } from "./checkpoints.js";
import { peakRssMb } from "./measure.js";

const FIXTURE = join(import.meta.dirname, "..", "test", "fixtures", "models", "bert-tiny");
const GPT2_FIXTURE = join(import.meta.dirname, "..", "test", "fixtures", "models", "gpt2-tiny");

/** N LoRA adapters named `${prefix}${i}` (all factors perturbed, so they differ), under `root`. */
async function writeAdapters(model: PretrainedModel, root: string, n: number, prefix: string, targets: string[], labels?: string[]): Promise<void> {
  const peft = new PeftModel(model);
  const rand = seededRandom(n);
  for (let i = 0; i < n; i++) {
    const name = `${prefix}${i}`;
    peft.addAdapter(name, { peft_type: "LORA", r: 8, lora_alpha: 16, target_modules: targets });
    for (const t of peft.adapters.get(name)!.tensors.values()) (t.data as Float32Array).forEach((v, j, d) => (d[j] = v + (rand() - 0.5) * 0.02));
    if (labels) peft.labels.set(name, labels);
    await peft.save(root, { adapters: [name] });
    peft.deleteAdapter(name);
  }
}

const percentile = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;

/** One or more rounds of load against one server: what they took and what clients saw. */
interface Load {
  reqPerS: number;
  tokensPerS: number;
  p50: number;
  p99: number;
  latencies: number[];
  tokens: number;
  seconds: number;
}

function load(latencies: number[], tokens: number, seconds: number): Load {
  return { reqPerS: latencies.length / seconds, tokensPerS: tokens / seconds, p50: percentile(latencies, 50), p99: percentile(latencies, 99), latencies, tokens, seconds };
}

/** `createServer(opts)` in a child process; resolves once it listens. */
async function spawnServer(opts: Record<string, unknown>): Promise<{ url: string; peakRssMb: () => Promise<number>; close: () => Promise<void> }> {
  const child = spawn(process.execPath, ["--import", "tsx", fileURLToPath(import.meta.url), "--serve-child", JSON.stringify(opts)], { stdio: ["ignore", "pipe", "inherit"] });
  const exited = new Promise<number | null>((r) => child.once("exit", r));
  const url = await new Promise<string>((resolve, reject) => {
    let out = "";
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
      const line = out.split("\n").find((l) => l.startsWith("http"));
      if (line) resolve(line.trim());
    });
    void exited.then((code) => reject(new Error(`the server exited (${code}) before listening`)));
  });
  return {
    url,
    peakRssMb: async () => peakRssMb(child.pid!) ?? NaN,
    close: async () => {
      child.kill("SIGTERM");
      await exited;
    },
  };
}

/** C clients, each sending requests back to back until R are done; `ask(i)` sends request i and returns its tokens. */
async function drive(concurrency: number, requests: number, ask: (i: number) => Promise<number>): Promise<Load> {
  const latencies: number[] = [];
  let next = 0;
  let tokens = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < requests) {
        const i = next++;
        const start = performance.now();
        const got = await ask(i);
        tokens += got;
        latencies.push(performance.now() - start);
      }
    }),
  );
  return load(latencies, tokens, (performance.now() - t0) / 1000);
}

/** `items` in chunks of `size` at a time (warm-up without overrunning --max-queue). */
async function inChunks<T>(items: readonly T[], size: number, f: (x: T) => Promise<unknown>): Promise<void> {
  for (let i = 0; i < items.length; i += size) await Promise.all(items.slice(i, i + size).map(f));
}

async function post(url: string, body: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const r = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  return { status: r.status, body: (await r.json()) as Record<string, unknown> };
}

/** One answer per request, from the adapter it named, or the run stops. */
function check(what: string, r: { status: number; body: Record<string, unknown> }, adapter: string): void {
  const used = (r.body.adapter as { name?: string } | undefined)?.name;
  if (r.status !== 200 || used !== adapter) throw new Error(`${what}: ${r.status} from ${used}, wanted ${adapter}: ${JSON.stringify(r.body).slice(0, 300)}`);
}

/** ms per row of the base model's forward at batch 1 and batch C (stacked graph, no adapter), min of `reps`. */
async function profile(model: PretrainedModel, feedsFor: (rows: number) => Record<string, Tensor>, outputs: (stack: LoraStack) => Record<string, Value>, C: number, threads: number, reps: number) {
  const stack = new LoraStack(model);
  const step = await compile(outputs(stack), { threads });
  const time = async (rows: number) => {
    const feeds = feedsFor(rows);
    let best = Infinity;
    for (let i = 0; i < reps; i++) {
      const t0 = performance.now();
      await step.run(feeds);
      best = Math.min(best, performance.now() - t0);
    }
    return best / rows;
  };
  await time(1);
  const one = await time(1);
  const many = await time(C);
  await step.release();
  return { one, many };
}

export async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      endpoints: { type: "string", default: "classify,generate" },
      layers: { type: "string", default: "12" },
      adapters: { type: "string", default: "1,8,64,512,1000" },
      concurrency: { type: "string", default: "32" },
      requests: { type: "string", default: "64" },
      seq: { type: "string", default: "128" },
      threads: { type: "string", default: "2" },
      "gain-adapters": { type: "string", default: "8" },
      "generate-adapters": { type: "string", default: "1,8,64,512,1000" },
      "generate-layers": { type: "string", default: "12" },
      "generate-concurrency": { type: "string", default: "32" },
      "generate-requests": { type: "string", default: "64" },
      "new-tokens": { type: "string", default: "32" },
      "one-at-a-time-requests": { type: "string", default: "16" },
      rounds: { type: "string", default: "2" },
    },
  });
  const endpoints = values.endpoints.split(",");
  const root = await mkdtemp(join(tmpdir(), "peftjs-bench-serve-"));
  try {
    if (endpoints.includes("classify")) await classifyCases(root, values);
    if (endpoints.includes("generate")) await generateCases(root, values);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

type Values = Record<string, string | boolean | undefined>;

async function classifyCases(root: string, values: Values): Promise<void> {
  const layers = Number(values.layers);
  const counts = String(values.adapters).split(",").map(Number);
  const [C, R, seq, threads, gainN, R1, rounds] = [values.concurrency, values.requests, values.seq, values.threads, values["gain-adapters"], values["one-at-a-time-requests"], values.rounds].map(Number) as [number, number, number, number, number, number, number];
  const modelDir = join(root, "bert");
  await writeCheckpoint(modelDir, { model_type: "bert", architectures: ["BertForSequenceClassification"], hidden_size: 768, num_hidden_layers: layers, num_attention_heads: 12, intermediate_size: 3072, vocab_size: 30522, max_position_embeddings: 512, type_vocab_size: 2, layer_norm_eps: 1e-12, hidden_act: "gelu", num_labels: 2 }, bertShapes(layers, 768, 3072, 30522, 512));
  // A small WordPiece tokenizer: its ids are valid for the larger vocabulary.
  for (const f of ["tokenizer.json", "tokenizer_config.json"]) await copyFile(join(FIXTURE, f), join(modelDir, f));
  const model = await loadModel(modelDir, { task: "sequence-classification" });
  const words = ["the", "cat", "sat", "on", "mat", "money", "in", "bank", "dog"];
  let text = "the ";
  const length = (t: string) => classificationExamples([{ text: t }], model.tokenizer!, { maxLength: 512, labelled: false, source: "input" }).examples[0]!.ids.length;
  for (let i = 0; length(text) < seq; i++) text += `${words[i % words.length]} `;
  const adapterRoot = join(root, "adapters");
  await writeAdapters(model, adapterRoot, Math.max(...counts, gainN), "task", ["query", "value"], ["no", "yes"]);

  const p = await profile(
    model,
    (rows) => {
      // Tokenized as the server tokenizes /v1/classify inputs (--seq tokens, no truncation below 512).
      const { examples } = classificationExamples(Array.from({ length: rows }, () => ({ text })), model.tokenizer!, { maxLength: 512, labelled: false, source: "input" });
      const { input_ids, attention_mask, token_type_ids } = collate(examples, model.tokenizer!.padTokenId ?? 0);
      return { ...model.prepareInputs({ input_ids, attention_mask, token_type_ids }), adapter_index: int64([rows], Array<number>(rows).fill(0)) };
    },
    (stack) => ({ logits: stack.build().outputs.logits! }),
    C,
    threads,
    2,
  );
  console.log(JSON.stringify({ case: "serve_profile", endpoint: "/v1/classify", layers, seq, batch: C, ms_per_row_batch_1: +p.one.toFixed(1), ms_per_row_batch_c: +p.many.toFixed(1), ceiling: +(p.one / p.many).toFixed(2) }));

  const start = async (n: number, maxBatch: number): Promise<Served<Load>> => {
    const names = Array.from({ length: n }, (_, i) => `task${i}`);
    const server = await spawnServer({ model: modelDir, adapters: adapterRoot, port: 0, logLevel: "silent", maxLoaded: Math.max(n, 1), maxBatch, maxQueue: 4 * C, threads, deadlineMs: 600_000 });
    const url = server.url;
    let sent = 0; // requests cycle through the adapters across rounds
    const ask = async () => {
      const m = names[(sent++ * 7919) % n]!;
      check(`request to ${m}`, await post(`${url}/v1/classify`, { model: m, input: text }), m);
      return 0;
    };
    try {
      // Warm-up: every adapter loaded once (short inputs), then one full-size round.
      await inChunks(names, C, async (m) => check("warm-up", await post(`${url}/v1/classify`, { model: m, input: "the cat" }), m));
      await drive(C, Math.min(8, R), ask);
    } catch (e) {
      await server.close();
      throw e;
    }
    return { round: (requests) => drive(C, requests, ask), peakRssMb: server.peakRssMb, close: server.close };
  };
  await sweep(counts, gainN, R, R1, rounds, start, (n, r, vs1) => ({ case: "serve_classify", adapters: n, concurrency: C, req_per_s: +r.reqPerS.toFixed(2), p50_ms: +r.p50.toFixed(0), p99_ms: +r.p99.toFixed(0), peak_rss_mb: r.peakRssMb, vs_1_adapter: vs1, layers, seq, requests: R }), (batched, single) => ({ case: "serve_batching_gain", endpoint: "/v1/classify", adapters: gainN, concurrency: C, ratio: +(batched.reqPerS / single.reqPerS).toFixed(2), batched_req_per_s: +batched.reqPerS.toFixed(2), one_at_a_time_req_per_s: +single.reqPerS.toFixed(2), requests: R, one_at_a_time_requests: R1, layers, seq }));
}

/** A running server and a way to send it one round of load. */
interface Served<M> {
  round: (requests: number) => Promise<M>;
  peakRssMb: () => Promise<number>;
  close: () => Promise<void>;
}

/** Several rounds against one server taken as one: requests over their total time, latencies pooled. */
function pooled(rounds: Load[]): Load {
  return load(rounds.flatMap((r) => r.latencies), rounds.reduce((a, r) => a + r.tokens, 0), rounds.reduce((a, r) => a + r.seconds, 0));
}

/**
 * One line per adapter count at a batch of up to 32, each against the 1-adapter server measured
 * in the same stretch of time: both servers stay up and take turns, `rounds` rounds each of
 * `requests / rounds` requests, so load on the machine hits both alike (vs_1_adapter is the ratio
 * of those paired runs). Then the batching gain at `gainN` adapters: the batched server against
 * one that serves one request at a time, also in turns.
 */
async function sweep(
  counts: number[],
  gainN: number,
  requests: number,
  oneAtATimeRequests: number,
  rounds: number,
  start: (n: number, maxBatch: number) => Promise<Served<Load>>,
  line: (n: number, r: Load & { peakRssMb: number }, vs1: number) => object,
  gainLine: (batched: Load, single: Load) => object,
): Promise<void> {
  const per = (total: number) => Math.max(1, Math.round(total / rounds));
  const turns = async (servers: Served<Load>[], sizes: number[]): Promise<Load[]> => {
    const got: Load[][] = servers.map(() => []);
    for (let k = 0; k < rounds; k++) for (const [i, s] of servers.entries()) got[i]!.push(await s.round(sizes[i]!));
    return got.map((g) => pooled(g));
  };
  const one = await start(1, 32);
  try {
    for (const n of counts) {
      if (n === 1) {
        const [r] = await turns([one], [per(requests)]);
        console.log(JSON.stringify(line(1, { ...r!, peakRssMb: await one.peakRssMb() }, 1)));
        continue;
      }
      const many = await start(n, 32);
      try {
        const [r1, rn] = await turns([one, many], [per(requests), per(requests)]);
        console.log(JSON.stringify(line(n, { ...rn!, peakRssMb: await many.peakRssMb() }, +(rn!.reqPerS / r1!.reqPerS).toFixed(3))));
      } finally {
        await many.close();
      }
    }
  } finally {
    await one.close();
  }
  const [batchedServer, singleServer] = [await start(gainN, 32), await start(gainN, 1)];
  try {
    const [batched, single] = await turns([batchedServer, singleServer], [per(requests), per(oneAtATimeRequests)]);
    console.log(JSON.stringify(gainLine(batched!, single!)));
  } finally {
    await Promise.all([batchedServer.close(), singleServer.close()]);
  }
}

async function generateCases(root: string, values: Values): Promise<void> {
  const layers = Number(values["generate-layers"]);
  const [C, R, tokens, threads, gainN, R1, rounds] = [values["generate-concurrency"], values["generate-requests"], values["new-tokens"], values.threads, values["gain-adapters"], values["one-at-a-time-requests"], values.rounds].map(Number) as [number, number, number, number, number, number, number];
  const counts = String(values["generate-adapters"]).split(",").map(Number);
  const dir = join(root, "gpt2");
  await writeCheckpoint(dir, { model_type: "gpt2", architectures: ["GPT2LMHeadModel"], n_embd: 768, n_layer: layers, n_head: 12, vocab_size: 50257, n_positions: 1024, layer_norm_epsilon: 1e-5, activation_function: "gelu_new", eos_token_id: 50256, bos_token_id: 50256 }, gpt2Shapes(layers, 768, 50257, 1024));
  for (const f of ["tokenizer.json", "tokenizer_config.json"]) await copyFile(join(GPT2_FIXTURE, f), join(dir, f));
  const adapterRoot = join(root, "gpt2-adapters");
  const model = await loadModel(dir, { task: "causal-lm" });
  await writeAdapters(model, adapterRoot, Math.max(...counts, gainN), "lm", ["c_attn"]);
  const prompt = "the cat sat on the mat";

  // Decode-step time per row at batch 1 and batch C (past = the prompt).
  const promptLen = model.tokenizer!.encode(prompt).ids.length;
  const p = await profile(
    model,
    (rows) => {
      const feeds: Record<string, Tensor> = {
        input_ids: int64([rows, 1], Array<number>(rows).fill(5)),
        attention_mask: int64([rows, promptLen + 1], Array<number>(rows * (promptLen + 1)).fill(1)),
        position_ids: int64([rows, 1], Array<number>(rows).fill(promptLen)),
        adapter_index: int64([rows], Array<number>(rows).fill(0)),
      };
      const past = { dtype: "float32" as const, shape: [rows, 12, promptLen, 64], data: new Float32Array(rows * 12 * promptLen * 64) };
      for (let i = 0; i < layers; i++) for (const kv of ["key", "value"]) feeds[`past_key_values.${i}.${kv}`] = past;
      return feeds;
    },
    (stack) => ({ logits: stack.build({ decoder: { withPast: true, returnPresent: true, lastTokenLogits: true } }).outputs.logits! }),
    C,
    threads,
    3,
  );
  console.log(JSON.stringify({ case: "serve_profile", endpoint: "/v1/completions (decode step)", layers, batch: C, ms_per_row_batch_1: +p.one.toFixed(1), ms_per_row_batch_c: +p.many.toFixed(1), ceiling: +(p.one / p.many).toFixed(2) }));

  const start = async (n: number, maxBatch: number): Promise<Served<Load>> => {
    const names = Array.from({ length: n }, (_, i) => `lm${i}`);
    const server = await spawnServer({ model: dir, adapters: adapterRoot, port: 0, logLevel: "silent", maxLoaded: n, maxBatch, maxQueue: 4 * C, threads, deadlineMs: 600_000 });
    const url = server.url;
    const ask = async (m: string, max: number) => {
      const r = await post(`${url}/v1/completions`, { model: m, prompt, max_tokens: max, temperature: 0 });
      check(m, r, m);
      return (r.body.usage as { completion_tokens: number }).completion_tokens;
    };
    let sent = 0;
    try {
      await inChunks(names, C, (m) => ask(m, 1)); // load every adapter first
      // Then one full-size round, as for classify: the first batches of a new server grow its arena.
      await drive(C, Math.min(C, R), () => ask(names[(sent++ * 7919) % n]!, tokens));
    } catch (e) {
      await server.close();
      throw e;
    }
    return { round: (requests) => drive(C, requests, () => ask(names[(sent++ * 7919) % n]!, tokens)), peakRssMb: server.peakRssMb, close: server.close };
  };
  await sweep(counts, gainN, R, R1, rounds, start, (n, r, vs1) => ({ case: "serve_generate", adapters: n, concurrency: C, req_per_s: +r.reqPerS.toFixed(2), tokens_per_s: +r.tokensPerS.toFixed(1), p50_ms: +r.p50.toFixed(0), p99_ms: +r.p99.toFixed(0), peak_rss_mb: r.peakRssMb, vs_1_adapter: vs1, layers, new_tokens: tokens, requests: R }), (batched, single) => ({ case: "serve_batching_gain", endpoint: "/v1/completions", adapters: gainN, concurrency: C, ratio: +(batched.reqPerS / single.reqPerS).toFixed(2), batched_req_per_s: +batched.reqPerS.toFixed(2), one_at_a_time_req_per_s: +single.reqPerS.toFixed(2), batched_tokens_per_s: +batched.tokensPerS.toFixed(1), one_at_a_time_tokens_per_s: +single.tokensPerS.toFixed(1), requests: R, one_at_a_time_requests: R1, layers, new_tokens: tokens }));
}

// The server process of spawnServer: listen, print the URL, drain and exit on SIGTERM.
if (process.argv[2] === "--serve-child") {
  const server = await createServer(JSON.parse(process.argv[3]!) as Parameters<typeof createServer>[0]);
  console.log(await server.listen());
  process.once("SIGTERM", () => void server.close().then(() => process.exit(0)));
}
