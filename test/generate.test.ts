// Generation with the key/value cache: the same tokens as the PyTorch reference's no-cache
// greedy loop, the same tokens batched (left padding) as one row at a time without cache,
// streaming callbacks, stop tokens and seeded sampling.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { int64 } from "../src/ir/tensor.js";
import { Generator, pick } from "../src/models/generate.js";
import { loadModel } from "../src/models/pretrained.js";
import { compile } from "../src/runtime/session.js";

const FIXTURES = join(import.meta.dirname, "fixtures", "models");
const DECODERS = ["gpt2-tiny", "llama-tiny", "llama3-tiny", "qwen2-tiny"];

/** Greedy decoding by rerunning the whole sequence each step (no cache). */
async function greedyNoCache(dir: string, prompt: number[], steps: number): Promise<number[]> {
  const model = await loadModel(dir, { task: "causal-lm" });
  const step = await compile({ logits: model.build({ decoder: { lastTokenLogits: true } }).outputs.logits! }, { threads: 1 });
  const seq = [...prompt];
  for (let i = 0; i < steps; i++) {
    const out = await step.run(model.prepareInputs({ input_ids: int64([1, seq.length], seq) }));
    seq.push(pick(out.logits!.data as Float32Array, 0, undefined, undefined, Math.random));
  }
  await step.release();
  return seq.slice(prompt.length);
}

describe("generation with a key/value cache", () => {
  for (const name of DECODERS) {
    it(`${name}: cached greedy decoding reproduces the PyTorch reference tokens`, async () => {
      const ref = JSON.parse(readFileSync(join(FIXTURES, name, "reference.json"), "utf8")) as { greedy: { prompt: number[]; tokens: number[] } };
      const model = await loadModel(join(FIXTURES, name), { task: "causal-lm" });
      const gen = await Generator.create(model, { session: { threads: 1 } });
      const streamed: number[] = [];
      const { tokens } = await gen.generate([ref.greedy.prompt], { maxNewTokens: ref.greedy.tokens.length, stopTokens: [], onToken: (t) => streamed.push(t) });
      assert.deepEqual(tokens[0], ref.greedy.tokens);
      assert.deepEqual(streamed, ref.greedy.tokens, "streamed as produced");
      await gen.release();
    });
  }

  it("batched prompts with left padding give each row's unbatched no-cache tokens", async () => {
    const dir = join(FIXTURES, "llama-tiny");
    const model = await loadModel(dir, { task: "causal-lm" });
    const gen = await Generator.create(model, { session: { threads: 1 } });
    const prompts = ["the cat sat on the mat", "money", "the river"];
    const ids = prompts.map((p) => model.tokenizer!.encode(p).ids);
    const batched = await gen.generate(prompts, { maxNewTokens: 6, stopTokens: [] });
    for (let r = 0; r < prompts.length; r++) assert.deepEqual(batched.tokens[r], await greedyNoCache(dir, ids[r]!, 6), `row ${r}`);
    assert.equal(batched.texts.length, 3);
    await gen.release();
  });

  it("stops rows at stop tokens and samples reproducibly", async () => {
    const model = await loadModel(join(FIXTURES, "gpt2-tiny"), { task: "causal-lm" });
    const gen = await Generator.create(model, { session: { threads: 1 } });
    const greedy = await gen.generate(["the cat"], { maxNewTokens: 5, stopTokens: [] });
    const stopAt = greedy.tokens[0]![2]!;
    const stopped = await gen.generate(["the cat"], { maxNewTokens: 5, stopTokens: [stopAt] });
    assert.deepEqual(stopped.tokens[0], greedy.tokens[0]!.slice(0, greedy.tokens[0]!.indexOf(stopAt) + 1));
    const a = await gen.generate(["the dog"], { maxNewTokens: 6, temperature: 1.5, topP: 0.9, seed: 7, stopTokens: [] });
    const b = await gen.generate(["the dog"], { maxNewTokens: 6, temperature: 1.5, topP: 0.9, seed: 7, stopTokens: [] });
    assert.deepEqual(a.tokens, b.tokens);
    const k1 = await gen.generate(["the dog"], { maxNewTokens: 4, temperature: 0.7, topK: 1, seed: 3, stopTokens: [] });
    assert.deepEqual(k1.tokens[0], (await gen.generate(["the dog"], { maxNewTokens: 4, stopTokens: [] })).tokens[0], "top-k 1 is greedy");
    await gen.release();
  });

  it("top-k / top-p filtering keeps only the allowed tokens", () => {
    const logits = Float32Array.of(0, 5, 4, -1);
    const rand = () => 0.999;
    assert.equal(pick(logits, 0, undefined, undefined, rand), 1);
    assert.equal(pick(logits, 1, 2, undefined, rand), 2, "last of the top 2");
    assert.equal(pick(logits, 1, undefined, 0.5, rand), 1, "top-p 0.5 keeps only the argmax here");
  });
});
