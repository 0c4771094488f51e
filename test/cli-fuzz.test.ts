// Fuzzing the CLI's edge: random option values (flags and config files) for every command, and
// random corruptions of data files. Each run must end in success or one error line plus a hint:
// never a stack trace, a multi-line message or an exception other than a DataError.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { main } from "../src/cli/main.js";
import { commandOptions } from "../src/cli/options.js";
import { Tokenizer } from "../src/io/tokenizer.js";
import { seededRandom } from "../src/ir/random.js";
import { classificationExamples, DataError, readRecords } from "../src/train/data.js";
import { FIXTURES, RECORDS } from "./support/tiny-training.js";

const dir = mkdtempSync(join(tmpdir(), "peftjs-cli-fuzz-"));
const MISSING = join(dir, "missing.jsonl");
const VALUES = ["-1", "0", "1", "2", "0.5", "1.5", "1e9", "-0.001", "abc", "", " ", "NaN", "Infinity", "-0", "f1:3", "f1:abc", "loss", "a,b", ",", "x=1", "=1", "lora", "linear", "sequence-classification", "true", "0x10", "1e-300"];
const CONFIGS = ["epochs: 2\n", "- a\n- b\n", "lr: [1, 2]\n", "batch-size: null\n", "{", "epoch: 3\n", "lr: '0.1'\n", "target-modules: 5\n", "peft: {r: 4}\n", "config: other.yaml\n", "\u0000", "max_length: 1e99\n", "seed: 4294967296\n", ""];

describe("CLI fuzz: random option values", () => {
  it("every run ends in one error line and a hint (the data, model and corpus never exist, so nothing trains)", async () => {
    const rand = seededRandom(11);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
    const configs = CONFIGS.map((c, i) => {
      const path = join(dir, `c${i}.${i % 3 === 0 ? "json" : "yaml"}`);
      writeFileSync(path, i % 3 === 0 ? JSON.stringify(Object.fromEntries(c.split("\n").filter(Boolean).map((l) => l.split(": ")))) : c);
      return path;
    });
    const specs = commandOptions(["lora", "ia3"]);
    // Inputs that never exist: options are validated, then the first file read fails. (demo is left
    // out: it builds its data sets before loading the model, seconds per run.)
    const base: Record<string, string[]> = {
      train: ["--model", MISSING, "--data", MISSING],
      eval: ["--model", MISSING, "--data", MISSING],
      predict: ["--model", MISSING, "--data", MISSING],
      generate: ["--model", MISSING, "--prompt", "a"],
      merge: ["--model", MISSING, "--adapter", MISSING, "--output", join(dir, "out")],
      pretrain: ["--kind", "decoder", "--output", join(dir, "out"), "--corpus", MISSING],
      info: [MISSING],
    };
    const kebab = (k: string) => k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
    let optionErrors = 0;
    for (let n = 0; n < 300; n++) {
      const command = pick(Object.keys(base)) as keyof typeof specs;
      const argv = [command, ...base[command]!];
      const keys = Object.keys(specs[command]).filter((k) => !["model", "data", "output", "corpus", "kind", "adapter", "text", "question", "context"].includes(k));
      for (let k = 0; k < 1 + Math.floor(rand() * 3); k++) {
        const key = pick(keys);
        const spec = specs[command][key as keyof (typeof specs)[typeof command]] as { arg?: string };
        const name = rand() < 0.1 ? `--${kebab(key).slice(1)}` : `--${kebab(key)}`; // sometimes mistyped
        if (key === "config") argv.push(name, pick(configs));
        else if (spec.arg) argv.push(name, pick(VALUES));
        else argv.push(name);
      }
      let err = "";
      const code = await main(argv, { out: () => undefined, write: () => undefined, err: (s) => (err += `${s}\n`) });
      const lines = err.trim().split("\n").filter((l) => !l.startsWith("note: ")); // notes may precede the error
      assert.notEqual(code, 0, `${argv.join(" ")} succeeded`);
      assert.equal(lines.length, 2, `${argv.join(" ")}:\n${err}`);
      assert.match(lines[0]!, /^peftjs: \S/, argv.join(" "));
      assert.match(lines[1]!, /^hint: /, argv.join(" "));
      assert.doesNotMatch(err, /\n\s+at /, "no stack trace");
      if (!/missing\.jsonl|ENOENT/.test(lines[0]!)) optionErrors++;
    }
    assert.ok(optionErrors > 100, `${optionErrors} of 300 runs stopped at an option`);
  });
});

describe("data fuzz: random corruptions of data files", () => {
  it("each corrupted file reads to records or a one-line DataError naming the file", async () => {
    const tok = await Tokenizer.fromDir(join(FIXTURES, "bert-tiny"));
    const rand = seededRandom(5);
    const jsonl = Buffer.from(RECORDS.slice(0, 8).map((r) => JSON.stringify(r)).join("\n"));
    const csv = Buffer.from(`text,label\n${RECORDS.slice(0, 8).map((r) => `"${r.text}",${r.label}`).join("\n")}\n`);
    const junk = [0x00, 0xff, 0xfe, 0xc3, 0x22, 0x2c, 0x0a, 0x7b, 0x7d, 0xef, 0xbb, 0xbf, 0x5c];
    let failures = 0;
    for (let n = 0; n < 300; n++) {
      const ext = n % 2 ? "csv" : "jsonl";
      const bytes = Array.from(ext === "csv" ? csv : jsonl);
      for (let k = 0; k < 1 + Math.floor(rand() * 4); k++) {
        const at = Math.floor(rand() * bytes.length);
        const op = rand();
        if (op < 0.3) bytes[at] = junk[Math.floor(rand() * junk.length)]!;
        else if (op < 0.5) bytes.splice(at, 1 + Math.floor(rand() * 8));
        else if (op < 0.7) bytes.splice(at, 0, junk[Math.floor(rand() * junk.length)]!);
        else if (op < 0.8) bytes.length = at; // truncated
        else bytes.splice(0, 0, ...[[0xef, 0xbb, 0xbf], [0xff, 0xfe], [0xfe, 0xff]][Math.floor(rand() * 3)]!);
      }
      const path = join(dir, `d${n}.${ext}`);
      writeFileSync(path, Buffer.from(bytes));
      const before = readFileSync(path);
      try {
        const records = await readRecords(path);
        classificationExamples(records, tok, { maxLength: 16, source: path });
      } catch (e) {
        failures++;
        assert.ok(e instanceof DataError, `${path}: ${(e as Error).stack}`);
        assert.ok(e.message.startsWith(path), e.message);
        assert.ok(!e.message.includes("\n"), e.message);
      }
      assert.ok(readFileSync(path).equals(before), "the input file is unchanged");
    }
    assert.ok(failures > 50 && failures < 300, `${failures} of 300 corrupted files refused`);
  });
});
