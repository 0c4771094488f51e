// The BPE trainer: learned merges are the most frequent pairs, and the tokenizer.json it writes
// encodes and round-trips through @huggingface/tokenizers.
import assert from "node:assert/strict";
import { it } from "node:test";
import { trainByteLevelBpe } from "./bpe-trainer.js";
import { Tokenizer } from "./tokenizer.js";

it("learns frequent merges and writes a working byte-level BPE tokenizer", () => {
  const texts = Array.from({ length: 50 }, () => "the whale and the sea. The whale swam in the sea, and the sailors saw the whale!");
  const { tokenizer, config } = trainByteLevelBpe(texts, { vocabSize: 300, specialTokens: ["<s>", "<pad>", "</s>", "<unk>", "<mask>"], postProcessor: "roberta", modelMaxLength: 64 });
  const merges = (tokenizer.model as { merges: string[] }).merges;
  assert.equal(merges[0], "h e", "'he' (in the, The) is the most frequent pair");
  const tok = Tokenizer.fromJSON(tokenizer, config);
  const enc = tok.encode("the whale saw the sea");
  assert.equal(enc.ids[0], 0, "<s> first");
  assert.equal(enc.ids.at(-1), 2, "</s> last");
  assert.ok(enc.ids.length <= 8, `common words become single tokens (${enc.ids.length} ids)`);
  assert.equal(tok.decode(enc.ids, { skipSpecialTokens: true }), "the whale saw the sea");
  assert.equal(tok.decode(tok.encode("unseen Zebra 42 ✓").ids, { skipSpecialTokens: true }), "unseen Zebra 42 ✓", "any text round-trips (bytes)");
  assert.equal(tok.padTokenId, 1);
});
