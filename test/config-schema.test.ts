// One schema, many doors: every registry row declares its config fields once (config-schema.ts),
// and the library API, adapter files and the CLI (--peft, `peftjs methods`) all go through that
// declaration. These tests run over every row, so a new method is covered by its declaration.
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { main } from "../src/cli/main.js";
import { loadModel } from "../src/models/pretrained.js";
import { PeftModel, type PeftConfigInput } from "../src/peft/peft-model.js";
import { COMMON_FIELDS } from "../src/tuners/config-schema.js";
import { PRESETS, TUNERS, type TunerName } from "../src/tuners/registry.js";

const BERT = join(import.meta.dirname, "fixtures", "models", "bert-tiny");
const ROWS = Object.keys(TUNERS) as TunerName[];
/** A preset config of each row (every row has one; tuners.test.ts checks). */
const presetOf = (t: TunerName): PeftConfigInput => ({ ...Object.values(PRESETS).find((p) => p.peft_type === t)! }) as PeftConfigInput;

async function run(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const code = await main(argv, { out: (s) => (out += `${s}\n`), write: (s) => (out += s), err: (s) => (err += `${s}\n`) });
  return { code, out, err };
}

describe("config declarations (every registry row)", () => {
  it("every field is declared with what it takes and help text", () => {
    for (const t of ROWS) {
      for (const [name, f] of Object.entries(TUNERS[t].fields)) {
        assert.ok(f.expected.length > 0, `${t}.${name}: expected`);
        assert.ok(f.help.length > 10, `${t}.${name}: help`);
      }
    }
  });

  it("a value no field accepts is an error naming the field, for every declared field", async () => {
    const model = await loadModel(BERT, { task: "sequence-classification" });
    let checked = 0;
    for (const t of ROWS) {
      for (const name of Object.keys(TUNERS[t].fields)) {
        const config = { ...presetOf(t), [name]: [[[]]] };
        assert.throws(() => PeftModel.create(model, config), (e: Error) => e.message.includes(`field "${name}" must be`), `${t}.${name}`);
        checked++;
      }
    }
    assert.ok(checked > 50, `${checked} fields`);
  });

  it("saved configs write only declared fields and PeftConfig's (plus constants a layout adds)", async () => {
    const model = await loadModel(BERT, { task: "sequence-classification" });
    for (const t of ROWS) {
      if (t === "BOTTLENECK" || t === "HYBRID") continue; // AdapterHub's layout nests the fields under "config" (adapterhub.test.ts pins it)
      const def = TUNERS[t];
      const peft = PeftModel.create(model, presetOf(t));
      const json = def.toJSON(peft.adapters.get("default")!.config as never);
      const allowed = new Set(["peft_type", "revision", ...Object.keys(COMMON_FIELDS), ...Object.keys(def.fields)]);
      assert.deepEqual(Object.keys(json).filter((k) => !allowed.has(k)), [], t);
      for (const k of Object.keys(def.fields)) if (k !== "use_gating") assert.ok(k in json, `${t} writes ${k}`);
    }
  });
});

describe("peftjs methods", () => {
  it("lists every row with each declared field, its default and help", async () => {
    const r = await run(["methods"]);
    assert.equal(r.code, 0, r.err);
    for (const t of ROWS) {
      assert.match(r.out, new RegExp(`^${t}\\b`, "m"), t);
      for (const [name, f] of Object.entries(TUNERS[t].fields)) assert.ok(r.out.includes(`  ${name}: ${f.expected}; default `), `${t}.${name}`);
    }
    assert.match(r.out, /^ {2}r: an integer >= 1; default 8\n {6}rank of the update BA$/m);
    assert.match(r.out, /^LORA — --method lora \(r=8 lora_alpha=16\), dora/m);
  });

  it("one method by --method name or PEFT type; an unknown one is an error with a hint", async () => {
    const r = await run(["methods", "prefix"]);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /^PREFIX_TUNING/);
    assert.doesNotMatch(r.out, /^LORA/m);
    assert.match(r.out, /num_virtual_tokens: an integer >= 1; default required/);
    assert.match(r.out, /token_dim: an integer >= 1; default the model's hidden size/);
    assert.match((await run(["methods", "IA3"])).out, /^IA3 — --method ia3\n {2}target_modules:/);
    const bad = await run(["methods", "lorra"]);
    assert.equal(bad.code, 1);
    assert.match(bad.err, /^peftjs: unknown method "lorra"\nhint: methods \(--method\): lora, /);
  });
});

describe("train's method settings go through the declaration before a model is loaded", () => {
  // The model does not exist: each error must come from the settings, not from loading.
  const train = ["train", "--model", "/nonexistent/model", "--data", "/nonexistent/data.jsonl"];
  const fails = async (argv: string[], pattern: RegExp) => {
    const r = await run(argv);
    assert.equal(r.code, 1, r.out);
    const [line, hint] = r.err.trim().split("\n");
    assert.match(line!, pattern);
    assert.match(hint!, /^hint: run "peftjs methods \S+" for its fields, defaults and help$/);
  };

  it("an unknown --peft key suggests the nearest field", async () => {
    await fails([...train, "--peft", "rank=4"], /^peftjs: --peft: unknown LORA config field "rank"; did you mean "r"\?/);
    await fails([...train, "--method", "p-tuning", "--peft", "encoder_hiden_size=8"], /unknown P_TUNING config field "encoder_hiden_size"; did you mean "encoder_hidden_size"\?/);
    await fails([...train, "--method", "hybrid", "--peft", 'lora={"rank":2}'], /^peftjs: --peft \(lora\): unknown LORA config field "rank"; did you mean "r"\?/);
  });

  it("a --peft value outside its field's type or range names the field, expected and actual", async () => {
    await fails([...train, "--peft", "r=0"], /^peftjs: --peft: field "r" must be an integer >= 1, got 0$/);
    await fails([...train, "--peft", "bias=some"], /^peftjs: --peft: field "bias" must be "none", "all" or "lora_only", got "some"$/);
    await fails([...train, "--method", "adalora", "--peft", "beta1=1"], /field "beta1" must be a number > 0 and < 1, got 1$/);
    await fails([...train, "--method", "houlsby", "--peft", "leave_out=3"], /field "leave_out" must be a list of layer indices, got 3$/);
  });

  it("a shared flag the method lacks is named with the method", async () => {
    await fails([...train, "--method", "prompt", "--r", "4"], /^peftjs: --method prompt: unknown PROMPT_TUNING config field "r"/);
  });

  it("settings from a config file are named by the file", async () => {
    const dir = mkdtempSync(join(tmpdir(), "peftjs-config-schema-"));
    const file = join(dir, "run.yaml");
    writeFileSync(file, "peft:\n  lora_dropuot: 0.1\n");
    await fails([...train, "--config", file], new RegExp(`^peftjs: ${file.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}: peft: unknown LORA config field "lora_dropuot"; did you mean "lora_dropout"\\?`));
  });
});
