// safetensors read/write (the Hugging Face weight format): an 8-byte little-endian header
// length, a JSON header {name: {dtype, shape, data_offsets}, "__metadata__": {...}}, then the
// tensors' bytes, contiguous. Reading returns views into the file's buffer (no per-tensor copy
// when aligned); every malformed file gives a SafetensorsError that names the file and tensor.
import { randomBytes } from "node:crypto";
import { mkdir, open, readFile, rename, unlink } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { BYTES_PER_ELEMENT, typedArrayView, type DType } from "../ir/dtype.js";
import { numel, type Tensor } from "../ir/tensor.js";

export class SafetensorsError extends Error {}

/** safetensors dtype codes and the IR dtype they load as. */
const CODES: Readonly<Record<string, DType>> = {
  F32: "float32",
  F64: "float64",
  F16: "float16",
  BF16: "bfloat16",
  I64: "int64",
  I32: "int32",
  I8: "int8",
  U8: "uint8",
  BOOL: "bool",
};
// I16, U16, U32, U64 and the float8 types have no IR dtype; HF text-model checkpoints do not
// use them, so they are rejected with a clear error rather than silently widened.
const CODE_OF: Readonly<Record<DType, string>> = Object.fromEntries(Object.entries(CODES).map(([k, v]) => [v, k])) as Record<DType, string>;

export interface TensorInfo {
  /** safetensors dtype code, e.g. "F32". */
  dtype: string;
  shape: number[];
  /** Absolute byte offset in the file and byte length. */
  byteOffset: number;
  byteLength: number;
}

export interface SafetensorsFile {
  readonly source: string;
  readonly metadata: Record<string, string>;
  readonly tensors: ReadonlyMap<string, TensorInfo>;
  names(): string[];
  get(name: string): Tensor;
}

const MAX_HEADER = 100 * 1024 * 1024;

/**
 * Parse safetensors bytes. Tensors are returned as views into `bytes` (copied only when their
 * offset is not aligned for their element type).
 *
 * @example
 *   const f = parseSafetensors(await readFile("model.safetensors"), "model.safetensors");
 *   const w = f.get("bert.embeddings.word_embeddings.weight");
 */
export function parseSafetensors(bytes: Uint8Array, source = "<buffer>"): SafetensorsFile {
  const fail = (msg: string): never => {
    throw new SafetensorsError(`${source}: ${msg}`);
  };
  if (bytes.byteLength < 8) fail(`file is ${bytes.byteLength} bytes, shorter than the 8-byte header length`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLen64 = view.getBigUint64(0, true);
  if (headerLen64 > BigInt(MAX_HEADER)) fail(`header length ${headerLen64} exceeds the 100 MB limit`);
  const headerLen = Number(headerLen64);
  if (8 + headerLen > bytes.byteLength) fail(`header length ${headerLen} runs past the end of the file (${bytes.byteLength} bytes)`);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(8, 8 + headerLen)));
  } catch (e) {
    fail(`header is not valid UTF-8 JSON (${(e as Error).message})`);
  }
  if (typeof header !== "object" || header === null || Array.isArray(header)) fail("header is not a JSON object");
  const dataStart = 8 + headerLen;
  const dataLen = bytes.byteLength - dataStart;
  const metadata: Record<string, string> = {};
  const tensors = new Map<string, TensorInfo>();
  const ranges: [number, number, string][] = [];
  for (const [name, entry] of Object.entries(header as Record<string, unknown>)) {
    if (name === "__metadata__") {
      if (typeof entry !== "object" || entry === null || Array.isArray(entry)) fail("__metadata__ must be an object of strings");
      for (const [k, v] of Object.entries(entry as Record<string, unknown>)) {
        if (typeof v !== "string") fail(`__metadata__["${k}"] must be a string, got ${JSON.stringify(v)}`);
        metadata[k] = v as string;
      }
      continue;
    }
    const where = `tensor "${name}"`;
    if (typeof entry !== "object" || entry === null) fail(`${where}: entry must be an object`);
    const { dtype, shape, data_offsets: offsets } = entry as Record<string, unknown>;
    if (typeof dtype !== "string") fail(`${where}: missing dtype`);
    if (!(dtype as string in CODES)) fail(`${where}: unsupported dtype ${JSON.stringify(dtype)} (supported: ${Object.keys(CODES).join(", ")})`);
    if (!Array.isArray(shape) || shape.some((d) => !Number.isSafeInteger(d) || d < 0)) fail(`${where}: shape must be a list of non-negative integers, got ${JSON.stringify(shape)}`);
    if (!Array.isArray(offsets) || offsets.length !== 2 || offsets.some((o) => !Number.isSafeInteger(o) || o < 0)) {
      fail(`${where}: data_offsets must be [begin, end] non-negative integers, got ${JSON.stringify(offsets)}`);
    }
    const [begin, end] = offsets as [number, number];
    if (end < begin) fail(`${where}: data_offsets end ${end} < begin ${begin}`);
    if (end > dataLen) fail(`${where}: data_offsets [${begin}, ${end}] run past the data section (${dataLen} bytes)`);
    const expected = numel(shape as number[]) * BYTES_PER_ELEMENT[CODES[dtype as string]!];
    if (end - begin !== expected) fail(`${where}: ${end - begin} bytes for shape ${JSON.stringify(shape)} of ${dtype}, expected ${expected}`);
    tensors.set(name, { dtype: dtype as string, shape: shape as number[], byteOffset: dataStart + begin, byteLength: end - begin });
    ranges.push([begin, end, name]);
  }
  // Like the reference implementation: the data must be covered exactly, without gaps or overlaps.
  ranges.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let cursor = 0;
  for (const [begin, end, name] of ranges) {
    if (begin < cursor) fail(`tensor "${name}": data_offsets [${begin}, ${end}] overlap the previous tensor (ends at ${cursor})`);
    if (begin > cursor) fail(`tensor "${name}": gap in the data section before offset ${begin} (previous tensor ends at ${cursor})`);
    cursor = end;
  }
  if (cursor !== dataLen) fail(`data section has ${dataLen - cursor} trailing bytes not covered by any tensor`);

  return {
    source,
    metadata,
    tensors,
    names: () => [...tensors.keys()],
    get(name: string): Tensor {
      const info = tensors.get(name);
      if (!info) throw new SafetensorsError(`${source}: no tensor named "${name}"`);
      const dtype = CODES[info.dtype]!;
      const n = numel(info.shape);
      const abs = bytes.byteOffset + info.byteOffset;
      if (abs % BYTES_PER_ELEMENT[dtype] === 0) return { dtype, shape: info.shape, data: typedArrayView(dtype, bytes.buffer, abs, n) };
      const copy = bytes.slice(info.byteOffset, info.byteOffset + info.byteLength);
      return { dtype, shape: info.shape, data: typedArrayView(dtype, copy.buffer, 0, n) };
    },
  };
}

