// `peftjs studio`: a local web app that fine-tunes in the browser. This is its server: static
// files on 127.0.0.1 only (the page, its worker bundle, onnxruntime-web's wasm, the shipped
// models) plus the method catalog from the tuner registry, with the cross-origin isolation
// headers wasm threads need and a content security policy that lets the page reach no other
// origin. Training runs in the page's Web Worker; nothing is uploaded.
//
// node:http rather than fastify: the server only streams files and one JSON document, with no
// request bodies to validate; fastify would need @fastify/static (not a dependency) or the same
// file streaming written by hand, around a framework the app does not use.
import { createReadStream, existsSync, statSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createRequire } from "node:module";
import { dirname, extname, join, resolve, sep } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { Option, type Command } from "commander";
import { z } from "zod";
import { addOptions, commandValues, OptionError, integer, type OptionSpec, type Options } from "./options.js";
import { COMMON_FIELDS, defaultText, type FieldSpec } from "../tuners/config-schema.js";
import { PRESETS, TUNERS, type TunerName } from "../tuners/registry.js";
import { type TunerDef } from "../tuners/tuner.js";

/** `peftjs studio` options (flags; `--no-open` is commander's negation of `open`). */
export const STUDIO_OPTIONS = {
  port: integer({ min: 0, max: 65535, default: 8790 }, "port on 127.0.0.1 (0: any free port; keep one port so the browser finds its saved runs again)", "<port>"),
  open: { schema: z.boolean().default(true), expected: "true or false", help: "only print the address (by default the page opens in the installed browser, if there is one)" } satisfies OptionSpec<boolean>,
};

export type StudioOptions = Options<typeof STUDIO_OPTIONS>;

/** How the page renders one config field: the input kind comes from the field's zod schema. */
export interface StudioField {
  name: string;
  /** integer / number / boolean / choice (values) / string; json: anything else, typed as JSON. */
  kind: "integer" | "number" | "boolean" | "choice" | "string" | "json";
  values?: (string | boolean)[];
  min?: number;
  max?: number;
  /** The constant default, when the declaration has one (computed defaults are described by defaultText). */
  default?: unknown;
  defaultText: string;
  expected: string;
  help: string;
}

export interface StudioMethod {
  /** The preset name users pick (the CLI's --method). */
  preset: string;
  peftType: TunerName;
  /** What the preset sets beyond the declared defaults. */
  settings: Record<string, unknown>;
  fields: StudioField[];
}

/** A field's input kind from its zod schema, through its JSON Schema (zod's own conversion). */
function studioField(name: string, spec: FieldSpec): StudioField {
  let js: Record<string, unknown> = {};
  try {
    js = z.toJSONSchema(spec.schema) as Record<string, unknown>;
  } catch {
    // A schema JSON Schema cannot express (a custom check): typed as JSON.
  }
  const base = { name, defaultText: defaultText(spec), expected: spec.expected, help: spec.help, ...(typeof spec.default === "function" || spec.default === undefined ? {} : { default: spec.default }) };
  const bound = (v: unknown) => (typeof v === "number" && Math.abs(v) < Number.MAX_SAFE_INTEGER ? v : undefined);
  const [min, max] = [bound(js.minimum) ?? bound(js.exclusiveMinimum), bound(js.maximum) ?? bound(js.exclusiveMaximum)];
  const range = { ...(min === undefined ? {} : { min }), ...(max === undefined ? {} : { max }) };
  const consts = (js.anyOf as Record<string, unknown>[] | undefined)?.map((s) => s.const);
  if (js.type === "integer" || js.type === "number") return { ...base, kind: js.type, ...range };
  if (js.type === "boolean") return { ...base, kind: "boolean" };
  if (Array.isArray(js.enum)) return { ...base, kind: "choice", values: js.enum as string[] };
  if (consts && consts.every((c) => typeof c === "string" || typeof c === "boolean")) return { ...base, kind: "choice", values: consts as (string | boolean)[] };
  if (js.type === "string") return { ...base, kind: "string" };
  return { ...base, kind: "json" };
}

/** Every preset with its method's declared fields: what the page's method form is built from. */
export function studioMethods(): StudioMethod[] {
  return Object.entries(PRESETS).map(([preset, p]) => {
    const def: TunerDef = TUNERS[p.peft_type];
    const own = Object.entries(def.fields as Record<string, FieldSpec>);
    const common = def.promptLearning ? [] : [["modules_to_save", COMMON_FIELDS.modules_to_save as FieldSpec] as const];
    const { peft_type: _, ...settings } = p as { peft_type: string } & Record<string, unknown>;
    return { preset, peftType: p.peft_type, settings, fields: [...own, ...common].map(([n, f]) => studioField(n, f)) };
  });
}

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".mjs": "text/javascript; charset=utf-8", ".map": "application/json",
  ".json": "application/json; charset=utf-8", ".wasm": "application/wasm", ".safetensors": "application/octet-stream", ".css": "text/css; charset=utf-8", ".png": "image/png",
};

