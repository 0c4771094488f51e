// Reads and writes Hugging Face safetensors checkpoints (single files and sharded), zero-copy where possible.
//
// Format: an 8-byte little-endian u64 N, N bytes of UTF-8 JSON header
//   {"__metadata__": {str: str}, "<name>": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}}
// (possibly padded with trailing spaces), then the data section. Offsets are relative to the
// data section, which the tensors must cover exactly: no gaps, overlaps or trailing bytes (as the
// reference Rust library enforces). Every malformed input raises a SafetensorsError that names
// the file, the tensor and the expected vs actual value.
import { dirname, host, join, mkdir, open, readdir, readFile, rename, stat, unlink, type FileHandle } from "../platform/host.js";
import { BYTES_PER_ELEMENT, TYPED_ARRAY, typedArrayView, type DType, type TensorArray } from "../ir/dtype.js";
import { numel, type Tensor } from "../ir/tensor.js";

export { bfloat16BitsToFloat32, float16BitsToFloat32, float32ToBfloat16Bits, float32ToFloat16Bits, toFloat32 } from "./half.js";

/**
 * Any problem with a safetensors file, shard index or tensor to save. The message always starts
 * with the source (file path, or "<buffer>") and, where one is involved, the tensor name.
 *
 * @example
 *   try { parseSafetensors(bytes, "w.safetensors"); }
 *   catch (e) { if (e instanceof SafetensorsError) console.error(e.source, e.tensor, e.message); }
 */
export class SafetensorsError extends Error {
  override readonly name = "SafetensorsError";
  constructor(
    readonly source: string,
    readonly detail: string,
    readonly tensor?: string,
    options?: ErrorOptions,
  ) {
    super(`${source}: ${tensor !== undefined ? `tensor ${JSON.stringify(tensor)}: ` : ""}${detail}`, options);
  }
}

// ---------------------------------------------------------------------------------------------
// dtypes

interface DtypeSpec {
  /** Bits per element. */
  readonly bits: number;
  /** Position in the Rust `Dtype` enum, which is in increasing alignment order (used to sort on save). */
  readonly rank: number;
  /** The IR dtype it loads as zero-copy, if any. */
  readonly ir?: DType;
  /** The IR dtype it is widened to on load (one copy), if it has no exact IR counterpart. */
  readonly widen?: "int32" | "int64";
}

// Every dtype the reference library (safetensors 0.6) knows, in its enum order. Decisions for
// the ones the IR lacks:
//  - I16, U16 are widened to int32 and U32 to int64 on load: exact, one copy. U64 is widened to
//    int64 and values >= 2^63 are rejected (naming the tensor and element). Saving writes the
//    widened dtype (I32/I64), so such tensors do not round-trip their dtype, only their values.
//  - F8_*, F4, F6_*, C64 are parsed and validated (files containing them load), but `get`
//    rejects them with an error naming the tensor and dtype; `getBytes` returns the raw bytes.
const DTYPES: ReadonlyMap<string, DtypeSpec> = new Map<string, DtypeSpec>([
  ["BOOL", { bits: 8, rank: 0, ir: "bool" }],
  ["F4", { bits: 4, rank: 1 }],
  ["F6_E2M3", { bits: 6, rank: 2 }],
  ["F6_E3M2", { bits: 6, rank: 3 }],
  ["U8", { bits: 8, rank: 4, ir: "uint8" }],
  ["I8", { bits: 8, rank: 5, ir: "int8" }],
  ["F8_E5M2", { bits: 8, rank: 6 }],
  ["F8_E4M3", { bits: 8, rank: 7 }],
  ["F8_E8M0", { bits: 8, rank: 8 }],
  ["F8_E4M3FNUZ", { bits: 8, rank: 9 }],
  ["F8_E5M2FNUZ", { bits: 8, rank: 10 }],
  ["I16", { bits: 16, rank: 11, widen: "int32" }],
  ["U16", { bits: 16, rank: 12, widen: "int32" }],
  ["F16", { bits: 16, rank: 13, ir: "float16" }],
  ["BF16", { bits: 16, rank: 14, ir: "bfloat16" }],
  ["I32", { bits: 32, rank: 15, ir: "int32" }],
  ["U32", { bits: 32, rank: 16, widen: "int64" }],
  ["F32", { bits: 32, rank: 17, ir: "float32" }],
  ["C64", { bits: 64, rank: 18 }],
  ["F64", { bits: 64, rank: 19, ir: "float64" }],
  ["I64", { bits: 64, rank: 20, ir: "int64" }],
  ["U64", { bits: 64, rank: 21, widen: "int64" }],
]);

/** The safetensors code each IR dtype is saved as. */
const CODE_OF: Readonly<Record<DType, string>> = {
  bool: "BOOL",
  uint8: "U8",
  int8: "I8",
  float16: "F16",
  bfloat16: "BF16",
  int32: "I32",
  float32: "F32",
  float64: "F64",
  int64: "I64",
};


/** Same limit as the reference implementation (MAX_HEADER_SIZE). */
const MAX_HEADER_BYTES = 100_000_000;
/** The largest single buffer Node allows (4 GiB on Node 20); bigger files are read in pieces. */
const MAX_BUFFER_BYTES = host.maxBufferBytes;
/** One read()/write() call moves at most this much (Node caps a call at 2 GiB - 1). */
const IO_CHUNK = 1 << 30;
const LITTLE_ENDIAN = new Uint8Array(Uint16Array.of(1).buffer)[0] === 1;

