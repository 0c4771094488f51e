// Bundles the studio page (app.ts) and its Web Worker (worker.ts, the peftjs core through
// src/browser.ts) with esbuild into browser ES modules. `peftjs studio` runs it at start in a
// source checkout (a few seconds); `npm run build` writes it to dist/studio/ for the package
// (`node --import tsx studio/build.ts [outdir]`).
import { build } from "esbuild";
import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";
import { browserBuildOptions } from "../src/platform/build-web.js";

const HERE = dirname(fileURLToPath(import.meta.url));

export async function buildStudio(outdir = join(HERE, "dist")): Promise<{ ms: number; outdir: string }> {
  const t0 = performance.now();
  const result = await build({
    entryPoints: { app: join(HERE, "app.ts"), worker: join(HERE, "worker.ts") },
    outdir,
    // The platform's browser twins; onnxruntime-web loads its wasm from beside the bundle (the
    // studio server serves it there).
    ...browserBuildOptions(),
    sourcemap: "linked",
    logLevel: "silent",
    legalComments: "none",
    write: false,
  });
  // Each file replaced whole (written beside, then renamed): a server or test reading the bundle
  // while another process rebuilds it never sees half a file.
  mkdirSync(outdir, { recursive: true });
  // The page beside its bundles: an installed package serves dist/studio/ alone.
  const files = [...result.outputFiles.map((f) => ({ path: f.path, contents: f.contents })), { path: join(outdir, "index.html"), contents: readFileSync(join(HERE, "index.html")) }];
  for (const f of files) {
    const tmp = `${f.path}.tmp-${process.pid}`;
    writeFileSync(tmp, f.contents);
    renameSync(tmp, f.path);
  }
  return { ms: performance.now() - t0, outdir };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const { ms, outdir } = await buildStudio(process.argv[2]);
  console.log(`studio built in ${Math.round(ms)} ms -> ${outdir}`);
}
