// Zip archives whose entries are stored uncompressed, as PyTorch's torch.save writes them
// (caffe2/serialize/inline_container.cc PyTorchStreamWriter: method 0, data aligned to 64 bytes
// with an "FB" padding extra field). Enough to read and write `pytorch_adapter.bin`; compressed
// entries, multi-disk and ZIP64 archives are refused by name.

export class ZipError extends Error {}

const LOCAL = 0x04034b50;
const CENTRAL = 0x02014b50;
const END = 0x06054b50;
const ALIGN = 64;

/** Entry name -> bytes (views into `bytes`, not copies). */
export function readStoredZip(bytes: Uint8Array, source: string): Map<string, Uint8Array> {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const u32 = (at: number) => (at + 4 <= bytes.length ? view.getUint32(at, true) : fail(`truncated at byte ${at}`));
  const u16 = (at: number) => (at + 2 <= bytes.length ? view.getUint16(at, true) : fail(`truncated at byte ${at}`));
  function fail(why: string): never {
    throw new ZipError(`${source}: not a readable PyTorch zip archive (${why})`);
  }
  // The end record sits in the last 22 + 65535 (comment) bytes.
  let end = -1;
  for (let i = bytes.length - 22; i >= Math.max(0, bytes.length - 22 - 0xffff); i--) {
    if (view.getUint32(i, true) === END) {
      end = i;
      break;
    }
  }
  if (end < 0) fail("no end-of-central-directory record");
  const count = u16(end + 10);
  let at = u32(end + 16);
  if (count === 0xffff || at === 0xffffffff) fail("ZIP64 archives are not supported");
  const out = new Map<string, Uint8Array>();
  const decoder = new TextDecoder("utf-8", { fatal: true });
  for (let i = 0; i < count; i++) {
    if (u32(at) !== CENTRAL) fail(`bad central directory entry ${i}`);
    const method = u16(at + 10);
    const size = u32(at + 20);
    const stored = u32(at + 24);
    const nameLen = u16(at + 28);
    const rest = nameLen + u16(at + 30) + u16(at + 32);
    const local = u32(at + 42);
    if (at + 46 + nameLen > bytes.length) fail("truncated central directory");
    const name = decoder.decode(bytes.subarray(at + 46, at + 46 + nameLen));
    if (method !== 0) fail(`entry "${name}" is compressed (method ${method}); torch.save stores entries uncompressed`);
    if (size === 0xffffffff || stored === 0xffffffff || local === 0xffffffff) fail("ZIP64 archives are not supported");
    if (size !== stored) fail(`entry "${name}" sizes disagree`);
    if (u32(local) !== LOCAL) fail(`bad local header for "${name}"`);
    const start = local + 30 + u16(local + 26) + u16(local + 28);
    if (start + size > bytes.length) fail(`entry "${name}" runs past the end of the file`);
    out.set(name, bytes.subarray(start, start + size));
    at += 46 + rest;
  }
  return out;
}

/** A zip of stored entries, each entry's data 64-byte aligned as torch.save aligns it. */
export function writeStoredZip(entries: ReadonlyArray<readonly [string, Uint8Array]>): Uint8Array {
  const encoder = new TextEncoder();
  const parts: Uint8Array[] = [];
  const central: Uint8Array[] = [];
  let offset = 0;
  for (const [name, data] of entries) {
    const nameBytes = encoder.encode(name);
    // Extra field "FB" (PyTorch's padding id) so the data starts on a 64-byte boundary.
    let pad = (ALIGN - ((offset + 30 + nameBytes.length + 4) % ALIGN)) % ALIGN;
    const extraLen = 4 + pad;
    const crc = crc32(data);
    const header = new Uint8Array(30 + nameBytes.length + extraLen);
    const h = new DataView(header.buffer);
    h.setUint32(0, LOCAL, true);
    h.setUint16(4, 20, true); // version needed
    h.setUint16(8, 0, true); // stored
    h.setUint32(14, crc, true);
    h.setUint32(18, data.length, true);
    h.setUint32(22, data.length, true);
    h.setUint16(26, nameBytes.length, true);
    h.setUint16(28, extraLen, true);
    header.set(nameBytes, 30);
    h.setUint16(30 + nameBytes.length, 0x4246, true); // "FB"
    h.setUint16(32 + nameBytes.length, pad, true);
    const c = new Uint8Array(46 + nameBytes.length);
    const cv = new DataView(c.buffer);
    cv.setUint32(0, CENTRAL, true);
    cv.setUint16(4, 20, true);
    cv.setUint16(6, 20, true);
    cv.setUint32(16, crc, true);
    cv.setUint32(20, data.length, true);
    cv.setUint32(24, data.length, true);
    cv.setUint16(28, nameBytes.length, true);
    cv.setUint32(42, offset, true);
    c.set(nameBytes, 46);
    central.push(c);
    parts.push(header, data);
    offset += header.length + data.length;
    pad = 0;
  }
  const dirSize = central.reduce((n, c) => n + c.length, 0);
  const endRec = new Uint8Array(22);
  const e = new DataView(endRec.buffer);
  e.setUint32(0, END, true);
  e.setUint16(8, entries.length, true);
  e.setUint16(10, entries.length, true);
  e.setUint32(12, dirSize, true);
  e.setUint32(16, offset, true);
  const out = new Uint8Array(offset + dirSize + 22);
  let at = 0;
  for (const p of [...parts, ...central, endRec]) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

let crcTable: Uint32Array | undefined;

/** CRC-32 (IEEE), as zip records it. */
export function crc32(data: Uint8Array): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let crc = 0xffffffff;
  for (let i = 0; i < data.length; i++) crc = crcTable[(crc ^ data[i]!) & 0xff]! ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}
