// `peftjs serve`: one frozen base model, many adapters, one process, OpenAI / vLLM-compatible
// HTTP. Bodies are validated at the edge (Fastify JSON schemas); each request's state (adapter
// lease, abort signal, deadline) lives in one object that travels through the scheduler; a bad
// request or a bad adapter ends that request only.
//
// @example
//   const server = await createServer({ model: "./bert-tiny", adapters: "./adapters", logLevel: "silent" });
//   const url = await server.listen(); // http://127.0.0.1:8080
//   await fetch(`${url}/v1/classify`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ model: "sentiment", input: "great" }) });
//   await server.close(); // drains in-flight requests
import { randomUUID } from "node:crypto";
import { readFile } from "node:fs/promises";
import { basename, join, resolve } from "node:path";
import Fastify, { LogController, type FastifyInstance, type FastifyReply, type FastifyRequest } from "fastify";
import { pino } from "pino";
import { parseOptions } from "../cli/options.js";
import { loadModel, type PretrainedModel } from "../models/pretrained.js";
import { TASK_TYPES, type Task } from "../models/task.js";
import { ADAPTER_CONFIG, PeftModel, readAdapterLabels } from "../peft/peft-model.js";
import { classificationExamples, questionAnsweringExamples, tokenClassificationExamples, type Example } from "../train/data.js";
import { bestWindows } from "../train/predict.js";
import { AdapterRegistry, type AdapterLoader, type Lease } from "./adapter-registry.js";
import { BATCHED, DecoderEngine, type Completion, type DecoderAdapter, type Sampling } from "./decoder-engine.js";
import { EncoderEngine, type EncoderAdapter, type EncoderJob, type EncoderResult } from "./encoder-engine.js";
import { Cancelled, ServeError } from "./errors.js";
import { ServeMetrics } from "./metrics.js";
import { BatchScheduler, type Job } from "./scheduler.js";
import { SERVE_OPTIONS, type ServeOptions } from "./serve-options.js";
import * as schemas from "./schemas.js";

export interface PeftServer {
  readonly app: FastifyInstance;
  readonly options: ServeOptions;
  /** The base model's name: `model` naming it (or nothing else) means no adapter. */
  readonly baseName: string;
  readonly metrics: ServeMetrics;
  /** Listen on --host / --port; resolves with the base URL. */
  listen(): Promise<string>;
  /** Stop taking requests, finish those in flight, free sessions. */
  close(): Promise<void>;
}

/** Per-request state, created at the edge and carried to the end of the request. */
interface RequestState {
  readonly id: string;
  readonly started: number;
  readonly abort: AbortController;
  endpoint: string;
  adapter: string;
  /** An encoder request not yet queued (its body is arriving or being tokenized). */
  preparing: boolean;
}

/** Routes whose requests go to the encoder queue. */
const ENCODER_ROUTES = new Set(["/v1/classify", "/v1/token_classify", "/v1/question_answering", "/v1/embeddings"]);

type AnyLease = Lease<EncoderAdapter> | Lease<DecoderAdapter>;

