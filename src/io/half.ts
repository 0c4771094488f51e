// IEEE half (float16) and bfloat16 <-> float32 conversions, bit-exact, for loading and saving
// 16-bit checkpoints. Re-exported by ./safetensors.ts.
import { type Tensor } from "../ir/tensor.js";

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/**
 * The value of a float16 bit pattern (exact: subnormals, ±0, ±inf; any NaN gives NaN).
 *
 * @example float16BitsToFloat32(0x3c00) // 1
 */
export function float16BitsToFloat32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24; // zero and subnormals
  if (exp === 0x1f) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/**
 * The value of a bfloat16 bit pattern (the top half of a float32, so always exact).
 *
 * @example bfloat16BitsToFloat32(0x3f80) // 1
 */
export function bfloat16BitsToFloat32(b: number): number {
  u32[0] = (b & 0xffff) << 16;
  return f32[0]!;
}

/**
 * float32 -> float16 bits, round to nearest even, overflow to ±infinity, underflow through the
 * subnormals to ±0; NaN gives a quiet NaN. `x` is first rounded to float32 (exact for values
 * that come from a Float32Array).
 *
 * @example float32ToFloat16Bits(-2.5) // 0xc100
 */
export function float32ToFloat16Bits(x: number): number {
  f32[0] = x;
  const bits = u32[0]!;
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits >>> 23) & 0xff;
  let mant = bits & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // Subnormal half (or zero): shift the full significand right and round to nearest even.
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    let r = mant >> shift;
    const rest = mant & ((1 << shift) - 1);
    if (rest > half || (rest === half && r & 1)) r++; // may carry into the smallest normal: still right
    return sign | r;
  }
  let r = mant >> 13;
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && r & 1)) {
    r++;
    if (r === 0x400) {
      r = 0;
      e++;
      if (e >= 0x1f) return sign | 0x7c00;
    }
  }
  return sign | (e << 10) | r;
}

/**
 * float32 -> bfloat16 bits, round to nearest even (NaN stays a quiet NaN, overflow gives ±inf).
 *
 * @example float32ToBfloat16Bits(1) // 0x3f80
 */
export function float32ToBfloat16Bits(x: number): number {
  f32[0] = x;
  const bits = u32[0]!;
  if (Number.isNaN(x)) return ((bits >>> 16) | 0x40) & 0xffff;
  return ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff;
}

let f16Table: Float32Array | undefined;

/**
 * A float tensor as float32: float16/bfloat16 (raw 16-bit words) decoded bit-exactly, float64
 * rounded to nearest. A float32 tensor is returned as is (no copy); other dtypes throw.
 *
 * @example
 *   const w = toFloat32({ dtype: "bfloat16", shape: [2], data: Uint16Array.of(0x3f80, 0xc020) });
 *   // w.data: Float32Array [1, -2.5]
 */
export function toFloat32(t: Tensor): Tensor<"float32"> {
  if (t.dtype === "float32") return t as Tensor<"float32">;
  const n = t.data.length;
  const out = new Float32Array(n);
  if (t.dtype === "float16") {
    if (!f16Table) {
      f16Table = new Float32Array(0x10000);
      for (let h = 0; h < 0x10000; h++) f16Table[h] = float16BitsToFloat32(h);
    }
    const table = f16Table;
    const src = t.data as Uint16Array;
    for (let i = 0; i < n; i++) out[i] = table[src[i]!]!;
  } else if (t.dtype === "bfloat16") {
    const bitsOut = new Uint32Array(out.buffer);
    const src = t.data as Uint16Array;
    for (let i = 0; i < n; i++) bitsOut[i] = src[i]! << 16;
  } else if (t.dtype === "float64") {
    out.set(t.data as Float64Array);
  } else {
    throw new TypeError(`toFloat32: ${t.dtype} is not a float dtype (expected float16, bfloat16, float32 or float64)`);
  }
  return { dtype: "float32", shape: [...t.shape], data: out };
}
