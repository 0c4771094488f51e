// target_modules matching: PEFT's rules (peft src/peft/tuners/tuners_utils.py
// check_target_module_exists, and src/peft/utils/other.py match_target_against_key /
// get_pattern_key), on a linear-time regex engine, with unusable patterns named by field.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { describe, it } from "node:test";
import { AdapterConfigError } from "./tuner.js";
import { isTargeted, patternValue, targetedLinears, validateTargetPatterns } from "./targets.js";
import { type ModuleInventory } from "../models/pretrained.js";

const Q = "bert.encoder.layer.0.attention.self.query";
const V3 = "bert.encoder.layer.3.attention.self.value";
const OUT = "bert.encoder.layer.1.attention.output.dense";

describe("target_modules: PEFT's check_target_module_exists", () => {
  it("a list matches the exact module path or a suffix after a dot, never a bare substring", () => {
    // `key in config.target_modules or any(key.endswith(f".{target_key}") ...)`
    assert.equal(isTargeted({ target_modules: ["query"] }, Q), true);
    assert.equal(isTargeted({ target_modules: [Q] }, Q), true);
    assert.equal(isTargeted({ target_modules: ["self.query"] }, Q), true);
    assert.equal(isTargeted({ target_modules: ["uery"] }, Q), false, "suffix must start after a dot");
    assert.equal(isTargeted({ target_modules: ["attention"] }, Q), false, "a middle segment is not a match");
    assert.equal(isTargeted({ target_modules: ["output.dense"] }, OUT), true);
    assert.equal(isTargeted({ target_modules: [] }, Q), false);
  });

  it("a string is a regex that must match the whole path (re.fullmatch)", () => {
    assert.equal(isTargeted({ target_modules: "query" }, Q), false, "fullmatch, not search");
    assert.equal(isTargeted({ target_modules: ".*query" }, Q), true);
    assert.equal(isTargeted({ target_modules: ".*\\.(query|value)" }, V3), true);
    assert.equal(isTargeted({ target_modules: ".*layer\\.[12]\\..*" }, V3), false);
    assert.equal(isTargeted({ target_modules: "a|.*query" }, Q), true, "alternatives are tried until one matches the whole path");
    assert.equal(isTargeted({ target_modules: ".*(?P<name>query)" }, Q), true, "Python named groups");
  });

  it("exclude_modules (fullmatch string or list) and modules_to_save win over target_modules", () => {
    assert.equal(isTargeted({ target_modules: ["query", "value"], exclude_modules: ".*layer\\.3\\..*" }, V3), false);
    assert.equal(isTargeted({ target_modules: ["query", "value"], exclude_modules: "value" }, V3), true, "a string exclude is a fullmatch");
    assert.equal(isTargeted({ target_modules: ["query", "value"], exclude_modules: ["value"] }, V3), false);
    // `re.match(rf"(^|.*\.){m}($|\..*)", key)`: a module to save and everything under it.
    assert.equal(isTargeted({ target_modules: ["query"], modules_to_save: ["self"] }, Q), false);
    assert.equal(isTargeted({ target_modules: ["query"], modules_to_save: ["elf"] }, Q), true);
  });

  it("layers_to_transform picks the first numbered segment, optionally after layers_pattern", () => {
    assert.equal(isTargeted({ target_modules: ["value"], layers_to_transform: 3 }, V3), true);
    assert.equal(isTargeted({ target_modules: ["value"], layers_to_transform: [0, 1] }, V3), false);
    assert.equal(isTargeted({ target_modules: ["value"], layers_to_transform: [], layers_pattern: "nope" }, V3), true, "an empty list means every layer");
    assert.equal(isTargeted({ target_modules: ["value"], layers_to_transform: [3], layers_pattern: "layer" }, V3), true);
    assert.equal(isTargeted({ target_modules: ["value"], layers_to_transform: [3], layers_pattern: ["h", "layer"] }, V3), true);
    assert.equal(isTargeted({ target_modules: ["value"], layers_to_transform: [3], layers_pattern: "h" }, V3), false);
    // Lazy `.*?`: the layer index, not a nested (expert) index.
    assert.equal(isTargeted({ target_modules: ["w1"], layers_to_transform: [1] }, "model.layers.1.experts.0.w1"), true);
    assert.equal(isTargeted({ target_modules: ["w1"], layers_to_transform: [0] }, "model.layers.1.experts.0.w1"), false);
  });

  it("rank_pattern / alpha_pattern keys match a path suffix (get_pattern_key)", () => {
    assert.equal(patternValue({ "layer\\.3\\..*value": 16 }, V3, 8), 16);
    assert.equal(patternValue({ value: 16 }, V3, 8), 16);
    assert.equal(patternValue({ alue: 16 }, V3, 8), 8);
    assert.equal(patternValue(null, V3, 8), 8);
  });
});