/** Read a safetensors file (one read, tensors are views into it). */
export async function readSafetensors(path: string): Promise<SafetensorsFile> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (e) {
    throw new SafetensorsError(`${path}: ${(e as Error).message}`);
  }
  return parseSafetensors(bytes, path);
}

function entries(tensors: Readonly<Record<string, Tensor>> | ReadonlyMap<string, Tensor>): [string, Tensor][] {
  return tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors);
}

/**
 * Serialize tensors. Tensors are ordered by dtype size (largest first) then name, as the
 * reference implementation does, so every tensor stays aligned; the header is padded with
 * spaces to a multiple of 8 bytes.
 */
export function serializeSafetensors(tensors: Readonly<Record<string, Tensor>> | ReadonlyMap<string, Tensor>, metadata?: Readonly<Record<string, string>>): Uint8Array {
  const list = entries(tensors).sort(([an, a], [bn, b]) => BYTES_PER_ELEMENT[b.dtype] - BYTES_PER_ELEMENT[a.dtype] || (an < bn ? -1 : an > bn ? 1 : 0));
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length) header.__metadata__ = metadata;
  let offset = 0;
  for (const [name, t] of list) {
    if (name === "__metadata__") throw new SafetensorsError(`"__metadata__" cannot be a tensor name`);
    const code = CODE_OF[t.dtype];
    const length = numel(t.shape) * BYTES_PER_ELEMENT[t.dtype];
    if (t.data.byteLength !== length) throw new SafetensorsError(`tensor "${name}": ${t.data.byteLength} bytes of data for shape [${t.shape.join(", ")}] of ${t.dtype}, expected ${length}`);
    header[name] = { dtype: code, shape: t.shape, data_offsets: [offset, offset + length] };
    offset += length;
  }
  let json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.byteLength / 8) * 8;
  if (padded !== json.byteLength) {
    const p = new Uint8Array(padded).fill(0x20);
    p.set(json);
    json = p;
  }
  const out = new Uint8Array(8 + json.byteLength + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.byteLength), true);
  out.set(json, 8);
  let at = 8 + json.byteLength;
  for (const [, t] of list) {
    out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), at);
    at += t.data.byteLength;
  }
  return out;
}

/**
 * Write bytes atomically: a temp file in the same directory, fsync, then rename over the
 * target. On failure the temp file is removed and an existing target is left untouched.
 */
