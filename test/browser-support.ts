// Headless Chromium for browser tests: Debian's `chromium` package driven by playwright-core
// (no browser download is possible here), plus a loopback static file server for the pages.
// Under CI (CI=true) a missing browser is a failure, since .ci/run installs it; elsewhere the
// tests that need it are skipped with the reason.
import { existsSync, createReadStream, statSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { extname, join, resolve, sep } from "node:path";
import { chromium, type Browser } from "playwright-core";

const CANDIDATES = [process.env.PEFTJS_CHROMIUM, "/usr/bin/chromium", "/usr/bin/chromium-browser"];

/** Path of a Chromium executable, or undefined. */
export function chromiumPath(): string | undefined {
  return CANDIDATES.find((p): p is string => !!p && existsSync(p));
}

/** `false` when Chromium is available, else the skip reason (throws under CI, where it must exist). */
export function chromiumSkipReason(): string | false {
  if (chromiumPath()) return false;
  const why = "no Chromium (install Debian's `chromium` package or set PEFTJS_CHROMIUM)";
  if (process.env.CI === "true") throw new Error(`CI must have Chromium: ${why}`);
  return why;
}

/** Launch headless Chromium. Extra flags e.g. for WebGPU can be passed. */
export async function launchChromium(args: string[] = []): Promise<Browser> {
  const executablePath = chromiumPath();
  if (!executablePath) throw new Error("no Chromium executable found");
  return chromium.launch({ executablePath, headless: true, args: ["--no-sandbox", ...args] });
}

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8", ".js": "text/javascript", ".mjs": "text/javascript",
  ".json": "application/json", ".wasm": "application/wasm", ".onnx": "application/octet-stream",
  ".txt": "text/plain", ".css": "text/css", ".csv": "text/csv",
};

/**
 * Serve `routes` (URL prefix → folder) on 127.0.0.1 with cross-origin isolation headers
 * (so wasm threads work). Returns the base URL and the server to close.
 */
export async function serveStatic(routes: Record<string, string>): Promise<{ url: string; server: Server }> {
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname);
    for (const [prefix, dir] of Object.entries(routes)) {
      if (!path.startsWith(prefix)) continue;
      const root = resolve(dir);
      const file = resolve(join(root, path.slice(prefix.length)));
      if (file !== root && !file.startsWith(root + sep)) break;
      if (!existsSync(file) || !statSync(file).isFile()) break;
      res.writeHead(200, {
        "content-type": TYPES[extname(file)] ?? "application/octet-stream",
        "cross-origin-opener-policy": "same-origin",
        "cross-origin-embedder-policy": "require-corp",
        "cross-origin-resource-policy": "same-origin",
      });
      createReadStream(file).pipe(res);
      return;
    }
    res.writeHead(404).end("not found");
  });
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  const addr = server.address();
  if (!addr || typeof addr === "string") throw new Error("no address");
  return { url: `http://127.0.0.1:${addr.port}`, server };
}
