// The command line's edge: every option validated by one schema (flags and --config files alike),
// one-line errors naming the option, where it came from, the expected and the actual value; task
// inference that never switches task silently; outputs that never overwrite their inputs.
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { main } from "../src/cli/main.js";
import { commandOptions, parseOptions } from "../src/cli/options.js";
import { RECORDS } from "./support/tiny-training.js";

const FIXTURES = join(import.meta.dirname, "fixtures", "models");
const BERT = join(FIXTURES, "bert-tiny");
const dir = mkdtempSync(join(tmpdir(), "peftjs-cli-options-"));
const file = (name: string, content: string) => {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
};
const DATA = file("train.jsonl", RECORDS.map((r) => JSON.stringify(r)).join("\n"));

async function run(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const code = await main(argv, { out: (s) => (out += `${s}\n`), write: (s) => (out += s), err: (s) => (err += `${s}\n`) });
  return { code, out, err };
}

/** The run fails with exit code 1 and one error line (plus its hint) matching `pattern`. */
async function fails(argv: string[], pattern: RegExp) {
  const r = await run(argv);
  assert.equal(r.code, 1, `${argv.join(" ")}: exit code ${r.code}\n${r.out}`);
  const lines = r.err.trim().split("\n");
  assert.equal(lines.length, 2, `one error line and a hint, got:\n${r.err}`);
  assert.match(lines[0]!, /^peftjs: /);
  assert.match(lines[0]!, pattern);
  assert.match(lines[1]!, /^hint: /);
  return r;
}