// ---------------------------------------------------------------------------------------------
// reading

/** Where one tensor lives in a safetensors file. */
export interface TensorInfo {
  /** safetensors dtype code, e.g. "F32", "BF16", "F8_E4M3". */
  readonly dtype: string;
  readonly shape: readonly number[];
  /** Absolute byte offset in the file (8 + header length + data_offsets[0]). */
  readonly byteOffset: number;
  readonly byteLength: number;
}

/** Named tensors with metadata: one safetensors file or a sharded checkpoint. */
export interface WeightFiles {
  /** The file (or index) path, or "<buffer>". */
  readonly source: string;
  readonly metadata: Record<string, string>;
  /** Tensor names: in data order for one file, in index order for shards. */
  names(): string[];
  has(name: string): boolean;
  get(name: string): Tensor;
  /**
   * Drop the reader's reference to a tensor's data; `get`/`getBytes` of it then throw a
   * SafetensorsError saying so (its name and layout stay). The memory is freed once nothing else
   * views its buffer: at once for a file read with `ReadOptions.separate` (a buffer per tensor),
   * never for a file held in one buffer (every tensor views the same one).
   */
  release(name: string): void;
}

/** A parsed safetensors file. Tensors are decoded lazily by `get`. */
export interface SafetensorsFile extends WeightFiles {
  /** Tensor layout by name, in data order. */
  readonly tensors: ReadonlyMap<string, TensorInfo>;
  /** The whole file, when it is held in one buffer (every `parseSafetensors` result). */
  readonly bytes?: Uint8Array;
  /**
   * The tensor as a typed array: a view into the file's buffer (no copy) when its offset is
   * aligned for the element type, else one copy of that tensor only. Views share memory with the
   * file: writing to them changes what later `get` calls return.
   */
  get(name: string): Tensor;
  /** The tensor's raw little-endian bytes (a view, never a copy), for any dtype including F8. */
  getBytes(name: string): Uint8Array;
}

/** A parsed header: metadata and tensor layout (sorted by offset). */
interface Layout {
  metadata: Record<string, string>;
  tensors: Map<string, TensorInfo>;
}

const brief = (x: unknown): string => {
  const s = x === undefined || typeof x === "number" ? String(x) : JSON.stringify(x);
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
};
const isObject = (x: unknown): x is Record<string, unknown> => typeof x === "object" && x !== null && !Array.isArray(x);
const isIndex = (x: unknown): x is number => typeof x === "number" && Number.isSafeInteger(x) && x >= 0;
const errorText = (e: unknown): string => (e instanceof Error ? e.message : String(e));

/** Sets a key on a plain object safely (a key "__proto__" becomes an ordinary property). */
function setOwn(obj: Record<string, string>, key: string, value: string): void {
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
}

/** The header length N from the first 8 bytes, validated against the file size. */
function headerLength(head: Uint8Array, fileSize: number, source: string): number {
  if (fileSize < 8) throw new SafetensorsError(source, `file is ${fileSize} bytes, shorter than the 8-byte header length field`);
  const n = new DataView(head.buffer, head.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_BYTES)) throw new SafetensorsError(source, `header length ${n} exceeds the limit of ${MAX_HEADER_BYTES} bytes (corrupt length field?)`);
  const len = Number(n);
  if (8 + len > fileSize) throw new SafetensorsError(source, `header length ${len} runs past the end of the file: needs ${8 + len} bytes, file has ${fileSize}`);
  return len;
}

