// `peftjs serve` as a process: options through the CLI's schema, it answers on loopback, and
// SIGTERM finishes what is in flight and exits 0.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { join } from "node:path";
import { describe, it } from "node:test";
import { main } from "../src/cli/main.js";
import { FIXTURES, makeAdapters, postJson } from "./serve-support.js";

const BIN = join(import.meta.dirname, "..", "bin", "peftjs.js");
const BERT = join(FIXTURES, "bert-tiny");

describe("peftjs serve (command line)", () => {
  it("refuses bad options with one line naming the flag", async () => {
    let err = "";
    const code = await main(["serve", "--model", BERT, "--max-batch", "0"], { out: () => undefined, write: () => undefined, err: (s) => (err += `${s}\n`) });
    assert.equal(code, 1);
    assert.match(err, /--max-batch: expected an integer >= 1, got 0/);
    err = "";
    assert.equal(await main(["serve", "--model", BERT, "--max-bach", "2"], { out: () => undefined, write: () => undefined, err: (s) => (err += `${s}\n`) }), 1);
    assert.match(err, /did you mean --max-batch/);
  });

  it("serves on loopback and drains on SIGTERM", async () => {
    const root = await makeAdapters(BERT, "sequence-classification", [{ name: "a", labels: ["neg", "neu", "pos"], seed: 1 }]);
    const child = spawn(process.execPath, [BIN, "serve", "--model", BERT, "--adapters", root, "--port", "0", "--log-level", "silent"], { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    const url = await new Promise<string>((resolve, reject) => {
      child.stderr.on("data", (d: Buffer) => {
        stderr += d.toString();
        const m = /at (http:\/\/127\.0\.0\.1:\d+)/.exec(stderr);
        if (m) resolve(m[1]!);
      });
      child.once("exit", (code) => reject(new Error(`exited ${code}: ${stderr}`)));
    });
    const pending = postJson(`${url}/v1/classify`, { model: "a", input: ["the cat", "the dog"] });
    const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
    const r = await pending;
    child.kill("SIGTERM");
    assert.equal(r.status, 200);
    assert.equal(r.body.adapter.name, "a");
    assert.equal(await exited, 0, stderr);
  });
});
