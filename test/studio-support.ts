// Shared steps of the studio's browser tests: start the server (bundle built), open the page in
// headless Chromium, pick a model, drop a data file, set the training form.
import { type Browser, type BrowserContext, type Page } from "playwright-core";
import { launchChromium } from "./browser-support.js";
import { ensureStudioBundle, startStudio, type Studio } from "../src/cli/studio.js";

export interface StudioPage {
  studio: Studio;
  browser: Browser;
  context: BrowserContext;
  page: Page;
  /** Requests the page made to any other origin (must stay empty). */
  outside: string[];
  /** Uncaught errors of the page itself (not the worker's, which the page handles). */
  pageErrors: string[];
  close(): Promise<void>;
}

export async function openStudio(): Promise<StudioPage> {
  await ensureStudioBundle();
  const studio = await startStudio({ port: 0 });
  const browser = await launchChromium();
  const context = await browser.newContext({ acceptDownloads: true, viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  const outside: string[] = [];
  const pageErrors: string[] = [];
  page.on("request", (r) => {
    if (!r.url().startsWith(studio.url) && !/^(blob|data|about):/.test(r.url())) outside.push(r.url());
  });
  page.on("pageerror", (e) => pageErrors.push(e.message));
  await page.goto(studio.url);
  await waitText(page, "#env", /thread/);
  return {
    studio,
    browser,
    context,
    page,
    outside,
    pageErrors,
    close: async () => {
      await browser.close();
      await studio.close();
    },
  };
}

// Code that runs in the page is passed as strings: the project's tsconfig has no DOM types.
const js = JSON.stringify;

/** Wait until the element's text matches (the worker answers asynchronously). */
export async function waitText(page: Page, selector: string, re: RegExp, timeout = 120_000): Promise<string> {
  await page.waitForFunction(`new RegExp(${js(re.source)}, ${js(re.flags)}).test(document.querySelector(${js(selector)})?.textContent ?? "")`, null, { timeout, polling: 100 });
  return (await page.textContent(selector)) ?? "";
}

/** Drop a file on a drop zone, as a user dragging it from the desktop. */
export async function dropFile(page: Page, selector: string, name: string, content: string): Promise<void> {
  const dataTransfer = await page.evaluateHandle(`(() => { const dt = new DataTransfer(); dt.items.add(new File([${js(content)}], ${js(name)}, { type: "text/plain" })); return dt; })()`);
  await page.dispatchEvent(selector, "drop", { dataTransfer });
}

/** A small sentiment data set (CSV): two classes a LoRA adapter separates in a few steps. */
export function reviewsCsv(n = 48): string {
  const pos = ["great fun film", "loved it", "wonderful acting", "a delight", "superb and moving", "brilliant story"];
  const neg = ["boring mess", "hated it", "awful acting", "a waste", "dull and slow", "terrible story"];
  const rows = ["text,label"];
  for (let i = 0; i < n; i++) rows.push(`${i % 2 ? pos[i % 6] : neg[i % 6]} ${i},${i % 2 ? "pos" : "neg"}`);
  return rows.join("\n");
}

/** Pick encoder-mini and drop the reviews: the Train button is then enabled. */
export async function loadEncoderAndReviews(page: Page): Promise<void> {
  await page.selectOption("#model-select", "encoder-mini");
  await waitText(page, "#model-status", /encoder-mini: roberta, 4 layers/);
  await dropFile(page, "#data-drop", "reviews.csv", reviewsCsv());
  await waitText(page, "#data-status", /reviews\.csv: 48 records → sequence-classification/);
}

/** The training form: `steps` LoRA steps of batch 8 (lr 2e-3, a quarter held out, evaluated every 10 steps). */
export async function setTraining(page: Page, steps: number): Promise<void> {
  await page.fill("#max-steps", String(steps));
  await page.fill("#batch-size", "8");
  await page.fill("#lr", "0.002");
  await page.fill("#val-split", "0.25");
  await page.fill("#eval-every", "10");
  await page.fill("#max-length", "32");
}

/** The points of a chart's dataset (the page keeps its charts on globalThis.studio). */
export async function chartPoints(page: Page, chart: "loss" | "lr" | "metric", label: string): Promise<{ x: number; y: number }[]> {
  return page.evaluate(
    ([c, l]) => {
      const charts = (globalThis as unknown as { studio: { charts: Record<string, { data: { datasets: { label: string; data: { x: number; y: number }[] }[] } }> } }).studio.charts;
      return charts[c!]!.data.datasets.find((d) => d.label === l)?.data ?? [];
    },
    [chart, label],
  );
}

/** Click Train and wait until the run ends (the Train button comes back). */
export async function trainAndWait(page: Page, selector = "#train"): Promise<void> {
  await page.click(selector);
  await page.waitForFunction(`document.getElementById("train").disabled`, null, { timeout: 30_000 });
  await page.waitForFunction(`!document.getElementById("train").disabled`, null, { timeout: 600_000, polling: 250 });
}

/** The value of a page expression. */
export async function pageValue<T>(page: Page, expression: string): Promise<T> {
  return (await page.evaluate(expression)) as T;
}
