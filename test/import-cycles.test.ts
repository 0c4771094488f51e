// The source tree has no runtime import cycles: a cycle makes a module's exports `undefined`
// while the other half of the cycle evaluates, depending on which file is imported first.
// Type-only imports are erased at compile time and do not count.
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { it } from "node:test";

const ROOT = resolve(import.meta.dirname, "..");

/** Runtime imports of each non-test .ts file under src/ (resolved paths). */
function importGraph(): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  const files = readdirSync(join(ROOT, "src"), { recursive: true, encoding: "utf8" }).filter((f) => f.endsWith(".ts") && !f.endsWith(".test.ts"));
  for (const f of files) {
    const path = join(ROOT, "src", f);
    const deps: string[] = [];
    for (const m of readFileSync(path, "utf8").matchAll(/^(?:import|export)\s+(type\s+)?([^;]*?)\s+from\s+"(\.[^"]+)";/gms)) {
      if (m[1]) continue;
      const names = /^\{([^}]*)\}$/s.exec(m[2]!)?.[1];
      if (names !== undefined && names.split(",").map((s) => s.trim()).filter(Boolean).every((s) => s.startsWith("type "))) continue;
      deps.push(resolve(dirname(path), m[3]!.replace(/\.js$/, ".ts")));
    }
    graph.set(path, deps);
  }
  return graph;
}

/** Strongly connected components with more than one file (Tarjan). */
function cycles(graph: Map<string, string[]>): string[][] {
  let counter = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (v: string) => {
    index.set(v, counter);
    low.set(v, counter++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue;
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) !== index.get(v)) return;
    const component: string[] = [];
    let w: string;
    do {
      w = stack.pop()!;
      onStack.delete(w);
      component.push(relative(ROOT, w));
    } while (w !== v);
    if (component.length > 1) found.push(component.sort());
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return found;
}

it("src/ has no runtime import cycles", () => {
  const graph = importGraph();
  assert.ok(graph.size > 50, `found only ${graph.size} source files`);
  assert.deepEqual(cycles(graph), []);
});
