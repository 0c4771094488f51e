// "Did you mean ...?" for a mistyped key (an option in a config file, a flag, a data field): the
// nearest known name by edit distance, when it is near enough to be the likely intent.

/** Optimal-string-alignment distance: insertions, deletions, substitutions and swaps of neighbours cost 1. */
export function editDistance(a: string, b: string): number {
  const rows = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const row = rows[i]!;
      row[j] = Math.min(rows[i - 1]![j]! + 1, row[j - 1]! + 1, rows[i - 1]![j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
      // A swap of neighbours ("lable" for "label") is one edit.
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) row[j] = Math.min(row[j]!, rows[i - 2]![j - 2]! + 1);
    }
  }
  return rows[a.length]![b.length]!;
}

/**
 * The known name nearest to `name` (case, `-` and `_` ignored), if at most about a third of it
 * differs; undefined when nothing is that close.
 */
export function nearestName(name: string, known: Iterable<string>): string | undefined {
  const norm = (s: string) => s.toLowerCase().replace(/[-_]/g, "");
  const n = norm(name);
  let best: { name: string; d: number } | undefined;
  for (const k of known) {
    const d = editDistance(n, norm(k));
    if (!best || d < best.d) best = { name: k, d };
  }
  return best && best.d <= Math.max(1, Math.floor(n.length / 3)) ? best.name : undefined;
}

/** ` (did you mean "x"?)` for the nearest known name, or "" when none is close. */
export function didYouMean(name: string, known: Iterable<string>, show: (k: string) => string = (k) => `"${k}"`): string {
  const near = nearestName(name, known);
  return near === undefined ? "" : ` (did you mean ${show(near)}?)`;
}
