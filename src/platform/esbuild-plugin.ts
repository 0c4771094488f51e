// The browser build's module resolution, for esbuild: every src/platform/X.ts (or the built
// dist/platform/X.js) that has an X.browser.ts (.js) twin resolves to the twin, and
// "peftjs-embed:<package>/<file>" imports load that file's text. Bundle anything that imports the
// library (src/browser.ts) with this plugin and `conditions: ["onnxruntime-web-use-extern-wasm"]`
// (ONNX Runtime's wasm files then load from beside the bundle; see build-web.ts).
//
// @example
//   await esbuild.build({ entryPoints: ["worker.ts"], bundle: true, format: "esm", platform: "browser",
//     conditions: ["onnxruntime-web-use-extern-wasm"], plugins: [peftjsBrowser()], outdir: "out" });
import { existsSync, readFileSync } from "node:fs";
import { basename, dirname, join, relative, resolve, sep } from "node:path";
import type { Plugin } from "esbuild";

const PLATFORM_DIR = "platform";

/** The browser twin of a platform module path (".../platform/host.ts" -> ".../platform/host.browser.ts"), if it exists. */
export function browserTwin(path: string): string | undefined {
  if (basename(dirname(path)) !== PLATFORM_DIR) return undefined;
  const m = /^(.*)\.(ts|js)$/.exec(path);
  if (!m || m[1]!.endsWith(".browser")) return undefined;
  const twin = `${m[1]}.browser.${m[2]}`;
  return existsSync(twin) ? twin : undefined;
}

const SELF = Symbol("peftjs-browser");

/** Packages whose default entry needs Node's Buffer, and the file of their browser build. */
const BROWSER_FILES: Readonly<Record<string, string>> = {
  "csv-parse/sync": "csv-parse/dist/esm/sync.js", // lib/ uses Buffer; dist/esm bundles a Buffer polyfill
};

/** `spec` ("<package>/<file>") in the nearest node_modules above `from`, bypassing "exports". */
function resolveInNodeModules(spec: string, from: string): { path: string } | { errors: { text: string }[] } {
  for (let dir = from; ; dir = dirname(dir)) {
    const path = join(dir, "node_modules", spec);
    if (existsSync(path)) return { path };
    if (dirname(dir) === dir) return { errors: [{ text: `${spec} not found in any node_modules above ${from}` }] };
  }
}

/** Where a package's "browser" object maps the resolved file `path` (false: to nothing), if it does. */
function browserFieldTarget(path: string): string | false | undefined {
  for (let dir = dirname(path); dirname(dir) !== dir; dir = dirname(dir)) {
    const manifest = join(dir, "package.json");
    if (!existsSync(manifest)) continue;
    const browser = (JSON.parse(readFileSync(manifest, "utf8")) as { browser?: unknown }).browser;
    if (!browser || typeof browser !== "object") return undefined;
    const rel = `./${relative(dir, path).split(sep).join("/")}`;
    const to = (browser as Record<string, string | false>)[rel];
    return to === undefined ? undefined : to === false ? false : join(dir, to);
  }
  return undefined;
}

/** The esbuild plugin described above. */
export function peftjsBrowser(): Plugin {
  return {
    name: "peftjs-browser",
    setup(build) {
      build.onResolve({ filter: /^\.\.?\// }, (args) => {
        if (!args.importer || args.kind === "entry-point") return undefined;
        const base = resolve(args.resolveDir, args.path);
        for (const candidate of [base, base.replace(/\.js$/, ".ts")]) {
          if (!existsSync(candidate)) continue;
          const twin = browserTwin(candidate);
          return twin && twin !== args.importer ? { path: twin } : undefined;
        }
        return undefined;
      });
      // A package's "browser" field remaps its own files (@huggingface/hub: dist/index.mjs ->
      // dist/browser/index.mjs); esbuild skips that map when the package also has "exports".
      build.onResolve({ filter: /^(@[^./][^/]*\/)?[^./:][^:]*$/ }, async (args) => {
        if (args.pluginData === SELF) return undefined;
        const file = BROWSER_FILES[args.path];
        if (file) return resolveInNodeModules(file, args.resolveDir);
        const found = await build.resolve(args.path, { kind: args.kind, resolveDir: args.resolveDir, importer: args.importer, pluginData: SELF });
        if (found.errors.length || !found.path) return undefined;
        const mapped = browserFieldTarget(found.path);
        return mapped === undefined ? undefined : mapped === false ? { path: found.path, namespace: "peftjs-empty" } : { path: mapped };
      });
      build.onLoad({ filter: /.*/, namespace: "peftjs-empty" }, () => ({ contents: "export {};", loader: "js" }));
      build.onResolve({ filter: /^peftjs-embed:/ }, (args) => ({ ...resolveInNodeModules(args.path.slice("peftjs-embed:".length), args.resolveDir), namespace: "peftjs-embed" }));
      build.onLoad({ filter: /.*/, namespace: "peftjs-embed" }, (args) => ({ contents: readFileSync(args.path, "utf8"), loader: "text" }));
    },
  };
}
