// Tagging and extractive-QA data: special-token wrapping of pre-tokenized content, word/tag
// alignment, answer spans, their evaluation metrics, and the CLI reading both formats.
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { main } from "../src/cli/main.js";
import { Tokenizer } from "../src/io/tokenizer.js";
import { loadModel } from "../src/models/pretrained.js";
import { PeftModel } from "../src/peft/peft-model.js";
import { collate, DataError, questionAnsweringExamples, tokenClassificationExamples } from "../src/train/data.js";
import { bestSpan, bestWindows } from "../src/train/predict.js";
import { Trainer } from "../src/train/trainer.js";
import { FIXTURES } from "./support/tiny-training.js";

const TOKENIZERS = ["bert-tiny", "roberta-tiny", "gpt2-tiny", "llama-tiny"] as const;
const tokenizer = (name: string) => Tokenizer.fromDir(join(FIXTURES, name));

const NER = [
  { tokens: ["the", "cat", "sat", "near", "river", "bank"], tags: ["O", "B-ANIMAL", "O", "O", "B-PLACE", "I-PLACE"] },
  { tokens: ["a", "dog", "and", "the", "cat"], tags: ["O", "B-ANIMAL", "O", "O", "B-ANIMAL"] },
  { tokens: ["money", "in", "the", "bank"], tags: ["O", "O", "O", "B-PLACE"] },
];

const QA = [
  { question: "where did the cat sit?", context: "the cat sat on the mat near the river.", answers: { text: ["on the mat"], answer_start: [12] } },
  { question: "what is in the bank?", context: "money is in the bank of the river.", answer: "money" },
  { question: "who sat?", context: "a dog and the cat sat down.", answers: { text: ["the cat"], answer_start: [10] } },
];

describe("special tokens around pre-tokenized content", () => {
  for (const name of TOKENIZERS) {
    it(`${name}: wrapping plain ids reproduces the tokenizer's own single and pair encodings`, async () => {
      const tok = await tokenizer(name);
      const ids = (t: string) => tok.encode(t, { addSpecialTokens: false }).ids;
      for (const [a, b] of [["the cat sat", "on the mat"], ["money", "a dog near the river"]] as const) {
        const single = tok.wrapSpecialTokens(ids(a));
        assert.deepEqual(single.ids, tok.encode(a).ids);
        const pair = tok.wrapSpecialTokens(ids(a), ids(b));
        const expected = tok.encode(a, { pair: b });
        if (name === "gpt2-tiny") {
          // No post-processor: the JS tokenizer drops the second text; a pair is the concatenation (as in Python).
          assert.deepEqual(pair.ids, [...ids(a), ...ids(b)]);
        } else {
          assert.deepEqual(pair.ids, expected.ids);
          assert.deepEqual(pair.tokenTypeIds, expected.tokenTypeIds);
        }
        assert.deepEqual(pair.ids.slice(pair.starts[1]!, pair.starts[1]! + ids(b).length), ids(b));
      }
      assert.equal(tok.specialTokenCount(), tok.encode("a").ids.length - ids("a").length);
    });
  }
});

describe("token classification data", () => {
  for (const name of TOKENIZERS) {
    it(`${name}: the first sub-token of each word carries its tag; other pieces and special tokens are ignored`, async () => {
      const tok = await tokenizer(name);
      const { examples, labels } = tokenClassificationExamples(NER, tok, { maxLength: 64 });
      assert.deepEqual(labels, ["B-ANIMAL", "B-PLACE", "I-PLACE", "O"]);
      NER.forEach((r, i) => {
        const e = examples[i]!;
        assert.equal(e.ids.length, e.tokenLabels!.length);
        const tagged = e.tokenLabels!.filter((y) => y !== -100).map((y) => labels[y]);
        assert.deepEqual(tagged, r.tags, "one label per word, in order");
        // Decoding the content reproduces the words.
        assert.equal(tok.decode(e.ids, { skipSpecialTokens: true }).replace(/\s+/g, " ").trim(), r.tokens.join(" "));
        const first = e.tokenLabels!.findIndex((y) => y !== -100);
        assert.equal(first, tok.specialTokenCount() > 0 ? tok.wrapSpecialTokens([]).starts[0] : 0);
      });
    });
  }

  it("truncation keeps whole words; bad records name the record and field", async () => {
    const tok = await tokenizer("bert-tiny");
    const { examples } = tokenClassificationExamples(NER, tok, { maxLength: 6 });
    for (const e of examples) assert.ok(e.ids.length <= 6);
    assert.throws(() => tokenClassificationExamples([{ tokens: ["a", "b"], tags: ["O"] }], tok, { maxLength: 16, source: "ner.jsonl" }), (e: Error) => e instanceof DataError && /ner\.jsonl record 1: 2 tokens but 1 tags/.test(e.message));
    assert.throws(() => tokenClassificationExamples([{ tokens: ["a"], tags: ["X"] }], tok, { maxLength: 16, labelNames: ["O"] }), /tag "X" is not one of O/);
    assert.throws(() => tokenClassificationExamples([{ text: "a" }], tok, { maxLength: 16 }), /missing field "tokens" or "words"/);
  });
});

