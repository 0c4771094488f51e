// What every benchmark measures the same way: min and median of timings, and a process's peak
// resident memory.
import { readFileSync } from "node:fs";

/** Min and median of `xs`, rounded to `digits` decimals. */
export function stats(xs: readonly number[], digits = 1): { min: number; median: number } {
  if (xs.length === 0) throw new Error("stats: no measurements");
  const s = [...xs].sort((a, b) => a - b);
  return { min: +s[0]!.toFixed(digits), median: +s[Math.floor(s.length / 2)]!.toFixed(digits) };
}

/**
 * Peak resident memory in MB of process `pid` (default: this one): VmHWM on Linux. Not getrusage's
 * maxrss, which a child inherits from the process that forked it (Linux keeps the high-water mark
 * across execve), so a child of a big benchmark parent would report at least the parent's size.
 * Elsewhere: this process's maxrss, or null for another process.
 */
export function peakRssMb(): number;
export function peakRssMb(pid: number): number | null;
export function peakRssMb(pid?: number): number | null {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid ?? "self"}/status`, "utf8"));
    if (m) return Math.round(Number(m[1]) / 1024);
  } catch {
    // not Linux, or the process is gone: fall through
  }
  return pid === undefined ? Math.round(process.resourceUsage().maxRSS / 1024) : null;
}
