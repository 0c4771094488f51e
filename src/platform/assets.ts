// Text files from installed packages that outputs embed (Chart.js in report.html). Node reads
// them from node_modules; a browser build resolves this file to ./assets.browser.ts, where the
// bundler has inlined them.
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";

/** Chart.js's UMD bundle (it sits beside the package's main entry; not an exported subpath). */
export async function chartJsUmd(): Promise<string> {
  return readFile(join(dirname(createRequire(import.meta.url).resolve("chart.js")), "chart.umd.min.js"), "utf8");
}