describe("option values", () => {
  const train = ["train", "--model", BERT, "--data", DATA, "--output", join(dir, "never")];
  const cases: [string[], RegExp][] = [
    [[...train, "--lr", "-0.001"], /--lr: expected a number > 0, got -0\.001$/],
    [[...train, "--lr", "0"], /--lr: expected a number > 0, got 0$/],
    [[...train, "--lr", "abc"], /--lr: expected a number > 0, got "abc"$/],
    [[...train, "--epochs", "-1"], /--epochs: expected an integer >= 1, got -1$/],
    [[...train, "--epochs", "0"], /--epochs: expected an integer >= 1, got 0$/],
    [[...train, "--epochs", "1.5"], /--epochs: expected an integer >= 1, got 1\.5$/],
    [[...train, "--max-steps", "0"], /--max-steps: expected an integer >= 1, got 0$/],
    [[...train, "--batch-size", "0"], /--batch-size: expected an integer >= 1, got 0$/],
    [[...train, "--grad-accum", "0"], /--grad-accum: expected an integer >= 1, got 0$/],
    [[...train, "--eval-every", "0"], /--eval-every: expected an integer >= 1, got 0$/],
    [[...train, "--early-stopping", "f1:abc"], /--early-stopping: expected metric:patience .*, got "f1:abc"$/],
    [[...train, "--early-stopping", "f1:0"], /--early-stopping: expected metric:patience .*, got "f1:0"$/],
    [[...train, "--divergence", "1:5"], /--divergence: expected factor:patience .*, got "1:5"$/],
    [[...train, "--divergence", "4:0"], /--divergence: expected factor:patience .*, got "4:0"$/],
    [[...train, "--divergence", "never"], /--divergence: expected factor:patience .*, got "never"$/],
    [[...train, "--val-split", "1.5"], /--val-split: expected a number >= 0 and < 1, got 1\.5$/],
    [[...train, "--warmup-ratio", "-0.1"], /--warmup-ratio: expected a number >= 0 and < 1, got -0\.1$/],
    [[...train, "--lora-dropout", "1"], /--lora-dropout: expected a number >= 0 and < 1, got 1$/],
    [[...train, "--r", "0"], /--r: expected an integer >= 1, got 0$/],
    [[...train, "--threads", "0"], /--threads: expected an integer >= 1, got 0$/],
    [[...train, "--seed", "-1"], /--seed: expected an integer >= 0 and <= 4294967295, got -1$/],
    [[...train, "--method", "magic"], /--method: expected one of lora, .*full, got "magic"$/],
    [[...train, "--schedule", "step"], /--schedule: expected one of linear, cosine, constant, got "step"$/],
    [[...train, "--task", "sentiment"], /--task: expected one of sequence-classification, token-classification, question-answering, causal-lm, got "sentiment"$/],
    [[...train, "--task", "masked-lm"], /--task: expected one of sequence-classification, .*causal-lm, got "masked-lm"$/],
    [["predict", "--model", BERT, "--text", "a", "--task", "causal-lm"], /--task: expected one of sequence-classification, token-classification, question-answering, got "causal-lm"$/],
    [[...train, "--peft", "oops", "--peft", "r=4"], /--peft: expected key=value pairs .*, got "oops"$/],
    [[...train, "--lrr", "0.1"], /unknown option '--lrr' \(did you mean --lr\?\)$/],
    [[...train, "--batchsize", "8"], /unknown option '--batchsize' \(did you mean --batch-size\?\)$/],
    [["train", "--data", DATA], /missing option --model \(checkpoint directory or hub repo id\)$/],
    [["eval", "--model", BERT, "--data", DATA, "--batch-size", "0"], /--batch-size: expected an integer >= 1, got 0$/],
    [["predict", "--model", BERT, "--text", "a", "--batch-size", "0"], /--batch-size: expected an integer >= 1, got 0$/],
    [["generate", "--model", join(FIXTURES, "llama-tiny"), "--prompt", "a", "--temperature", "-1"], /--temperature: expected a number >= 0, got -1$/],
    [["generate", "--model", join(FIXTURES, "llama-tiny"), "--prompt", "a", "--top-p", "1.5"], /--top-p: expected a number > 0 and <= 1, got 1\.5$/],
    [["generate", "--model", join(FIXTURES, "llama-tiny"), "--prompt", "a", "--max-new-tokens", "0"], /--max-new-tokens: expected an integer >= 1, got 0$/],
    [["pretrain", "--kind", "encoder", "--output", join(dir, "never"), "--hidden", "30", "--heads", "4"], /--hidden: expected a multiple of --heads 4, got 30$/],
    [["pretrain", "--kind", "transformer", "--output", join(dir, "never")], /--kind: expected one of encoder, decoder, got "transformer"$/],
  ];
  for (const [argv, pattern] of cases) {
    it(`${argv[0]} ${argv.slice(argv.indexOf(DATA) >= 0 ? argv.indexOf(DATA) + 3 : 3).join(" ")}`, async () => {
      await fails(argv, pattern);
    });
  }

  it("options that would be ignored or contradict each other are errors (or a note)", async () => {
    await fails([...train, "--resume", "--overwrite"], /--overwrite: cannot be combined with --resume \(--resume\)/);
    await fails([...train, "--early-stopping", "f1:3", "--val-split", "0"], /--early-stopping: needs evaluation data, but --val-split is 0 and no --eval file is given$/);
    await fails([...train, "--config", file("every.yaml", "eval-every: 5\nval-split: 0\n")], /every\.yaml: eval-every: needs evaluation data/);
    const greedy = await run(["generate", "--model", join(FIXTURES, "llama-tiny"), "--prompt", "the cat", "--max-new-tokens", "2", "--top-k", "5"]);
    assert.equal(greedy.code, 0, greedy.err);
    assert.match(greedy.err, /^note: --top-k has no effect with --temperature 0 \(greedy decoding\)/m);
  });

  it("pretrain corpus files: a record without text and invalid UTF-8 name the file and line", async () => {
    const pretrain = ["pretrain", "--kind", "decoder", "--output", join(dir, "never"), "--steps", "1"];
    await fails([...pretrain, "--corpus", file("corpus.jsonl", '{"text":"a"}\n{"txt":"b"}\n')], /corpus\.jsonl line 2: missing field "text" or "content" \(has txt\)$/);
    await fails([...pretrain, "--corpus", file("corpus.txt", "caf\u00e9\n"), file("latin1.txt", "")], /latin1\.txt: no text \(the file is empty\)$/);
    writeFileSync(join(dir, "latin1.txt"), Buffer.from([0x63, 0x61, 0x66, 0x0a, 0x63, 0x61, 0x66, 0xe9, 0x0a]));
    await fails([...pretrain, "--corpus", join(dir, "latin1.txt")], /latin1\.txt line 2: invalid UTF-8/);
  });

  it("nothing was written by the refused runs", () => {
    assert.equal(existsSync(join(dir, "never")), false);
  });

  it("--max-length above the model's positions is refused; by default it is capped", async () => {
    await fails(["train", "--model", BERT, "--data", DATA, "--output", join(dir, "long"), "--max-length", "65"], /--max-length: expected an integer <= 64 \(the positions bert-tiny takes\), got 65$/);
  });
});