/**
 * The page may load and connect only to this server ('self'): that is what keeps every request on
 * this machine. Scripts may compile wasm and code (protobufjs generates its ONNX encoders with
 * Function) and run inline (the evaluation report is the CLI's report.html, Chart.js inline, in an
 * iframe); downloads are blob: URLs.
 */
const CSP = [
  "default-src 'self'",
  "script-src 'self' 'unsafe-inline' 'unsafe-eval' 'wasm-unsafe-eval' blob:",
  "worker-src 'self' blob:",
  "connect-src 'self' blob: data:",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data: blob:",
  "frame-src 'self' blob: data:",
  "form-action 'none'",
].join("; ");

const HEADERS = {
  "cross-origin-opener-policy": "same-origin",
  "cross-origin-embedder-policy": "require-corp",
  "cross-origin-resource-policy": "same-origin",
  "content-security-policy": CSP,
  "x-content-type-options": "nosniff",
  "cache-control": "no-cache",
};

/** The repository (or installed package) root: bin/, models/, studio/, node_modules/ sit here. */
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");

/** Where each folder the server reads from lives. */
export interface StudioPaths {
  /** index.html and the bundles (app.js, worker.js). */
  bundle: string;
  /** The page's source folder (index.html). */
  page: string;
  /** Shipped models: each subfolder one model. */
  models: string;
  /** onnxruntime-web's dist folder (its .wasm and .mjs files). */
  ort: string;
}

export function defaultStudioPaths(): StudioPaths {
  const ort = dirname(createRequire(import.meta.url).resolve("onnxruntime-web"));
  const checkout = existsSync(join(ROOT, "studio", "index.html"));
  return { page: join(ROOT, checkout ? "studio" : join("dist", "studio")), bundle: join(ROOT, checkout ? join("studio", "dist") : join("dist", "studio")), models: join(ROOT, "models"), ort };
}

/** The files of a shipped model the page may fetch: what loadModel reads. */
const MODEL_FILES = ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"];

/** The shipped models: folders under `models` with a config.json. */
export function shippedModels(modelsDir: string): { name: string; files: string[] }[] {
  if (!existsSync(modelsDir)) return [];
  return ["encoder-mini", "decoder-mini"]
    .filter((n) => existsSync(join(modelsDir, n, "config.json")))
    .map((name) => ({ name, files: MODEL_FILES.filter((f) => existsSync(join(modelsDir, name, f))) }));
}

/**
 * Build the page's bundles (studio/build.ts, esbuild) in a source checkout; an installed package
 * ships them prebuilt. Returns the build's time in ms, or undefined when nothing was built.
 */
export async function ensureStudioBundle(paths: StudioPaths = defaultStudioPaths()): Promise<number | undefined> {
  const build = join(ROOT, "studio", "build.ts");
  if (existsSync(build)) {
    const { buildStudio } = (await import(pathToFileURL(build).href)) as { buildStudio: (outdir: string) => Promise<{ ms: number }> };
    return (await buildStudio(paths.bundle)).ms;
  }
  for (const f of ["app.js", "worker.js"]) if (!existsSync(join(paths.bundle, f))) throw new OptionError(`the studio's bundle ${join(paths.bundle, f)} is missing`, "reinstall peftjs, or run `npm run build` in a source checkout");
  return undefined;
}

export interface Studio {
  url: string;
  server: Server;
  close(): Promise<void>;
}

