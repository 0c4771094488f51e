// Hub downloads against a local hub served on 127.0.0.1 that mimics the endpoints @huggingface/hub
// calls (model info for the commit, tree listing, paths-info for blob ids, resolve with ETag and
// Content-Range): Python's cache layout, offline second loads, moved branches, retries, and a
// hostile hub whose shard index or blob ids try to escape the cache.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { createServer, type IncomingMessage, type Server } from "node:http";
import { existsSync, lstatSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync } from "node:fs";
import { type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { after, describe, it } from "node:test";
import { loadModel } from "../models/pretrained.js";
import { checkRepoFileName, HubError, repoCacheDir, resolveCheckpoint, snapshotDir } from "./hub.js";
import { loadSafetensorsWeights, readSafetensors, writeShardedSafetensors } from "./safetensors.js";

const SOURCE = join(import.meta.dirname, "..", "..", "test", "fixtures", "models", "bert-tiny");
const REPO = "org/bert-tiny";
const sourceFiles = () => new Map(["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"].map((f) => [f, readFileSync(join(SOURCE, f))]));

const roots: string[] = [];
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), "peftjs-hub-"));
  roots.push(d);
  return d;
};
after(() => roots.forEach((d) => rmSync(d, { recursive: true, force: true })));

const sha = (alg: "sha1" | "sha256", ...parts: (string | Buffer)[]) => parts.reduce((h, p) => h.update(p), createHash(alg)).digest("hex");
/** What the hub stores per file: a git blob id, and for LFS files (the weights) the sha256 of the content. */
const ids = (path: string, body: Buffer) => ({
  oid: sha("sha1", `blob ${body.length}\0`, body),
  ...(path.endsWith(".safetensors") ? { lfs: { oid: sha("sha256", body), size: body.length, pointerSize: 134 } } : {}),
});

/** One repo whose branch `main` can be moved to a new commit with new files. */
interface HubState {
  commit: string;
  files: Map<string, Buffer>;
  /** Cut the connection in the middle of the first full download of this file. */
  dropFirst?: string;
  /** Blob ids paths-info reports instead of the real ones. */
  fakeOid?: Record<string, string>;
  /** Commit the model-info API reports instead of the real one. */
  fakeSha?: string;
  /** Serve this file with 4 MiB more than the listing says. */
  inflate?: string;
}

async function body(req: IncomingMessage): Promise<string> {
  let text = "";
  for await (const chunk of req) text += chunk;
  return text;
}

async function serveHub(state: HubState): Promise<{ server: Server; url: string; requests: string[] }> {
  const requests: string[] = [];
  const dropped = new Set<string>();
  const json = (res: import("node:http").ServerResponse, status: number, value: unknown, headers: Record<string, string> = {}) =>
    res.writeHead(status, { "content-type": "application/json", ...headers }).end(JSON.stringify(value));
  const server = createServer((req, res) => {
    void (async () => {
      const url = new URL(req.url ?? "/", "http://x");
      const path = decodeURIComponent(url.pathname);
      requests.push(`${req.method} ${path}${req.headers.range ? ` ${req.headers.range}` : ""}`);
      const entry = (p: string) => ({ type: "file", path: p, size: state.files.get(p)!.length, ...ids(p, state.files.get(p)!) });
      let m: RegExpExecArray | null;
      if ((m = /^\/api\/models\/org\/bert-tiny\/revision\/([^/]+)$/.exec(path))) {
        if (m[1] !== "main" && m[1] !== state.commit) return json(res, 404, { error: "Revision Not Found" }, { "x-error-code": "RevisionNotFound" });
        return json(res, 200, { _id: "0", id: REPO, private: false, downloads: 0, likes: 0, lastModified: "2026-01-01T00:00:00.000Z", sha: state.fakeSha ?? state.commit });
      }
      if ((m = /^\/api\/models\/org\/bert-tiny\/tree\/([0-9a-f]{40})$/.exec(path))) {
        if (m[1] !== state.commit) return json(res, 404, { error: "Revision Not Found" });
        return json(res, 200, [...state.files.keys()].map(entry));
      }
      if ((m = /^\/api\/models\/org\/bert-tiny\/paths-info\/([0-9a-f]{40})$/.exec(path)) && req.method === "POST") {
        const { paths } = JSON.parse(await body(req)) as { paths: string[] };
        const found = paths.filter((p) => state.files.has(p)).map((p) => {
          const e = entry(p);
          const fake = state.fakeOid?.[p];
          return { ...e, ...(fake ? { oid: fake, lfs: undefined } : {}), lastCommit: { id: state.commit, title: "c", date: "2026-01-01T00:00:00.000Z" } };
        });
        return json(res, 200, found);
      }
      if ((m = /^\/org\/bert-tiny\/resolve\/([0-9a-f]{40})\/(.+)$/.exec(path))) {
        const stored = m[1] === state.commit ? state.files.get(m[2]!) : undefined;
        const data = stored && state.inflate === m[2] ? Buffer.concat([stored, Buffer.alloc(4 * 2 ** 20, 0x20)]) : stored;
        if (!data) return res.writeHead(404, { "x-error-code": "EntryNotFound" }).end("not found");
        const e = ids(m[2]!, stored!);
        const headers = { etag: `"${e.lfs?.oid ?? e.oid}"`, "x-repo-commit": state.commit, "accept-ranges": "bytes" };
        const range = /^bytes=(\d+)-(\d*)$/.exec(String(req.headers.range ?? ""));
        if (range) {
          const start = Number(range[1]);
          const end = range[2] ? Number(range[2]) : data.length - 1;
          return res.writeHead(206, { ...headers, "content-range": `bytes ${start}-${end}/${data.length}`, "content-length": end - start + 1 }).end(data.subarray(start, end + 1));
        }
        res.writeHead(200, { ...headers, "content-length": data.length });
        if (state.dropFirst === m[2] && !dropped.has(m[2]!)) {
          dropped.add(m[2]!);
          // Let some bytes reach the client, then cut the connection mid-body.
          res.write(data.subarray(0, data.length >> 1), () => setTimeout(() => res.socket?.destroy(), 30));
          return;
        }
        return res.end(data);
      }
      res.writeHead(404).end(`no route for ${req.method} ${path}`);
    })().catch((e: unknown) => res.writeHead(500).end(String(e)));
  });
  return new Promise((done) => server.listen(0, "127.0.0.1", () => done({ server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, requests })));
}

