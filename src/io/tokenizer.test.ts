// Tokenizers of the tiny checkpoints against ids computed by an independent Python reference
// (bench/reference/tiny_checkpoints.py), plus batching: padding sides, truncation, pairs.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { Tokenizer, TokenizerError } from "./tokenizer.js";

const FIXTURES = join(import.meta.dirname, "..", "..", "test", "fixtures", "models");
const expectations = JSON.parse(readFileSync(join(FIXTURES, "tokenizer-expectations.json"), "utf8")) as Record<string, { texts: string[]; ids: number[][]; pair?: [string, string]; pair_ids?: number[]; pair_type_ids?: number[] }>;

describe("tokenizers", () => {
  for (const [dir, key] of [["bert-tiny", "wordpiece"], ["roberta-tiny", "roberta"], ["gpt2-tiny", "gpt2"], ["llama-tiny", "llama"]] as const) {
    it(`${dir} (${key}) matches the reference ids and round-trips`, async () => {
      const t = await Tokenizer.fromDir(join(FIXTURES, dir));
      const e = expectations[key]!;
      e.texts.forEach((text, i) => {
        const ids = t.encode(text).ids;
        assert.deepEqual(ids, e.ids[i]);
        assert.equal(t.decode(ids, { skipSpecialTokens: true }).trim(), key === "wordpiece" ? text.toLowerCase() : text);
      });
      if (e.pair) {
        const p = t.encode(e.pair[0], { pair: e.pair[1] });
        assert.deepEqual(p.ids, e.pair_ids);
        assert.deepEqual(p.tokenTypeIds, e.pair_type_ids);
      }
    });
  }

  it("pads right by default and left when asked, with matching masks", async () => {
    const t = await Tokenizer.fromDir(join(FIXTURES, "bert-tiny"));
    const b = t.encodeBatch(["the cat", "the cat sat on the mat"]);
    assert.deepEqual(b.input_ids.shape, [2, 8]);
    assert.deepEqual(Array.from(b.attention_mask.data.slice(0, 8), Number), [1, 1, 1, 1, 0, 0, 0, 0]);
    assert.equal(b.input_ids.data[4], BigInt(t.padTokenId!));
    const left = t.encodeBatch(["the cat", "the cat sat on the mat"], { paddingSide: "left" });
    assert.deepEqual(Array.from(left.attention_mask.data.slice(0, 8), Number), [0, 0, 0, 0, 1, 1, 1, 1]);
    const llama = await Tokenizer.fromDir(join(FIXTURES, "llama-tiny"));
    assert.equal(llama.paddingSide, "left", "from tokenizer_config.json");
  });

  it("truncates content but keeps special tokens; longest segment first for pairs", async () => {
    const t = await Tokenizer.fromDir(join(FIXTURES, "bert-tiny"));
    const cls = t.tokenToId("[CLS]")!;
    const sep = t.tokenToId("[SEP]")!;
    const b = t.encodeBatch(["the cat sat on the mat"], { maxLength: 5 });
    const ids = Array.from(b.input_ids.data, Number);
    assert.equal(ids.length, 5);
    assert.equal(ids[0], cls);
    assert.equal(ids[4], sep);
    const p = t.encodeBatch(["the cat"], { pairs: ["the dog sat near the river bank"], maxLength: 9 });
    const pids = Array.from(p.input_ids.data, Number);
    assert.equal(pids.length, 9);
    assert.deepEqual(pids.slice(0, 4), [cls, t.tokenToId("the"), t.tokenToId("cat"), sep], "the shorter first segment is kept whole");
    assert.equal(pids[8], sep);
    assert.equal(t.encodeBatch(["x ".repeat(100)]).input_ids.shape[1], 32, "model_max_length from tokenizer_config.json");
    assert.throws(() => t.encodeBatch(["a", "b"], { pairs: ["c"] }), TokenizerError);
  });

  it("reports missing and malformed tokenizer files by path", async () => {
    await assert.rejects(Tokenizer.fromDir(join(FIXTURES, "nope")), /nope\/tokenizer.json: ENOENT/);
    assert.throws(() => Tokenizer.fromJSON({ model: { type: "Nonsense" } }, {}, "bad.json"), /bad.json: cannot build the tokenizer/);
  });
});
