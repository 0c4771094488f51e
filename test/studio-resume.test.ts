// The studio's runs in headless Chromium: pause a run, reload the page, resume it from its OPFS
// checkpoint (the steps after the pause match an uninterrupted run's), and cancel a run.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { chromiumSkipReason } from "./browser-support.js";
import { chartPoints, loadEncoderAndReviews, openStudio, setTraining, trainAndWait, waitText, type StudioPage } from "./studio-support.js";

const skip = chromiumSkipReason();
const STEPS = 12;
const CANCEL_STEPS = 500;

describe("peftjs studio: pause, resume after a reload, cancel", { skip }, () => {
  let s: StudioPage;
  before(async () => {
    s = await openStudio();
  });
  after(() => s?.close());

  it("a paused run resumes after a reload from its checkpoint and ends as an uninterrupted run does", async () => {
    const { page } = s;
    await loadEncoderAndReviews(page);
    await setTraining(page, STEPS);
    await page.click("#train");
    await waitText(page, "#eta", new RegExp(`^step [1-4]/${STEPS}`));
    await page.click("#pause");
    const paused = await waitText(page, "#message", /^Paused at step \d+/);
    const at = Number(/step (\d+)/.exec(paused)![1]);
    assert.ok(at >= 2 && at < STEPS, paused);
    await waitText(page, "#runs", /unfinished: lora on encoder-mini, reviews\.csv/);

    await page.reload();
    await waitText(page, "#env", /thread/);
    await waitText(page, "#runs", /unfinished: lora on encoder-mini, reviews\.csv/);
    assert.equal(await page.isDisabled("#train"), true, "nothing loaded yet after the reload");
    await trainAndWait(page, "#runs button.resume");
    assert.equal(await page.textContent("#message"), "");
    assert.match((await page.textContent("#eta"))!, new RegExp(`^step ${STEPS}/${STEPS}`));
    const resumed = await chartPoints(page, "loss", "train loss");
    assert.deepEqual(resumed.map((p) => p.x), Array.from({ length: STEPS - at }, (_, i) => at + 1 + i), "the resumed run logs the steps after its checkpoint");
    assert.equal(await page.textContent("#runs"), "", "a finished run is not offered for resuming");
    // The adapter is packed for download after the last step is shown: wait for it, bounded.
    await page.waitForSelector("#download-adapter:enabled", { timeout: 30_000 });

    // The same settings without a pause: the same losses at every step after the checkpoint.
    await trainAndWait(page);
    const whole = await chartPoints(page, "loss", "train loss");
    assert.equal(whole.length, STEPS);
    for (const p of resumed) {
      const q = whole.find((w) => w.x === p.x)!;
      assert.ok(Math.abs(q.y - p.y) <= 1e-6, `step ${p.x}: resumed ${p.y}, uninterrupted ${q.y}`);
    }
  });

  it("cancel stops a run at once, deletes it, and leaves the page ready to train", async () => {
    const { page } = s;
    // A run long enough that it cannot end between the first step shown and the click (with 12
    // steps on a quiet machine it could, and then there was nothing to cancel).
    await setTraining(page, CANCEL_STEPS);
    await page.click("#train");
    await waitText(page, "#eta", new RegExp(`^step [1-9]\\d*/${CANCEL_STEPS}`));
    await page.click("#cancel");
    await waitText(page, "#message", /^Training cancelled\.$/);
    await waitText(page, "#model-status", /encoder-mini: roberta/);
    await waitText(page, "#data-status", /reviews\.csv: 48 records/);
    // The page settles asynchronously after the message (buttons, the OPFS run list): wait, bounded.
    await page.waitForSelector("#train:enabled", { timeout: 30_000 });
    await page.waitForSelector("#pause:disabled", { timeout: 30_000 });
    await waitText(page, "#runs", /^$/, 30_000);
    assert.deepEqual(s.pageErrors, []);
    assert.deepEqual(s.outside, []);
  });
});