describe("config files validate through the same schema", () => {
  const train = ["train", "--model", BERT, "--data", DATA, "--output", join(dir, "never")];
  it("a bad value names the file and the key as written", async () => {
    await fails([...train, "--config", file("bad.yaml", "epochs: 2\nbatch-size: 0\n")], /bad\.yaml: batch-size: expected an integer >= 1, got 0$/);
    await fails([...train, "--config", file("bad.json", '{"lr": "fast"}')], /bad\.json: lr: expected a number > 0, got "fast"$/);
    await fails([...train, "--config", file("neg.yaml", "lr: -0.001\n")], /neg\.yaml: lr: expected a number > 0, got -0\.001$/);
  });

  it("an unknown key is an error suggesting the nearest known one, in the file's spelling", async () => {
    await fails([...train, "--config", file("typo.yaml", "epoch: 2\n")], /typo\.yaml: unknown option "epoch" \(did you mean "epochs"\?\)$/);
    await fails([...train, "--config", file("snake.yaml", "bach_size: 2\n")], /snake\.yaml: unknown option "bach_size" \(did you mean "batch_size"\?\)$/);
    await fails([...train, "--config", file("other.yaml", "temperature: 0.5\n")], /other\.yaml: unknown option "temperature"$/);
  });

  it("a flag on the command line wins over the file; the file may give required options", async () => {
    const config = file("ok.yaml", `model: ${JSON.stringify(BERT)}\ndata: ${JSON.stringify(DATA)}\nbatch_size: 0\nlr: 0.01\n`);
    // batch_size 0 in the file is overridden by the flag; lr comes from the file.
    const o = parseOptions(commandOptions(["lora"]).train, { batchSize: 4, config }, { path: config, values: { model: BERT, data: DATA, batch_size: 0, lr: 0.01 } });
    assert.equal(o.batchSize, 4);
    assert.equal(o.lr, 0.01);
    assert.equal(o.epochs, 3, "defaults come from the schema");
    assert.equal(o.schedule, "linear");
    await fails(["train", "--config", config, "--epochs", "0"], /--epochs: expected an integer >= 1, got 0$/);
  });

  it("every command takes --config", async () => {
    await fails(["generate", "--model", join(FIXTURES, "llama-tiny"), "--prompt", "a", "--config", file("gen.yaml", "temperature: -1\n")], /gen\.yaml: temperature: expected a number >= 0, got -1$/);
    await fails(["eval", "--model", BERT, "--data", DATA, "--config", file("ev.yaml", "batch-size: 0\n")], /ev\.yaml: batch-size: expected an integer >= 1, got 0$/);
  });

  it("help text comes from the schema: ranges and defaults", async () => {
    const r = await run(["train", "--help"]);
    assert.equal(r.code, 0);
    assert.match(r.out, /--batch-size <n>\s+examples per batch \(integer >= 1; default\s+16\)/);
    assert.match(r.out, /--overwrite/);
  });
});

describe("task inference never switches task silently", () => {
  it("on the decoder, a misspelled label column is an error, not a language model", async () => {
    const data = file("lable.jsonl", RECORDS.map((r) => JSON.stringify({ text: r.text, lable: r.label })).join("\n"));
    const output = join(dir, "lable-out");
    await fails(["train", "--model", join(FIXTURES, "gpt2-tiny"), "--data", data, "--output", output, "--max-steps", "1"], /lable\.jsonl line 1: no "label" field, so the task would be causal-lm, which does not read "lable" \(did you mean "label"\?\)$/);
    assert.equal(existsSync(output), false, "nothing trained");
  });

  it("on the encoder, a wrong CSV header names the file and the missing label field", async () => {
    const data = file("header.csv", "sentence,category\nthe cat sat,animal\nmoney,other\n");
    await fails(["train", "--model", join(FIXTURES, "roberta-tiny"), "--data", data, "--output", join(dir, "never")], /header\.csv line 2: no "label" field, so the task would be causal-lm, which does not read "sentence", "category"$/);
    const textOnly = file("text-only.csv", "text\nthe cat sat\nmoney\n");
    await fails(["train", "--model", join(FIXTURES, "roberta-tiny"), "--data", textOnly, "--output", join(dir, "never")], /text-only\.csv: no "label" field \(the records have "text"\), so the task was guessed as causal-lm, which roberta does not build/);
  });

  it("any label field (label, labels, class, target) makes the guess classification", async () => {
    const data = file("class.jsonl", RECORDS.map((r) => JSON.stringify({ text: r.text, class: r.label })).join("\n"));
    const r = await run(["train", "--model", join(FIXTURES, "gpt2-tiny"), "--data", data, "--output", join(dir, "class-out"), "--max-steps", "1", "--batch-size", "8", "--threads", "1"]);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /final metrics: .*"accuracy"/);
  });

  it("an empty data file says so", async () => {
    await fails(["train", "--model", join(FIXTURES, "roberta-tiny"), "--data", file("empty.jsonl", ""), "--output", join(dir, "never")], /empty\.jsonl: no records \(the file is empty\)$/);
  });

  it("a record missing the task's field names the file, line and field", async () => {
    const data = file("gap.jsonl", `${JSON.stringify({ text: "a", label: "x" })}\n${JSON.stringify({ text: "b" })}\n`);
    await fails(["train", "--model", BERT, "--data", data, "--output", join(dir, "never")], /gap\.jsonl line 2: missing field "label" or "labels" or "class" or "target" \(has text\)$/);
  });

  it("with an explicit task, a field it does not read is reported on stderr, not dropped silently", async () => {
    const data = file("ids.jsonl", RECORDS.map((r, i) => JSON.stringify({ id: i, ...r })).join("\n"));
    const r = await run(["predict", "--model", BERT, "--data", data, "--task", "sequence-classification"]);
    assert.equal(r.code, 0, r.err);
    assert.match(r.err, /^note: .*ids\.jsonl: "id" \(line 1\) is not read by sequence-classification$/m);
    assert.ok(r.out.trim().split("\n").every((l) => JSON.parse(l) !== undefined), "stdout stays one JSON line per prediction");
  });
});

