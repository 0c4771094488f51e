// The multi-adapter server on an encoder (bert-tiny, sequence classification): answers equal
// `peftjs predict` for each adapter, rows of different adapters share runs, and bad input, bad
// adapters, traversal, unload while busy and load/unload storms leave it serving.
import assert from "node:assert/strict";
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { loadModel } from "../src/models/pretrained.js";
import { PeftModel } from "../src/peft/peft-model.js";
import { createServer, type PeftServer } from "../src/serve/server.js";
import { classificationExamples } from "../src/train/data.js";
import { predict } from "../src/train/predict.js";
import { corruptAdapter, FIXTURES, makeAdapters, postJson } from "./serve-support.js";

const BERT = join(FIXTURES, "bert-tiny");
const LABELS = ["neg", "neu", "pos"];
const TEXTS = ["the cat sat on the mat", "money in the bank", "the dog"];

/** What `peftjs predict` answers for `adapterDir` (undefined: the base model). */
async function expected(adapterDir: string | undefined, texts: readonly string[]): Promise<{ label: number; probabilities: number[] }[]> {
  const model = await loadModel(BERT, { task: "sequence-classification" });
  const peft = adapterDir ? await PeftModel.load(model, adapterDir) : new PeftModel(model);
  const { examples } = classificationExamples(texts.map((text) => ({ text })), model.tokenizer!, { maxLength: 64, labelled: false });
  const out = (await predict(peft, examples)) as { label: number; probabilities: number[] }[];
  await peft.releaseSessions();
  return out;
}

function assertMatches(data: { label: string; probabilities: Record<string, number> }[], want: { label: number; probabilities: number[] }[], what: string): void {
  assert.equal(data.length, want.length, what);
  data.forEach((d, i) => {
    assert.equal(d.label, LABELS[want[i]!.label], `${what} row ${i} label`);
    LABELS.forEach((l, c) => assert.ok(Math.abs(d.probabilities[l]! - want[i]!.probabilities[c]!) < 1e-5, `${what} row ${i} p(${l}) ${d.probabilities[l]} vs ${want[i]!.probabilities[c]}`));
  });
}