/** Parse and validate the header; `head` holds at least the first 8 + N bytes of the file. */
function parseLayout(head: Uint8Array, fileSize: number, source: string): Layout {
  if (!LITTLE_ENDIAN) throw new SafetensorsError(source, "big-endian hosts are not supported");
  const n = headerLength(head, fileSize, source);
  const dataStart = 8 + n;
  const dataLength = fileSize - dataStart;
  let text: string;
  try {
    // ignoreBOM keeps a leading BOM in the text so that JSON.parse rejects it, as serde_json does.
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(head.subarray(8, dataStart));
  } catch (e) {
    throw new SafetensorsError(source, `header is not valid UTF-8 (${errorText(e)})`, undefined, { cause: e });
  }
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (e) {
    throw new SafetensorsError(source, `header is not valid JSON (${errorText(e)})`, undefined, { cause: e });
  }
  if (!isObject(header)) throw new SafetensorsError(source, `header must be a JSON object, got ${brief(header)}`);

  const metadata: Record<string, string> = {};
  const entries: { name: string; info: TensorInfo; begin: number; end: number }[] = [];
  for (const [name, entry] of Object.entries(header)) {
    if (name === "__metadata__") {
      if (entry === null) continue; // serde reads null as "no metadata"
      if (!isObject(entry)) throw new SafetensorsError(source, `__metadata__ must be an object of strings, got ${brief(entry)}`);
      for (const [k, v] of Object.entries(entry)) {
        if (typeof v !== "string") throw new SafetensorsError(source, `__metadata__[${JSON.stringify(k)}] must be a string, got ${brief(v)}`);
        setOwn(metadata, k, v);
      }
      continue;
    }
    const fail = (detail: string): never => {
      throw new SafetensorsError(source, detail, name);
    };
    if (!isObject(entry)) fail(`entry must be an object {"dtype", "shape", "data_offsets"}, got ${brief(entry)}`);
    const { dtype, shape, data_offsets: offsets } = entry as Record<string, unknown>;
    if (dtype === undefined) fail(`missing "dtype"`);
    if (typeof dtype !== "string") fail(`"dtype" must be a string, got ${brief(dtype)}`);
    const spec = DTYPES.get(dtype as string) ?? fail(`unknown dtype ${brief(dtype)} (known: ${[...DTYPES.keys()].join(", ")})`);
    if (shape === undefined) fail(`missing "shape"`);
    if (!Array.isArray(shape)) fail(`"shape" must be a list of non-negative integers, got ${brief(shape)}`);
    (shape as unknown[]).forEach((d, i) => isIndex(d) || fail(`shape[${i}] is ${brief(d)}, expected a non-negative integer`));
    if (offsets === undefined) fail(`missing "data_offsets"`);
    if (!Array.isArray(offsets) || offsets.length !== 2) fail(`"data_offsets" must be [begin, end], got ${brief(offsets)}`);
    (offsets as unknown[]).forEach((o, i) => isIndex(o) || fail(`data_offsets[${i}] is ${brief(o)}, expected a non-negative integer`));
    const [begin, end] = offsets as [number, number];
    const dims = shape as number[];
    if (end < begin) fail(`data_offsets [${begin}, ${end}]: end ${end} is before begin ${begin}`);
    if (end > dataLength) fail(`data_offsets [${begin}, ${end}] run past the data section: end ${end} > ${dataLength} bytes`);
    // Exact (BigInt) size, so absurd shapes cannot overflow into a false match.
    const bits = dims.reduce((p, d) => p * BigInt(d), 1n) * BigInt(spec.bits);
    const shapeText = `shape [${dims.join(", ")}] of ${dtype as string}`;
    if (bits % 8n !== 0n) fail(`${shapeText} is ${bits} bits, not a whole number of bytes`);
    if (bits / 8n !== BigInt(end - begin)) fail(`${shapeText} needs ${bits / 8n} bytes, but data_offsets [${begin}, ${end}] span ${end - begin}`);
    entries.push({ name, begin, end, info: { dtype: dtype as string, shape: dims, byteOffset: dataStart + begin, byteLength: end - begin } });
  }

  // Like the reference implementation: sorted by offsets, the tensors must tile the data section.
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let cursor = 0;
  let previous: string | undefined;
  for (const { name, begin, end } of entries) {
    const after = previous === undefined ? "the start of the data section" : `the end of tensor ${JSON.stringify(previous)}`;
    if (begin < cursor) throw new SafetensorsError(source, `data_offsets [${begin}, ${end}] overlap: expected to start at ${cursor} (${after})`, name);
    if (begin > cursor) throw new SafetensorsError(source, `gap in the data section: data_offsets [${begin}, ${end}] start at ${begin}, expected ${cursor} (${after})`, name);
    cursor = end;
    previous = name;
  }
  if (cursor !== dataLength) {
    throw new SafetensorsError(source, `data section is ${dataLength} bytes but the tensors cover ${cursor}: ${dataLength - cursor} trailing bytes not covered by any tensor`);
  }
  return { metadata, tensors: new Map(entries.map((e) => [e.name, e.info])) };
}

/** Decode one tensor from its raw bytes (`raw` views the file buffer). */
function decode(source: string, name: string, info: TensorInfo, raw: Uint8Array): Tensor {
  const spec = DTYPES.get(info.dtype)!;
  const shape = [...info.shape];
  const n = numel(shape);
  if (spec.ir) {
    const size = BYTES_PER_ELEMENT[spec.ir];
    if (raw.byteOffset % size === 0) return { dtype: spec.ir, shape, data: typedArrayView(spec.ir, raw.buffer, raw.byteOffset, n) };
    const copy = new Uint8Array(raw.byteLength); // misaligned: copy this tensor only
    copy.set(raw);
    return { dtype: spec.ir, shape, data: typedArrayView(spec.ir, copy.buffer, 0, n) };
  }
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  switch (info.dtype) {
    case "I16":
      return { dtype: "int32", shape, data: Int32Array.from({ length: n }, (_, i) => view.getInt16(2 * i, true)) };
    case "U16":
      return { dtype: "int32", shape, data: Int32Array.from({ length: n }, (_, i) => view.getUint16(2 * i, true)) };
    case "U32":
      return { dtype: "int64", shape, data: BigInt64Array.from({ length: n }, (_, i) => BigInt(view.getUint32(4 * i, true))) };
    case "U64": {
      const out = new BigInt64Array(n);
      for (let i = 0; i < n; i++) {
        const v = view.getBigUint64(8 * i, true);
        if (v >= 1n << 63n) throw new SafetensorsError(source, `U64 element ${i} is ${v}, which does not fit int64 (U64 loads as int64)`, name);
        out[i] = v;
      }
      return { dtype: "int64", shape, data: out };
    }
  }
  throw new SafetensorsError(
    source,
    `dtype ${info.dtype} has no equivalent here (loadable: ${[...DTYPES].filter(([, s]) => s.ir || s.widen).map(([c]) => c).join(", ")}); use getBytes(${JSON.stringify(name)}) for its raw bytes`,
    name,
  );
}