describe("outputs never overwrite inputs", () => {
  it("train refuses an existing output unless --resume or --overwrite", async () => {
    const output = join(dir, "run");
    const argv = ["train", "--model", BERT, "--data", DATA, "--output", output, "--max-steps", "1", "--batch-size", "8", "--threads", "1"];
    assert.equal((await run(argv)).code, 0);
    const refused = await fails(argv, /holds a previous run/);
    assert.match(refused.err, /hint: pass --resume to continue that run, --overwrite to replace it/);
    const again = await run([...argv, "--overwrite"]);
    assert.equal(again.code, 0, again.err);
  });

  it("a runaway learning rate stops train with the divergence rule and a hint; --divergence off lets it run; report.html shows the settings", async () => {
    const output = join(dir, "diverge");
    const argv = ["train", "--model", BERT, "--data", DATA, "--output", output, "--max-steps", "30", "--batch-size", "8", "--threads", "1", "--lr", "100", "--schedule", "constant", "--warmup-ratio", "0", "--val-split", "0"];
    const r = await fails(argv, /training diverged at step \d+: the smoothed loss rose to/);
    assert.match(r.err, /hint: resume from the last good checkpoint with a lower --lr/);
    assert.ok(!existsSync(join(output, "adapter")), "no adapter is written for a diverged run");
    const off = await run([...argv, "--overwrite", "--divergence", "off", "--max-steps", "12"]);
    assert.equal(off.code, 0, off.err);
    const report = readFileSync(join(output, "report.html"), "utf8");
    for (const setting of ["method", "lora", "train.jsonl", "batch_size", "seed"]) assert.ok(report.includes(setting), `report.html shows ${setting}`);
    assert.ok(!report.includes(`<title>${BERT}`), "titled by the model's name, not its path");
  });

  it("merge refuses an --output that is, holds or lies inside the model or adapter folder", async () => {
    const output = join(dir, "run");
    const adapter = join(output, "adapter");
    if (!existsSync(adapter)) assert.equal((await run(["train", "--model", BERT, "--data", DATA, "--output", output, "--max-steps", "1", "--threads", "1", "--overwrite"])).code, 0);
    const model = join(dir, "model-copy");
    mkdirSync(model, { recursive: true });
    for (const f of readdirSync(BERT)) if (statSync(join(BERT, f)).isFile()) writeFileSync(join(model, f), readFileSync(join(BERT, f)));
    const weights = readFileSync(join(model, "model.safetensors"));
    await fails(["merge", "--model", model, "--adapter", adapter, "--output", model], /--output .*model-copy is the --model folder/);
    await fails(["merge", "--model", model, "--adapter", adapter, "--output", join(model, "merged")], /--output .* lies inside the --model folder/);
    await fails(["merge", "--model", model, "--adapter", adapter, "--output", join(adapter, "..", "adapter", ".")], /--output .* is the --adapter folder/);
    await fails(["merge", "--model", model, "--adapter", adapter, "--output", dir], /--output .* contains the --(model|adapter) folder/);
    assert.ok(readFileSync(join(model, "model.safetensors")).equals(weights), "the base model's weights are untouched");
    const merged = await run(["merge", "--model", model, "--adapter", adapter, "--output", join(dir, "merged")]);
    assert.equal(merged.code, 0, merged.err);
  });
});
