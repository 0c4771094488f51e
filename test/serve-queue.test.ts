// The server's queue and adapter cache on their own, with stand-in work: batches group requests,
// a full queue answers 429 with Retry-After, a disconnected request leaves the queue, and
// unloading a busy adapter waits for its leases.
import assert from "node:assert/strict";
import { mkdtemp, mkdir, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { AdapterRegistry, type AdapterLoader } from "../src/serve/adapter-registry.js";
import { Cancelled, ServeError } from "../src/serve/errors.js";
import { BatchScheduler, type Job } from "../src/serve/scheduler.js";

interface TestJob extends Job<string> {
  name: string;
}

/** A scheduler whose runs wait for `open()`; records each batch's job names. */
function gated(opts: { maxQueue?: number; maxBatch?: number; deadlineMs?: number; batchWaitMs?: number; incoming?: () => number } = {}) {
  const batches: string[][] = [];
  let open: () => void = () => {};
  let gate = new Promise<void>((r) => (open = r));
  const s = new BatchScheduler<TestJob>({
    maxQueue: opts.maxQueue ?? 10,
    maxBatch: opts.maxBatch ?? 4,
    deadlineMs: opts.deadlineMs ?? 60_000,
    batchWaitMs: opts.batchWaitMs,
    incoming: opts.incoming,
    run: async (jobs) => {
      batches.push(jobs.map((j) => j.name));
      await gate;
      return jobs.map((j) => `done ${j.name}`);
    },
  });
  const job = (name: string, group = "mixed", rows = 1, signal = new AbortController().signal): TestJob => ({ name, group, rows, signal });
  return {
    s,
    batches,
    job,
    open: () => {
      open();
      gate = Promise.resolve();
    },
  };
}

describe("serve scheduler", () => {
  it("waits (up to --batch-wait-ms) for requests on their way, and for as many rows as the last batch had", async () => {
    let incoming = 2;
    const { s, batches, job, open } = gated({ batchWaitMs: 60_000, incoming: () => incoming });
    open();
    const first = s.submit(job("a"));
    await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(batches, [], "two requests are on their way: the batch waits");
    const more = [s.submit(job("b")), s.submit(job("c"))];
    incoming = 0;
    await Promise.all([first, ...more]);
    assert.deepEqual(batches, [["a", "b", "c"]]);
    // The last batch had 3 rows: one request alone waits for the next two (no request is on its way).
    const d = s.submit(job("d"));
    await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(batches.length, 1);
    await Promise.all([d, s.submit(job("e")), s.submit(job("f"))]);
    assert.deepEqual(batches, [["a", "b", "c"], ["d", "e", "f"]]);
  });

  it("runs requests that arrive together as one batch, per group, up to --max-batch rows", async () => {
    const { s, batches, job, open } = gated({ maxBatch: 3 });
    open();
    const results = await Promise.all([s.submit(job("a")), s.submit(job("b")), s.submit(job("x", "alone:x")), s.submit(job("c")), s.submit(job("d", "mixed", 2))]);
    assert.deepEqual(results, ["done a", "done b", "done x", "done c", "done d"]);
    assert.deepEqual(batches, [["a", "b", "c"], ["x"], ["d"]]);
  });

  it("answers 429 with Retry-After when the queue is full", async () => {
    const { s, job, open } = gated({ maxQueue: 2, maxBatch: 1 });
    const first = s.submit(job("1"));
    await new Promise((r) => setImmediate(r)); // "1" is running now
    const queued = [s.submit(job("2")), s.submit(job("3"))];
    await assert.rejects(s.submit(job("4")), (e: ServeError) => e.status === 429 && e.headers["retry-after"] === "1");
    open();
    assert.deepEqual(await Promise.all([first, ...queued]), ["done 1", "done 2", "done 3"]);
  });

  it("drops a request whose client went away, and times out one past its deadline", async () => {
    const { s, batches, job, open } = gated({ maxBatch: 1, deadlineMs: 50 });
    const first = s.submit(job("1"));
    await new Promise((r) => setImmediate(r));
    const ac = new AbortController();
    const gone = s.submit(job("2", "mixed", 1, ac.signal));
    ac.abort();
    await assert.rejects(gone, Cancelled);
    assert.equal(s.depth, 0);
    await assert.rejects(first, (e: ServeError) => e.status === 504);
    open();
    await s.idle();
    assert.deepEqual(batches, [["1"]]);
  });
});

describe("serve adapter registry", () => {
  async function root(names: string[]): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), "peftjs-registry-"));
    for (const n of names) {
      await mkdir(join(dir, n));
      await writeFile(join(dir, n, "adapter_config.json"), "{}");
    }
    return dir;
  }
  const events: string[] = [];
  const loader: AdapterLoader<string> = {
    load: async (path, internal) => {
      events.push(`load ${internal}`);
      return { value: path, bytes: 10 };
    },
    unload: async (_v, internal) => void events.push(`unload ${internal}`),
  };

  it("waits for a busy adapter's requests before unloading it; new requests get the new version", async () => {
    events.length = 0;
    const r = new AdapterRegistry(loader, { root: await root(["a"]), maxLoaded: 4, maxBytes: 1000 });
    const lease = await r.acquire("a");
    let unloaded = false;
    const unloading = r.unload("a").then(() => (unloaded = true));
    for (let i = 0; i < 5; i++) await new Promise((res) => setImmediate(res));
    assert.equal(unloaded, false, "unload waits while a request holds the adapter");
    assert.deepEqual(events, ["load a@1"]);
    const next = await r.acquire("a");
    assert.equal(next.adapter.version, 2, "a request after the unload loads a new version");
    lease.release();
    await unloading;
    assert.deepEqual(events, ["load a@1", "load a@2", "unload a@1"]);
    next.release();
  });

  it("shares one load between concurrent first uses and evicts the least recently used idle adapter", async () => {
    events.length = 0;
    const r = new AdapterRegistry(loader, { root: await root(["a", "b", "c"]), maxLoaded: 2, maxBytes: 1000 });
    const [x, y] = await Promise.all([r.acquire("a"), r.acquire("a")]);
    assert.equal(x.adapter, y.adapter);
    x.release();
    y.release();
    (await r.acquire("b")).release();
    (await r.acquire("a")).release();
    (await r.acquire("c")).release(); // evicts b (least recently used)
    await new Promise((res) => setImmediate(res));
    assert.deepEqual(events, ["load a@1", "load b@2", "load c@3", "unload b@2"]);
    assert.deepEqual(r.loadedAdapters.map((a) => a.name).sort(), ["a", "c"]);
  });
});