/** Create the server (not listening yet: `app.inject` works for tests). Options as `peftjs serve` takes them. */
export async function createServer(input: Partial<ServeOptions> & { model: string }): Promise<PeftServer> {
  const opts = parseOptions(SERVE_OPTIONS, input as Record<string, unknown>);
  const logger = pino({ level: opts.quiet ? "silent" : opts.logLevel, base: { service: "peftjs-serve" } });
  const named = Object.fromEntries(
    (opts.adapter ?? []).map((spec) => {
      const i = spec.indexOf("=");
      if (i <= 0 || i === spec.length - 1) throw new ServeError(400, `--adapter: expected name=path, got ${JSON.stringify(spec)}`);
      return [spec.slice(0, i), spec.slice(i + 1)];
    }),
  );
  const firstAdapter = Object.values(named)[0] ?? (opts.adapters ? await firstSubfolderAdapter(opts.adapters) : undefined);
  const task = opts.task ?? (firstAdapter ? await adapterTask(firstAdapter) : undefined);
  const model = await loadModel(opts.model, { task, quantize: opts.quantize });
  // The head is sized for the adapters' classes (every adapter of one server has the same count).
  const labels = firstAdapter && (model.task === "sequence-classification" || model.task === "token-classification") ? await readAdapterLabels(firstAdapter).catch(() => undefined) : undefined;
  if (labels) (model.config as { numLabels: number }).numLabels = labels.length;
  const baseName = basename(resolve(opts.model));
  const metrics = new ServeMetrics();
  const maxLength = Math.min(opts.maxLength ?? 512, model.maxInputLength);
  const decoder =
    model.task === "causal-lm"
      ? await DecoderEngine.create(model, {
          maxBatch: opts.maxBatch,
          threads: opts.threads,
          onRun: (kind, rows) => metrics.batchRows.observe({ queue: kind === "decode" ? "generate" : "prefill" }, rows),
        })
      : undefined;
  const encoder = decoder ? undefined : new EncoderEngine(new PeftModel(model), opts.threads);
  const engine = (decoder ?? encoder!) as AdapterLoader<EncoderAdapter | DecoderAdapter>;
  const registry = new AdapterRegistry<EncoderAdapter | DecoderAdapter>(engine, {
    root: opts.adapters,
    named,
    maxLoaded: opts.maxLoaded,
    maxBytes: opts.maxLoadedMb * 1024 * 1024,
    reserved: [baseName, opts.model],
    events: {
      hit: () => metrics.cache.inc({ event: "hit" }),
      miss: () => metrics.cache.inc({ event: "miss" }),
      eviction: () => metrics.cache.inc({ event: "eviction" }),
      changed: (n, bytes) => {
        metrics.adaptersLoaded.set(n);
        metrics.adapterBytes.set(bytes);
      },
    },
    log: (msg, fields) => logger.info(fields ?? {}, msg),
  });
  // Encoder requests on their way to the queue: a batch that is not full waits for them (--batch-wait-ms).
  let preparing = 0;
  const prepared = (state: RequestState) => {
    if (state.preparing) preparing--;
    state.preparing = false;
  };
  const encoderQueue = new BatchScheduler<EncoderJob>({
    maxQueue: opts.maxQueue,
    maxBatch: opts.maxBatch,
    deadlineMs: opts.deadlineMs,
    batchWaitMs: opts.batchWaitMs,
    incoming: () => preparing,
    run: (jobs) => encoder!.run(jobs),
    onQueueDepth: (d) => metrics.queueDepth.set({ queue: "encoder" }, d),
    onBatch: (rows, jobs) => {
      metrics.batchRows.observe({ queue: "encoder" }, rows);
      metrics.batchRequests.observe({ queue: "encoder" }, jobs);
    },
  });
  interface GenerateJob extends Job<{ done: Promise<Completion[]> }> {
    start: () => { admitted: Promise<void>; done: Promise<Completion[]> };
  }
  // Requests leave this queue when the running batch takes them in (continuous batching: it has
  // room between decode steps); an adapter that cannot share the batch generates alone, and the
  // queue waits for it. The jobs of one take join together (in order) or, alone, one after another.
  const generateQueue = new BatchScheduler<GenerateJob>({
    maxQueue: opts.maxQueue,
    maxBatch: opts.maxBatch,
    deadlineMs: opts.deadlineMs,
    run: async (jobs) => {
      const started: ReturnType<GenerateJob["start"]>[] = [];
      for (const j of jobs) {
        const s = j.start();
        // The request may have left (deadline, disconnect) by the time it ends; its caller may not be listening.
        s.done.catch(() => undefined);
        started.push(s);
        if (j.group !== BATCHED) await s.admitted;
      }
      await Promise.all(started.map((s) => s.admitted));
      return started.map((s) => ({ done: s.done }));
    },
    onQueueDepth: (d) => metrics.queueDepth.set({ queue: "generate" }, d),
    onBatch: (_rows, jobs) => metrics.batchRequests.observe({ queue: "generate" }, jobs),
  });

  // The cast: Fastify types the instance by its pino logger's generics, which callers need not see.
  const app = Fastify({
    loggerInstance: logger,
    bodyLimit: opts.bodyLimitKb * 1024,
    // One log line per request is ours (with the adapter and status); Fastify's own are off.
    logController: new LogController({ disableRequestLogging: true }),
    genReqId: () => randomUUID(),
    // Wrong types are errors, not coerced; unknown fields of OpenAI bodies pass (clients send extras).
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, allErrors: false } },
  }) as unknown as FastifyInstance;
  const states = new WeakMap<FastifyRequest, RequestState>();
  const stateOf = (req: FastifyRequest) => states.get(req)!;
  let closing = false;

  app.addHook("onRequest", async (req, reply) => {
    const state: RequestState = { id: req.id, started: performance.now(), abort: new AbortController(), endpoint: req.routeOptions.url ?? "unknown", adapter: "", preparing: false };
    states.set(req, state);
    if (encoder && ENCODER_ROUTES.has(state.endpoint)) {
      state.preparing = true;
      preparing++;
    }
    // The response closed before it finished: the client went away; drop its work.
    reply.raw.once("close", () => {
      prepared(state);
      if (!reply.raw.writableFinished) state.abort.abort();
      const status = reply.raw.writableFinished ? String(reply.raw.statusCode) : "disconnected";
      metrics.requests.inc({ endpoint: state.endpoint, adapter: state.adapter, status });
      metrics.latency.observe({ endpoint: state.endpoint, adapter: state.adapter }, (performance.now() - state.started) / 1000);
      logger.info({ reqId: state.id, endpoint: state.endpoint, adapter: state.adapter, status, ms: +(performance.now() - state.started).toFixed(1) }, "request");
    });
    if (closing && req.url !== "/metrics") throw new ServeError(503, "the server is shutting down");
    if (opts.apiKey && req.url.startsWith("/v1/") && req.headers.authorization !== `Bearer ${opts.apiKey}`) throw new ServeError(401, "missing or wrong API key (Authorization: Bearer <key>)", "AuthenticationError");
  });

  // While draining, each answered request closes its connection (keep-alive would hold close() open).
  app.addHook("onSend", async (_req, reply) => {
    if (closing) reply.header("connection", "close");
  });

  app.setErrorHandler((err: Error & { statusCode?: number; validation?: unknown; code?: string }, req, reply) => {
    if (err instanceof Cancelled) return reply.code(499).send({ error: { message: err.message, type: "Cancelled", code: 499 } });
    let status = err instanceof ServeError ? err.status : (err.statusCode ?? 500);
    if (status < 400 || status > 599) status = 500;
    if (status >= 500 && !(err instanceof ServeError)) logger.error({ reqId: req.id, err }, "request failed");
    const type = err instanceof ServeError ? err.type : err.validation ? "BadRequestError" : status === 413 ? "PayloadTooLargeError" : status >= 500 ? "ServerError" : "BadRequestError";
    const message = status === 500 && !(err instanceof ServeError) ? `internal error: ${err.message}` : err.message;
    if (err instanceof ServeError) reply.headers(err.headers);
    return reply.code(status).send({ error: { message, type, code: status } });
  });
  app.setNotFoundHandler((req, reply) => reply.code(404).send({ error: { message: `no route ${req.method} ${req.url}`, type: "NotFoundError", code: 404 } }));

  /** Hold the adapter `name` (undefined for the base model) for the rest of the request. */
  const acquire = async (req: FastifyRequest, reply: FastifyReply, name: string): Promise<AnyLease | undefined> => {
    const state = stateOf(req);
    state.adapter = name;
    if (name === baseName || name === opts.model) {
      state.adapter = baseName;
      reply.header("x-peftjs-adapter", `${baseName}@0`);
      return undefined;
    }
    const lease = (await registry.acquire(name)) as AnyLease;
    reply.raw.once("close", () => lease.release());
    reply.header("x-peftjs-adapter", `${name}@${lease.adapter.version}`);
    return lease;
  };
  const adapterInfo = (lease: AnyLease | undefined) => ({ name: lease?.adapter.name ?? baseName, version: lease?.adapter.version ?? 0 });
  const needTask = (endpoint: string, ok: readonly Task[]) => {
    if (!ok.includes(model.task)) throw new ServeError(400, `${endpoint} needs a model served for ${ok.join(" or ")}; this server's base is ${model.task} (--task)`);
  };
  const tokenizer = () => {
    if (!model.tokenizer) throw new ServeError(400, `the model ${model.dir} has no tokenizer.json`);
    return model.tokenizer;
  };
  const runEncoder = (req: FastifyRequest, lease: Lease<EncoderAdapter> | undefined, kind: EncoderJob["kind"], examples: Example[]) => {
    prepared(stateOf(req));
    return encoderQueue.submit<EncoderResult>({ kind, examples, lease, rows: examples.length, group: encoder!.group(lease?.adapter.value), signal: stateOf(req).abort.signal });
  };
  const labelName = (lease: Lease<EncoderAdapter> | undefined) => {
    const names = lease?.adapter.value.labels ?? encoder!.peft.labelNames(undefined as unknown as string);
    return (id: number) => names?.[id] ?? model.config.id2label[id] ?? String(id);
  };

  app.get("/health", async () => ({ status: "ok", model: baseName, task: model.task, loaded_adapters: registry.loadedAdapters.length }));
  app.get("/metrics", async (_req, reply) => reply.type(metrics.registry.contentType).send(await metrics.registry.metrics()));

  app.get("/v1/models", async () => {
    const created = Math.floor(Date.now() / 1000);
    const loaded = new Map(registry.loadedAdapters.map((a) => [a.name, a]));
    const names = await registry.names();
    return {
      object: "list",
      data: [
        { id: baseName, object: "model", created, owned_by: "peftjs", root: model.dir, parent: null, task: model.task },
        ...names.map((n) => ({ id: n, object: "model", created, owned_by: "peftjs", root: loaded.get(n)?.path ?? null, parent: baseName, loaded: loaded.has(n), version: loaded.get(n)?.version ?? null })),
      ],
    };
  });

  app.post("/v1/load_lora_adapter", { schema: { body: schemas.loadAdapter } }, async (req) => {
    const { lora_name, lora_path } = req.body as { lora_name: string; lora_path: string };
    stateOf(req).adapter = lora_name;
    const entry = await registry.load(lora_name, lora_path);
    return { status: "ok", message: `Success: LoRA adapter '${lora_name}' added successfully.`, lora_name, version: entry.version };
  });
  app.post("/v1/unload_lora_adapter", { schema: { body: schemas.unloadAdapter } }, async (req) => {
    const { lora_name } = req.body as { lora_name: string };
    stateOf(req).adapter = lora_name;
    await registry.unload(lora_name);
    return { status: "ok", message: `Success: LoRA adapter '${lora_name}' removed successfully.`, lora_name };
  });

  app.post("/v1/classify", { schema: { body: schemas.classify } }, async (req, reply) => {
    needTask("/v1/classify", ["sequence-classification"]);
    const body = req.body as { model: string; input: string | string[] };
    const texts = typeof body.input === "string" ? [body.input] : body.input;
    const { examples } = classificationExamples(texts.map((text) => ({ text })), tokenizer(), { maxLength, labelled: false, source: "input" });
    const lease = (await acquire(req, reply, body.model)) as Lease<EncoderAdapter> | undefined;
    const { predictions } = await runEncoder(req, lease, "predict", examples);
    const name = labelName(lease);
    return {
      id: `classify-${req.id}`,
      object: "list",
      model: body.model,
      adapter: adapterInfo(lease),
      data: predictions!.map((p, index) => {
        const { label, probabilities } = p as { label: number; probabilities: number[] };
        return { index, label: name(label), probabilities: Object.fromEntries(probabilities.map((x, i) => [name(i), x])) };
      }),
      usage: { prompt_tokens: examples.reduce((n, e) => n + e.ids.length, 0) },
    };
  });

  app.post("/v1/token_classify", { schema: { body: schemas.classify } }, async (req, reply) => {
    needTask("/v1/token_classify", ["token-classification"]);
    const body = req.body as { model: string; input: string | string[] };
    const words = (typeof body.input === "string" ? [body.input] : body.input).map((t) => t.split(/\s+/).filter(Boolean));
    if (words.some((w) => w.length === 0)) throw new ServeError(400, "input: every text needs at least one word");
    const { examples } = tokenClassificationExamples(words.map((tokens) => ({ tokens })), tokenizer(), { maxLength, labelled: false, source: "input" });
    const lease = (await acquire(req, reply, body.model)) as Lease<EncoderAdapter> | undefined;
    const { predictions } = await runEncoder(req, lease, "predict", examples);
    const name = labelName(lease);
    return {
      object: "list",
      model: body.model,
      adapter: adapterInfo(lease),
      data: predictions!.map((p, index) => {
        // One tag per word, from its first sub-token (as `peftjs predict`); words cut off by the length limit get null.
        const firsts = examples[index]!.tokenLabels!.flatMap((y, t) => (y === -100 ? [] : [t]));
        const tags = (p as { tokenLabels: number[] }).tokenLabels;
        return { index, tokens: words[index], tags: words[index]!.map((_, w) => (w < firsts.length ? name(tags[firsts[w]!]!) : null)) };
      }),
    };
  });

  app.post("/v1/question_answering", { schema: { body: schemas.questionAnswering } }, async (req, reply) => {
    needTask("/v1/question_answering", ["question-answering"]);
    const body = req.body as { model: string; input: { question: string; context: string } | { question: string; context: string }[] };
    const records = Array.isArray(body.input) ? body.input : [body.input];
    const examples = questionAnsweringExamples(records, tokenizer(), { maxLength, labelled: false, source: "input" });
    const lease = (await acquire(req, reply, body.model)) as Lease<EncoderAdapter> | undefined;
    const { predictions } = await runEncoder(req, lease, "predict", examples);
    return {
      object: "list",
      model: body.model,
      adapter: adapterInfo(lease),
      data: bestWindows(examples, predictions!).map(([i, p]) => ({ index: examples[i]!.group ?? 0, question: records[examples[i]!.group ?? 0]!.question, answer: p.answer, score: p.score })),
    };
  });

  app.post("/v1/embeddings", { schema: { body: schemas.embeddings } }, async (req, reply) => {
    if (decoder) throw new ServeError(400, "/v1/embeddings needs an encoder base model; this server generates text (causal-lm)");
    const body = req.body as { model: string; input: string | string[]; encoding_format?: "float" | "base64" };
    const texts = typeof body.input === "string" ? [body.input] : body.input;
    const { examples } = classificationExamples(texts.map((text) => ({ text })), tokenizer(), { maxLength, labelled: false, source: "input" });
    const lease = (await acquire(req, reply, body.model)) as Lease<EncoderAdapter> | undefined;
    const { embeddings } = await runEncoder(req, lease, "embed", examples);
    const tokens = examples.reduce((n, e) => n + e.ids.length, 0);
    return {
      object: "list",
      model: body.model,
      adapter: adapterInfo(lease),
      data: embeddings!.map((v, index) => ({ object: "embedding", index, embedding: body.encoding_format === "base64" ? Buffer.from(Float32Array.from(v).buffer).toString("base64") : v })),
      usage: { prompt_tokens: tokens, total_tokens: tokens },
    };
  });

  // ---- Completions ----

  interface SamplingBody {
    model: string;
    max_tokens?: number;
    max_completion_tokens?: number;
    temperature?: number;
    top_p?: number;
    stop?: string | string[] | null;
    seed?: number;
    n?: number;
    stream?: boolean;
    stream_options?: { include_usage?: boolean } | null;
  }
  const sampling = (b: SamplingBody): Sampling => ({
    maxTokens: b.max_completion_tokens ?? b.max_tokens ?? 16,
    temperature: b.temperature ?? 1,
    topP: b.top_p,
    stop: b.stop == null ? [] : typeof b.stop === "string" ? [b.stop] : b.stop,
    seed: b.seed ?? Math.floor(Math.random() * 2 ** 31),
    n: b.n ?? 1,
  });

  /** Generate for each prompt (one queued request), streaming by SSE or answering once. */
  const complete = async (req: FastifyRequest, reply: FastifyReply, body: SamplingBody, prompts: string[], chat: boolean) => {
    needTask(chat ? "/v1/chat/completions" : "/v1/completions", ["causal-lm"]);
    const s = sampling(body);
    const lease = (await acquire(req, reply, body.model)) as Lease<DecoderAdapter> | undefined;
    const state = stateOf(req);
    const deadline = state.started + opts.deadlineMs;
    const id = `${chat ? "chatcmpl" : "cmpl"}-${req.id}`;
    const created = Math.floor(Date.now() / 1000);
    const object = chat ? "chat.completion" : "text_completion";
    const adapter = adapterInfo(lease);
    const shouldStop = () => (state.abort.signal.aborted ? new Cancelled() : performance.now() > deadline ? new ServeError(504, `the request did not finish within its deadline of ${opts.deadlineMs} ms`, "TimeoutError") : undefined);
    const count = (n: number) => metrics.tokens.inc({ adapter: adapter.name }, n);
    const run = async (onText?: (choice: number, delta: string) => void) => {
      const { done } = await generateQueue.submit<{ done: Promise<Completion[]> }>({
        rows: prompts.length * s.n,
        group: decoder!.group(lease?.adapter.value),
        signal: state.abort.signal,
        start: () => decoder!.start(lease?.adapter.value, prompts, s, { shouldStop, onText }),
      });
      const c = await done;
      const completion = c.reduce((n, x) => n + x.completionTokens, 0);
      count(completion);
      return { texts: c.flatMap((x) => x.texts), finish: c.flatMap((x) => x.finishReasons), prompt: c.reduce((n, x) => n + x.promptTokens, 0), completion };
    };
    const usage = (r: { prompt: number; completion: number }) => ({ prompt_tokens: r.prompt, completion_tokens: r.completion, total_tokens: r.prompt + r.completion });
    if (!body.stream) {
      const r = await run();
      return {
        id,
        object,
        created,
        model: body.model,
        adapter,
        choices: r.texts.map((text, index) => (chat ? { index, message: { role: "assistant", content: text }, finish_reason: r.finish[index], logprobs: null } : { index, text, finish_reason: r.finish[index], logprobs: null })),
        usage: usage(r),
      };
    }
    // Server-sent events: one chunk per piece of new text, then finish reasons, usage, [DONE].
    reply.hijack();
    const raw = reply.raw;
    raw.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", connection: closing ? "close" : "keep-alive", "x-peftjs-adapter": `${adapter.name}@${adapter.version}` });
    const chunkObject = chat ? "chat.completion.chunk" : "text_completion";
    const send = (data: unknown) => raw.writableEnded || raw.destroyed || raw.write(`data: ${JSON.stringify(data)}\n\n`);
    const chunk = (index: number, delta: string | undefined, finish: string | null, first = false) =>
      send({ id, object: chunkObject, created, model: body.model, adapter, choices: [chat ? { index, delta: first ? { role: "assistant", content: "" } : delta === undefined ? {} : { content: delta }, finish_reason: finish, logprobs: null } : { index, text: delta ?? "", finish_reason: finish, logprobs: null }] });
    if (chat) for (let i = 0; i < prompts.length * s.n; i++) chunk(i, undefined, null, true);
    try {
      const r = await run((index, delta) => chunk(index, delta, null));
      r.finish.forEach((f, index) => chunk(index, undefined, f));
      if (body.stream_options?.include_usage) send({ id, object: chunkObject, created, model: body.model, adapter, choices: [], usage: usage(r) });
    } catch (e) {
      if (!(e instanceof Cancelled)) {
        const status = e instanceof ServeError ? e.status : 500;
        send({ error: { message: (e as Error).message, type: e instanceof ServeError ? e.type : "ServerError", code: status } });
      }
    }
    if (!raw.writableEnded && !raw.destroyed) raw.end("data: [DONE]\n\n");
    return reply;
  };

  app.post("/v1/completions", { schema: { body: schemas.completions } }, async (req, reply) => {
    const body = req.body as SamplingBody & { prompt: string | string[] };
    return complete(req, reply, body, typeof body.prompt === "string" ? [body.prompt] : body.prompt, false);
  });
  app.post("/v1/chat/completions", { schema: { body: schemas.chat } }, async (req, reply) => {
    const body = req.body as SamplingBody & { messages: { role: string; content: string }[] };
    needTask("/v1/chat/completions", ["causal-lm"]);
    return complete(req, reply, body, [decoder!.renderChat(body.messages)], true);
  });

  let url: string | undefined;
  return {
    app,
    options: opts,
    baseName,
    metrics,
    async listen() {
      url = await app.listen({ host: opts.host, port: opts.port });
      logger.info({ url, model: model.dir, task: model.task }, "listening");
      return url;
    },
    async close() {
      if (closing) return;
      closing = true;
      // Fastify answers new requests 503 while closing and waits for those in flight.
      const closed = app.close();
      await encoderQueue.idle();
      await generateQueue.idle();
      app.server.closeIdleConnections();
      await closed;
      await encoderQueue.idle();
      await generateQueue.idle();
      await registry.close();
      await encoder?.release();
      await decoder?.release();
      logger.info({}, "closed");
    },
  };
}

/** The first subfolder of the adapter root holding an adapter, for the task and head size. */
async function firstSubfolderAdapter(root: string): Promise<string | undefined> {
  const { readdir } = await import("node:fs/promises");
  const dirs = (await readdir(root, { withFileTypes: true })).filter((d) => d.isDirectory()).map((d) => d.name).sort();
  for (const d of dirs) {
    const ok = await readFile(join(root, d, ADAPTER_CONFIG), "utf8").then(() => true, () => false);
    if (ok) return join(root, d);
  }
  return undefined;
}

/** The task an adapter was trained for (its task_type), if peftjs knows it. */
async function adapterTask(dir: string): Promise<Task | undefined> {
  try {
    const taskType = (JSON.parse(await readFile(join(dir, ADAPTER_CONFIG), "utf8")) as { task_type?: unknown }).task_type;
    const task = Object.entries(TASK_TYPES).find(([, t]) => t !== null && t === taskType)?.[0];
    return task === "base" ? undefined : (task as Task | undefined);
  } catch {
    return undefined;
  }
}

export type { PretrainedModel };