export async function writeFileAtomic(path: string, data: Uint8Array | string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = join(dirname(path), `.${basename(path)}.tmp-${process.pid}-${randomBytes(4).toString("hex")}`);
  try {
    const fh = await open(tmp, "w");
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => {});
    throw e;
  }
}

/** Serialize and write a safetensors file atomically. */
export async function writeSafetensors(path: string, tensors: Readonly<Record<string, Tensor>> | ReadonlyMap<string, Tensor>, metadata?: Readonly<Record<string, string>>): Promise<void> {
  await writeFileAtomic(path, serializeSafetensors(tensors, metadata));
}

/** Named tensors from one file or several shards. */
export interface WeightFiles {
  readonly metadata: Record<string, string>;
  names(): string[];
  get(name: string): Tensor;
}

const INDEX = "model.safetensors.index.json";

/** Read a sharded checkpoint through its `model.safetensors.index.json`. */
export async function readShardedSafetensors(dir: string, indexName = INDEX): Promise<WeightFiles> {
  const indexPath = join(dir, indexName);
  let index: { metadata?: Record<string, unknown>; weight_map?: Record<string, unknown> };
  try {
    index = JSON.parse(await readFile(indexPath, "utf8"));
  } catch (e) {
    throw new SafetensorsError(`${indexPath}: ${(e as Error).message}`);
  }
  if (typeof index !== "object" || index === null || typeof index.weight_map !== "object" || index.weight_map === null) {
    throw new SafetensorsError(`${indexPath}: missing "weight_map" object`);
  }
  const shards = new Map<string, SafetensorsFile>();
  const weightMap = new Map<string, SafetensorsFile>();
  for (const [name, file] of Object.entries(index.weight_map)) {
    if (typeof file !== "string" || file.includes("/") || file.includes("\\")) throw new SafetensorsError(`${indexPath}: weight_map["${name}"] must be a file name in the same directory, got ${JSON.stringify(file)}`);
    let shard = shards.get(file);
    if (!shard) shards.set(file, (shard = await readSafetensors(join(dir, file))));
    if (!shard.tensors.has(name)) throw new SafetensorsError(`${indexPath}: weight_map says "${name}" is in ${file}, but that shard has no such tensor`);
    weightMap.set(name, shard);
  }
  const metadata: Record<string, string> = {};
  for (const [k, v] of Object.entries(index.metadata ?? {})) metadata[k] = String(v);
  return { metadata, names: () => [...weightMap.keys()], get: (n) => (weightMap.get(n) ?? fail(n)).get(n) };
  function fail(n: string): never {
    throw new SafetensorsError(`${indexPath}: no tensor named "${n}"`);
  }
}

/**
 * Write tensors as shards of at most `maxShardBytes` (`model-00001-of-00003.safetensors`, ...)
 * plus the index, each file atomically and the index last.
 */
export async function writeShardedSafetensors(dir: string, tensors: Readonly<Record<string, Tensor>> | ReadonlyMap<string, Tensor>, opts: { maxShardBytes: number; prefix?: string }): Promise<string[]> {
  const prefix = opts.prefix ?? "model";
  const shards: [string, Tensor][][] = [[]];
  let size = 0;
  for (const [name, t] of entries(tensors)) {
    if (size > 0 && size + t.data.byteLength > opts.maxShardBytes) {
      shards.push([]);
      size = 0;
    }
    shards[shards.length - 1]!.push([name, t]);
    size += t.data.byteLength;
  }
  const pad = (n: number) => String(n).padStart(5, "0");
  const files = shards.map((_, i) => `${prefix}-${pad(i + 1)}-of-${pad(shards.length)}.safetensors`);
  const weightMap: Record<string, string> = {};
  let total = 0;
  for (let i = 0; i < shards.length; i++) {
    await writeSafetensors(join(dir, files[i]!), new Map(shards[i]), { format: "pt" });
    for (const [name, t] of shards[i]!) {
      weightMap[name] = files[i]!;
      total += t.data.byteLength;
    }
  }
  await writeFileAtomic(join(dir, `${prefix}.safetensors.index.json`), JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2));
  return files;
}

/** The weights of a checkpoint directory: `model.safetensors`, or the sharded index. */
export async function loadSafetensorsWeights(dir: string): Promise<WeightFiles> {
  try {
    return await readSafetensors(join(dir, "model.safetensors"));
  } catch (e) {
    if (!(e instanceof SafetensorsError) || !/ENOENT/.test(e.message)) throw e;
  }
  try {
    return await readShardedSafetensors(dir);
  } catch (e) {
    if (e instanceof SafetensorsError && /ENOENT/.test(e.message) && e.message.startsWith(join(dir, INDEX))) {
      throw new SafetensorsError(`${dir}: no model.safetensors or ${INDEX} found (only safetensors checkpoints are supported)`);
    }
    throw e;
  }
}
