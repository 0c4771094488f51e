// Browser build of ./assets.ts: the texts are inlined by the bundler (see ./esbuild-plugin.ts,
// which loads "peftjs-embed:<package file>" imports as strings).
import chartUmd from "peftjs-embed:chart.js/dist/chart.umd.min.js";

export async function chartJsUmd(): Promise<string> {
  return chartUmd;
}