function makeFile(source: string, layout: Layout, raw: (name: string, info: TensorInfo) => Uint8Array, bytes?: Uint8Array, forget?: (name: string) => void): SafetensorsFile {
  const { metadata, tensors } = layout;
  const released = new Set<string>();
  const info = (name: string): TensorInfo => {
    const i = tensors.get(name) ?? missing(source, name, tensors.size);
    if (released.has(name)) throw new SafetensorsError(source, "its data was released (release()); read the file again to get it", name);
    return i;
  };
  return {
    source,
    metadata,
    tensors,
    ...(bytes ? { bytes } : {}),
    names: () => [...tensors.keys()],
    has: (name) => tensors.has(name),
    get: (name) => decode(source, name, info(name), raw(name, info(name))),
    getBytes: (name) => raw(name, info(name)),
    release: (name) => {
      info(name);
      released.add(name);
      forget?.(name);
    },
  };
}

function missing(source: string, name: string, count: number): never {
  throw new SafetensorsError(source, `no such tensor (the file has ${count} tensor${count === 1 ? "" : "s"})`, name);
}

/**
 * Parse a whole safetensors file held in memory. Validates the header and layout up front;
 * tensors are decoded on `get` as views into `bytes` (copied only when misaligned).
 *
 * @example
 *   const f = parseSafetensors(new Uint8Array(await readFile("model.safetensors")), "model.safetensors");
 *   const w = f.get("bert.embeddings.word_embeddings.weight"); // { dtype: "float32", shape: [30522, 768], data }
 */
export function parseSafetensors(bytes: Uint8Array, source = "<buffer>"): SafetensorsFile {
  // A plain Uint8Array view (a Buffer's subarray/slice semantics differ), same memory.
  const file = Object.getPrototypeOf(bytes) === Uint8Array.prototype ? bytes : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const layout = parseLayout(file, file.byteLength, source);
  return makeFile(source, layout, (_, i) => file.subarray(i.byteOffset, i.byteOffset + i.byteLength), file);
}

/** Options for {@link readSafetensors}. */
export interface ReadOptions {
  /**
   * Files larger than this are read into several buffers of about this size (a tensor is never
   * split; one larger than the limit gets a buffer of its own). Default: the largest buffer Node
   * allows (4 GiB on Node 20), so bigger files (e.g. 10 GB shards) still load.
   */
  maxBufferBytes?: number;
  /**
   * Give every tensor a buffer of its own (one read each), so that `release(name)` frees its
   * memory (a quantized model drops the float32 weights it quantized). Default false: one buffer.
   */
  separate?: boolean;
}

/** Open a safetensors file to read; a failure is a SafetensorsError naming it. */
async function openForReading(path: string): Promise<FileHandle> {
  try {
    return await open(path, "r");
  } catch (e) {
    throw new SafetensorsError(path, `cannot open (${errorText(e)})`, undefined, { cause: e });
  }
}

/**
 * Read a safetensors file. The 8-byte length and the header are read and validated first (header
 * at most 100 MB, tensors tiling the data section exactly, which pins the file size); only then
 * is the data read, in one pass, with no copy afterwards (tensors are views into the buffer(s)).
 * So a corrupt or hostile file costs at most its header in memory, never its size.
 *
 * @example
 *   const f = await readSafetensors("adapter_model.safetensors");
 *   for (const name of f.names()) console.log(name, f.tensors.get(name)!.dtype, f.get(name).shape);
 */
export async function readSafetensors(path: string, opts: ReadOptions = {}): Promise<SafetensorsFile> {
  const limit = Math.min(opts.maxBufferBytes ?? MAX_BUFFER_BYTES, MAX_BUFFER_BYTES);
  const fh = await openForReading(path);
  try {
    const size = (await fh.stat()).size;
    const { head, layout } = await readHead(fh, size, path);
    if (size <= limit && !opts.separate) {
      const bytes = plainBytes(size);
      bytes.set(head);
      await readFully(fh, bytes.subarray(head.byteLength), head.byteLength, path);
      return makeFile(path, layout, (_, i) => bytes.subarray(i.byteOffset, i.byteOffset + i.byteLength), bytes);
    }
    // Too big for one buffer (or `separate`): the data in tensor-aligned pieces.
    const views = new Map<string, Uint8Array>();
    let group: [string, TensorInfo][] = [];
    const flush = async () => {
      if (!group.length) return;
      const start = group[0]![1].byteOffset;
      const last = group[group.length - 1]![1];
      const pad = start % 8; // keep each tensor's file alignment inside the buffer
      const buf = plainBytes(pad + last.byteOffset + last.byteLength - start);
      buf.fill(0, 0, pad);
      await readFully(fh, buf.subarray(pad), start, path);
      for (const [name, info] of group) views.set(name, buf.subarray(pad + info.byteOffset - start, pad + info.byteOffset - start + info.byteLength));
      group = [];
    };
    for (const [name, info] of layout.tensors) {
      if (info.byteLength > MAX_BUFFER_BYTES - 8) throw new SafetensorsError(path, `${info.byteLength} bytes is larger than the biggest buffer Node allows (${MAX_BUFFER_BYTES})`, name);
      if (group.length && (opts.separate || info.byteOffset + info.byteLength - group[0]![1].byteOffset > limit)) await flush();
      group.push([name, info]);
    }
    await flush();
    return makeFile(path, layout, (name) => views.get(name)!, undefined, (name) => views.delete(name));
  } finally {
    await fh.close();
  }
}

