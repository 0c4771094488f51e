// Bad input in the studio (headless Chromium): a broken CSV, data whose fields do not fit a task,
// a model folder without config.json, a worker that crashes. Each shows one clear message (for
// data files, the very message the CLI prints for the same bytes), and the page stays usable.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { chromiumSkipReason } from "./browser-support.js";
import { dropFile, openStudio, pageValue, reviewsCsv, waitText, type StudioPage } from "./studio-support.js";
import { loadModel } from "../src/models/pretrained.js";
import { parseRecords } from "../src/train/data.js";
import { detectTask, taskExamples } from "../src/train/data-task.js";

const skip = chromiumSkipReason();

/** The CLI's message for a data file's bytes (parsing, task detection, examples), or undefined when it is fine. */
async function cliMessage(name: string, content: string): Promise<string | undefined> {
  try {
    const records = parseRecords(new TextEncoder().encode(content), name);
    const { task } = detectTask(records, { source: name });
    const model = await loadModel("models/encoder-mini", { task });
    taskExamples(task, records, model.tokenizer!, { maxLength: 128, source: name });
    return undefined;
  } catch (e) {
    return (e as Error).message;
  }
}

describe("peftjs studio: bad input", { skip }, () => {
  let s: StudioPage;
  before(async () => {
    s = await openStudio();
    await s.page.selectOption("#model-select", "encoder-mini");
    await waitText(s.page, "#model-status", /encoder-mini: roberta/);
  });
  after(() => s?.close());

  const message = () => s.page.textContent("#message");

  it("a broken CSV, a misspelled label field and a record without a label: the CLI's message, then a good file loads", async () => {
    const { page } = s;
    const bad: [string, string][] = [
      ["broken.csv", 'text,label\n"an unclosed quote,pos\nfine,neg\n'],
      ["lable.jsonl", '{"text": "good", "lable": "pos"}\n{"text": "bad", "lable": "neg"}\n'],
      ["missing.jsonl", '{"text": "good", "label": "pos"}\n{"text": "bad"}\n'],
    ];
    for (const [name, content] of bad) {
      const expected = await cliMessage(name, content);
      assert.ok(expected, `${name} is bad input for the CLI too`);
      await dropFile(page, "#data-drop", name, content);
      await waitText(page, "#message", new RegExp(`^${name.replace(".", "\\.")}`));
      assert.equal(await message(), expected, name);
      assert.equal(await page.textContent("#data-status"), "no data loaded");
      assert.equal(await page.isDisabled("#train"), true);
    }
    assert.match((await cliMessage("broken.csv", bad[0]![1]))!, /^broken\.csv: /);
    assert.match((await cliMessage("missing.jsonl", bad[2]![1]))!, /^missing\.jsonl line 2: missing field "label"/);
    // The page stays usable: a good file loads and clears the message.
    await dropFile(page, "#data-drop", "reviews.csv", reviewsCsv());
    await waitText(page, "#data-status", /reviews\.csv: 48 records/);
    assert.equal(await message(), "");
    assert.equal(await page.isDisabled("#train"), false);
  });

  it("a model folder without config.json names what is missing; a complete folder loads after it", async () => {
    const { page } = s;
    const dir = join(mkdtempSync(join(tmpdir(), "studio-model-")), "my-model");
    mkdirSync(dir);
    writeFileSync(join(dir, "tokenizer.json"), "{}");
    writeFileSync(join(dir, "model.safetensors"), "");
    await page.setInputFiles("#model-folder", dir);
    await waitText(page, "#message", /config\.json/);
    // (The folder's listing order is the browser's.)
    assert.match((await message())!, /^my-model: no config\.json in the folder \(it has (tokenizer\.json, model\.safetensors|model\.safetensors, tokenizer\.json)\); a Hugging Face model folder holds config\.json, model\.safetensors and tokenizer\.json$/);
    assert.equal(await page.textContent("#model-status"), "no model loaded");
    assert.equal(await page.isDisabled("#train"), true);
    // A real model folder, picked from disk: read from its File objects in place.
    await page.setInputFiles("#model-folder", join(import.meta.dirname, "..", "models", "encoder-mini"));
    await waitText(page, "#model-status", /^encoder-mini: roberta, 4 layers/);
    assert.equal(await message(), "");
    assert.equal(await page.isDisabled("#train"), false);
    assert.equal(await page.inputValue("#model-select"), "", "the folder, not the shipped model");
  });

  it("a worker crash is reported, a new worker gets the model and data back, and answers", async () => {
    const { page } = s;
    await page.evaluate(`studio.worker.postMessage({ id: 0, type: "crash" })`);
    await waitText(page, "#message", /The worker stopped unexpectedly/);
    assert.match((await message())!, /^The worker stopped unexpectedly \(Uncaught Error: the worker crashed \(a crash the page asked for\) at \/worker\.js:\d+\)\. A new one was started and given the model and data again\.$/);
    await waitText(page, "#model-status", /encoder-mini: roberta/);
    await waitText(page, "#data-status", /reviews\.csv: 48 records/);
    assert.equal(await page.isDisabled("#train"), false);
    // The new worker answers requests.
    await page.fill("#try-text", "hello");
    await page.click("#try-button");
    await waitText(page, "#try-output", /train a model first/);
    assert.equal(await pageValue(page, "typeof studio.worker.postMessage"), "function");
    assert.deepEqual(s.pageErrors, []);
    assert.deepEqual(s.outside, []);
  });
});
