// Browser build of ./progress-bar.ts: no terminal, so no bar (callers fall back to their log lines).
import { type ProgressBar } from "./progress-bar.js";

export function createProgressBar(_format: string): ProgressBar | undefined {
  return undefined;
}