/**
 * Only the header of a safetensors file: metadata and each tensor's dtype, shape and place,
 * validated exactly as {@link readSafetensors} does, reading at most 8 bytes + the header. Lets a
 * caller check names and shapes (e.g. an adapter against its model) before reading any data.
 *
 * @example
 *   const { tensors } = await readSafetensorsHeader("adapter_model.safetensors");
 *   for (const [name, t] of tensors) console.log(name, t.dtype, t.shape);
 */
export async function readSafetensorsHeader(path: string): Promise<{ metadata: Record<string, string>; tensors: ReadonlyMap<string, TensorInfo> }> {
  const fh = await openForReading(path);
  try {
    return (await readHead(fh, (await fh.stat()).size, path)).layout;
  } finally {
    await fh.close();
  }
}

/** The length field and header (nothing more), parsed and validated against the file size. */
async function readHead(fh: FileHandle, size: number, path: string): Promise<{ head: Uint8Array; layout: Layout }> {
  const prefix = new Uint8Array(8);
  if (size >= 8) await readFully(fh, prefix, 0, path);
  const head = new Uint8Array(8 + headerLength(prefix, size, path));
  await readFully(fh, head, 0, path);
  return { head, layout: parseLayout(head, size, path) };
}

/** An uninitialized, unpooled buffer as a plain Uint8Array at byte offset 0. */
function plainBytes(size: number): Uint8Array {
  return host.allocBytes(size);
}

/** Byte-wise order of two keys (what Buffer.compare does). */
function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i]! < b[i]! ? -1 : 1;
  return a.length - b.length;
}

async function readFully(fh: FileHandle, target: Uint8Array, position: number, path: string): Promise<void> {
  let done = 0;
  while (done < target.byteLength) {
    const { bytesRead } = await fh.read(target, done, Math.min(target.byteLength - done, IO_CHUNK), position + done);
    if (bytesRead === 0) throw new SafetensorsError(path, `file ended at byte ${position + done}, expected ${position + target.byteLength} (modified while reading?)`);
    done += bytesRead;
  }
}

// ---------------------------------------------------------------------------------------------
// writing

/** Tensors to save, by name. */
export type NamedTensors = Readonly<Record<string, Tensor>> | ReadonlyMap<string, Tensor>;

interface Plan {
  /** The 8-byte length plus the padded header. */
  head: Uint8Array;
  /** Tensor bytes in file order. */
  chunks: Uint8Array[];
  dataBytes: number;
}

const utf8 = new TextEncoder();

/** Validate and lay out tensors the way the reference library does. */
function plan(tensors: NamedTensors, metadata: Readonly<Record<string, string>> | undefined, source: string): Plan {
  if (!LITTLE_ENDIAN) throw new SafetensorsError(source, "big-endian hosts are not supported");
  const list: { name: string; key: Uint8Array; rank: number; code: string; shape: number[]; bytes: Uint8Array }[] = [];
  const pairs = tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors);
  for (const [name, t] of pairs) {
    const fail = (detail: string): never => {
      throw new SafetensorsError(source, detail, name);
    };
    if (typeof name !== "string") fail("tensor names must be strings");
    if (name === "__metadata__") fail(`"__metadata__" is reserved for the metadata and cannot name a tensor`);
    if (!isObject(t)) fail(`expected a tensor {dtype, shape, data}, got ${brief(t)}`);
    const { dtype: dt, shape: sh, data } = t as { dtype: unknown; shape: unknown; data: unknown };
    if (typeof dt !== "string" || !Object.hasOwn(CODE_OF, dt)) fail(`cannot save dtype ${brief(dt)} (supported: ${Object.keys(CODE_OF).join(", ")})`);
    const dtype = dt as DType;
    const code = CODE_OF[dtype];
    if (!Array.isArray(sh)) fail(`shape must be a list of non-negative integers, got ${brief(sh)}`);
    const shape = sh as unknown[];
    shape.forEach((d, i) => isIndex(d) || fail(`shape[${i}] is ${brief(d)}, expected a non-negative integer`));
    const ctor = TYPED_ARRAY[dtype];
    if (!(data instanceof ctor)) fail(`data for ${dtype} must be a ${ctor.name}, got ${(data as object | null | undefined)?.constructor?.name ?? brief(data)}`);
    const n = numel(shape as number[]);
    if ((data as TensorArray).length !== n) {
      fail(`data has ${(data as TensorArray).length} elements (${(data as TensorArray).byteLength} bytes), shape [${shape.join(", ")}] of ${dtype} needs ${n} (${n * BYTES_PER_ELEMENT[dtype]} bytes)`);
    }
    const arr = data as TensorArray;
    list.push({ name, key: utf8.encode(name), rank: DTYPES.get(code)!.rank, code, shape: [...(shape as number[])], bytes: new Uint8Array(arr.buffer, arr.byteOffset, arr.byteLength) });
  }
  // Rust `prepare`: descending dtype (enum order = alignment), then name (byte-wise, i.e. UTF-8).
  list.sort((a, b) => b.rank - a.rank || compareBytes(a.key, b.key));

  // Built by hand, not with JSON.stringify(object): JS objects would move integer-like keys first.
  const parts: string[] = [];
  if (metadata !== undefined) {
    if (!isObject(metadata)) throw new SafetensorsError(source, `metadata must be an object of strings, got ${brief(metadata)}`);
    const fields = Object.entries(metadata).map(([k, v]) => {
      if (typeof v !== "string") throw new SafetensorsError(source, `metadata[${JSON.stringify(k)}] must be a string, got ${brief(v)}`);
      return `${JSON.stringify(k)}:${JSON.stringify(v)}`;
    });
    parts.push(`"__metadata__":{${fields.join(",")}}`);
  }
  let offset = 0;
  for (const t of list) {
    parts.push(`${JSON.stringify(t.name)}:{"dtype":"${t.code}","shape":[${t.shape.join(",")}],"data_offsets":[${offset},${offset + t.bytes.byteLength}]}`);
    offset += t.bytes.byteLength;
  }
  const json = utf8.encode(`{${parts.join(",")}}`);
  const n = Math.ceil(json.byteLength / 8) * 8; // pad with spaces so the data starts 8-byte aligned
  if (n > MAX_HEADER_BYTES) throw new SafetensorsError(source, `header would be ${n} bytes, over the ${MAX_HEADER_BYTES}-byte limit readers enforce`);
  const head = new Uint8Array(8 + n).fill(0x20, 8 + json.byteLength);
  new DataView(head.buffer).setBigUint64(0, BigInt(n), true);
  head.set(json, 8);
  return { head, chunks: list.map((t) => t.bytes), dataBytes: offset };
}