const stop = (server: Server) => new Promise<void>((done) => server.close(() => done()));
const COMMIT_A = "a".repeat(40);
const COMMIT_B = "b".repeat(40);

/** Every file under `root`, relative to it. */
function walk(root: string, dir = root): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((d) => (d.isDirectory() ? walk(root, join(dir, d.name)) : [relative(root, join(dir, d.name))]));
}

describe("hub downloads (@huggingface/hub cache, Python's layout)", () => {
  it("downloads into HF_HUB_CACHE from HF_ENDPOINT, pinned to the commit; a second load needs no network", async () => {
    const root = tmp();
    const cache = join(root, "hf", "hub");
    const state: HubState = { commit: COMMIT_A, files: sourceFiles() };
    const { server, url, requests } = await serveHub(state);
    const saved = { cache: process.env.HF_HUB_CACHE, endpoint: process.env.HF_ENDPOINT };
    process.env.HF_HUB_CACHE = cache;
    process.env.HF_ENDPOINT = url;
    try {
      const dir = await resolveCheckpoint(REPO);
      assert.equal(dir, join(cache, "models--org--bert-tiny", "snapshots", COMMIT_A));
      assert.equal(dir, snapshotDir(REPO, COMMIT_A));
      for (const [f, data] of state.files) {
        assert.deepEqual(readFileSync(join(dir, f)), data, f);
        // Python's layout: snapshot entries are relative links to blobs named by etag.
        const e = ids(f, data);
        assert.ok(lstatSync(join(dir, f)).isSymbolicLink(), f);
        assert.equal(readlinkSync(join(dir, f)), join("..", "..", "blobs", e.lfs?.oid ?? e.oid), f);
      }
      assert.equal(readFileSync(join(cache, "models--org--bert-tiny", "refs", "main"), "utf8"), COMMIT_A);
      assert.ok(!walk(cache).some((f) => f.endsWith(".incomplete")));
      assert.ok(requests.some((r) => r.startsWith("GET /api/models/org/bert-tiny/revision/main")), requests.join("\n"));

      // The same commit again: one request to resolve the branch, no downloads.
      const before = requests.length;
      assert.equal(await resolveCheckpoint(REPO), dir);
      assert.deepEqual(requests.slice(before).map((r) => r.split("?")[0]), ["GET /api/models/org/bert-tiny/revision/main"]);

      await stop(server);
      // Server gone: served from the cache (refs/main), as Python does; and with offline on.
      assert.equal(await resolveCheckpoint(REPO), dir);
      assert.equal(await resolveCheckpoint(REPO, { offline: true }), dir);
      assert.equal(await resolveCheckpoint(REPO, { revision: COMMIT_A, offline: true }), dir);
      const model = await loadModel(REPO, { hub: { offline: true } });
      assert.equal(model.dir, dir);
      assert.equal(model.config.hidden, 32);
    } finally {
      server.close();
      for (const [k, v] of [["HF_HUB_CACHE", saved.cache], ["HF_ENDPOINT", saved.endpoint]] as const) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
  });

  it("a branch moved to a new commit is refreshed; unchanged blobs are not downloaded again", async () => {
    const cacheDir = tmp();
    const state: HubState = { commit: COMMIT_A, files: sourceFiles() };
    const { server, url, requests } = await serveHub(state);
    try {
      const first = await resolveCheckpoint(REPO, { endpoint: url, cacheDir });
      const config = JSON.parse(state.files.get("config.json")!.toString()) as Record<string, unknown>;
      state.commit = COMMIT_B;
      state.files.set("config.json", Buffer.from(JSON.stringify({ ...config, num_labels: 2, id2label: { 0: "no", 1: "yes" } })));
      const before = requests.length;
      const second = await resolveCheckpoint(REPO, { endpoint: url, cacheDir });
      assert.equal(second, snapshotDir(REPO, COMMIT_B, { cacheDir }));
      assert.notEqual(second, first);
      assert.equal(JSON.parse(readFileSync(join(second, "config.json"), "utf8")).num_labels, 2);
      assert.equal(JSON.parse(readFileSync(join(first, "config.json"), "utf8")).num_labels, 3, "the old snapshot is kept");
      assert.equal(readFileSync(join(repoCacheDir(REPO, { cacheDir }), "refs", "main"), "utf8"), COMMIT_B);
      const downloads = requests.slice(before).filter((r) => r.startsWith("GET /org/bert-tiny/resolve/") && !r.endsWith("bytes=0-0"));
      assert.deepEqual(downloads, [`GET /org/bert-tiny/resolve/${COMMIT_B}/config.json`], "only the changed file is fetched");
      // An explicit older commit still resolves to its snapshot.
      assert.equal(await resolveCheckpoint(REPO, { endpoint: url, cacheDir, revision: COMMIT_A }), first);
    } finally {
      await stop(server);
    }
  });

  it("retries a transfer whose connection drops mid-body", async () => {
    const cacheDir = tmp();
    const state: HubState = { commit: COMMIT_A, files: sourceFiles(), dropFirst: "model.safetensors" };
    const { server, url, requests } = await serveHub(state);
    try {
      const dir = await resolveCheckpoint(REPO, { endpoint: url, cacheDir });
      assert.deepEqual(readFileSync(join(dir, "model.safetensors")), state.files.get("model.safetensors"));
      assert.equal(requests.filter((r) => r === `GET /org/bert-tiny/resolve/${COMMIT_A}/model.safetensors`).length, 2, requests.join("\n"));
      assert.ok(!walk(cacheDir).some((f) => f.endsWith(".incomplete")));
    } finally {
      await stop(server);
    }
  });

  it("downloads a sharded checkpoint through its index", async () => {
    const root = tmp();
    const weights = await readSafetensors(join(SOURCE, "model.safetensors"));
    const shardDir = join(root, "shards");
    const shards = await writeShardedSafetensors(shardDir, new Map(weights.names().map((n) => [n, weights.get(n)])), { maxShardBytes: 8000 });
    assert.ok(shards.length >= 3);
    const files = new Map([["config.json", readFileSync(join(SOURCE, "config.json"))], ...[...shards, "model.safetensors.index.json"].map((f) => [f, readFileSync(join(shardDir, f))] as [string, Buffer])]);
    const { server, url } = await serveHub({ commit: COMMIT_A, files });
    try {
      const dir = await resolveCheckpoint(REPO, { endpoint: url, cacheDir: join(root, "cache") });
      const loaded = await loadSafetensorsWeights(dir);
      assert.deepEqual(loaded.names().sort(), weights.names().sort());
    } finally {
      await stop(server);
    }
  });

  it("a hostile hub cannot write outside the cache: shard names, blob ids and commits are validated", async () => {
    const root = tmp();
    const cacheDir = join(root, "a", "b", "cache");
    const config = readFileSync(join(SOURCE, "config.json"));
    const bad = ["../../x", "../../../../../x", "sub/../../x", "/tmp/x", "..\\..\\x", "C:x", ".", "sub/x", ""];
    for (const name of bad) {
      const index = Buffer.from(JSON.stringify({ metadata: {}, weight_map: { "w.weight": name } }));
      const files = new Map([["config.json", config], ["model.safetensors.index.json", index]]);
      if (name) files.set(name, Buffer.from("owned"));
      const { server, url, requests } = await serveHub({ commit: COMMIT_A, files });
      try {
        await assert.rejects(
          resolveCheckpoint(REPO, { endpoint: url, cacheDir }),
          (e: unknown) => e instanceof HubError && /model.safetensors.index.json: weight_map\["w.weight"\]: .* is not a safe file name/.test(e.message),
          JSON.stringify(name),
        );
        assert.ok(!requests.some((r) => /resolve\/[0-9a-f]{40}\/(?!config.json|model.safetensors.index.json)/.test(r)), `no request for ${JSON.stringify(name)}: ${requests.join(", ")}`);
      } finally {
        await stop(server);
      }
    }
    // A blob id that is a path, and a commit that is a path.
    for (const state of [
      { commit: COMMIT_A, files: sourceFiles(), fakeOid: { "config.json": "../../../../../evil" } },
      { commit: COMMIT_A, files: sourceFiles(), fakeSha: "../../../../evil" },
    ] satisfies HubState[]) {
      const { server, url } = await serveHub(state);
      try {
        // A fresh cache inside the first one, so that the hostile index cached above is not in the way.
        await assert.rejects(resolveCheckpoint(REPO, { endpoint: url, cacheDir: mkdtempSync(join(cacheDir, "c")) }), (e: unknown) => e instanceof HubError && /"\.\.\/\.\.\/\.\.\/\.\.(\/\.\.)?\/evil"/.test(e.message));
      } finally {
        await stop(server);
      }
    }
    // A body longer than the listing says is cut off, not written to the end.
    {
      const { server, url } = await serveHub({ commit: COMMIT_A, files: sourceFiles(), inflate: "model.safetensors" });
      const dir = mkdtempSync(join(cacheDir, "c"));
      try {
        await assert.rejects(resolveCheckpoint(REPO, { endpoint: url, cacheDir: dir }), (e: unknown) => e instanceof HubError && /sent more than the \d+ bytes the listing gives for model.safetensors/.test(e.message));
        const biggest = Math.max(...walk(dir).map((f) => lstatSync(join(dir, f)).size));
        assert.ok(biggest <= sourceFiles().get("model.safetensors")!.length + 2 ** 20 + 65536, `${biggest} bytes on disk`);
      } finally {
        await stop(server);
      }
    }
    const outside = walk(root).filter((f) => !f.startsWith(join("a", "b", "cache") + "/"));
    assert.deepEqual(outside, [], "nothing written outside the cache");
    assert.ok(!walk(root).some((f) => /(^|\/)(x|evil)$/.test(f)), walk(root).join("\n"));
  });

  it("local directories are used as they are; bad ids, revisions and offline misses are clear errors", async () => {
    assert.equal(await resolveCheckpoint(SOURCE), SOURCE);
    await assert.rejects(resolveCheckpoint("not a repo!"), /not a directory and not a hub repo id/);
    await assert.rejects(resolveCheckpoint(join(SOURCE, "config.json")), /config.json: is a file; expected a checkpoint directory/);
    await assert.rejects(resolveCheckpoint("../etc"), /not a directory and not a hub repo id/);
    await assert.rejects(resolveCheckpoint("org/x", { revision: "../../main", offline: true, cacheDir: tmp() }), /org\/x: revision: "..\/..\/main" is not a safe file name/);
    await assert.rejects(resolveCheckpoint("org/missing", { offline: true, cacheDir: tmp() }), /org\/missing@main: config.json and weights are not in the cache .* offline mode is on/);
    // Nothing listens on this port (the server is closed before the call).
    const { server, url } = await serveHub({ commit: COMMIT_A, files: sourceFiles() });
    await stop(server);
    await assert.rejects(resolveCheckpoint("org/missing", { endpoint: url, cacheDir: tmp() }), /org\/missing@main: .* not in the cache .* cannot be reached/);
    // HF_HOME places the cache at $HF_HOME/hub (HF_HUB_CACHE, when set, wins), as in Python.
    const saved = { home: process.env.HF_HOME, cache: process.env.HF_HUB_CACHE, offline: process.env.HF_HUB_OFFLINE };
    try {
      delete process.env.HF_HUB_CACHE;
      process.env.HF_HOME = join(tmp(), "hf-home");
      assert.equal(repoCacheDir("org/x"), join(process.env.HF_HOME, "hub", "models--org--x"));
      await assert.rejects(resolveCheckpoint("org/x", { offline: true }), (e: unknown) => e instanceof HubError && e.message.includes(join(process.env.HF_HOME!, "hub", "models--org--x")));
      // HF_HUB_OFFLINE=1: no request is even tried (the endpoint would answer "cannot be reached").
      process.env.HF_HUB_OFFLINE = "1";
      await assert.rejects(resolveCheckpoint("org/x", { endpoint: url }), /not in the cache .* offline mode is on/);
    } finally {
      for (const [k, v] of [["HF_HOME", saved.home], ["HF_HUB_CACHE", saved.cache], ["HF_HUB_OFFLINE", saved.offline]] as const) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
    assert.throws(() => checkRepoFileName("a/../b", "f"), /f: "a\/..\/b" is not a safe file name \(empty, "." or ".." path segment\)/);
    assert.equal(checkRepoFileName("onnx/model.onnx", "f"), "onnx/model.onnx");
    assert.ok(!existsSync(join(tmpdir(), "x")) || lstatSync(join(tmpdir(), "x")).mtimeMs < Date.now() - 3600_000);
  });
});