describe("target_modules: patterns run in linear time; unusable ones are named", () => {
  it('"(.*.*)*z" returns at once (it backtracks exponentially on a backtracking engine)', () => {
    // In a child process, so that a hang fails this test instead of blocking the whole run.
    const targets = join(import.meta.dirname, "targets.ts");
    const code = `const { isTargeted } = await import(${JSON.stringify(targets)});
      const path = "bert.encoder.layer.0.attention.self.query.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
      console.log(JSON.stringify([isTargeted({ target_modules: "(.*.*)*z" }, path), isTargeted({ target_modules: "(.*.*)*z" }, path + "z"),
        isTargeted({ target_modules: ["query"], exclude_modules: "(a|aa)*b" }, "a".repeat(60) + ".query")]));`;
    const r = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", code], { encoding: "utf8", timeout: 60_000 });
    assert.equal(r.signal, null, `the match hung and was killed (${r.signal})`);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), [false, true, true]);
  });

  it("backreferences, lookaround and syntax errors are AdapterConfigErrors naming the field", () => {
    const cases: [Parameters<typeof isTargeted>[0], RegExp][] = [
      [{ target_modules: "(q)\\1" }, /^target_modules: "\(q\)\\\\1" is not a regular expression peftjs can match \(invalid escape sequence.*no backreferences or lookaround/],
      [{ target_modules: ".*(?=query)query" }, /^target_modules: .*unsupported Perl syntax/],
      [{ target_modules: "(?<!x)query" }, /^target_modules: /],
      [{ target_modules: "(query" }, /^target_modules: "\(query" .*missing closing \)/],
      [{ target_modules: ["query"], exclude_modules: "(?!x)" }, /^exclude_modules: /],
      [{ target_modules: ["query"], modules_to_save: ["cls(?=x)"] }, /^modules_to_save: "cls\(\?=x\)"/],
      [{ target_modules: ["query"], layers_to_transform: [0], layers_pattern: "(h" }, /^layers_pattern: "\(h"/],
    ];
    for (const [spec, error] of cases) {
      assert.throws(() => isTargeted(spec, Q), (e: unknown) => e instanceof AdapterConfigError && error.test(e.message), JSON.stringify(spec));
    }
    assert.throws(() => patternValue({ "(a)\\1": 4 }, Q, 8, "rank_pattern"), /^Error: rank_pattern: "\(a\)\\\\1"/);
  });

  it("validateTargetPatterns and targetedLinears name the source before any matching", () => {
    const inventory = { linear: [{ path: Q, layout: "linear", outFeatures: 4, inFeatures: 4 }] } as unknown as ModuleInventory;
    assert.throws(() => targetedLinears({ target_modules: "(?=q)" }, inventory, "LoRA", "adapter_config.json"), /^Error: adapter_config.json: target_modules: "\(\?=q\)"/);
    assert.throws(() => validateTargetPatterns({ target_modules: ["query"], alpha_pattern: { "x(?<=y)": 2 } }, "cfg.json"), /^Error: cfg.json: alpha_pattern: "x\(\?<=y\)"/);
    assert.doesNotThrow(() => validateTargetPatterns({ target_modules: "all-linear", layers_pattern: ["layer", "h"], rank_pattern: { "layer\\.1\\..*": 4 } }, "cfg.json"));
    assert.deepEqual(targetedLinears({ target_modules: ".*query" }, inventory, "LoRA", "cfg.json").map((l) => l.path), [Q]);
  });
});
