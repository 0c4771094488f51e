// The studio's server (src/cli/studio.ts): what it serves, with which headers, and what it refuses.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { spawn } from "node:child_process";
import { defaultStudioPaths, openInBrowser, startStudio, studioMethods, type Studio, type StudioMethod } from "../src/cli/studio.js";
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

describe("peftjs studio command", () => {
  it("builds the page, serves it on 127.0.0.1, prints the address, skips opening with --no-open, and stops on SIGTERM", { timeout: 120_000 }, async () => {
    const child = spawn(process.execPath, ["bin/peftjs.js", "studio", "--port", "0", "--no-open"], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stderr.on("data", (c: Buffer) => (err += c.toString()));
    const url = await new Promise<string>((ok, fail) => {
      child.stdout.on("data", (c: Buffer) => {
        out += c.toString();
        const m = /peftjs studio at (http:\/\/127\.0\.0\.1:\d+\/) \(page built in \d+ ms\); Ctrl-C stops it\n/.exec(out);
        if (m) ok(m[1]!);
      });
      child.on("exit", (code) => fail(new Error(`exited ${code} before printing its address: ${out}${err}`)));
    });
    const page = await get(url);
    assert.equal(page.status, 200);
    const worker = await get(`${url}worker.js`);
    assert.equal(worker.status, 200);
    assert.ok(worker.body.length > 100_000, "the worker bundle holds the library");
    assert.equal(err, "", "--no-open: nothing about a browser");
    const code = await new Promise<number | null>((done) => {
      child.on("exit", done);
      child.kill("SIGTERM");
    });
    assert.equal(code, 0);
  });

  it("refuses a bad --port with the option's message", { timeout: 60_000 }, async () => {
    const child = spawn(process.execPath, ["bin/peftjs.js", "studio", "--port", "http"], { stdio: ["ignore", "pipe", "pipe"] });
    let err = "";
    child.stderr.on("data", (c: Buffer) => (err += c.toString()));
    const code = await new Promise<number | null>((done) => child.on("exit", done));
    assert.equal(code, 1);
    assert.equal(err.split("\n")[0], 'peftjs: --port: expected an integer >= 0 and <= 65535, got "http"');
  });

  it("opens a browser only where one is installed, else says so", { skip: process.platform !== "linux" && "the check for an installed browser is Linux's (xdg-open, $BROWSER)" }, async () => {
    const saved = { PATH: process.env.PATH, BROWSER: process.env.BROWSER };
    try {
      process.env.PATH = mkdtempSync(join(tmpdir(), "no-browser-"));
      delete process.env.BROWSER;
      const said = await openInBrowser("http://127.0.0.1:1/");
      assert.equal(said, "no browser found to open (no xdg-open, $BROWSER unset); open http://127.0.0.1:1/ yourself");
    } finally {
      process.env.PATH = saved.PATH;
      if (saved.BROWSER !== undefined) process.env.BROWSER = saved.BROWSER;
    }
  });
});
