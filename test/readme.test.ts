// The README runs as written: its ```ts blocks are executed in order (paths to checkpoints and
// adapters mapped to the tiny fixtures, `from "peftjs"` to this checkout's sources), and its
// command lines name commands and options the CLI has. Editing the README so that it no longer
// works fails here.
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { describe, it } from "node:test";
import { type Command } from "commander";
import { program } from "../src/cli/main.js";

const ROOT = join(import.meta.dirname, "..");
const FIXTURES = join(ROOT, "test", "fixtures", "models");
const README = readFileSync(join(ROOT, "README.md"), "utf8");

const fenced = (lang: string) => [...README.matchAll(new RegExp(`^\`\`\`${lang}\\n([\\s\\S]*?)^\`\`\`$`, "gm"))].map((m) => m[1]!);

/** The checkpoints and adapters the README names, and what they are here. */
const work = mkdtempSync(join(tmpdir(), "peftjs-readme-"));
const PATHS: Record<string, string> = {
  "./bert-base-uncased": join(FIXTURES, "bert-tiny"),
  "./SmolLM-135M": join(FIXTURES, "llama-tiny"),
  "./my-adapter": join(work, "my-adapter"),
  "./my-model-web": join(work, "my-model-web"),
};

/** A README block as a runnable module: paths mapped, `peftjs` imported from src/. */
function runnable(block: string, n: number): string {
  const unmapped = [...block.matchAll(/"(\.\.?\/[^"]*)"/g)].map((m) => m[1]!).filter((p) => !(p in PATHS));
  assert.deepEqual(unmapped, [], `README ts block ${n} uses paths the test does not map to a fixture (add them to PATHS)`);
  const source = block.replace(/"(\.\.?\/[^"]*)"/g, (_, p: string) => JSON.stringify(PATHS[p])).replace(/from "peftjs"/g, `from ${JSON.stringify(pathToFileURL(join(ROOT, "src", "index.ts")).href)}`);
  const file = join(work, `block-${n}.mts`);
  writeFileSync(file, source);
  return file;
}

describe("README code blocks run as written", () => {
  const blocks = fenced("ts");
  it("has the examples this test expects (loading, forward, fine-tuning, generation)", () => {
    assert.ok(blocks.length >= 3, `found ${blocks.length} ts blocks`);
    assert.ok(blocks.some((b) => b.includes(".forward(")), "a forward example");
  });
  // In order: a later block may use what an earlier one saved (./my-adapter).
  blocks.forEach((block, i) => {
    const title = block.split("\n").find((l) => /await /.test(l))?.trim().slice(0, 70) ?? `block ${i + 1}`;
    it(`block ${i + 1}: ${title}`, async () => {
      const log = console.log;
      console.log = () => undefined; // printTrainableParameters and friends
      try {
        await import(pathToFileURL(runnable(block, i + 1)).href);
      } finally {
        console.log = log;
      }
    });
  });
  it("the fine-tuning block saved a PEFT adapter", () => {
    assert.deepEqual(readdirSync(PATHS["./my-adapter"]!).filter((f) => f.startsWith("adapter_")).sort(), ["adapter_config.json", "adapter_model.safetensors"]);
  });
});

describe("README command lines", () => {
  const cli = program(() => undefined, () => undefined);
  const command = (name: string) => cli.commands.find((c: Command) => c.name() === name);

  it("the first two commands are true: install + demo, npm test", () => {
    const [first] = fenced("sh");
    const lines = first!.split("\n").filter(Boolean).map((l) => l.replace(/\s+#.*$/, "").trim());
    assert.deepEqual(lines, ["npm install && npx peftjs demo", "npm test"]);
    const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { bin: Record<string, string>; scripts: Record<string, string> };
    assert.ok(existsSync(join(ROOT, pkg.bin.peftjs!)), "npx peftjs runs bin/peftjs.js");
    assert.ok(command("demo"), "peftjs has a demo command");
    assert.match(pkg.scripts.test!, /--test/);
  });

  it("every `npx peftjs` line names a command and options it has", () => {
    const lines = fenced("sh").flatMap((b) => b.split("\n")).map((l) => l.replace(/\s+#.*$/, "").trim()).filter((l) => l.startsWith("npx peftjs "));
    assert.ok(lines.length > 5, `found ${lines.length} command lines`);
    for (const line of lines) {
      const [, name, ...rest] = line.replace(/^npx /, "").split(/\s+/);
      const cmd = command(name!);
      assert.ok(cmd, `${line}: no command "${name}"`);
      const known = new Set(cmd.options.map((o) => o.long));
      for (const opt of rest.filter((w) => w.startsWith("--"))) assert.ok(known.has(opt), `${line}: "${name}" has no option ${opt}`);
    }
  });
});
