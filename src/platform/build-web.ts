// `npm run build:web`: the browser ESM bundle dist/web/peftjs.js (from src/browser.ts, with the
// platform's browser twins and onnxruntime-web), ONNX Runtime Web's wasm files beside it, and
// type declarations (dist/web/types/). Run with tsx.
import { copyFileSync, mkdirSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { execFileSync } from "node:child_process";
import * as esbuild from "esbuild";
import { peftjsBrowser } from "./esbuild-plugin.js";

const ROOT = resolve(import.meta.dirname, "../..");
/** Kept in step with WASM_FILES of src/browser.ts (checked by test/web-bundle.test.ts). */
export const WASM_FILES = ["ort-wasm-simd-threaded.jsep.mjs", "ort-wasm-simd-threaded.jsep.wasm"];

/**
 * The esbuild settings every browser bundle of peftjs shares (this build, the studio's, the test
 * page's): ESM for browsers, the platform modules' browser twins, and onnxruntime-web loading its
 * wasm from beside the bundle rather than embedding it.
 */
export function browserBuildOptions() {
  return {
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    conditions: ["onnxruntime-web-use-extern-wasm"],
    plugins: [peftjsBrowser()],
  } satisfies esbuild.BuildOptions;
}

/** Copy ONNX Runtime Web's wasm files (WASM_FILES) into `dir`, where the bundle loads them. */
export function copyOrtWasm(dir: string): void {
  const ortDist = dirname(createRequire(import.meta.url).resolve("onnxruntime-web"));
  for (const f of WASM_FILES) copyFileSync(join(ortDist, f), join(dir, f));
}

/** Build into `outDir` (default dist/web); returns the bundle's path. */
export async function buildWeb(opts: { outDir?: string; types?: boolean; minify?: boolean } = {}): Promise<string> {
  const outDir = resolve(opts.outDir ?? join(ROOT, "dist/web"));
  rmSync(outDir, { recursive: true, force: true });
  mkdirSync(outDir, { recursive: true });
  const bundle = join(outDir, "peftjs.js");
  await esbuild.build({
    entryPoints: [join(ROOT, "src/browser.ts")],
    outfile: bundle,
    ...browserBuildOptions(),
    minify: opts.minify ?? false,
    sourcemap: true,
    logLevel: "warning",
  });
  copyOrtWasm(outDir);
  if (opts.types ?? true) {
    // Declarations only, for the entry and what it reaches; the same compiler settings as tsconfig.json.
    const tsc = join(ROOT, "node_modules/typescript/bin/tsc");
    const flags = ["--target", "ES2022", "--module", "NodeNext", "--moduleResolution", "NodeNext", "--lib", "ES2023", "--types", "node", "--strict", "--esModuleInterop", "--skipLibCheck"];
    execFileSync(process.execPath, [tsc, ...flags, "--declaration", "--emitDeclarationOnly", "--rootDir", join(ROOT, "src"), "--outDir", join(outDir, "types"), join(ROOT, "src/browser.ts"), join(ROOT, "src/platform/embed.d.ts")], { stdio: "inherit" });
  }
  return bundle;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const bundle = await buildWeb();
  console.log(`wrote ${bundle}`);
}