/**
 * Serialize tensors into one safetensors buffer, laid out like the reference library:
 * `__metadata__` first (only when `metadata` is given), then tensors by descending dtype
 * alignment (I64, F64, F32, I32, BF16, F16, I8, U8, BOOL) and name, header padded with spaces to
 * a multiple of 8 so every tensor is aligned. Metadata keys keep their insertion order (the Rust
 * library uses a HashMap, so its order is arbitrary anyway).
 *
 * @example
 *   const bytes = serializeSafetensors({ w: float32([2], [1, 2]) }, { format: "pt" });
 */
export function serializeSafetensors(tensors: NamedTensors, metadata?: Readonly<Record<string, string>>): Uint8Array {
  const p = plan(tensors, metadata, "<serialize>");
  const total = p.head.byteLength + p.dataBytes;
  if (total > MAX_BUFFER_BYTES) throw new SafetensorsError("<serialize>", `${total} bytes do not fit in one buffer (max ${MAX_BUFFER_BYTES}); use writeSafetensors, which streams`);
  const out = new Uint8Array(total);
  out.set(p.head);
  let at = p.head.byteLength;
  for (const c of p.chunks) {
    out.set(c, at);
    at += c.byteLength;
  }
  return out;
}

async function writeAll(fh: FileHandle, bytes: Uint8Array): Promise<void> {
  let done = 0;
  while (done < bytes.byteLength) {
    const { bytesWritten } = await fh.write(bytes, done, Math.min(bytes.byteLength - done, IO_CHUNK));
    done += bytesWritten;
  }
}

/**
 * Write a file atomically: into `<path>.tmp-<pid>-<random>` in the same directory, fsync, then
 * rename over `path`. On any failure the temp file is removed and an existing `path` is left
 * untouched. `content` may be a function that writes through the open handle (for streaming).
 *
 * @example
 *   await writeFileAtomic("out/config.json", JSON.stringify(config, null, 2));
 */
export async function writeFileAtomic(path: string, content: Uint8Array | string | ((fh: FileHandle) => Promise<void>)): Promise<void> {
  const dir = dirname(path);
  await mkdir(dir, { recursive: true });
  const tmp = `${path}.tmp-${host.pid}-${host.randomHex(6)}`;
  let fh: FileHandle | undefined;
  try {
    fh = await open(tmp, "wx");
    if (typeof content === "function") await content(fh);
    else await writeAll(fh, typeof content === "string" ? utf8.encode(content) : content);
    await fh.sync();
    await fh.close();
    fh = undefined;
    await rename(tmp, path);
  } catch (e) {
    await fh?.close().catch(() => {});
    await unlink(tmp).catch(() => {});
    throw e;
  }
  // Make the rename itself durable (best effort: not every platform can fsync a directory).
  try {
    const d = await open(dir, "r");
    await d.sync().finally(() => d.close());
  } catch {
    /* ignore */
  }
}

/**
 * Save tensors as a safetensors file, atomically (see {@link writeFileAtomic}) and streaming
 * (no second in-memory copy of the tensors). Everything is validated before the file is opened.
 *
 * @example
 *   await writeSafetensors("adapter_model.safetensors", { "lora_A.weight": a, "lora_B.weight": b }, { format: "pt" });
 */