describe("extractive QA data", () => {
  for (const name of TOKENIZERS) {
    it(`${name}: start/end positions cover exactly the answer`, async () => {
      const tok = await tokenizer(name);
      const examples = questionAnsweringExamples(QA, tok, { maxLength: 64 });
      const answers = ["on the mat", "money", "the cat"];
      examples.forEach((e, i) => {
        assert.ok(e.startPosition! >= e.contextStart! && e.endPosition! >= e.startPosition!);
        assert.equal(tok.decode(e.ids.slice(e.startPosition, e.endPosition! + 1), { skipSpecialTokens: true }).trim(), answers[i]);
        assert.deepEqual(e.answers, [answers[i]]);
      });
      const batch = collate(examples, tok.padTokenId ?? 0);
      assert.deepEqual(Array.from(batch.start_positions!.data, Number), examples.map((e) => e.startPosition));
    });
  }

  for (const name of TOKENIZERS) {
    it(`${name}: a long context becomes overlapping windows; those without the whole answer target the first token`, async () => {
      const tok = await tokenizer(name);
      const context = "the cat sat on the mat near the river and the dog sat in the bank of the river";
      const record = { question: "what?", context, answers: { text: ["the bank"], answer_start: [context.indexOf("the bank")] } };
      const full = questionAnsweringExamples([record], tok, { maxLength: 128 });
      assert.equal(full.length, 1, "a context that fits is one window");
      // The context tokens of a window: after contextStart, before the trailing special tokens.
      const empty = tok.wrapSpecialTokens(tok.encode("what?", { addSpecialTokens: false }).ids, []);
      const trailing = empty.ids.length - empty.starts[1]!;
      const contextOf = (w: (typeof full)[number]) => w.ids.slice(w.contextStart, w.ids.length - trailing);
      const contextIds = contextOf(full[0]!);
      const windows = questionAnsweringExamples([record, { question: "who?", context: "a dog and the cat sat down.", answer: "the cat" }], tok, { maxLength: 14, stride: 3 });
      const first = windows.filter((w) => w.group === 0);
      assert.ok(first.length > 2, `${first.length} windows`);
      assert.ok(windows.every((w) => w.ids.length <= 14));
      assert.ok(windows.filter((w) => w.group === 1).length >= 1);
      // Neighbours share `stride` tokens; together the windows cover the whole context in order.
      const pieces = first.map(contextOf);
      for (let k = 1; k < pieces.length; k++) assert.deepEqual(pieces[k]!.slice(0, 3), pieces[k - 1]!.slice(-3), `window ${k} starts with the last 3 tokens of window ${k - 1}`);
      assert.deepEqual([pieces[0]!, ...pieces.slice(1).map((p) => p.slice(3))].flat(), contextIds);
      const holding = first.filter((w) => w.startPosition !== 0);
      assert.ok(holding.length >= 1, "some window holds the answer");
      for (const w of holding) assert.equal(tok.decode(w.ids.slice(w.startPosition, w.endPosition! + 1), { skipSpecialTokens: true }).trim(), "the bank");
      for (const w of first.filter((x) => x.startPosition === 0)) assert.equal(w.endPosition, 0);
      assert.throws(() => questionAnsweringExamples([record], tok, { maxLength: 14, stride: 40, source: "qa.jsonl" }), /qa\.jsonl record 1: the window overlap \(stride 40\) must be smaller than the \d+ context tokens/);
    });
  }

  it("an answer not in the context is an error", async () => {
    const tok = await tokenizer("bert-tiny");
    assert.throws(() => questionAnsweringExamples([{ question: "q", context: "the cat", answers: { text: ["dog"], answer_start: [0] } }], tok, { maxLength: 16, source: "qa.jsonl" }), /qa\.jsonl record 1: answer "dog" is not in the context at 0/);
  });

  it("a record's answer comes from its best window: the highest start + end logit", () => {
    const span = (answer: string, logit: number) => ({ start: 1, end: 1, answer, score: 0.5, logit });
    const examples = [{ group: 0 }, { group: 0 }, { group: 1 }, { group: 0 }].map((g) => ({ ids: [], typeIds: [], ...g }));
    const best = bestWindows(examples, [span("a", 1), span("b", 3), span("c", -2), span("d", 2)]);
    assert.deepEqual(best.map(([i, p]) => [i, p.answer]), [[1, "b"], [2, "c"]]);
  });

  it("the best span maximizes start + end logits within the context, end after start", () => {
    const e = { ids: [0, 5, 6, 1, 7, 8, 9, 1], typeIds: [], contextStart: 4 };
    const start = { dtype: "float32" as const, shape: [1, 8], data: Float32Array.from([9, 9, 0, 0, 1, 3, 0, 0]) };
    const end = { dtype: "float32" as const, shape: [1, 8], data: Float32Array.from([9, 0, 9, 0, 0, 0, 2, 5]) };
    // Positions before the context (the question) never win, however large their logits.
    assert.deepEqual(bestSpan(e, start, end, 0), [5, 7]);
  });
});

