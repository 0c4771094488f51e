// Fuzzing what peftjs loads: random corruptions of a model's config.json and weights and of an
// adapter's config and weights, each loaded through `peftjs info --adapter` in a child process
// bounded by a timeout. Every run ends in success or one error line plus a hint — never a hang, a
// stack trace, a large allocation, or a changed input file.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { loadModel } from "../src/models/pretrained.js";
import { PeftModel } from "../src/peft/peft-model.js";
import { FIXTURES } from "./support/tiny-training.js";

describe("load fuzz: corrupted model and adapter files", () => {
  it("each corruption loads or fails with one line and a hint; nothing hangs, leaks a stack, allocates much or changes its input", async () => {
    const model = join(FIXTURES, "bert-tiny");
    const adapter = join(mkdtempSync(join(tmpdir(), "peftjs-load-fuzz-src-")), "adapter");
    const base = await loadModel(model, { task: "sequence-classification" });
    await PeftModel.create(base, { peft_type: "LORA", r: 4, target_modules: ["query", "value"] }).save(adapter);
    const runs = 120;
    const child = spawnSync(process.execPath, ["--import", "tsx", join(import.meta.dirname, "support", "load-fuzz-child.ts"), model, adapter, "7", String(runs)], { encoding: "utf8", timeout: 150_000, maxBuffer: 64 * 2 ** 20 });
    assert.equal(child.error, undefined, `the child did not finish (a hang?): ${child.error?.message}\n${child.stdout.split("\n").at(-2) ?? ""}`);
    assert.equal(child.status, 0, child.stderr);
    const results = child.stdout.trim().split("\n").map((l) => JSON.parse(l) as { run: number; target: string; code: number; err: string; unchanged: boolean; grewMiB: number });
    assert.equal(results.length, runs);
    let failed = 0;
    for (const r of results) {
      const what = `run ${r.run} (${r.target})`;
      assert.ok(r.code === 0 || r.code === 1, `${what}: exit ${r.code}\n${r.err}`);
      assert.doesNotMatch(r.err, /\n\s+at |uncaught/, `${what}: no stack trace\n${r.err}`);
      if (r.code === 1) {
        failed++;
        const lines = r.err.trim().split("\n").filter((l) => !l.startsWith("note: "));
        assert.equal(lines.length, 2, `${what}: one error line and a hint\n${r.err}`);
        assert.match(lines[0]!, /^peftjs: \S/);
        assert.match(lines[1]!, /^hint: /);
        // A JavaScript runtime error is not a message for users: the field or file must be named.
        assert.doesNotMatch(lines[0]!, /is not iterable|Cannot read propert|is not a function|of undefined|of null|Maximum call stack/, `${what}: an internal error leaked\n${r.err}`);
      }
      assert.ok(r.unchanged, `${what}: an input file was changed`);
      assert.ok(r.grewMiB < 256, `${what}: ${r.grewMiB} MiB of buffers held`);
    }
    assert.ok(failed > runs / 3, `most corruptions are errors (${failed} of ${runs})`);
  });
});
