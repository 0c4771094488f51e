// `npm run bench -- serve`: the multi-adapter server under load, one JSON line per configuration.
// A BERT-shaped encoder with random weights (hidden 768; --layers, default 2 on this 2-core
// machine) serves N distinct LoRA adapters (r=8 on query/value, each with its own classifier
// head); C concurrent clients send R classify requests (--seq tokens each) spread uniformly over
// the adapters. Then the same load against a server that runs one request at a time (--max-batch
// 1): the batching gain. Latencies are client-side, over loopback.
import { copyFile, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { loadModel } from "../src/models/pretrained.js";
import { PeftModel } from "../src/peft/peft-model.js";
import { createServer } from "../src/serve/server.js";
import { seededRandom } from "../src/ir/random.js";
import { bertShapes, gpt2Shapes, writeCheckpoint } from "./checkpoints.js";

const FIXTURE = join(import.meta.dirname, "..", "test", "fixtures", "models", "bert-tiny");
const GPT2_FIXTURE = join(import.meta.dirname, "..", "test", "fixtures", "models", "gpt2-tiny");

/** N LoRA adapters (random B so they differ) with 2-class heads, under `root`. */
async function writeAdapters(modelDir: string, root: string, n: number): Promise<void> {
  const model = await loadModel(modelDir, { task: "sequence-classification" });
  const peft = new PeftModel(model);
  const rand = seededRandom(n);
  for (let i = 0; i < n; i++) {
    const name = `task${i}`;
    peft.addAdapter(name, { peft_type: "LORA", r: 8, lora_alpha: 16, target_modules: ["query", "value"] });
    for (const t of peft.adapters.get(name)!.tensors.values()) (t.data as Float32Array).forEach((v, j, d) => (d[j] = v + (rand() - 0.5) * 0.02));
    peft.labels.set(name, ["no", "yes"]);
    await peft.save(root, { adapters: [name] });
    peft.deleteAdapter(name);
  }
}

const percentile = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;

/** C clients, each sending requests back to back until R are done; adapters uniform over `names`. */
async function load(url: string, names: readonly string[], text: string, concurrency: number, requests: number): Promise<{ reqPerS: number; p50: number; p99: number }> {
  const latencies: number[] = [];
  let next = 0;
  const t0 = performance.now();
  const client = async () => {
    while (next < requests) {
      const i = next++;
      const start = performance.now();
      const res = await fetch(`${url}/v1/classify`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ model: names[(i * 7919) % names.length], input: text }) });
      const body = (await res.json()) as { adapter?: { name: string } };
      if (res.status !== 200 || body.adapter?.name !== names[(i * 7919) % names.length]) throw new Error(`request ${i}: ${res.status} ${JSON.stringify(body)}`);
      latencies.push(performance.now() - start);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, client));
  const seconds = (performance.now() - t0) / 1000;
  return { reqPerS: requests / seconds, p50: percentile(latencies, 50), p99: percentile(latencies, 99) };
}

export async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      layers: { type: "string", default: "2" },
      adapters: { type: "string", default: "1,8,32" },
      concurrency: { type: "string", default: "32" },
      requests: { type: "string", default: "128" },
      seq: { type: "string", default: "128" },
      threads: { type: "string", default: "2" },
      "generate-adapters": { type: "string", default: "1,4" },
      "generate-layers": { type: "string", default: "2" },
      "generate-concurrency": { type: "string", default: "4" },
      "generate-requests": { type: "string", default: "8" },
      "new-tokens": { type: "string", default: "32" },
    },
  });
  const layers = Number(values.layers);
  const counts = values.adapters.split(",").map(Number);
  const [C, R, seq, threads] = [values.concurrency, values.requests, values.seq, values.threads].map(Number) as [number, number, number, number];
  const root = await mkdtemp(join(tmpdir(), "peftjs-bench-serve-"));
  try {
    const modelDir = join(root, "bert");
    await writeCheckpoint(modelDir, { model_type: "bert", architectures: ["BertForSequenceClassification"], hidden_size: 768, num_hidden_layers: layers, num_attention_heads: 12, intermediate_size: 3072, vocab_size: 30522, max_position_embeddings: 512, type_vocab_size: 2, layer_norm_eps: 1e-12, hidden_act: "gelu", num_labels: 2 }, bertShapes(layers, 768, 3072, 30522, 512));
    // A small WordPiece tokenizer: its ids are valid for the larger vocabulary.
    for (const f of ["tokenizer.json", "tokenizer_config.json"]) await copyFile(join(FIXTURE, f), join(modelDir, f));
    const model = await loadModel(modelDir, { task: "sequence-classification" });
    const words = ["the", "cat", "sat", "on", "mat", "money", "in", "bank", "dog"];
    let text = "";
    for (let i = 0; model.tokenizer!.encode(text).ids.length < seq; i++) text += `${words[i % words.length]} `;
    const adapterRoot = join(root, "adapters");
    await writeAdapters(modelDir, adapterRoot, Math.max(...counts));

    const measure = async (n: number, maxBatch: number) => {
      const names = Array.from({ length: n }, (_, i) => `task${i}`);
      const server = await createServer({ model: modelDir, adapters: adapterRoot, port: 0, logLevel: "silent", maxLoaded: Math.max(n, 1), maxBatch, maxQueue: 4 * C, threads });
      const url = await server.listen();
      try {
        // Warm-up: every adapter loaded once, the mixed graph compiled for all of them.
        await Promise.all(names.map((m) => fetch(`${url}/v1/classify`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ model: m, input: "the cat" }) }).then((r) => r.text())));
        await load(url, names, text, C, Math.min(C, R));
        return await load(url, names, text, C, R);
      } finally {
        await server.close();
      }
    };
    let one: number | undefined;
    for (const n of counts) {
      const r = await measure(n, 32);
      one ??= r.reqPerS;
      console.log(JSON.stringify({ case: "serve_classify", adapters: n, concurrency: C, req_per_s: +r.reqPerS.toFixed(2), p50_ms: +r.p50.toFixed(1), p99_ms: +r.p99.toFixed(1), peak_rss_mb: Math.round(process.resourceUsage().maxRSS / 1024), vs_1_adapter: +(r.reqPerS / one).toFixed(3), layers, seq, requests: R }));
    }
    const n = counts.includes(8) ? 8 : counts[0]!;
    const batched = await measure(n, 32);
    const single = await measure(n, 1);
    console.log(JSON.stringify({ case: "serve_batching_gain", endpoint: "/v1/classify", adapters: n, concurrency: C, ratio: +(batched.reqPerS / single.reqPerS).toFixed(2), batched_req_per_s: +batched.reqPerS.toFixed(2), one_at_a_time_req_per_s: +single.reqPerS.toFixed(2) }));
    await generateCases(root, values);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

