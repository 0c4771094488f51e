// Reading data files: encodings (UTF-8 only, BOM dropped, UTF-16 and invalid bytes named with the
// line), empty files, errors that name file + line + field, fields a task does not use, and
// truncation whose work follows what is kept, not the record's length.
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { Tokenizer } from "../src/io/tokenizer.js";
import { classificationExamples, clipText, DataError, languageModelingExamples, readRecords, unusedFields } from "../src/train/data.js";
import { FIXTURES } from "./support/tiny-training.js";

const dir = mkdtempSync(join(tmpdir(), "peftjs-data-files-"));
const file = (name: string, content: string | Uint8Array) => {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
};
const rejects = (path: string, pattern: RegExp) => assert.rejects(readRecords(path), (e: Error) => e instanceof DataError && pattern.test(e.message) && !e.message.includes("\n"));

describe("data file encodings", () => {
  it("a UTF-8 byte-order mark is dropped (JSONL and CSV)", async () => {
    const jsonl = await readRecords(file("bom.jsonl", `\uFEFF{"text":"a","label":"x"}\n`));
    assert.deepEqual(jsonl, [{ text: "a", label: "x" }]);
    const csv = await readRecords(file("bom.csv", "\uFEFFtext,label\na,x\n"));
    assert.deepEqual(Object.keys(csv[0]!), ["text", "label"], "the first column is not named \\uFEFFtext");
  });

  it("invalid UTF-8 is an error naming the line", async () => {
    const bytes = Buffer.concat([Buffer.from('{"text":"ok","label":"x"}\n{"text":"caf'), Buffer.from([0xe9]), Buffer.from('","label":"y"}\n')]);
    await rejects(file("latin1.jsonl", bytes), /latin1\.jsonl line 2: invalid UTF-8/);
  });

  it("UTF-16 is detected and named, with or without a byte-order mark", async () => {
    const text = 'text,label\nhello,x\n';
    const le = Buffer.from(`\uFEFF${text}`, "utf16le");
    await rejects(file("le.csv", le), /le\.csv: the file is UTF-16 \(little-endian/);
    const be = Buffer.from(le.map((_, i) => le[i ^ 1]!));
    await rejects(file("be.csv", be), /be\.csv: the file is UTF-16 \(big-endian/);
    await rejects(file("nobom.csv", Buffer.from(text, "utf16le")), /nobom\.csv: the file looks like UTF-16/);
  });

  it("an empty file, a blank file and a header-only CSV say so", async () => {
    await rejects(file("empty.jsonl", ""), /empty\.jsonl: no records \(the file is empty\)/);
    await rejects(file("blank.jsonl", "\n  \n"), /blank\.jsonl: no records/);
    await rejects(file("header.csv", "text,label\n"), /header\.csv: no records \(only a header row\)/);
  });
});

describe("data errors name the file, line and field", () => {
  it("a record missing its label names its line and the fields it has", async () => {
    const tok = await Tokenizer.fromDir(join(FIXTURES, "bert-tiny"));
    const path = file("gap.jsonl", '{"text":"a","label":"x"}\n\n{"text":"b","lable":"y"}\n');
    const records = await readRecords(path);
    assert.throws(() => classificationExamples(records, tok, { maxLength: 16, source: path }), (e: Error) => e instanceof DataError && e.message.startsWith(`${path} line 3: missing field "label"`) && /has text, lable/.test(e.message));
    const csv = file("gap.csv", "text,label\na,x\nb,\n");
    const csvRecords = await readRecords(csv);
    assert.throws(() => classificationExamples(csvRecords, tok, { maxLength: 16, source: csv }), new RegExp(`${csv.replace(/[.]/g, "\\.")} line 3: missing field "label"`));
  });

  it(".json holds one array of records; other file types are named, not guessed", async () => {
    assert.deepEqual(await readRecords(file("array.json", '[{"text":"a","label":"x"},\n {"text":"b","label":"y"}]')), [{ text: "a", label: "x" }, { text: "b", label: "y" }]);
    await rejects(file("object.json", '{"text":"a"}'), /object\.json: expected an array of records, got an object \(use \.jsonl/);
    await rejects(file("mixed.json", '[{"text":"a"}, 3]'), /mixed\.json record 2: expected a JSON object, got 3$/);
    await rejects(file("train.txt", "hello\n"), /train\.txt: unknown data file type "\.txt"; expected \.jsonl, \.ndjson, \.json, \.csv, \.tsv$/);
  });

  it("a CSV header naming a column twice is refused (one column's values would be dropped)", async () => {
    await rejects(file("twice.csv", "text,label,text\na,x,b\n"), /twice\.csv line 1: the header names column "text" twice$/);
  });

  it("a line that is not a JSON object says what it is", async () => {
    await rejects(file("array.jsonl", '{"text":"a"}\n["text"]\n'), /array\.jsonl line 2: expected a JSON object, got an array/);
  });

  it("fields a task does not read are listed with the first line holding them", async () => {
    const records = await readRecords(file("extra.jsonl", '{"text":"a","label":"x"}\n{"text":"b","lable":"y","id":7}\n'));
    assert.deepEqual(unusedFields(records, "causal-lm", { source: "extra.jsonl" }), [{ field: "label", where: "extra.jsonl line 1" }, { field: "lable", where: "extra.jsonl line 2" }, { field: "id", where: "extra.jsonl line 2" }]);
    assert.deepEqual(unusedFields(records, "sequence-classification").map((u) => u.field), ["lable", "id"]);
    assert.deepEqual(unusedFields(records, "sequence-classification", { labelled: false }).map((u) => u.field), ["lable", "id"], "predicting ignores targets on purpose, not misspellings");
  });
});

describe("truncation is linear in the record's length", () => {
  // Text with varied whitespace (runs, newlines, tabs) and non-ASCII words.
  const words = ["the", "cat", "sat", "on", "mat", "river", "bank", "money", "dog", "a", "near", "Ünïcödé", "42", "!?", "can't"];
  const gaps = [" ", " ", "  ", "\n", "\t "];
  const make = (chars: number, seed: number) => {
    let s = "";
    let x = seed;
    const next = () => (x = (x * 1103515245 + 12345) % 2 ** 31);
    while (s.length < chars) s += words[next() % words.length]! + gaps[next() % gaps.length]!;
    return s;
  };

  for (const name of ["bert-tiny", "roberta-tiny", "gpt2-tiny", "llama-tiny", "qwen2-tiny"]) {
    it(`${name}: the clipped text keeps exactly the tokens the full text keeps`, async () => {
      const tok = await Tokenizer.fromDir(join(FIXTURES, name));
      for (let k = 0; k < 12; k++) {
        const text = make(2000 + 700 * k, k + 1);
        for (const max of [8, 64, 200]) {
          const ids = (t: string) => tok.encode(t, { addSpecialTokens: false }).ids.slice(0, max);
          assert.deepEqual(ids(clipText(text, tok, max)), ids(text), `text ${k}, ${max} tokens`);
        }
      }
      const short = "the cat sat";
      assert.equal(clipText(short, tok, 128), short);
    });
  }

  it("a 5 MB record tokenizes a few kilobytes, not the record", async () => {
    const tok = await Tokenizer.fromDir(join(FIXTURES, "bert-tiny"));
    const text = make(5_000_000, 7);
    // What the first 20 KB keep, tokenized in full (the old way): the same 128 tokens.
    const reference = Array.from(tok.encodeBatch([text.slice(0, 20_000)], { maxLength: 128 }).input_ids.data, Number);
    let chars = 0;
    const encode = tok.encode.bind(tok);
    tok.encode = (t, opts) => {
      chars += t.length;
      // Fail fast (the old code tokenized the whole record, then truncated it in quadratic time).
      if (chars > 200_000) throw new Error(`tokenized ${chars} characters to keep 128 tokens`);
      return encode(t, opts);
    };
    const started = performance.now();
    const { examples } = classificationExamples([{ text, label: "x" }, { text: "short", text_pair: text, label: "y" }], tok, { maxLength: 128 });
    const lm = languageModelingExamples([{ text }], tok, { maxLength: 128 });
    const ms = performance.now() - started;
    assert.deepEqual(examples.map((e) => e.ids.length), [128, 128]);
    assert.equal(lm[0]!.ids.length, 128);
    assert.deepEqual(examples[0]!.ids, reference);
    assert.deepEqual(lm[0]!.ids, reference);
    // Work, not time: each 5 MB text cost at most a few windows of ~8 characters per kept token.
    assert.ok(chars < 40 * 128 * 8, `tokenized ${chars} characters`);
    console.log(`# 5 MB records (classification, pair, LM) prepared in ${ms.toFixed(0)} ms, ${chars} characters tokenized`);
  });
});
