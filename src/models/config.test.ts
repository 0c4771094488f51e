// config.json resource bounds: absurd sizes are refused before anything is built, with the
// field named; the memory estimate is close to real parameter counts; limits can be raised.
import assert from "node:assert/strict";
import { cpSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { seededRandom } from "../ir/random.js";
import { ConfigError, DEFAULT_RESOURCE_LIMITS, estimateModelMemory, parseModelConfig } from "./config.js";
import { loadModel } from "./pretrained.js";

const FIXTURES = join(import.meta.dirname, "..", "..", "test", "fixtures", "models");
const bertTiny = JSON.parse(readFileSync(join(FIXTURES, "bert-tiny", "config.json"), "utf8")) as Record<string, unknown>;
const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

const refused = (patch: Record<string, unknown>, error: RegExp, base: Record<string, unknown> = bertTiny) =>
  assert.throws(() => parseModelConfig({ ...base, ...patch }, "tiny/config.json"), (e: unknown) => e instanceof ConfigError && error.test(e.message), JSON.stringify(patch));

describe("config.json resource bounds", () => {
  it("refuses absurd dimensions, naming the field, its value and the limit", () => {
    refused({ num_hidden_layers: 1e6 }, /^tiny\/config.json: field "num_hidden_layers" is 1000000, above the limit of 1024 .*limits.maxLayers/);
    refused({ num_labels: 1e7 }, /field "num_labels" is 10000000, above the limit of 100000 .*limits.maxLabels/);
    refused({ hidden_size: 1e9 }, /field "hidden_size" is 1000000000, above the limit of 65536 .*limits.maxHidden/);
    refused({ intermediate_size: 1e12 }, /field "intermediate_size" is 1000000000000, above the limit/);
    refused({ vocab_size: 1e300 }, /field "vocab_size" is 1e\+300, above the limit of 4194304/);
    refused({ max_position_embeddings: 2 ** 40 }, /field "max_position_embeddings" is 1099511627776, above the limit/);
    refused({ num_attention_heads: 1 << 20, hidden_size: 1 << 20 }, /field "hidden_size" is 1048576/);
    refused({ type_vocab_size: 1e9 }, /field "type_vocab_size" is 1000000000, above/);
    refused({ id2label: Object.fromEntries(Array.from({ length: 100_001 }, (_, i) => [String(i), `l${i}`])), num_labels: undefined }, /field "id2label" has 100001 labels, above the limit of 100000/);
    refused({ id2label: ["a", "b"] }, /field "id2label" must be an object/);
    // gpt2 and distilbert spell the fields differently; the message uses the file's spelling.
    const gpt2 = JSON.parse(readFileSync(join(FIXTURES, "gpt2-tiny", "config.json"), "utf8")) as Record<string, unknown>;
    refused({ n_layer: 1e6 }, /field "n_layer" is 1000000, above the limit of 1024/, gpt2);
    const llama = JSON.parse(readFileSync(join(FIXTURES, "llama-tiny", "config.json"), "utf8")) as Record<string, unknown>;
    refused({ num_key_value_heads: 1e6 }, /field "num_key_value_heads" is 1000000/, llama);
  });

  it("keeps rejecting negative, fractional and non-numeric sizes", () => {
    refused({ vocab_size: -5 }, /field "vocab_size" must be an integer >= 1, got -5/);
    refused({ vocab_size: 2.5 }, /field "vocab_size" must be an integer >= 1, got 2.5/);
    refused({ vocab_size: "89" }, /field "vocab_size" must be an integer >= 1, got "89"/);
    refused({ num_hidden_layers: 0 }, /field "num_hidden_layers" must be an integer >= 1, got 0/);
  });

  it("refuses combinations within the per-field caps whose memory estimate is over budget, naming the largest part", () => {
    refused({ vocab_size: 4_000_000, hidden_size: 65536, num_attention_heads: 64 }, /would need about 1\.\d+ TiB .* above the limit of 64 GiB; the largest part is vocab_size × hidden_size \(token embeddings\): 977 GiB \(set PEFTJS_MAX_MODEL_BYTES or limits.maxBytes/);
    refused({ max_position_embeddings: 2 ** 24, hidden_size: 4096, num_attention_heads: 64 }, /the largest part is max_position_embeddings × hidden_size \(position embeddings\)/);
    refused({ num_hidden_layers: 1000, hidden_size: 8192, intermediate_size: 32768, num_attention_heads: 64 }, /the largest part is num_hidden_layers × layer weights/);
  });

  it("limits can be raised or lowered per call and through PEFTJS_MAX_MODEL_BYTES", () => {
    assert.equal(parseModelConfig({ ...bertTiny, num_hidden_layers: 2000 }, "c", { maxLayers: 4096 }).layers, 2000);
    assert.throws(() => parseModelConfig(bertTiny, "c", { maxBytes: 1024 }), /c: this model would need about .* above the limit of 1 KiB/);
    const saved = process.env.PEFTJS_MAX_MODEL_BYTES;
    try {
      process.env.PEFTJS_MAX_MODEL_BYTES = "2048";
      assert.throws(() => parseModelConfig(bertTiny, "c"), /above the limit of 2 KiB/);
      assert.equal(parseModelConfig(bertTiny, "c", { maxBytes: 2 ** 30 }).layers, 2, "an explicit limit wins over the environment");
      process.env.PEFTJS_MAX_MODEL_BYTES = "lots";
      assert.throws(() => parseModelConfig(bertTiny, "c"), /PEFTJS_MAX_MODEL_BYTES must be a positive number of bytes, got "lots"/);
    } finally {
      if (saved === undefined) delete process.env.PEFTJS_MAX_MODEL_BYTES;
      else process.env.PEFTJS_MAX_MODEL_BYTES = saved;
    }
  });

  it("every fixture and a Llama-3-8B-sized config fit the default limits; estimates match real parameter counts", () => {
    for (const name of readdirSync(FIXTURES).filter((n) => !n.endsWith(".json"))) {
      const c = parseModelConfig(JSON.parse(readFileSync(join(FIXTURES, name, "config.json"), "utf8")), name);
      assert.ok(estimateModelMemory(c).bytes < 64 * 2 ** 20, name);
    }
    // bert-base-uncased: BertModel has 109,482,240 parameters (plus a 3-label head here).
    const bertBase = { ...bertTiny, vocab_size: 30522, hidden_size: 768, num_hidden_layers: 12, num_attention_heads: 12, intermediate_size: 3072, max_position_embeddings: 512 };
    const est = estimateModelMemory(parseModelConfig(bertBase, "bert-base"));
    assert.ok(Math.abs(est.parameters / 109_482_240 - 1) < 0.02, `bert-base: ${est.parameters}`);
    // Llama 3 8B: 8,030,261,248 parameters.
    const llama8b = { model_type: "llama", vocab_size: 128256, hidden_size: 4096, num_hidden_layers: 32, num_attention_heads: 32, num_key_value_heads: 8, intermediate_size: 14336, max_position_embeddings: 8192, tie_word_embeddings: false };
    const big = estimateModelMemory(parseModelConfig(llama8b, "llama-8b"));
    assert.ok(Math.abs(big.parameters / 8_030_261_248 - 1) < 0.02, `llama 8b: ${big.parameters}`);
    assert.ok(big.bytes < DEFAULT_RESOURCE_LIMITS.maxBytes);
    // Activations grow with batch and sequence length.
    assert.ok(estimateModelMemory(parseModelConfig(bertBase, "b"), { batch: 8, seqLen: 512 }).activations > 7.9 * est.activations);
  });

  it("loadModel refuses hidden_size 1e9 with the field named, not an internal Reshape error", async () => {
    const dir = mkdtempSync(join(tmpdir(), "peftjs-config-"));
    dirs.push(dir);
    cpSync(join(FIXTURES, "bert-tiny"), dir, { recursive: true });
    writeFileSync(join(dir, "config.json"), JSON.stringify({ ...bertTiny, hidden_size: 1e9 }));
    await assert.rejects(loadModel(dir), (e: unknown) => e instanceof ConfigError && /config.json: field "hidden_size" is 1000000000, above the limit/.test(e.message));
    writeFileSync(join(dir, "config.json"), JSON.stringify({ ...bertTiny, num_labels: 1e7 }));
    await assert.rejects(loadModel(dir, { task: "sequence-classification" }), /field "num_labels" is 10000000/);
  });

  it("randomized corruption: 2000 seeded mutations of every fixture's config give a ConfigError or a config within the limits", () => {
    const rand = seededRandom(0xc0f16);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
    const values: unknown[] = [-1, 0, 1, 2.5, 1e6, 1e7, 1e9, 1e300, -1e300, 2 ** 53, "abc", "12", null, true, [], {}, [1, 2], { "0": "a" }, { type: "llama3" }];
    const bases = readdirSync(FIXTURES).filter((n) => !n.endsWith(".json")).map((n) => JSON.parse(readFileSync(join(FIXTURES, n, "config.json"), "utf8")) as Record<string, unknown>);
    const counts = { accepted: 0, rejected: 0 };
    for (let trial = 0; trial < 2000; trial++) {
      const c: Record<string, unknown> = { ...pick(bases) };
      for (let k = 1 + Math.floor(rand() * 3); k > 0; k--) c[pick(Object.keys(c).concat(["head_dim", "num_key_value_heads", "rope_scaling", "n_inner"]))] = pick(values);
      try {
        const parsed = parseModelConfig(c, "fuzz/config.json");
        assert.ok(estimateModelMemory(parsed).bytes <= DEFAULT_RESOURCE_LIMITS.maxBytes, JSON.stringify(c));
        counts.accepted++;
      } catch (e) {
        assert.ok(e instanceof ConfigError, `trial ${trial}: ${e instanceof Error ? `${e.constructor.name}: ${e.message}` : String(e)} for ${JSON.stringify(c)}`);
        assert.ok(e.message.startsWith("fuzz/config.json: "), e.message);
        counts.rejected++;
      }
    }
    assert.ok(counts.rejected > 500 && counts.accepted > 100, JSON.stringify(counts));
  });
});
