// Hub downloads against a local server in the hub's `resolve/<rev>/<file>` layout: resume after
// a dropped connection, size checks, 404 for optional files, offline second load.
import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import { mkdtempSync, readFileSync, readdirSync, statSync } from "node:fs";
import { type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { resolveCheckpoint, snapshotDir } from "./hub.js";

const SOURCE = join(import.meta.dirname, "..", "..", "test", "fixtures", "models", "bert-tiny");

function serve(opts: { dropFirstAt?: number }): Promise<{ server: Server; url: string; requests: string[] }> {
  const requests: string[] = [];
  let dropped = false;
  const server = createServer((req, res) => {
    requests.push(`${req.url} ${req.headers.range ?? ""}`.trim());
    const m = /^\/org\/bert-tiny\/resolve\/main\/([\w.-]+)$/.exec(req.url ?? "");
    let body: Buffer;
    try {
      body = readFileSync(join(SOURCE, m![1]!));
    } catch {
      res.writeHead(404).end("not found");
      return;
    }
    const range = /bytes=(\d+)-/.exec(req.headers.range ?? "");
    if (range) {
      const start = Number(range[1]);
      res.writeHead(206, { "content-range": `bytes ${start}-${body.length - 1}/${body.length}`, "content-length": body.length - start });
      res.end(body.subarray(start));
      return;
    }
    res.writeHead(200, { "content-length": body.length });
    if (opts.dropFirstAt !== undefined && m![1] === "model.safetensors" && !dropped) {
      dropped = true;
      // Let the bytes reach the client, then cut the connection mid-body.
      res.write(body.subarray(0, opts.dropFirstAt), () => setTimeout(() => res.socket?.destroy(), 30));
      return;
    }
    res.end(body);
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve({ server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, requests })));
}

describe("hub downloads", () => {
  it("downloads into the cache, resumes a dropped transfer, and loads offline the second time", async () => {
    const cacheDir = mkdtempSync(join(tmpdir(), "peftjs-hub-"));
    const { server, url, requests } = await serve({ dropFirstAt: 50_000 });
    let dir: string;
    try {
      dir = await resolveCheckpoint("org/bert-tiny", { endpoint: url, cacheDir });
    } finally {
      server.close();
    }
    assert.equal(dir, snapshotDir("org/bert-tiny", { cacheDir }));
    for (const f of ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"]) {
      assert.deepEqual(readFileSync(join(dir, f)), readFileSync(join(SOURCE, f)), f);
    }
    assert.ok(requests.some((r) => /model.safetensors bytes=\d+-/.test(r)), `resumed with a Range request: ${requests.join(", ")}`);
    assert.ok(!readdirSync(dir).some((f) => f.endsWith(".incomplete")));
    // Second load: the server is gone; everything comes from the cache.
    const again = await resolveCheckpoint("org/bert-tiny", { endpoint: url, cacheDir });
    assert.equal(again, dir);
    assert.equal(statSync(join(dir, "model.safetensors")).size, statSync(join(SOURCE, "model.safetensors")).size);
  });

  it("local directories are used as they are; bad ids and offline misses are clear errors", async () => {
    assert.equal(await resolveCheckpoint(SOURCE), SOURCE);
    await assert.rejects(resolveCheckpoint("not a repo!"), /not a directory and not a hub repo id/);
    await assert.rejects(resolveCheckpoint("org/missing", { offline: true, cacheDir: mkdtempSync(join(tmpdir(), "peftjs-hub-")) }), /config.json is not in the cache .* offline mode is on/);
  });
});