export async function writeSafetensors(path: string, tensors: NamedTensors, metadata?: Readonly<Record<string, string>>): Promise<void> {
  const p = plan(tensors, metadata, path);
  try {
    await writeFileAtomic(path, async (fh) => {
      await writeAll(fh, p.head);
      for (const c of p.chunks) await writeAll(fh, c);
    });
  } catch (e) {
    if (e instanceof SafetensorsError) throw e;
    throw new SafetensorsError(path, `could not write (${errorText(e)})`, undefined, { cause: e });
  }
}

// ---------------------------------------------------------------------------------------------
// sharded checkpoints

const INDEX = "model.safetensors.index.json";

/** A sharded checkpoint read through its index. */
export interface ShardedSafetensors extends WeightFiles {
  /** The shards by file name, each read once. */
  readonly shards: ReadonlyMap<string, SafetensorsFile>;
  /** The shard file of each tensor (the index's weight_map). */
  readonly weightMap: ReadonlyMap<string, string>;
}

/**
 * Read a sharded checkpoint through `model.safetensors.index.json`
 * (`{"metadata": {"total_size": N}, "weight_map": {tensor: file}}`). Each shard is read once.
 * The index is authoritative: tensors a shard holds but the index does not list are not exposed.
 *
 * @example
 *   const w = await readShardedSafetensors("./llama-7b");
 *   const q = w.get("model.layers.0.self_attn.q_proj.weight");
 */
export async function readShardedSafetensors(dir: string, indexName = INDEX, opts: ReadOptions = {}): Promise<ShardedSafetensors> {
  const indexPath = join(dir, indexName);
  let text: string;
  try {
    // Checked before reading: a real index is well under a megabyte even for the largest models.
    const size = (await stat(indexPath)).size;
    if (size > MAX_HEADER_BYTES) throw new SafetensorsError(indexPath, `shard index is ${size} bytes, over the limit of ${MAX_HEADER_BYTES} (corrupt or not an index?)`);
    text = await readFile(indexPath, "utf8");
  } catch (e) {
    if (e instanceof SafetensorsError) throw e;
    throw new SafetensorsError(indexPath, `cannot read the shard index (${errorText(e)})`, undefined, { cause: e });
  }
  let index: unknown;
  try {
    index = JSON.parse(text);
  } catch (e) {
    throw new SafetensorsError(indexPath, `shard index is not valid JSON (${errorText(e)})`, undefined, { cause: e });
  }
  if (!isObject(index)) throw new SafetensorsError(indexPath, `shard index must be a JSON object, got ${brief(index)}`);
  if (!isObject(index.weight_map)) throw new SafetensorsError(indexPath, `shard index needs a "weight_map" object {tensor: file}, got ${brief(index.weight_map)}`);
  if (index.metadata !== undefined && index.metadata !== null && !isObject(index.metadata)) {
    throw new SafetensorsError(indexPath, `"metadata" must be an object, got ${brief(index.metadata)}`);
  }
  const metadata: Record<string, string> = {};
  for (const [k, v] of Object.entries((index.metadata as Record<string, unknown> | null | undefined) ?? {})) setOwn(metadata, k, typeof v === "string" ? v : JSON.stringify(v));

  const weightMap = new Map<string, string>();
  for (const [name, file] of Object.entries(index.weight_map)) {
    if (typeof file !== "string" || !file || file === "." || file === ".." || /[/\\]/.test(file)) {
      throw new SafetensorsError(indexPath, `weight_map entry must be a file name in ${dir}, got ${brief(file)}`, name);
    }
    weightMap.set(name, file);
  }
  const shards = new Map<string, SafetensorsFile>();
  for (const [name, file] of weightMap) {
    if (shards.has(file)) continue;
    const path = join(dir, file);
    try {
      await stat(path);
    } catch (e) {
      throw new SafetensorsError(indexPath, `weight_map points to ${JSON.stringify(file)}, which cannot be read (${errorText(e)})`, name, { cause: e });
    }
    shards.set(file, await readSafetensors(path, opts));
  }
  // Each listed tensor must be in its shard, and in no other shard.
  const holder = new Map<string, string>();
  for (const [file, shard] of shards) {
    for (const name of shard.names()) {
      const other = holder.get(name);
      if (other !== undefined && weightMap.has(name)) throw new SafetensorsError(indexPath, `is stored in two shards, ${other} and ${file} (the index maps it to ${weightMap.get(name)})`, name);
      holder.set(name, file);
    }
  }
  for (const [name, file] of weightMap) {
    if (!shards.get(file)!.has(name)) throw new SafetensorsError(indexPath, `weight_map puts it in ${file}, but that shard has no such tensor`, name);
  }
  const names = [...weightMap.keys()];
  return {
    source: indexPath,
    metadata,
    shards,
    weightMap,
    names: () => [...names],
    has: (name) => weightMap.has(name),
    get: (name) => {
      const file = weightMap.get(name) ?? missing(indexPath, name, weightMap.size);
      return shards.get(file)!.get(name);
    },
    release: (name) => {
      const file = weightMap.get(name) ?? missing(indexPath, name, weightMap.size);
      shards.get(file)!.release(name);
    },
  };
}