/** Serve the studio on 127.0.0.1:`port` (0: any free port). The bundle must be built (ensureStudioBundle). */
export async function startStudio(opts: { port: number; paths?: StudioPaths }): Promise<Studio> {
  const paths = opts.paths ?? defaultStudioPaths();
  const models = shippedModels(paths.models);
  const methods = JSON.stringify(studioMethods());
  const catalog = JSON.stringify({ models });
  let port = opts.port;

  /** A file under `dir` (never outside it), or undefined. */
  const fileIn = (dir: string, rel: string): string | undefined => {
    const root = resolve(dir);
    const file = resolve(root, rel);
    if (!file.startsWith(root + sep)) return undefined;
    return existsSync(file) && statSync(file).isFile() ? file : undefined;
  };
  const routes: [RegExp, (m: RegExpExecArray) => string | undefined][] = [
    [/^\/(?:index\.html)?$/, () => fileIn(paths.page, "index.html")],
    [/^\/(app|worker)\.js(\.map)?$/, (m) => fileIn(paths.bundle, `${m[1]}.js${m[2] ?? ""}`)],
    // onnxruntime-web loads its wasm (and the threads' worker script) beside the bundle.
    [/^\/(ort-wasm[\w.-]*\.(?:wasm|mjs))$/, (m) => fileIn(paths.ort, m[1]!)],
    [/^\/models\/([\w.-]+)\/([\w.-]+)$/, (m) => (models.some((x) => x.name === m[1] && x.files.includes(m[2]!)) ? fileIn(paths.models, join(m[1]!, m[2]!)) : undefined)],
  ];

  const handle = (req: IncomingMessage, res: ServerResponse) => {
    // Only this address: a page elsewhere that points a hostname at 127.0.0.1 (DNS rebinding) gets nothing.
    const host = req.headers.host ?? "";
    if (host !== `127.0.0.1:${port}` && host !== `localhost:${port}`) return send(res, 421, "text/plain", `peftjs studio answers only at http://127.0.0.1:${port}/`);
    if (req.method !== "GET" && req.method !== "HEAD") return send(res, 405, "text/plain", "the studio serves files only (GET)", { allow: "GET, HEAD" });
    let path: string;
    try {
      path = decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname);
    } catch {
      return send(res, 400, "text/plain", "bad URL");
    }
    if (path === "/favicon.ico") return send(res, 204, "text/plain", "");
    if (path === "/api/methods") return send(res, 200, TYPES[".json"]!, methods, {}, req.method === "HEAD");
    if (path === "/api/models") return send(res, 200, TYPES[".json"]!, catalog, {}, req.method === "HEAD");
    for (const [re, resolveFile] of routes) {
      const m = re.exec(path);
      if (!m) continue;
      const file = resolveFile(m);
      if (!file) break;
      res.writeHead(200, { ...HEADERS, "content-type": TYPES[extname(file)] ?? "application/octet-stream", "content-length": statSync(file).size });
      if (req.method === "HEAD") return res.end();
      createReadStream(file).on("error", () => res.destroy()).pipe(res);
      return;
    }
    send(res, 404, "text/plain", `not found: ${path}`);
  };

  const server = createServer(handle);
  await new Promise<void>((ok, fail) => {
    server.once("error", (e: NodeJS.ErrnoException) =>
      fail(e.code === "EADDRINUSE" ? new OptionError(`--port ${opts.port}: the port is in use`, "pass another --port (0: any free port), or stop the program using it") : e),
    );
    server.listen(opts.port, "127.0.0.1", ok);
  });
  const address = server.address();
  if (!address || typeof address === "string") throw new Error("peftjs studio: the server has no address");
  port = address.port;
  return {
    url: `http://127.0.0.1:${port}/`,
    server,
    close: () =>
      new Promise<void>((done) => {
        server.close(() => done());
        server.closeAllConnections();
      }),
  };
}

function send(res: ServerResponse, status: number, type: string, body: string, extra: Record<string, string> = {}, headOnly = false): void {
  res.writeHead(status, { ...HEADERS, ...extra, "content-type": type, "content-length": Buffer.byteLength(body) });
  res.end(headOnly ? undefined : body);
}

/**
 * Open `url` in the user's browser through the `open` package, only where one is installed
 * (on Linux: xdg-open, or $BROWSER); returns what was done, for the command to print.
 */
export async function openInBrowser(url: string): Promise<string> {
  if (process.platform === "linux" && !process.env.BROWSER && !onPath("xdg-open")) return `no browser found to open (no xdg-open, $BROWSER unset); open ${url} yourself`;
  try {
    const { default: open } = await import("open");
    const child = await open(url);
    // A launcher that fails (no display) must not take the server down.
    child.on("error", () => undefined);
    child.unref();
    return `opened ${url} in your browser`;
  } catch (e) {
    return `could not open a browser (${(e as Error).message}); open ${url} yourself`;
  }
}

const onPath = (cmd: string) => (process.env.PATH ?? "").split(":").some((d) => d && existsSync(join(d, cmd)));

/** Register `peftjs studio` on the CLI program: build the bundle, serve, print the address, open it; Ctrl-C stops. */
export function addStudioCommand(prog: Command, out: (s: string) => void, note: (s: string) => void): void {
  const cmd = prog.command("studio").description("fine-tune in your browser: a local web app on 127.0.0.1 that trains in a Web Worker (onnxruntime-web); data and model stay on this machine");
  addOptions(cmd, { port: STUDIO_OPTIONS.port }).addOption(new Option("--no-open", STUDIO_OPTIONS.open.help));
  cmd.action(async () => {
    const o = await commandValues(cmd, STUDIO_OPTIONS);
    const ms = await ensureStudioBundle();
    const studio = await startStudio({ port: o.port });
    out(`peftjs studio at ${studio.url}${ms === undefined ? "" : ` (page built in ${Math.round(ms)} ms)`}; Ctrl-C stops it`);
    if (o.open) note(await openInBrowser(studio.url));
    await new Promise<void>((done) => {
      const stop = () => {
        process.off("SIGTERM", stop);
        process.off("SIGINT", stop);
        void studio.close().then(done, done);
      };
      process.on("SIGTERM", stop);
      process.on("SIGINT", stop);
    });
  });
}
