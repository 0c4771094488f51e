// peftjs studio end to end in headless Chromium: pick encoder-mini, drop a CSV, train 20 LoRA
// steps in the page's worker (onnxruntime-web, wasm), watch the loss fall, try an input, download
// the adapter and the report; the downloaded adapter loads in Node peftjs and gives the page's
// logits. No request leaves the studio's origin.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { chromiumSkipReason } from "./browser-support.js";
import { chartPoints, loadEncoderAndReviews, openStudio, pageValue, setTraining, trainAndWait, waitText, type StudioPage } from "./studio-support.js";
import { readStoredZip } from "../src/io/stored-zip.js";
import { loadModel } from "../src/models/pretrained.js";
import { PeftModel } from "../src/peft/peft-model.js";
import { collate } from "../src/train/data.js";
import { taskExamples } from "../src/train/data-task.js";

const skip = chromiumSkipReason();
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

describe("peftjs studio in headless Chromium", { skip }, () => {
  let s: StudioPage;
  before(async () => {
    s = await openStudio();
  });
  after(() => s?.close());

  it("trains 20 LoRA steps on encoder-mini from a dropped CSV; the loss falls; the downloaded adapter gives Node peftjs the page's logits", async () => {
    const { page } = s;
    await loadEncoderAndReviews(page);
    assert.match(await page.textContent("#data-status") ?? "", /labels: neg, pos/);
    await setTraining(page, 20);
    // A method setting from the registry's form: LoRA's rank (the preset's is 8).
    await page.click("#method-details summary");
    assert.equal(await page.getAttribute("#field-r", "placeholder"), "8");
    await page.fill("#field-r", "4");
    await trainAndWait(page);
    assert.equal(await page.textContent("#message"), "", "no error");
    assert.match(await page.textContent("#eta") ?? "", /^step 20\/20/);
    assert.deepEqual(await pageValue(page, `[document.getElementById("progress").value, document.getElementById("progress").max]`), [20, 20]);

    // The loss falls: the last five steps' mean below the first five's, and the held-out loss at step 20 below step 10's.
    const loss = (await chartPoints(page, "loss", "train loss")).map((p) => p.y);
    assert.equal(loss.length, 20);
    assert.ok(mean(loss.slice(-5)) < mean(loss.slice(0, 5)), `train loss ${loss.map((x) => x.toFixed(3)).join(" ")}`);
    const evalLoss = (await chartPoints(page, "loss", "eval loss")).map((p) => p.y);
    assert.equal(evalLoss.length, 2);
    assert.ok(evalLoss[1]! < evalLoss[0]!, `eval loss ${evalLoss.join(" ")}`);
    assert.equal((await chartPoints(page, "lr", "lr")).length, 20);
    assert.ok((await chartPoints(page, "metric", "accuracy")).length >= 1, "an evaluation metric is charted");

    // The evaluation report: the CLI's report.html, shown in the page.
    await page.waitForFunction(`document.getElementById("report-frame").srcdoc.includes("Final metrics")`, null, { timeout: 30_000 });
    const report = await pageValue<string>(page, `document.getElementById("report-frame").srcdoc`);
    for (const part of ["<h2>Settings</h2>", "<h2>Final metrics</h2>", "Confusion matrix", 'id="loss"', 'id="roc"', "reviews.csv"]) assert.ok(report.includes(part), part);

    // Try an input.
    const text = "a wonderful and moving story";
    await page.fill("#try-text", text);
    await page.click("#try-button");
    await waitText(page, "#try-output", /%/);
    const prediction = await pageValue<{ kind: string; labels: string[]; probabilities: number[]; logits: number[] }>(page, "studio.lastPrediction");
    assert.equal(prediction.kind, "classification");
    assert.deepEqual(prediction.labels, ["neg", "pos"]);
    assert.equal(prediction.logits.length, 2);

    // Download the adapter (a zip of the PEFT folder) and the report.
    const dir = mkdtempSync(join(tmpdir(), "studio-download-"));
    const [zipDownload] = await Promise.all([page.waitForEvent("download"), page.click("#download-adapter")]);
    assert.match(zipDownload.suggestedFilename(), /adapter\.zip$/);
    await zipDownload.saveAs(join(dir, "adapter.zip"));
    const entries = readStoredZip(readFileSync(join(dir, "adapter.zip")), "adapter.zip");
    assert.deepEqual([...entries.keys()].sort(), ["adapter/adapter_config.json", "adapter/adapter_model.safetensors", "adapter/labels.json"]);
    mkdirSync(join(dir, "adapter"));
    for (const [name, bytes] of entries) writeFileSync(join(dir, name), bytes);
    const config = JSON.parse(readFileSync(join(dir, "adapter", "adapter_config.json"), "utf8")) as Record<string, unknown>;
    assert.equal(config.peft_type, "LORA");
    assert.equal(config.task_type, "SEQ_CLS");
    assert.equal(config.r, 4);
    assert.equal(config.lora_alpha, 16);
    assert.equal(config.base_model_name_or_path, "models/encoder-mini");
    const [reportDownload] = await Promise.all([page.waitForEvent("download"), page.click("#download-report")]);
    assert.equal(reportDownload.suggestedFilename(), "report.html");
    await reportDownload.saveAs(join(dir, "report.html"));
    assert.equal(readFileSync(join(dir, "report.html"), "utf8"), report);

    // The adapter in Node peftjs (onnxruntime-node): the same logits for the same input.
    const model = await loadModel("models/encoder-mini", { task: "sequence-classification" });
    (model.config as { numLabels: number }).numLabels = 2;
    const peft = await PeftModel.load(model, join(dir, "adapter"));
    assert.deepEqual(peft.labelNames(), ["neg", "pos"]);
    const tok = model.tokenizer!;
    const { examples } = taskExamples("sequence-classification", [{ text }], tok, { maxLength: Math.min(512, model.maxInputLength), labelled: false, labelNames: ["neg", "pos"] });
    const { input_ids, attention_mask, token_type_ids } = collate(examples, tok.padTokenId ?? 0);
    const logits = Array.from((await peft.forward({ input_ids, attention_mask, token_type_ids })).logits!.data as Float32Array);
    const diff = Math.max(...logits.map((z, i) => Math.abs(z - prediction.logits[i]!)));
    console.log(`studio: browser logits ${prediction.logits.map((z) => z.toFixed(6)).join(", ")}; Node ${logits.map((z) => z.toFixed(6)).join(", ")}; max |diff| ${diff.toExponential(2)}`);
    assert.ok(diff <= 1e-5, `max |logit difference| ${diff}`);

    assert.deepEqual(s.outside, [], "no request leaves the studio's origin");
    assert.deepEqual(s.pageErrors, []);
  });
});
