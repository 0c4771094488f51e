// Shapes with symbolic dimensions ("batch", "seq", "batch*seq") and the arithmetic that shape
// inference needs on them: products and exact quotients of symbolic dims, broadcasting.

/** A dimension: a known size, or a symbol (or product of symbols) fixed only at run time. */
export type Dim = number | string;
export type Shape = readonly Dim[];

interface Factors {
  coef: number;
  syms: string[]; // sorted
}

function factors(d: Dim): Factors {
  if (typeof d === "number") return { coef: d, syms: [] };
  let coef = 1;
  const syms: string[] = [];
  for (const part of d.split("*")) {
    const n = Number(part);
    if (part !== "" && Number.isInteger(n)) coef *= n;
    else syms.push(part);
  }
  return { coef, syms: syms.sort() };
}

function fromFactors(f: Factors): Dim {
  if (f.syms.length === 0) return f.coef;
  if (f.coef === 0) return 0;
  return (f.coef === 1 ? [] : [String(f.coef)]).concat(f.syms).join("*");
}

/** Canonical form of a dim, so that `"seq*batch"` equals `"batch*seq"`. */
export function canonicalDim(d: Dim): Dim {
  return fromFactors(factors(d));
}

export function sameDim(a: Dim, b: Dim): boolean {
  return canonicalDim(a) === canonicalDim(b);
}

export function sameShape(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => sameDim(d, b[i]!));
}

/** Product of dims; symbolic factors are kept as a canonical `a*b` product. */
export function dimProduct(dims: readonly Dim[]): Dim {
  const f: Factors = { coef: 1, syms: [] };
  for (const d of dims) {
    const g = factors(d);
    f.coef *= g.coef;
    f.syms.push(...g.syms);
  }
  f.syms.sort();
  return fromFactors(f);
}

/** `a / b` when it is exact (symbolically), otherwise undefined. */
export function dimQuotient(a: Dim, b: Dim): Dim | undefined {
  const fa = factors(a);
  const fb = factors(b);
  if (fb.coef === 0 || fa.coef % fb.coef !== 0) return undefined;
  const syms = [...fa.syms];
  for (const s of fb.syms) {
    const i = syms.indexOf(s);
    if (i < 0) return undefined;
    syms.splice(i, 1);
  }
  return fromFactors({ coef: fa.coef / fb.coef, syms });
}

export function isStatic(shape: Shape): shape is readonly number[] {
  return shape.every((d) => typeof d === "number");
}

export function formatShape(shape: Shape): string {
  return `[${shape.join(", ")}]`;
}

/** Numpy-style broadcast of several shapes; undefined when they do not broadcast. */
export function broadcastShapes(shapes: readonly Shape[]): Shape | undefined {
  const rank = Math.max(...shapes.map((s) => s.length));
  const out: Dim[] = [];
  for (let i = 0; i < rank; i++) {
    let dim: Dim = 1;
    for (const s of shapes) {
      const d = s[s.length - rank + i] ?? 1;
      if (d === 1) continue;
      if (dim === 1) dim = d;
      else if (!sameDim(dim, d)) return undefined;
    }
    out.push(dim);
  }
  return out;
}

/** Normalize a possibly negative axis; throws when out of range. */
export function normalizeAxis(axis: number, rank: number, what: string): number {
  const a = axis < 0 ? axis + rank : axis;
  if (!Number.isInteger(a) || a < 0 || a >= rank) {
    throw new RangeError(`${what}: axis ${axis} is out of range for rank ${rank}`);
  }
  return a;
}

/**
 * a + b for dims, keeping "symbol+k" / "symbol-k" forms canonical so that slicing n positions
 * off "seq" and concatenating n back gives "seq" again.
 */
export function dimAdd(a: Dim, b: Dim): Dim {
  if (typeof a === "number" && typeof b === "number") return a + b;
  if (typeof a === "number") return dimAdd(b, a);
  const [sa, ka] = splitOffset(a);
  if (typeof b === "number") return withOffset(sa, ka + b);
  const [sb, kb] = splitOffset(b);
  return withOffset(`${sa}+${sb}`, ka + kb);
}

function splitOffset(d: string): [string, number] {
  const m = /^(.*?)([+-]\d+)$/.exec(d);
  return m && m[1] ? [m[1], Number(m[2])] : [d, 0];
}

function withOffset(sym: string, k: number): Dim {
  return k === 0 ? sym : k > 0 ? `${sym}+${k}` : `${sym}${k}`;
}