describe("training and evaluating tagging and QA", () => {
  it("token classification trains and reports token F1", async () => {
    const base = await loadModel(join(FIXTURES, "bert-tiny"), { task: "token-classification" });
    const data = tokenClassificationExamples([...NER, ...NER, ...NER], base.tokenizer!, { maxLength: 32 });
    (base.config as { numLabels: number }).numLabels = data.labels.length;
    const peft = PeftModel.create(base, { peft_type: "LORA", r: 4, lora_alpha: 8, target_modules: ["query", "value"] });
    const dir = mkdtempSync(join(tmpdir(), "peftjs-ner-"));
    const trainer = new Trainer(peft, data.examples, data.examples, { outputDir: dir, maxSteps: 40, batchSize: 3, lr: 3e-2, headLrScale: 1, dropout: false, progress: false, threads: 1, print: () => undefined });
    trainer.labelNames = data.labels;
    const before = await trainer.evaluate();
    const { finalMetrics } = await trainer.train();
    assert.ok(finalMetrics.loss! < before.loss!, `loss ${before.loss} -> ${finalMetrics.loss}`);
    assert.ok(finalMetrics.token_f1! > 0.8, `token F1 ${finalMetrics.token_f1}`);
    assert.ok(finalMetrics.token_accuracy! >= 0 && finalMetrics.token_accuracy! <= 1);
  });

  it("QA trains and reports exact match and F1 (percent)", async () => {
    const base = await loadModel(join(FIXTURES, "bert-tiny"), { task: "question-answering" });
    const examples = questionAnsweringExamples([...QA, ...QA], base.tokenizer!, { maxLength: 48 });
    const peft = PeftModel.create(base, { peft_type: "LORA", r: 4, lora_alpha: 8, target_modules: ["query", "value"] });
    const dir = mkdtempSync(join(tmpdir(), "peftjs-qa-"));
    const trainer = new Trainer(peft, examples, examples.slice(0, 3), { outputDir: dir, maxSteps: 60, batchSize: 3, lr: 3e-2, dropout: false, progress: false, threads: 1, print: () => undefined });
    const before = await trainer.evaluate();
    const { finalMetrics } = await trainer.train();
    assert.ok(finalMetrics.loss! < before.loss!, `loss ${before.loss} -> ${finalMetrics.loss}`);
    assert.ok(finalMetrics.exact_match! >= 0 && finalMetrics.exact_match! <= 100);
    assert.ok(finalMetrics.f1! >= finalMetrics.exact_match!, "F1 is at least exact match");
    assert.ok(finalMetrics.f1! > 50, `QA F1 ${finalMetrics.f1} on the training questions`);
  });

  it("the CLI guesses tagging and QA from the data and trains both", async () => {
    const dir = mkdtempSync(join(tmpdir(), "peftjs-cli-formats-"));
    const run = async (argv: string[]) => {
      let out = "";
      const code = await main(argv, { out: (s) => (out += `${s}\n`), write: (s) => (out += s) });
      return { code, out };
    };
    const ner = join(dir, "ner.jsonl");
    writeFileSync(ner, [...NER, ...NER].map((r) => JSON.stringify(r)).join("\n"));
    const tagging = await run(["train", "--model", join(FIXTURES, "bert-tiny"), "--data", ner, "--eval", ner, "--output", join(dir, "ner"), "--max-steps", "3", "--batch-size", "2", "--threads", "1"]);
    assert.equal(tagging.code, 0, tagging.out);
    assert.match(tagging.out, /final metrics: .*"token_f1":/);
    // The adapter records its task and tag names: eval and predict need neither --task nor the tags.
    const nerAdapter = join(dir, "ner", "adapter");
    const tagEval = await run(["eval", "--model", join(FIXTURES, "bert-tiny"), "--adapter", nerAdapter, "--data", ner]);
    assert.equal(tagEval.code, 0, tagEval.out);
    assert.match(tagEval.out, /"token_f1":/);
    const tagged = await run(["predict", "--model", join(FIXTURES, "bert-tiny"), "--adapter", nerAdapter, "--data", ner]);
    assert.equal(tagged.code, 0, tagged.out);
    const tagLines = tagged.out.trim().split("\n").map((l) => JSON.parse(l) as { tokens: string[]; tags: string[] });
    assert.equal(tagLines.length, 2 * NER.length);
    const names = ["B-ANIMAL", "B-PLACE", "I-PLACE", "O"];
    tagLines.forEach((l, i) => {
      assert.deepEqual(l.tokens, NER[i % NER.length]!.tokens);
      assert.equal(l.tags.length, l.tokens.length);
      assert.ok(l.tags.every((t) => names.includes(t)), `tag names, got ${l.tags.join(" ")}`);
    });
    const one = await run(["predict", "--model", join(FIXTURES, "bert-tiny"), "--adapter", nerAdapter, "--text", "the dog sat near the bank", "--max-length", "5"]);
    const { tokens, tags } = JSON.parse(one.out) as { tokens: string[]; tags: (string | null)[] };
    assert.deepEqual(tokens, ["the", "dog", "sat", "near", "the", "bank"]);
    assert.equal(tags.filter((t) => t === null).length, 3, "words past --max-length (5 tokens incl. [CLS] and [SEP]) get null");
    const qa = join(dir, "qa.jsonl");
    writeFileSync(qa, [...QA, ...QA].map((r) => JSON.stringify(r)).join("\n"));
    const squad = await run(["train", "--model", join(FIXTURES, "roberta-tiny"), "--data", qa, "--eval", qa, "--output", join(dir, "qa"), "--max-steps", "3", "--batch-size", "2", "--threads", "1"]);
    assert.equal(squad.code, 0, squad.out);
    assert.match(squad.out, /final metrics: .*"exact_match":.*"f1":/);
    const context = "the cat sat on the mat near the river.";
    const answered = await run(["predict", "--model", join(FIXTURES, "roberta-tiny"), "--adapter", join(dir, "qa", "adapter"), "--question", "where did the cat sit?", "--context", context]);
    assert.equal(answered.code, 0, answered.out);
    const a = JSON.parse(answered.out) as { question: string; answer: string; score: number };
    assert.equal(a.question, "where did the cat sit?");
    assert.ok(a.answer.length > 0 && context.includes(a.answer), `the answer "${a.answer}" is a span of the context`);
    assert.ok(a.score > 0 && a.score <= 1);
    const windowed = await run(["predict", "--model", join(FIXTURES, "roberta-tiny"), "--adapter", join(dir, "qa", "adapter"), "--question", "where did the cat sit?", "--context", `${context} ${context}`, "--max-length", "26", "--doc-stride", "3"]);
    assert.equal(windowed.code, 0, windowed.out);
    assert.equal(windowed.out.trim().split("\n").length, 1, "one answer per question, however many windows its context takes");
    assert.ok(context.includes((JSON.parse(windowed.out) as { answer: string }).answer));
    const half = await run(["predict", "--model", join(FIXTURES, "roberta-tiny"), "--question", "who?"]);
    assert.equal(half.code, 1, "--question needs --context");
    const both = await run(["predict", "--model", join(FIXTURES, "roberta-tiny"), "--text", "a", "--data", qa]);
    assert.equal(both.code, 1, "one input source at a time");
  });
});
