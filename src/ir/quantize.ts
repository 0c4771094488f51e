// Weight quantization on the host: symmetric per-output-channel int8 (the frozen base of
// `loadModel(dir, { quantize: "int8" })`, INT8 adapter files, int8 exports) and its inverse.
// Pure functions over typed arrays; the graph side is in composites/linear.ts.
import { type Tensor } from "./tensor.js";

/** An int8 matrix with one float scale per output channel: value = q * scale[channel]. */
export interface Int8Quantized {
  /** The int8 values, in the layout of the float matrix they came from (see `channelAxis`). */
  q: Int8Array;
  /** One scale per output channel. */
  scale: Float32Array;
  shape: readonly [number, number];
  /** The axis that indexes output channels: 0 for [out, in] (nn.Linear), 1 for [in, out]. */
  channelAxis: 0 | 1;
}

/**
 * Quantize a 2-D float matrix to int8, symmetric (zero point 0), one scale per output channel:
 * scale = max|w| / 127, q = round(w / scale) in [-127, 127]. An all-zero channel gets scale 1.
 *
 * @example
 *   const { q, scale } = quantizeInt8(float32([2, 3], [1, -2, 4, 0.5, 0, -1]), 0);
 *   // scale = [4/127, 1/127]; q[2] = 127
 */
export function quantizeInt8(w: Tensor, channelAxis: 0 | 1): Int8Quantized {
  if (w.dtype !== "float32" || w.shape.length !== 2) throw new TypeError(`quantizeInt8: expected a 2-D float32 matrix, got ${w.dtype}[${w.shape.join(", ")}]`);
  const [rows, cols] = w.shape as [number, number];
  const data = w.data as Float32Array;
  const channels = channelAxis === 0 ? rows : cols;
  const maxAbs = new Float32Array(channels);
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < cols; j++) {
      const c = channelAxis === 0 ? i : j;
      const a = Math.abs(data[i * cols + j]!);
      if (a > maxAbs[c]!) maxAbs[c] = a;
    }
  }
  const scale = Float32Array.from(maxAbs, (m) => (m > 0 ? m / 127 : 1));
  const q = new Int8Array(rows * cols);
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < cols; j++) {
      const s = scale[channelAxis === 0 ? i : j]!;
      q[i * cols + j] = Math.max(-127, Math.min(127, Math.round(data[i * cols + j]! / s)));
    }
  }
  return { q, scale, shape: [rows, cols], channelAxis };
}

/** The float32 matrix an int8 quantization stands for (q * scale per channel). */
export function dequantizeInt8({ q, scale, shape, channelAxis }: Int8Quantized): Tensor<"float32"> {
  const [rows, cols] = shape;
  const out = new Float32Array(rows * cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) out[i * cols + j] = q[i * cols + j]! * scale[channelAxis === 0 ? i : j]!;
  return { dtype: "float32", shape: [rows, cols], data: out };
}

/** Transpose an int8 quantization (values and the channel axis together; no requantization). */
export function transposeInt8({ q, scale, shape, channelAxis }: Int8Quantized): Int8Quantized {
  const [rows, cols] = shape;
  const t = new Int8Array(rows * cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) t[j * rows + i] = q[i * cols + j]!;
  return { q: t, scale, shape: [cols, rows], channelAxis: channelAxis === 0 ? 1 : 0 };
}

/**
 * Symmetric int8 values stored as uint8 (q + 128, zero point 128): the form the graph feeds to
 * MatMulInteger, whose u8 x u8 kernels do not saturate on AVX2 (u8 x s8 ones do).
 */
export function int8Storage(q: Int8Array): Uint8Array {
  return Uint8Array.from(q, (v) => v + 128);
}

const ZERO_POINTS = new Map<number, Uint8Array>();
/** `n` zero points of 128 (one per channel; shared, read-only). */
export function zeroPoints(n: number): Uint8Array {
  let z = ZERO_POINTS.get(n);
  if (!z) ZERO_POINTS.set(n, (z = new Uint8Array(n).fill(128)));
  return z;
}

/** Kinds of quantized frozen base `loadModel` accepts. */
export const QUANTIZE_KINDS = ["int8", "int4"] as const;
export type QuantizeKind = (typeof QUANTIZE_KINDS)[number];

/**
 * 4-bit blockwise quantization in the layout of ONNX Runtime's MatMulNBits (com.microsoft):
 * for W [out, in] (N x K), blocks of `blockSize` along K per output row; unsigned 4-bit values
 * with zero point 8 (symmetric), two per byte (low nibble first), `scales` [N, blocks].
 */
export interface Int4Blockwise {
  /** [N, blocks, blockSize / 2] bytes. */
  packed: Uint8Array;
  /** [N * blocks] scales. */
  scales: Float32Array;
  /** N (out) x K (in). */
  shape: readonly [number, number];
  blockSize: number;
}

/** Quantize W [out, in] to 4 bits per value in blocks along `in` (K padded to whole blocks). */
export function quantizeInt4Blockwise(w: Tensor, blockSize = 32): Int4Blockwise {
  if (w.dtype !== "float32" || w.shape.length !== 2) throw new TypeError(`quantizeInt4Blockwise: expected a 2-D float32 matrix, got ${w.dtype}[${w.shape.join(", ")}]`);
  if (blockSize < 16 || (blockSize & (blockSize - 1)) !== 0) throw new RangeError(`quantizeInt4Blockwise: block size must be a power of two >= 16, got ${blockSize}`);
  const [n, k] = w.shape as [number, number];
  const data = w.data as Float32Array;
  const blocks = Math.ceil(k / blockSize);
  const packed = new Uint8Array(n * blocks * (blockSize / 2));
  const scales = new Float32Array(n * blocks);
  for (let r = 0; r < n; r++) {
    for (let b = 0; b < blocks; b++) {
      let maxAbs = 0;
      for (let i = b * blockSize; i < Math.min(k, (b + 1) * blockSize); i++) maxAbs = Math.max(maxAbs, Math.abs(data[r * k + i]!));
      // Symmetric around zero point 8, using -7..7 so that +max and -max are both exact.
      const s = maxAbs > 0 ? maxAbs / 7 : 1;
      scales[r * blocks + b] = s;
      for (let i = 0; i < blockSize; i++) {
        const col = b * blockSize + i;
        const v = col < k ? Math.max(0, Math.min(15, Math.round(data[r * k + col]! / s) + 8)) : 8;
        const byte = (r * blocks + b) * (blockSize / 2) + (i >> 1);
        packed[byte] = packed[byte]! | (i & 1 ? v << 4 : v);
      }
    }
  }
  return { packed, scales, shape: [n, k], blockSize };
}

/** The float32 [out, in] matrix a 4-bit blockwise quantization stands for. */
export function dequantizeInt4Blockwise({ packed, scales, shape, blockSize }: Int4Blockwise): Tensor<"float32"> {
  const [n, k] = shape;
  const blocks = Math.ceil(k / blockSize);
  const out = new Float32Array(n * k);
  for (let r = 0; r < n; r++) {
    for (let c = 0; c < k; c++) {
      const b = Math.floor(c / blockSize);
      const i = c % blockSize;
      const byte = packed[(r * blocks + b) * (blockSize / 2) + (i >> 1)]!;
      out[r * k + c] = ((i & 1 ? byte >> 4 : byte & 15) - 8) * scales[r * blocks + b]!;
    }
  }
  return { dtype: "float32", shape: [n, k], data: out };
}
