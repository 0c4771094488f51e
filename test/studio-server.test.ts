// The studio's server (src/cli/studio.ts): what it serves, with which headers, and what it refuses.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { defaultStudioPaths, startStudio, studioMethods, type Studio, type StudioMethod } from "../src/cli/studio.js";
import { OptionError } from "../src/cli/options.js";
import { PRESETS } from "../src/tuners/registry.js";

/** A GET (or another method) with a chosen Host header; fetch() does not let a test set Host. */
function get(url: string, opts: { method?: string; host?: string } = {}): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }> {
  return new Promise((ok, fail) => {
    const u = new URL(url);
    const req = request({ host: u.hostname, port: u.port, path: u.pathname, method: opts.method ?? "GET", headers: opts.host ? { host: opts.host } : {} }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => ok({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on("error", fail);
    req.end();
  });
}

describe("peftjs studio server", () => {
  let studio: Studio;
  const bundle = mkdtempSync(join(tmpdir(), "studio-bundle-"));
  const paths = { ...defaultStudioPaths(), bundle };
  before(async () => {
    // The server streams whatever the bundle folder holds; the bundle itself is tested in the browser tests.
    writeFileSync(join(bundle, "app.js"), "export {};\n");
    writeFileSync(join(bundle, "worker.js"), "export {};\n");
    studio = await startStudio({ port: 0, paths });
  });
  after(() => studio.close());

  it("listens on 127.0.0.1 and serves the page with cross-origin isolation and a same-origin content policy", async () => {
    assert.match(studio.url, /^http:\/\/127\.0\.0\.1:\d+\/$/);
    const r = await get(studio.url);
    assert.equal(r.status, 200);
    assert.equal(r.headers["cross-origin-opener-policy"], "same-origin");
    assert.equal(r.headers["cross-origin-embedder-policy"], "require-corp");
    assert.match(String(r.headers["content-type"]), /^text\/html/);
    const csp = String(r.headers["content-security-policy"]);
    assert.match(csp, /default-src 'self'/);
    assert.match(csp, /connect-src 'self'/);
    assert.doesNotMatch(csp, /https?:/, "no other origin is allowed");
    assert.match(r.body.toString(), /<title>peftjs studio<\/title>/);
  });

  it("serves the bundle and onnxruntime-web's wasm", async () => {
    const app = await get(`${studio.url}app.js`);
    assert.equal(app.status, 200);
    assert.match(String(app.headers["content-type"]), /^text\/javascript/);
    const wasm = await get(`${studio.url}ort-wasm-simd-threaded.wasm`);
    assert.equal(wasm.status, 200);
    assert.equal(wasm.headers["content-type"], "application/wasm");
    assert.deepEqual(wasm.body.subarray(0, 4), Buffer.from([0, 0x61, 0x73, 0x6d]), "a wasm module");
    const head = await get(`${studio.url}ort-wasm-simd-threaded.wasm`, { method: "HEAD" });
    assert.equal(head.status, 200);
    assert.equal(Number(head.headers["content-length"]), wasm.body.length);
    assert.equal(head.body.length, 0);
  });

  it("lists the shipped models and serves their files byte for byte, nothing else of the folder", async () => {
    const catalog = JSON.parse((await get(`${studio.url}api/models`)).body.toString()) as { models: { name: string; files: string[] }[] };
    assert.deepEqual(catalog.models.map((m) => m.name), ["encoder-mini", "decoder-mini"]);
    assert.deepEqual(catalog.models[0]!.files, ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"]);
    const config = await get(`${studio.url}models/encoder-mini/config.json`);
    assert.equal(config.status, 200);
    assert.deepEqual(config.body, readFileSync(join(paths.models, "encoder-mini", "config.json")));
    const weights = await get(`${studio.url}models/encoder-mini/model.safetensors`);
    assert.equal(weights.body.length, readFileSync(join(paths.models, "encoder-mini", "model.safetensors")).length);
    // Files that are not a model's, other folders, and escapes are not served.
    for (const path of ["models/encoder-mini/pretraining.json", "models/other/config.json", "models/..%2Fpackage.json/x", "..%2Fpackage.json", "src/cli/studio.ts", "node_modules/onnxruntime-web/package.json"]) {
      assert.equal((await get(`${studio.url}${path}`)).status, 404, path);
    }
  });

  it("serves the method catalog from the registry: every preset, with its fields' kinds and defaults", async () => {
    const methods = JSON.parse((await get(`${studio.url}api/methods`)).body.toString()) as StudioMethod[];
    assert.deepEqual(methods.map((m) => m.preset), Object.keys(PRESETS));
    assert.deepEqual(methods, JSON.parse(JSON.stringify(studioMethods())));
    const lora = methods.find((m) => m.preset === "lora")!;
    assert.equal(lora.peftType, "LORA");
    assert.deepEqual(lora.settings, { r: 8, lora_alpha: 16 });
    const field = (m: StudioMethod, name: string) => m.fields.find((f) => f.name === name)!;
    assert.deepEqual({ ...field(lora, "r"), help: "" }, { name: "r", kind: "integer", min: 1, default: 8, defaultText: "8", expected: "an integer >= 1", help: "" });
    assert.equal(field(lora, "lora_dropout").kind, "number");
    assert.equal(field(lora, "use_dora").kind, "boolean");
    assert.deepEqual(field(lora, "bias").values?.slice(0, 2), ["none", "all"]);
    assert.equal(field(lora, "target_modules").kind, "json");
    assert.equal(field(lora, "target_modules").default, undefined, "a computed default has no constant");
    assert.ok(field(lora, "modules_to_save"), "PeftConfig's modules_to_save is settable");
    const prefix = methods.find((m) => m.preset === "prefix")!;
    assert.equal(prefix.fields.some((f) => f.name === "modules_to_save"), false, "prompt-learning configs have no modules_to_save");
    assert.equal(field(methods.find((m) => m.preset === "pfeiffer")!, "variant").kind, "choice");
  });

  it("answers only its own address (no DNS rebinding) and only GET", async () => {
    const port = new URL(studio.url).port;
    const rebound = await get(`${studio.url}api/models`, { host: `evil.example:${port}` });
    assert.equal(rebound.status, 421);
    assert.equal((await get(`${studio.url}api/models`, { host: `localhost:${port}` })).status, 200);
    const post = await get(studio.url, { method: "POST" });
    assert.equal(post.status, 405);
    assert.equal(post.headers.allow, "GET, HEAD");
  });

  it("refuses a port in use with an error naming it", async () => {
    const port = Number(new URL(studio.url).port);
    await assert.rejects(startStudio({ port, paths }), (e: Error) => e instanceof OptionError && e.message === `--port ${port}: the port is in use`);
  });
});