/** Options for {@link writeShardedSafetensors}. */
export interface ShardOptions {
  /** Most tensor bytes per shard (headers not counted, as in huggingface_hub); a larger tensor gets a shard of its own. */
  maxShardBytes: number;
  /** File name prefix: `<prefix>-00001-of-00003.safetensors` and `<prefix>.safetensors.index.json`. Default "model". */
  prefix?: string;
  /** Metadata of every shard. Default `{ format: "pt" }`, as transformers writes. */
  metadata?: Readonly<Record<string, string>>;
}

/**
 * Write tensors as shards plus an index, like `save_pretrained` with `max_shard_size`: tensors
 * are packed greedily in the given order, each shard file is written atomically, the index
 * (keys sorted, 2-space indent) last. Then stale `<prefix>-NNNNN-of-NNNNN.safetensors` files
 * and a stale `<prefix>.safetensors` from an earlier save are removed, so they cannot shadow or
 * mix with the new shards. Returns the shard file names. Always writes an index, even for one shard.
 *
 * @example
 *   await writeShardedSafetensors("out", weights, { maxShardBytes: 2 ** 30 });
 *   // out/model-00001-of-00003.safetensors, ..., out/model.safetensors.index.json
 */
export async function writeShardedSafetensors(dir: string, tensors: NamedTensors, opts: ShardOptions): Promise<string[]> {
  const prefix = opts.prefix ?? "model";
  const indexName = `${prefix}.safetensors.index.json`;
  const source = join(dir, indexName);
  if (!(typeof opts.maxShardBytes === "number" && opts.maxShardBytes > 0)) throw new SafetensorsError(source, `maxShardBytes must be a positive number, got ${brief(opts.maxShardBytes)}`);
  if (!prefix || /[/\\]/.test(prefix)) throw new SafetensorsError(source, `prefix must be a plain file name prefix, got ${brief(prefix)}`);
  const pairs: [string, Tensor][] = tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors);

  // huggingface_hub's split_state_dict_into_shards: greedy, oversized tensors alone.
  const shards: Map<string, Tensor>[] = [];
  let current = new Map<string, Tensor>();
  let size = 0;
  let total = 0;
  for (const [name, t] of pairs) {
    const bytes = (t?.data as TensorArray | undefined)?.byteLength ?? 0;
    total += bytes;
    if (bytes > opts.maxShardBytes) {
      shards.push(new Map([[name, t]]));
      continue;
    }
    if (size + bytes > opts.maxShardBytes && current.size) {
      shards.push(current);
      current = new Map();
      size = 0;
    }
    current.set(name, t);
    size += bytes;
  }
  if (current.size || !shards.length) shards.push(current);
  if (shards.length > 99999) throw new SafetensorsError(source, `${shards.length} shards exceed the 5-digit shard numbering; raise maxShardBytes`);

  const pad = (n: number) => String(n).padStart(5, "0");
  const files = shards.map((_, i) => `${prefix}-${pad(i + 1)}-of-${pad(shards.length)}.safetensors`);
  const meta = opts.metadata ?? { format: "pt" };
  const plans = shards.map((s, i) => plan(s, meta, join(dir, files[i]!))); // validate everything before writing anything
  for (let i = 0; i < plans.length; i++) {
    const path = join(dir, files[i]!);
    const p = plans[i]!;
    try {
      await writeFileAtomic(path, async (fh) => {
        await writeAll(fh, p.head);
        for (const c of p.chunks) await writeAll(fh, c);
      });
    } catch (e) {
      throw new SafetensorsError(path, `could not write (${errorText(e)})`, undefined, { cause: e });
    }
  }
  const weightMap: [string, string][] = [];
  shards.forEach((s, i) => s.forEach((_, name) => weightMap.push([name, files[i]!])));
  weightMap.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)); // Python's sort_keys: code point order
  const index =
    `{\n  "metadata": {\n    "total_size": ${total}\n  },\n  "weight_map": {\n` +
    weightMap.map(([name, file]) => `    ${JSON.stringify(name)}: ${JSON.stringify(file)}`).join(",\n") +
    `\n  }\n}\n`;
  try {
    await writeFileAtomic(source, index);
  } catch (e) {
    throw new SafetensorsError(source, `could not write (${errorText(e)})`, undefined, { cause: e });
  }

  const keep = new Set(files);
  const escaped = prefix.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const stale = new RegExp(`^${escaped}(-\\d{5}-of-\\d{5})?\\.safetensors$`);
  for (const f of await readdir(dir)) if (stale.test(f) && !keep.has(f)) await unlink(join(dir, f)).catch(() => {});
  return files;
}

/**
 * The weights of a checkpoint directory: `model.safetensors` if present (as transformers
 * prefers), else the shards listed in `model.safetensors.index.json`.
 *
 * @example
 *   const weights = await loadSafetensorsWeights("./bert-tiny");
 *   for (const name of weights.names()) use(name, weights.get(name));
 */
export async function loadSafetensorsWeights(dir: string, opts: ReadOptions = {}): Promise<WeightFiles> {
  const isFile = (p: string) => stat(p).then((s) => s.isFile(), () => false);
  if (await isFile(join(dir, "model.safetensors"))) return readSafetensors(join(dir, "model.safetensors"), opts);
  if (await isFile(join(dir, INDEX))) return readShardedSafetensors(dir, INDEX, opts);
  throw new SafetensorsError(dir, `no model.safetensors or ${INDEX} found (only safetensors checkpoints are supported)`);
}
