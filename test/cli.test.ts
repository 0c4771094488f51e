// The command line, end to end on the tiny checkpoints: train -> info / eval / predict / merge,
// generate, config files, and one-line errors with non-zero exit codes.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { main } from "../src/cli/main.js";
import { Generator } from "../src/models/generate.js";
import { loadModel } from "../src/models/pretrained.js";
import { PeftModel } from "../src/peft/peft-model.js";
import { RECORDS } from "./support/tiny-training.js";

const FIXTURES = join(import.meta.dirname, "fixtures", "models");
const BERT = join(FIXTURES, "bert-tiny");

async function run(argv: string[]): Promise<{ code: number; out: string }> {
  let out = "";
  const code = await main(argv, { out: (s) => (out += `${s}\n`), write: (s) => (out += s) });
  return { code, out };
}

describe("peftjs CLI", () => {
  it("train, then info / eval / predict / merge with the adapter", async () => {
    const dir = mkdtempSync(join(tmpdir(), "peftjs-cli-"));
    const data = join(dir, "train.jsonl");
    writeFileSync(data, RECORDS.map((r) => JSON.stringify(r)).join("\n"));
    const config = join(dir, "run.yaml");
    writeFileSync(config, "epochs: 2\nbatch-size: 4\nlr: 0.01\nthreads: 1\n");
    const output = join(dir, "out");
    const train = await run(["train", "--model", BERT, "--data", data, "--output", output, "--config", config, "--method", "lora", "--r", "4", "--target-modules", "query,value", "--epochs", "3"]);
    assert.equal(train.code, 0, train.out);
    assert.match(train.out, /trainable params: [\d,]+ \|\| all params/);
    assert.match(train.out, /step 1\/\d+ loss/);
    assert.match(train.out, /final metrics: \{"loss":/);
    const adapter = join(output, "adapter");
    assert.ok(existsSync(join(adapter, "adapter_model.safetensors")));
    // The head's class names are saved with the adapter, in transformers' id2label form.
    assert.deepEqual(JSON.parse(readFileSync(join(adapter, "labels.json"), "utf8")), { id2label: { 0: "animal", 1: "other" }, label2id: { animal: 0, other: 1 } });
    assert.ok(existsSync(join(output, "report.html")));

    const info = await run(["info", BERT, "--adapter", adapter, "--task", "sequence-classification"]);
    assert.equal(info.code, 0);
    assert.match(info.out, /bert \(2 layers, hidden 32, 4 heads, vocab 89\)[\s\S]*adapter .*: LORA[\s\S]*trainable params/);

    const evaluation = await run(["eval", "--model", BERT, "--adapter", adapter, "--data", data]);
    assert.equal(evaluation.code, 0);
    assert.match(evaluation.out, /"accuracy":/);

    const predict = await run(["predict", "--model", BERT, "--adapter", adapter, "--text", "the cat sat", "money"]);
    assert.equal(predict.code, 0);
    assert.equal(predict.out.trim().split("\n").length, 2);
    assert.match(predict.out, /"probabilities":\[/);
    const long = await run(["predict", "--model", BERT, "--adapter", adapter, "--text", "the cat sat ".repeat(100)]);
    assert.equal(long.code, 0, "by default predict truncates to the model's 64 positions");
    const predicted = predict.out.trim().split("\n").map((l) => (JSON.parse(l) as { label: string }).label);
    assert.ok(predicted.every((l) => l === "animal" || l === "other"), `labels by name, got ${predicted.join(", ")}`);

    // An eval file holding only "other" records still maps "other" to the head's class 1: its
    // accuracy is the share of them the model predicts as "other".
    const others = RECORDS.filter((r) => r.label === "other");
    const otherData = join(dir, "other.jsonl");
    writeFileSync(otherData, others.map((r) => JSON.stringify(r)).join("\n"));
    const perRecord = await run(["predict", "--model", BERT, "--adapter", adapter, "--data", otherData]);
    const share = perRecord.out.trim().split("\n").filter((l) => (JSON.parse(l) as { label: string }).label === "other").length / others.length;
    const otherEval = await run(["eval", "--model", BERT, "--adapter", adapter, "--data", otherData]);
    assert.equal(otherEval.code, 0, otherEval.out);
    assert.ok(Math.abs((JSON.parse(otherEval.out) as { accuracy: number }).accuracy - share) < 1e-9, `eval accuracy ${otherEval.out.trim()} vs predicted share ${share}`);

    const merged = join(dir, "merged");
    const merge = await run(["merge", "--model", BERT, "--adapter", adapter, "--output", merged]);
    assert.equal(merge.code, 0);
    const mergedConfig = JSON.parse(readFileSync(join(merged, "config.json"), "utf8")) as { id2label: Record<string, string>; num_labels: number };
    assert.deepEqual(mergedConfig.id2label, { 0: "animal", 1: "other" }, "the merged checkpoint names the classes (the task came from the adapter)");
    const again = await run(["predict", "--model", merged, "--text", "the cat sat", "money"]);
    const probs = (s: string) => s.trim().split("\n").map((l) => (JSON.parse(l) as { probabilities: number[] }).probabilities);
    const [a, b] = [probs(predict.out), probs(again.out)];
    a.forEach((row, i) => row.forEach((p, j) => assert.ok(Math.abs(p - b[i]![j]!) < 1e-3, "merged checkpoint predicts like base + adapter")));
    assert.match(again.out, /"label":"(animal|other)"/);
  });

  it("generate streams a continuation", async () => {
    const r = await run(["generate", "--model", join(FIXTURES, "llama-tiny"), "--prompt", "the cat", "--max-new-tokens", "5"]);
    assert.equal(r.code, 0);
    assert.ok(r.out.startsWith("the cat") && r.out.length > "the cat\n".length);
  });

  it("generate runs an adapter that cannot merge (prefix tuning) unmerged, positions continuing after the prefix", async () => {
    const model = await loadModel(join(FIXTURES, "gpt2-tiny"), { task: "causal-lm" });
    const peft = PeftModel.create(model, { peft_type: "PREFIX_TUNING", num_virtual_tokens: 4 });
    const adapter = mkdtempSync(join(tmpdir(), "peftjs-cli-prefix-"));
    await peft.save(adapter);
    const r = await run(["generate", "--model", join(FIXTURES, "gpt2-tiny"), "--adapter", adapter, "--prompt", "the cat", "--max-new-tokens", "5"]);
    assert.equal(r.code, 0, r.out);
    const gen = await Generator.create(peft);
    const [expected] = (await gen.generate(["the cat"], { maxNewTokens: 5 })).texts;
    await gen.release();
    assert.equal(r.out, `the cat${expected}\n`);
  });

  it("merge and info without --task take the head from config.json's architectures (a merged masked LM keeps its LM head)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "peftjs-cli-merge-mlm-"));
    const model = await loadModel(BERT); // architectures: BertForMaskedLM
    assert.equal(model.task, "masked-lm");
    const adapter = join(dir, "adapter");
    await PeftModel.create(model, { peft_type: "LORA", r: 2, target_modules: ["query"] }).save(adapter);
    const merged = join(dir, "merged");
    const r = await run(["merge", "--model", BERT, "--adapter", adapter, "--output", merged]);
    assert.equal(r.code, 0, r.out);
    const back = await loadModel(merged);
    assert.equal(back.task, "masked-lm");
    assert.deepEqual(JSON.parse(readFileSync(join(merged, "config.json"), "utf8")).architectures, ["BertForMaskedLM"]);
    assert.ok([...back.modules().params.keys()].some((k) => k.startsWith("cls.")), "the LM head's weights are kept");
    const info = await run(["info", BERT]);
    assert.match(info.out, /parameters \(masked-lm\)/);
  });

  it("errors are one line plus a hint, with a non-zero exit code", async () => {
    const bin = join(import.meta.dirname, "..", "bin", "peftjs.js");
    const bad = spawnSync(process.execPath, [bin, "train", "--model", BERT, "--data", join(BERT, "missing.jsonl")], { encoding: "utf8" });
    assert.equal(bad.status, 1);
    assert.deepEqual(bad.stderr.trim().split("\n").length, 2);
    assert.match(bad.stderr, /^peftjs: .*missing.jsonl: ENOENT/);
    assert.match(bad.stderr, /hint: run "peftjs train --help"/);
    const method = await run(["train", "--model", BERT, "--data", "x.jsonl", "--method", "magic"]);
    assert.equal(method.code, 1);
    const help = spawnSync(process.execPath, [bin, "train", "--help"], { encoding: "utf8" });
    assert.equal(help.status, 0);
    assert.match(help.stdout, /--target-modules <list>/);
  });
});