/**
 * serve_generate: a GPT-2-shaped decoder (hidden 768, --generate-layers layers, random weights, the
 * tiny fixture's tokenizer) with N LoRA adapters on c_attn; C clients, greedy, --new-tokens each.
 * Requests generate one at a time (no continuous batching yet), so there is no batching gain here.
 */
async function generateCases(root: string, values: Record<string, string | boolean | undefined>): Promise<void> {
  const layers = Number(values["generate-layers"]);
  const [C, R, tokens] = [values["generate-concurrency"], values["generate-requests"], values["new-tokens"]].map(Number) as [number, number, number];
  const counts = String(values["generate-adapters"]).split(",").map(Number);
  const dir = join(root, "gpt2");
  await writeCheckpoint(dir, { model_type: "gpt2", architectures: ["GPT2LMHeadModel"], n_embd: 768, n_layer: layers, n_head: 12, vocab_size: 50257, n_positions: 1024, layer_norm_epsilon: 1e-5, activation_function: "gelu_new", eos_token_id: 50256, bos_token_id: 50256 }, gpt2Shapes(layers, 768, 50257, 1024));
  for (const f of ["tokenizer.json", "tokenizer_config.json"]) await copyFile(join(GPT2_FIXTURE, f), join(dir, f));
  const adapterRoot = join(root, "gpt2-adapters");
  const model = await loadModel(dir, { task: "causal-lm" });
  const peft = new PeftModel(model);
  for (let i = 0; i < Math.max(...counts); i++) {
    peft.addAdapter(`lm${i}`, { peft_type: "LORA", r: 8, lora_alpha: 16, target_modules: ["c_attn"] });
    await peft.save(adapterRoot, { adapters: [`lm${i}`] });
    peft.deleteAdapter(`lm${i}`);
  }
  let one: number | undefined;
  for (const n of counts) {
    const names = Array.from({ length: n }, (_, i) => `lm${i}`);
    const server = await createServer({ model: dir, adapters: adapterRoot, port: 0, logLevel: "silent", maxLoaded: n, maxQueue: 4 * C });
    const url = await server.listen();
    try {
      const ask = async (model: string, max: number) => {
        const r = await fetch(`${url}/v1/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ model, prompt: "the cat sat on the mat", max_tokens: max, temperature: 0 }) });
        const body = (await r.json()) as { usage: { completion_tokens: number }; adapter: { name: string } };
        if (r.status !== 200 || body.adapter.name !== model) throw new Error(`${model}: ${r.status} ${JSON.stringify(body)}`);
        return body.usage.completion_tokens;
      };
      for (const m of names) await ask(m, 1); // load every adapter first
      const latencies: number[] = [];
      let next = 0;
      let generated = 0;
      const t0 = performance.now();
      await Promise.all(
        Array.from({ length: C }, async () => {
          while (next < R) {
            const i = next++;
            const start = performance.now();
            const got = await ask(names[i % n]!, tokens);
            generated += got;
            latencies.push(performance.now() - start);
          }
        }),
      );
      const seconds = (performance.now() - t0) / 1000;
      const reqPerS = R / seconds;
      one ??= reqPerS;
      console.log(JSON.stringify({ case: "serve_generate", adapters: n, concurrency: C, req_per_s: +reqPerS.toFixed(2), tokens_per_s: +(generated / seconds).toFixed(1), p50_ms: +percentile(latencies, 50).toFixed(0), p99_ms: +percentile(latencies, 99).toFixed(0), peak_rss_mb: Math.round(process.resourceUsage().maxRSS / 1024), vs_1_adapter: +(reqPerS / one).toFixed(3), layers, new_tokens: tokens, requests: R }));
    } finally {
      await server.close();
    }
  }
}