describe("peftjs serve: encoder adapters", () => {
  let root: string;
  let server: PeftServer;
  let url: string;
  const want = new Map<string, { label: number; probabilities: number[] }[]>();

  before(async () => {
    root = await makeAdapters(BERT, "sequence-classification", [
      { name: "a", labels: LABELS, seed: 1 },
      { name: "b", labels: LABELS, seed: 2 },
      { name: "c", labels: LABELS, seed: 3 },
      { name: "p", labels: LABELS, seed: 4, config: { peft_type: "PROMPT_TUNING", num_virtual_tokens: 3 } },
      // IA3 shares the gated mixed graph; plain LoRA the stacked one; prompt tuning runs alone.
      { name: "i", labels: LABELS, seed: 7, config: { peft_type: "IA3", target_modules: ["key", "value"], feedforward_modules: [] } },
    ]);
    await corruptAdapter(root, "broken", { "adapter_config.json": JSON.stringify({ peft_type: "LORA", r: 4, lora_alpha: 8, target_modules: ["query", "value"], task_type: "SEQ_CLS" }), "adapter_model.safetensors": "not a safetensors file" });
    await corruptAdapter(root, "badjson", { "adapter_config.json": "{ nope" });
    for (const n of ["a", "b", "c", "p", "i"]) want.set(n, await expected(join(root, n), TEXTS));
    want.set("base", await expected(undefined, TEXTS));
    server = await createServer({ model: BERT, adapters: root, port: 0, logLevel: "silent", maxLoaded: 8 });
    url = await server.listen();
  });
  after(() => server.close());

  it("classifies with each adapter exactly as peftjs predict does, naming the adapter and version used", async () => {
    for (const n of ["a", "b", "p", "i"]) {
      const r = await postJson(`${url}/v1/classify`, { model: n, input: TEXTS });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.equal(r.body.adapter.name, n);
      assert.ok(r.body.adapter.version >= 1);
      assert.equal(r.headers.get("x-peftjs-adapter"), `${n}@${r.body.adapter.version}`);
      assertMatches(r.body.data, want.get(n)!, n);
    }
    const one = await postJson(`${url}/v1/classify`, { model: "a", input: TEXTS[1] });
    assertMatches(one.body.data, want.get("a")!.slice(1, 2), "a single string");
  });

  it("answers concurrent requests for different adapters (and the base) each with its own adapter", async () => {
    const names = ["a", "b", "c", "bert-tiny", "p", "i", "a", "c", "i", "b", "bert-tiny", "a"];
    const rs = await Promise.all(names.map((n) => postJson(`${url}/v1/classify`, { model: n, input: TEXTS })));
    rs.forEach((r, i) => {
      assert.equal(r.status, 200, JSON.stringify(r.body));
      const n = names[i]!;
      assert.equal(r.body.adapter.name, n);
      assertMatches(r.body.data, want.get(n === "bert-tiny" ? "base" : n)!, `request ${i} (${n})`);
    });
  });

  it("lists the base and every adapter with its parent", async () => {
    const res = await fetch(`${url}/v1/models`);
    const body = (await res.json()) as { data: { id: string; parent: string | null }[] };
    assert.deepEqual(body.data.map((m) => m.id), ["bert-tiny", "a", "b", "badjson", "broken", "c", "i", "p"]);
    assert.equal(body.data[0]!.parent, null);
    assert.ok(body.data.slice(1).every((m) => m.parent === "bert-tiny"));
  });

  it("refuses bad bodies: malformed JSON, wrong types, missing fields", async () => {
    const bad = await postJson(`${url}/v1/classify`, "{ not json");
    assert.equal(bad.status, 400);
    assert.ok(bad.body.error.message);
    for (const body of [{ model: "a", input: 5 }, { model: "a" }, { model: 3, input: "x" }, { model: "a", input: [] }]) {
      const r = await postJson(`${url}/v1/classify`, body);
      assert.equal(r.status, 400, JSON.stringify(body));
      assert.equal(r.body.error.type, "BadRequestError");
    }
  });

  it("answers an unknown adapter with 404 naming the available ones", async () => {
    const r = await postJson(`${url}/v1/classify`, { model: "nope", input: "x" });
    assert.equal(r.status, 404);
    assert.match(r.body.error.message, /"nope" does not exist; available: a, b, badjson, broken, c, i, p/);
  });

  it("answers a corrupt adapter with a 4xx naming its file, and keeps serving", async () => {
    const broken = await postJson(`${url}/v1/classify`, { model: "broken", input: "x" });
    assert.equal(broken.status, 400);
    assert.match(broken.body.error.message, /"broken" at .*could not be loaded/);
    const badjson = await postJson(`${url}/v1/classify`, { model: "badjson", input: "x" });
    assert.equal(badjson.status, 400);
    assert.match(badjson.body.error.message, /adapter_config\.json/);
    const ok = await postJson(`${url}/v1/classify`, { model: "a", input: TEXTS });
    assert.equal(ok.status, 200);
    assertMatches(ok.body.data, want.get("a")!, "after corrupt adapters");
  });

  it("confines lora_path to the adapter root and validates names", async () => {
    const outside = await mkdtemp(join(tmpdir(), "peftjs-outside-"));
    await makeAdapters(BERT, "sequence-classification", [{ name: "x", labels: LABELS, seed: 9 }], outside);
    for (const [lora_name, lora_path] of [["t1", "../x"], ["t2", join(outside, "x")], ["t3", "a/../../x"], ["../a", "a"], ["a/b", "a"], ["..", "a"], ["bert-tiny", "a"]]) {
      const r = await postJson(`${url}/v1/load_lora_adapter`, { lora_name, lora_path });
      assert.equal(r.status, 400, `${lora_name} ${lora_path}: ${JSON.stringify(r.body)}`);
    }
    // A symlink inside the root pointing outside is outside too.
    const { symlink } = await import("node:fs/promises");
    await symlink(join(outside, "x"), join(root, "link"));
    const viaLink = await postJson(`${url}/v1/load_lora_adapter`, { lora_name: "t4", lora_path: "link" });
    assert.equal(viaLink.status, 400);
    const lazyLink = await postJson(`${url}/v1/classify`, { model: "link", input: "x" });
    assert.equal(lazyLink.status, 400);
    const { rm } = await import("node:fs/promises");
    await rm(join(root, "link"));
  });

  it("loads and unloads adapters at runtime (vLLM's endpoints)", async () => {
    const loaded = await postJson(`${url}/v1/load_lora_adapter`, { lora_name: "a2", lora_path: "a" });
    assert.equal(loaded.status, 200, JSON.stringify(loaded.body));
    const again = await postJson(`${url}/v1/load_lora_adapter`, { lora_name: "a2", lora_path: "a" });
    assert.equal(again.status, 400);
    const r = await postJson(`${url}/v1/classify`, { model: "a2", input: TEXTS });
    assert.equal(r.body.adapter.version, loaded.body.version);
    assertMatches(r.body.data, want.get("a")!, "a2 (a's files)");
    assert.equal((await postJson(`${url}/v1/unload_lora_adapter`, { lora_name: "a2" })).status, 200);
    assert.equal((await postJson(`${url}/v1/classify`, { model: "a2", input: "x" })).status, 404);
    assert.equal((await postJson(`${url}/v1/unload_lora_adapter`, { lora_name: "a2" })).status, 404);
    assert.equal((await postJson(`${url}/v1/unload_lora_adapter`, { lora_name: "a2", extra: 1 })).status, 400);
  });

  it("survives a load/unload storm under traffic; no response comes from the wrong adapter", async () => {
    const traffic: Promise<void>[] = [];
    const check = async (n: string, base: string) => {
      const r = await postJson(`${url}/v1/classify`, { model: n, input: TEXTS });
      if (n.startsWith("s") && (r.status === 404 || r.status === 400)) return; // unloaded (or being loaded again) meanwhile
      assert.equal(r.status, 200, `${n}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.adapter.name, n);
      assertMatches(r.body.data, want.get(base)!, n);
    };
    for (let round = 0; round < 6; round++) {
      const path = ["a", "b", "c"][round % 3]!;
      const l = await postJson(`${url}/v1/load_lora_adapter`, { lora_name: "s", lora_path: path });
      assert.equal(l.status, 200, JSON.stringify(l.body));
      for (const n of ["a", "b", "c"]) traffic.push(check(n, n));
      traffic.push(check("s", path));
      const u = postJson(`${url}/v1/unload_lora_adapter`, { lora_name: "s" });
      traffic.push(check("s", path));
      assert.equal((await u).status, 200);
    }
    await Promise.all(traffic);
  });

  it("serves /health and Prometheus /metrics with requests, cache and batch metrics", async () => {
    const h = await fetch(`${url}/health`);
    assert.equal(h.status, 200);
    const m = await (await fetch(`${url}/metrics`)).text();
    assert.match(m, /peftjs_requests_total\{endpoint="\/v1\/classify",adapter="a",status="200"\} \d+/);
    assert.match(m, /peftjs_request_duration_seconds_bucket\{le="[^"]+",endpoint="\/v1\/classify",adapter="a"\}/);
    assert.match(m, /peftjs_adapter_cache_total\{event="miss"\} [1-9]/);
    assert.match(m, /peftjs_adapter_cache_total\{event="hit"\} [1-9]/);
    assert.match(m, /peftjs_batch_rows_count\{queue="encoder"\} [1-9]/);
    assert.match(m, /peftjs_adapters_loaded \d+/);
    assert.match(m, /peftjs_queue_depth\{queue="encoder"\} 0/);
  });

  it("returns embeddings (float and base64) and refuses endpoints of other tasks", async () => {
    const f = await postJson(`${url}/v1/embeddings`, { model: "a", input: TEXTS });
    assert.equal(f.status, 200);
    assert.equal(f.body.data.length, 3);
    assert.equal(f.body.data[0].embedding.length, 32);
    const b = await postJson(`${url}/v1/embeddings`, { model: "a", input: TEXTS, encoding_format: "base64" });
    const decoded = new Float32Array(Uint8Array.from(Buffer.from(b.body.data[0].embedding, "base64")).buffer);
    assert.ok(decoded.every((v, i) => Math.abs(v - f.body.data[0].embedding[i]) < 1e-6));
    const wrong = await postJson(`${url}/v1/completions`, { model: "a", prompt: "x" });
    assert.equal(wrong.status, 400);
    assert.match(wrong.body.error.message, /causal-lm/);
  });
});

describe("peftjs serve: limits", () => {
  it("answers an oversized body with 413, a missing API key with 401, and evicts beyond --max-loaded", async () => {
    const root = await makeAdapters(BERT, "sequence-classification", [
      { name: "a", labels: LABELS, seed: 1 },
      { name: "b", labels: LABELS, seed: 2 },
    ]);
    const server = await createServer({ model: BERT, adapters: root, port: 0, logLevel: "silent", bodyLimitKb: 1, apiKey: "k3y", maxLoaded: 1 });
    const url = await server.listen();
    try {
      const auth = { authorization: "Bearer k3y" };
      const big = await postJson(`${url}/v1/classify`, { model: "a", input: "x".repeat(2000) }, auth);
      assert.equal(big.status, 413);
      assert.equal((await postJson(`${url}/v1/classify`, { model: "a", input: "x" })).status, 401);
      assert.equal((await postJson(`${url}/v1/classify`, { model: "a", input: "x" }, { authorization: "Bearer wrong" })).status, 401);
      assert.equal((await fetch(`${url}/health`)).status, 200);
      for (const n of ["a", "b", "a"]) assert.equal((await postJson(`${url}/v1/classify`, { model: n, input: "x" }, auth)).status, 200);
      const m = await (await fetch(`${url}/metrics`)).text();
      assert.match(m, /peftjs_adapter_cache_total\{event="eviction"\} 2/);
      assert.match(m, /peftjs_adapters_loaded 1/);
    } finally {
      await server.close();
    }
    await writeFile(join(root, "unused"), "");
  });

  it("validates its options through the serve schema", async () => {
    await assert.rejects(createServer({ model: BERT, maxBatch: 0 }), /--max-batch: expected an integer >= 1, got 0/);
    await assert.rejects(createServer({ model: BERT, ...({ maxBatchh: 2 } as object) }), /unknown|maxBatchh/);
  });
});

describe("peftjs serve: tagging and extractive QA", () => {
  it("tags words and answers questions as peftjs predict does", async () => {
    const tags = ["O", "B-X", "I-X"];
    const tagRoot = await makeAdapters(BERT, "token-classification", [{ name: "t", labels: tags, seed: 5, config: { peft_type: "LORA", r: 4, lora_alpha: 8, target_modules: ["query", "value"] } }]);
    const tagServer = await createServer({ model: BERT, adapters: tagRoot, port: 0, logLevel: "silent" });
    const qaRoot = await makeAdapters(BERT, "question-answering", [{ name: "q", seed: 6 }]);
    const qaServer = await createServer({ model: BERT, adapters: qaRoot, port: 0, logLevel: "silent" });
    try {
      const words = "the cat sat on the mat".split(" ");
      const r = await tagServer.app.inject({ method: "POST", url: "/v1/token_classify", payload: { model: "t", input: words.join(" ") } });
      assert.equal(r.statusCode, 200, r.body);
      const tagged = r.json() as { data: { tokens: string[]; tags: string[] }[]; adapter: { name: string } };
      assert.equal(tagged.adapter.name, "t");
      const model = await loadModel(BERT, { task: "token-classification" });
      (model.config as { numLabels: number }).numLabels = 3;
      const peft = await PeftModel.load(model, join(tagRoot, "t"));
      const { tokenClassificationExamples, questionAnsweringExamples } = await import("../src/train/data.js");
      const { examples } = tokenClassificationExamples([{ tokens: words }], model.tokenizer!, { maxLength: 64, labelled: false });
      const [p] = (await predict(peft, examples)) as { tokenLabels: number[] }[];
      const firsts = examples[0]!.tokenLabels!.flatMap((y, t) => (y === -100 ? [] : [t]));
      assert.deepEqual(tagged.data[0]!.tags, words.map((_, w) => tags[p!.tokenLabels[firsts[w]!]!]));
      assert.equal((await tagServer.app.inject({ method: "POST", url: "/v1/classify", payload: { model: "t", input: "x" } })).statusCode, 400);

      const record = { question: "where is the cat", context: "the cat sat on the mat in the house" };
      const a = await qaServer.app.inject({ method: "POST", url: "/v1/question_answering", payload: { model: "q", input: record } });
      assert.equal(a.statusCode, 200, a.body);
      const qaModel = await loadModel(BERT, { task: "question-answering" });
      const qaPeft = await PeftModel.load(qaModel, join(qaRoot, "q"));
      const qaExamples = questionAnsweringExamples([record], qaModel.tokenizer!, { maxLength: 64, labelled: false });
      const [first] = (await import("../src/train/predict.js")).bestWindows(qaExamples, await predict(qaPeft, qaExamples));
      const best = first![1];
      const answer = (a.json() as { data: { answer: string; score: number }[] }).data[0]!;
      assert.equal(answer.answer, best.answer);
      assert.ok(Math.abs(answer.score - best.score) < 1e-5);
    } finally {
      await tagServer.close();
      await qaServer.close();
    }
  });
});

describe("stacked LoRA graph", () => {
  it("gives each row its own adapter's output: ranks and scalings differ, slot 0 is the base, freed slots are reused", async () => {
    const { LoraStack, isStackable } = await import("../src/serve/stacked-lora.js");
    const { compile } = await import("../src/runtime/session.js");
    const { int64 } = await import("../src/ir/tensor.js");
    const { seededRandom } = await import("../src/ir/random.js");
    const model = await loadModel(BERT, { task: "sequence-classification" });
    const peft = new PeftModel(model);
    peft.addAdapter("x", { peft_type: "LORA", r: 4, lora_alpha: 8, target_modules: ["query", "value"] });
    peft.addAdapter("y", { peft_type: "LORA", r: 2, lora_alpha: 3, use_rslora: true, target_modules: ["value"] });
    const rand = seededRandom(3);
    for (const n of ["x", "y"]) for (const t of peft.adapters.get(n)!.tensors.values()) (t.data as Float32Array).forEach((v, i, d) => (d[i] = v + (rand() - 0.5) * 0.5));
    const adapters = ["x", "y"].map((n) => peft.adapters.get(n)!);
    assert.ok(adapters.every(isStackable));
    const batch = model.tokenizer!.encodeBatch(TEXTS, { paddingSide: "right" });
    const stack = new LoraStack(model);
    // A third adapter first takes slot 2 and leaves it (zeroed), so "y" reuses the slot.
    peft.addAdapter("z", { peft_type: "LORA", r: 8, lora_alpha: 8, target_modules: ["query"] });
    for (const t of peft.adapters.get("z")!.tensors.values()) (t.data as Float32Array).fill(0.3);
    assert.deepEqual([stack.add("x", adapters[0]!), stack.add("z", peft.adapters.get("z")!)], [1, 2]);
    stack.remove("z");
    assert.equal(stack.add("y", adapters[1]!), 2);
    assert.throws(() => stack.slotOf("z"), /no adapter "z"/);
    const step = await compile({ logits: stack.build().outputs.logits! }, { threads: 1 });
    const { feeds, adapterIndex } = stack.feeds([2, 0, 1]);
    assert.deepEqual(adapterIndex, [0, 1, 2], "rows index the batch's own compacted slots");
    const repeated = stack.feeds([2, 2, 0]);
    assert.deepEqual(repeated.adapterIndex, [0, 0, 1]);
    assert.ok(Object.values(repeated.feeds).every((t) => t.shape[0] === 2), "a batch feeds one table row per distinct adapter, not every loaded one");
    assert.equal(stack.feeds([2, 2, 0]), repeated, "the same rows reuse the last compaction (a decode loop)");
    const stacked = (await step.run({ ...model.prepareInputs(batch), ...feeds, adapter_index: int64([3], adapterIndex) })).logits!.data as Float32Array;
    await step.release();
    stack.remove("y");
    assert.notEqual(stack.feeds([2, 2, 0]), repeated, "a slot written since makes a fresh compaction");
    const alone = async (n: string | undefined) => {
      if (n) peft.setAdapter(n);
      const out = n ? await peft.forward(batch) : await peft.withAdaptersDisabled(() => peft.forward(batch));
      return out.logits!.data as Float32Array;
    };
    const expectRows = [await alone("y"), await alone(undefined), await alone("x")];
    expectRows.forEach((full, r) => {
      for (let c = 0; c < 3; c++) assert.ok(Math.abs(stacked[r * 3 + c]! - full[r * 3 + c]!) < 1e-5, `row ${r} class ${c}: ${stacked[r * 3 + c]} vs ${full[r * 3 + c]}`);
    });
    await peft.releaseSessions();
  });
});
