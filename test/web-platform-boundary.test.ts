// The core (ir, autodiff, runtime, models, tuners, peft, train, io) runs in a browser: it imports
// no node: module and not onnxruntime-node; files, paths and the ONNX Runtime come through
// src/platform/, whose *.browser.ts twins the browser build substitutes.
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { it } from "node:test";

const ROOT = resolve(import.meta.dirname, "..");
const CORE = ["ir", "autodiff", "runtime", "models", "tuners", "peft", "train", "io"];
const FORBIDDEN = /^(node:|onnxruntime-node$|onnxruntime-node\/)/;

/** Module specifiers of every import / export-from / dynamic import in a source file. */
export function specifiers(text: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(/^\s*(?:import|export)\s(?:[^;'"]*?\sfrom\s)?["']([^"']+)["']/gm)) out.push(m[1]!);
  for (const m of text.matchAll(/\bimport\(\s*["']([^"']+)["']\s*\)/g)) out.push(m[1]!);
  for (const m of text.matchAll(/\brequire\(\s*["']([^"']+)["']\s*\)/g)) out.push(m[1]!);
  return out;
}

it("the specifier scan sees static, type-only, multi-line and dynamic imports", () => {
  const sample = `import a from "node:fs";\nimport type { X } from "onnxruntime-node";\nimport {\n  b,\n} from "./b.js";\nexport * from "node:path";\nconst m = await import("node:os");\nimport "side-effect";`;
  assert.deepEqual(specifiers(sample), ["node:fs", "onnxruntime-node", "./b.js", "node:path", "side-effect", "node:os"]);
});

it("core source files import no node: module and not onnxruntime-node", () => {
  const offenders: string[] = [];
  let files = 0;
  for (const dir of CORE) {
    for (const f of readdirSync(join(ROOT, "src", dir), { recursive: true, encoding: "utf8" })) {
      if (!f.endsWith(".ts") || f.endsWith(".test.ts")) continue;
      files++;
      const text = readFileSync(join(ROOT, "src", dir, f), "utf8");
      for (const s of specifiers(text)) if (FORBIDDEN.test(s)) offenders.push(`src/${dir}/${f} imports "${s}"`);
    }
  }
  assert.ok(files > 50, `only ${files} core files found`);
  assert.deepEqual(offenders, [], `the core must reach files and ONNX Runtime through src/platform/:\n${offenders.join("\n")}`);
});

it("every platform module with a browser twin exports the same names, and the twins import no node: module", async () => {
  const dir = join(ROOT, "src", "platform");
  const twins = readdirSync(dir).filter((f) => f.endsWith(".browser.ts"));
  assert.ok(twins.length >= 3, `browser twins: ${twins.join(", ")}`);
  for (const twin of twins) {
    const base = twin.replace(/\.browser\.ts$/, ".ts");
    assert.ok(existsSync(join(dir, base)), `${twin} has no Node counterpart ${base}`);
    const exported = (f: string) => [...readFileSync(join(dir, f), "utf8").matchAll(/^export\s+(?!type\b|interface\b)(?:(?:async\s+)?(?:const|function|class|let)\s+)?(?:\{([^}]*)\}|(\w+))/gm)]
      .flatMap((m) => (m[1] ? m[1].split(",").map((s) => s.trim().split(/\s*:\s*/).pop()!) : [m[2]!]))
      .filter(Boolean)
      .sort();
    assert.deepEqual(exported(twin), exported(base), `${twin} and ${base} export different names`);
    const bad = specifiers(readFileSync(join(dir, twin), "utf8")).filter((s) => FORBIDDEN.test(s));
    assert.deepEqual(bad, [], `${twin} must not import ${bad.join(", ")}`);
  }
});
