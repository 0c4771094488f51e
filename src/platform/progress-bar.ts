// A live progress bar on the terminal (cli-progress); the browser build has none (./progress-bar.browser.ts):
// pages draw their own from Trainer's onLog.
import cliProgress from "cli-progress";

export interface ProgressBar {
  start(total: number, value: number, payload: Record<string, string | number>): void;
  update(value: number, payload: Record<string, string | number>): void;
  stop(): void;
}

/** A one-line bar with cli-progress's `format` placeholders ({bar}, {value}, payload keys). */
export function createProgressBar(format: string): ProgressBar | undefined {
  return new cliProgress.SingleBar({ format, hideCursor: true }, cliProgress.Presets.shades_classic);
}
