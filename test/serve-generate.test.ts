// The server on a decoder (gpt2-tiny), driven by the official `openai` client: completions and
// chat (the tokenizer's chat template), streaming, the models list; greedy output equals
// `peftjs generate` for the same adapter; a client leaving mid-stream cancels its work; close()
// drains requests in flight.
import assert from "node:assert/strict";
import { cp, mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import OpenAI from "openai";
import { main } from "../src/cli/main.js";
import { Generator } from "../src/models/generate.js";
import { loadModel } from "../src/models/pretrained.js";
import { PeftModel } from "../src/peft/peft-model.js";
import { DecoderEngine, type Completion } from "../src/serve/decoder-engine.js";
import { Cancelled } from "../src/serve/errors.js";
import { createServer, type PeftServer } from "../src/serve/server.js";
import { FIXTURES, makeAdapters, postJson } from "./serve-support.js";

const GPT2 = join(FIXTURES, "gpt2-tiny");
const GPT2_LORA = { peft_type: "LORA", r: 4, lora_alpha: 8, target_modules: ["c_attn"] };
const TEMPLATE = "{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}";

/** The greedy continuation of one prompt, alone, built as `peftjs generate` builds it (cliGenerate checks the CLI agrees). */
async function generateAlone(model: string, adapter: string | undefined, prompt: string, tokens: number): Promise<string> {
  const base = await loadModel(model, { task: "causal-lm" });
  const peft = adapter ? await PeftModel.load(base, adapter) : undefined;
  const lm = peft && [...peft.adapters.values()].every((a) => a.mergedWeights) ? peft.mergeAndUnload() : (peft ?? base);
  const gen = await Generator.create(lm);
  const [text] = (await gen.generate([prompt], { maxNewTokens: tokens })).texts;
  await gen.release();
  return text!;
}

/**
 * The continuation `peftjs generate` makes for the adapter at `dir`: the same construction (LoRA
 * merged, other methods unmerged) and greedy tokens, decoded once. (The CLI prints each token's
 * share of the text as it streams; with a random tiny model's byte tokens that can split
 * characters, so the printed text is compared only when it has no replacement character.)
 */
async function cliGenerate(model: string, adapter: string | undefined, prompt: string, tokens: number): Promise<string> {
  const text = await generateAlone(model, adapter, prompt, tokens);
  let printed = "";
  const code = await main(["generate", "--model", model, ...(adapter ? ["--adapter", adapter] : []), "--prompt", prompt, "--max-new-tokens", String(tokens)], { out: (s) => (printed += `${s}\n`), write: (s) => (printed += s) });
  assert.equal(code, 0, printed);
  if (!printed.includes("\uFFFD")) assert.equal(printed, `${prompt}${text}\n`);
  return text!;
}

describe("peftjs serve: completions with the openai client", () => {
  let model: string;
  let root: string;
  let server: PeftServer;
  let client: OpenAI;
  let url: string;

  before(async () => {
    // The fixture with a chat template, as a tokenizer_config.json carries it.
    model = join(await mkdtemp(join(tmpdir(), "peftjs-serve-gpt2-")), "gpt2-chat");
    await cp(GPT2, model, { recursive: true });
    await writeFile(join(model, "tokenizer_config.json"), JSON.stringify({ tokenizer_class: "GPT2Tokenizer", model_max_length: 64, bos_token: "<|endoftext|>", eos_token: "<|endoftext|>", chat_template: TEMPLATE }));
    root = await makeAdapters(model, "causal-lm", [
      { name: "g1", seed: 1, config: GPT2_LORA },
      { name: "g2", seed: 2, config: GPT2_LORA },
      { name: "pre", seed: 3, config: { peft_type: "PREFIX_TUNING", num_virtual_tokens: 3 } },
    ]);
    server = await createServer({ model, adapters: root, port: 0, logLevel: "silent" });
    url = await server.listen();
    client = new OpenAI({ baseURL: `${url}/v1`, apiKey: "unused", maxRetries: 0 });
  });
  after(() => server.close());

  it("greedy completions equal peftjs generate for each adapter and the base", async () => {
    for (const name of ["g1", "g2", "pre", "gpt2-chat"]) {
      const r = await client.completions.create({ model: name, prompt: "the cat", max_tokens: 8, temperature: 0 });
      const want = await cliGenerate(model, name === "gpt2-chat" ? undefined : join(root, name), "the cat", 8);
      assert.equal(r.choices[0]!.text, want, name);
      assert.equal((r as unknown as { adapter: { name: string } }).adapter.name, name);
      assert.equal(r.usage!.prompt_tokens, 2);
      assert.ok(r.usage!.completion_tokens >= 1 && r.usage!.completion_tokens <= 8);
      assert.equal(r.usage!.total_tokens, r.usage!.prompt_tokens + r.usage!.completion_tokens);
    }
    const g1 = await cliGenerate(model, join(root, "g1"), "the cat", 8);
    const g2 = await cliGenerate(model, join(root, "g2"), "the cat", 8);
    assert.notEqual(g1, g2, "the adapters differ (the test can tell them apart)");
  });

  it("concurrent requests on different adapters (one running batch) give the tokens each gives alone", async () => {
    const asks = [
      { model: "g1", prompt: "the cat", max_tokens: 12 },
      { model: "g2", prompt: "a dog ran over the hill", max_tokens: 7 },
      { model: "gpt2-chat", prompt: "the", max_tokens: 10 },
      { model: "g2", prompt: "the cat", max_tokens: 9 },
      { model: "pre", prompt: "the cat", max_tokens: 5 },
    ];
    const before = await server.metrics.registry.getSingleMetric("peftjs_batch_rows")!.get();
    const answers = await Promise.all(asks.map((a) => client.completions.create({ ...a, temperature: 0 })));
    for (const [i, a] of asks.entries()) {
      const want = await generateAlone(model, a.model === "gpt2-chat" ? undefined : join(root, a.model), a.prompt, a.max_tokens);
      assert.equal(answers[i]!.choices[0]!.text, want, `${a.model} "${a.prompt}"`);
      assert.equal((answers[i] as unknown as { adapter: { name: string } }).adapter.name, a.model);
    }
    const after = await server.metrics.registry.getSingleMetric("peftjs_batch_rows")!.get();
    const decodeSum = (m: typeof after) => m.values.find((v) => (v as { metricName?: string }).metricName === "peftjs_batch_rows_sum" && v.labels.queue === "generate")?.value ?? 0;
    assert.ok(decodeSum(after) > decodeSum(before), "the plain LoRA adapters and the base decoded in the running batch");
  });

  it("rows join and leave the running batch between decode steps; each keeps its adapter, and a cancelled row leaves alone", async () => {
    const base = await loadModel(model, { task: "causal-lm" });
    const decodeRows: number[] = [];
    const engine = await DecoderEngine.create(base, { maxBatch: 8, onRun: (kind, rows) => kind === "decode" && decodeRows.push(rows) });
    const g1 = (await engine.load(join(root, "g1"), "g1@1")).value;
    const g2 = (await engine.load(join(root, "g2"), "g2@1")).value;
    assert.ok(g1.batched && g2.batched);
    const s = (maxTokens: number, n = 1) => ({ maxTokens, temperature: 0, stop: [], seed: 0, n });
    let steps = 0;
    let late: Promise<unknown>[] = [];
    let cancelledSteps = 0;
    // The first request's third step lets three more join: two run to their end, one is cancelled after two steps.
    const first = engine.start(g1, ["the cat"], s(16), {
      shouldStop: () => {
        if (++steps === 3) {
          late = [
            engine.start(g2, ["a dog ran over the hill"], s(6)).done,
            engine.start(undefined, ["the"], s(9, 2)).done,
            engine.start(g2, ["the cat"], s(12), { shouldStop: () => (++cancelledSteps > 2 ? new Cancelled() : undefined) }).done.then(
              () => assert.fail("the cancelled request finished"),
              (e: Error) => assert.ok(e instanceof Cancelled, String(e)),
            ),
          ];
        }
        return undefined;
      },
    }).done;
    const [a] = await first;
    const [b, c] = (await Promise.all(late.slice(0, 2))) as Completion[][];
    await late[2];
    assert.equal(a!.texts[0], await generateAlone(model, join(root, "g1"), "the cat", 16));
    assert.equal(b![0]!.texts[0], await generateAlone(model, join(root, "g2"), "a dog ran over the hill", 6));
    const baseAlone = await generateAlone(model, undefined, "the", 9);
    assert.deepEqual(c![0]!.texts, [baseAlone, baseAlone]);
    assert.equal(decodeRows[0], 1, "the first request decodes alone at first");
    assert.ok(decodeRows.includes(5), `four requests (five rows) in one decode run: ${decodeRows.join(" ")}`);
    assert.equal(decodeRows.at(-1), 1, "the longest request decodes alone at the end");
    assert.equal(engine.batcher.rows, 0);
    await engine.release();
  });

  it("streams the same text by SSE, with finish reasons and usage", async () => {
    const whole = await client.completions.create({ model: "g1", prompt: "the dog", max_tokens: 10, temperature: 0 });
    const stream = await client.completions.create({ model: "g1", prompt: "the dog", max_tokens: 10, temperature: 0, stream: true, stream_options: { include_usage: true } });
    let text = "";
    let finish: string | null = null;
    let usage: OpenAI.CompletionUsage | undefined;
    for await (const chunk of stream) {
      for (const c of chunk.choices) {
        text += c.text;
        finish = c.finish_reason ?? finish;
      }
      if (chunk.usage) usage = chunk.usage;
    }
    assert.equal(text, whole.choices[0]!.text);
    assert.equal(finish, whole.choices[0]!.finish_reason);
    assert.deepEqual(usage, whole.usage);
  });

  it("chat renders the tokenizer's template and streams deltas", async () => {
    const messages = [{ role: "user" as const, content: "the cat" }];
    const r = await client.chat.completions.create({ model: "g2", messages, max_tokens: 6, temperature: 0 });
    const want = await cliGenerate(model, join(root, "g2"), "user: the cat\nassistant:", 6);
    assert.equal(r.choices[0]!.message.content, want);
    assert.equal(r.choices[0]!.message.role, "assistant");
    const stream = await client.chat.completions.create({ model: "g2", messages, max_tokens: 6, temperature: 0, stream: true });
    let text = "";
    for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? "";
    assert.equal(text, want);
  });

  it("samples reproducibly with a seed; n choices; stop strings end a choice", async () => {
    const a = await client.completions.create({ model: "g1", prompt: "the", max_tokens: 12, temperature: 1.5, top_p: 0.9, seed: 7, n: 3 });
    const b = await client.completions.create({ model: "g1", prompt: "the", max_tokens: 12, temperature: 1.5, top_p: 0.9, seed: 7, n: 3 });
    assert.equal(a.choices.length, 3);
    assert.deepEqual(a.choices.map((c) => c.text), b.choices.map((c) => c.text));
    const full = (await client.completions.create({ model: "g1", prompt: "the cat", max_tokens: 12, temperature: 0 })).choices[0]!.text;
    const stop = full.trim().slice(2, 4);
    assert.ok(stop.length === 2, `a stop string from ${JSON.stringify(full)}`);
    const cut = await client.completions.create({ model: "g1", prompt: "the cat", max_tokens: 12, temperature: 0, stop: [stop] });
    assert.equal(cut.choices[0]!.text, full.slice(0, full.indexOf(stop)));
    assert.equal(cut.choices[0]!.finish_reason, "stop");
  });

  it("lists models with their parent, and answers an unknown one with 404", async () => {
    const list = await client.models.list();
    const ids = list.data.map((m) => m.id);
    assert.deepEqual(ids, ["gpt2-chat", "g1", "g2", "pre"]);
    assert.ok(list.data.slice(1).every((m) => (m as unknown as { parent: string }).parent === "gpt2-chat"));
    await assert.rejects(client.completions.create({ model: "nope", prompt: "x", max_tokens: 2 }), (e: InstanceType<typeof OpenAI.APIError>) => e.status === 404 && /available: g1, g2, pre/.test(e.message));
    await assert.rejects(client.completions.create({ model: "g1", prompt: "x", max_tokens: "2" as unknown as number }), (e: InstanceType<typeof OpenAI.APIError>) => e.status === 400);
  });

  it("a client leaving mid-stream cancels its generation; the server keeps serving", async () => {
    const ac = new AbortController();
    const res = await fetch(`${url}/v1/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ model: "g1", prompt: "the", max_tokens: 60, temperature: 1, stream: true }), signal: ac.signal });
    const reader = res.body!.getReader();
    const first = await reader.read();
    assert.match(new TextDecoder().decode(first.value), /^data: /);
    ac.abort();
    await reader.cancel().catch(() => undefined);
    // The cancelled request shows in the metrics as a disconnect, and its tokens are not counted.
    let metrics = "";
    for (let i = 0; i < 200 && !/status="disconnected"/.test(metrics); i++) {
      await new Promise((r) => setTimeout(r, 10));
      metrics = await (await fetch(`${url}/metrics`)).text();
    }
    assert.match(metrics, /peftjs_requests_total\{endpoint="\/v1\/completions",adapter="g1",status="disconnected"\} 1/);
    const after = await postJson(`${url}/v1/completions`, { model: "g2", prompt: "the", max_tokens: 2, temperature: 0 });
    assert.equal(after.status, 200);
  });
});

describe("peftjs serve: shutdown", () => {
  it("close() finishes requests in flight, then refuses new connections", async () => {
    const server = await createServer({ model: GPT2, port: 0, logLevel: "silent" });
    const url = await server.listen();
    const inflight = [0, 1, 2].map((i) => postJson(`${url}/v1/completions`, { model: "gpt2-tiny", prompt: `the ${i}`, max_tokens: 20, temperature: 0 }));
    // Let the requests arrive before closing.
    for (let i = 0; i < 200 && !/peftjs_queue_depth\{queue="generate"\} 2/.test(await server.metrics.registry.metrics()); i++) await new Promise((r) => setTimeout(r, 5));
    await server.close();
    for (const r of await Promise.all(inflight)) {
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.equal(r.body.choices[0].finish_reason.length > 0, true);
    }
    await assert.rejects(fetch(`${url}/health`));
  });

  it("answers 429 with Retry-After when the queue is full, and serves again once it drains", async () => {
    // A batch of 8 rows: the first request fills it, the second waits for room (taken from the
    // queue), the third waits in the queue, the fourth finds the queue full.
    const server = await createServer({ model: GPT2, port: 0, logLevel: "silent", maxQueue: 1, maxBatch: 8 });
    const url = await server.listen();
    try {
      const long = { model: "gpt2-tiny", prompt: "the", max_tokens: 60, temperature: 1, n: 8 };
      const running = postJson(`${url}/v1/completions`, long);
      const waiting = postJson(`${url}/v1/completions`, long);
      const queued = postJson(`${url}/v1/completions`, long);
      for (let i = 0; i < 400 && !/peftjs_queue_depth\{queue="generate"\} 1/.test(await server.metrics.registry.metrics()); i++) await new Promise((r) => setTimeout(r, 5));
      const refused = await postJson(`${url}/v1/completions`, { ...long, max_tokens: 1 });
      assert.equal(refused.status, 429, JSON.stringify(refused.body));
      assert.equal(refused.headers.get("retry-after"), "1");
      assert.equal(refused.body.error.type, "RateLimitError");
      assert.deepEqual([(await running).status, (await waiting).status, (await queued).status], [200, 200, 200]);
      assert.equal((await postJson(`${url}/v1/completions`, { ...long, max_tokens: 1, n: 1 })).status, 200);
    } finally {
      await server.close();
    }
  });
});
