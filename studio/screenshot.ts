// The README's screenshot of the studio mid-training: headless Chromium (playwright-core) drives the
// real page: encoder-mini, a dropped CSV, LoRA, 60 steps; the shot is taken at step 40.
// Run: `node --import tsx studio/screenshot.ts [out.png]` (default docs/studio-training.png).
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { loadEncoderAndReviews, openStudio, setTraining, waitText } from "../test/studio-support.js";

const out = process.argv[2] ?? join(fileURLToPath(new URL("..", import.meta.url)), "docs", "studio-training.png");
const s = await openStudio();
try {
  const { page } = s;
  await page.setViewportSize({ width: 1280, height: 860 });
  await loadEncoderAndReviews(page);
  await setTraining(page, 60);
  await page.click("#train");
  await waitText(page, "#eta", /^step (4\d|5\d)\/60 · ETA/, 600_000);
  await page.evaluate("window.scrollTo(0, 0)");
  // The top of the page: model, data, progress, the three charts (the form below is cut).
  await page.screenshot({ path: out, type: "png", clip: { x: 0, y: 0, width: 1280, height: 540 } });
  console.log(`wrote ${out} at "${await page.textContent("#eta")}"`);
} finally {
  await s.close();
}
