// A headless Chromium page running test/web-page-entry.ts (bundled with the browser build's
// esbuild plugin), served cross-origin isolated on 127.0.0.1 with the shipped models under
// /models/. Shared by test/web-browser.test.ts and bench/web.ts.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as esbuild from "esbuild";
import type { Browser, Page } from "playwright-core";
import { browserBuildOptions, copyOrtWasm } from "../src/platform/build-web.js";
import { launchChromium, serveStatic } from "./browser-support.js";

const ROOT = join(import.meta.dirname, "..");

export interface WebPage {
  page: Page;
  url: string;
  /** Page console lines and errors (for failure messages). */
  log: string[];
  close(): Promise<void>;
}

/** Bundle the page, serve it and open it in headless Chromium. */
export async function openWebPage(chromiumArgs: string[] = []): Promise<WebPage> {
  const dir = mkdtempSync(join(tmpdir(), "peftjs-web-page-"));
  await esbuild.build({
    entryPoints: [join(ROOT, "test/web-page-entry.ts")],
    outfile: join(dir, "entry.js"),
    ...browserBuildOptions(),
    logLevel: "error",
  });
  copyOrtWasm(dir);
  writeFileSync(join(dir, "index.html"), `<!doctype html><meta charset="utf-8"><title>peftjs test page</title><script type="module" src="entry.js"></script>`);
  const { url, server } = await serveStatic({ "/models/": join(ROOT, "models"), "/": dir });
  let browser: Browser | undefined;
  try {
    browser = await launchChromium(chromiumArgs);
    const page = await browser.newPage();
    const log: string[] = [];
    page.on("console", (m) => log.push(`${m.type()}: ${m.text()}`));
    page.on("pageerror", (e) => log.push(`pageerror: ${e.message}`));
    await page.goto(`${url}/index.html`);
    await page.waitForFunction(() => (globalThis as { peftjsTest?: unknown }).peftjsTest !== undefined, undefined, { timeout: 60_000 });
    const b = browser;
    return {
      page,
      url,
      log,
      close: async () => {
        await b.close();
        server.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (e) {
    await browser?.close();
    server.close();
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
}
