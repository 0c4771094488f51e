#!/usr/bin/env node
// The peftjs command line. In a source checkout it runs the TypeScript sources through tsx;
// an installed package runs its built dist/.
import { existsSync } from "node:fs";

process.stdout.on("error", (e) => {
  if (e.code === "EPIPE") process.exit(0); // e.g. `peftjs info ... | head`
  throw e;
});

const source = new URL("../src/cli/main.ts", import.meta.url);
let main;
if (existsSync(source)) {
  const { tsImport } = await import("tsx/esm/api");
  ({ main } = await tsImport(source.href, import.meta.url));
} else {
  ({ main } = await import(new URL("../dist/cli/main.js", import.meta.url).href));
}
process.exitCode = await main(process.argv.slice(2));
