// safetensors: round trips, zero-copy views, exact layout, half-precision bits, every malformed-file
// error, a seeded corruption fuzz, atomic writes and sharded checkpoints.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { seededRandom } from "../ir/random.js";
import { type Tensor } from "../ir/tensor.js";
import {
  bfloat16BitsToFloat32, float16BitsToFloat32, float32ToBfloat16Bits, float32ToFloat16Bits, loadSafetensorsWeights, parseSafetensors,
  readSafetensors, readSafetensorsHeader, readShardedSafetensors, SafetensorsError, serializeSafetensors, toFloat32, writeFileAtomic, writeSafetensors,
  writeShardedSafetensors,
} from "./safetensors.js";

const dirs: string[] = [];
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), "peftjs-st-"));
  dirs.push(d);
  return d;
};
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));


/** One tensor of every IR dtype, plus empty and scalar tensors. */
const SAMPLE: Record<string, Tensor> = {
  "a.weight": { dtype: "float32", shape: [2, 3], data: Float32Array.of(1, 2, 3, 4, 5, -6.5) },
  "b.f64": { dtype: "float64", shape: [2], data: Float64Array.of(Math.PI, -1e300) },
  "c.half": { dtype: "float16", shape: [3], data: Uint16Array.of(0x3c00, 0xc100, 0x7bff) },
  "d.bf16": { dtype: "bfloat16", shape: [1], data: Uint16Array.of(0x3f80) },
  "e.ids": { dtype: "int64", shape: [2], data: BigInt64Array.of(-5n, 1n << 40n) },
  "f.i32": { dtype: "int32", shape: [1, 1], data: Int32Array.of(-7) },
  "g.i8": { dtype: "int8", shape: [2], data: Int8Array.of(-128, 127) },
  "h.u8": { dtype: "uint8", shape: [3], data: Uint8Array.of(0, 1, 255) },
  "i.mask": { dtype: "bool", shape: [3], data: Uint8Array.of(1, 0, 1) },
  "j.empty": { dtype: "float32", shape: [0, 4], data: new Float32Array(0) },
  "k.scalar": { dtype: "float32", shape: [], data: Float32Array.of(42) },
  "l.empty64": { dtype: "int64", shape: [3, 0], data: new BigInt64Array(0) },
  "m.scalar16": { dtype: "bfloat16", shape: [], data: Uint16Array.of(0xc020) },
};

const enc = new TextEncoder();
/** A file from a literal header text and data bytes, as another implementation might write it. */
function fileOf(headerText: string, data: ArrayLike<number> = []): Uint8Array {
  const h = enc.encode(headerText);
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
  out.set(h, 8);
  out.set(Array.from(data), 8 + h.length);
  return out;
}
const values = (t: Tensor) => Array.from(t.data as ArrayLike<number | bigint>);
function expectError(bytes: Uint8Array, pattern: RegExp, tensor?: string): void {
  assert.throws(
    () => parseSafetensors(bytes, "x.safetensors"),
    (e: unknown) => {
      assert.ok(e instanceof SafetensorsError, `expected SafetensorsError, got ${String(e)}`);
      assert.ok(e.message.startsWith("x.safetensors: "), e.message);
      if (tensor !== undefined) assert.ok(e.message.startsWith(`x.safetensors: tensor "${tensor}": `), e.message);
      assert.match(e.message, pattern);
      return true;
    },
  );
}

describe("safetensors: round trips and layout", () => {
  it("round-trips every dtype, empty tensors and scalars, from a Record or a Map", () => {
    for (const input of [SAMPLE, new Map(Object.entries(SAMPLE))]) {
      const f = parseSafetensors(serializeSafetensors(input));
      assert.deepEqual(f.names().sort(), Object.keys(SAMPLE).sort());
      for (const [name, t] of Object.entries(SAMPLE)) {
        const r = f.get(name);
        assert.equal(r.dtype, t.dtype, name);
        assert.deepEqual(r.shape, t.shape, name);
        assert.equal(r.data.constructor, t.data.constructor, name);
        assert.deepEqual(values(r), values(t), name);
      }
      assert.deepEqual(f.tensors.get("k.scalar")!.shape, []);
      assert.equal(f.tensors.get("j.empty")!.byteLength, 0);
    }
  });

  it("round-trips metadata (unicode, integer-like and __proto__ keys) and omits it when not given", () => {
    const metadata = { format: "pt", "1": "one", note: "ünïcødé ✓ \"quoted\" \\ \n", __proto__x: "" };
    const f = parseSafetensors(serializeSafetensors(SAMPLE, metadata));
    assert.deepEqual(f.metadata, metadata);
    const proto = parseSafetensors(fileOf(`{"__metadata__":{"__proto__":"p"}}`));
    assert.equal(Object.getOwnPropertyDescriptor(proto.metadata, "__proto__")?.value, "p");
    assert.equal(Object.getPrototypeOf(proto.metadata), Object.prototype);
    const none = serializeSafetensors(SAMPLE);
    assert.ok(!new TextDecoder().decode(none.subarray(0, 200)).includes("__metadata__"));
    assert.deepEqual(parseSafetensors(none).metadata, {});
    assert.deepEqual(parseSafetensors(serializeSafetensors({}, {})).metadata, {});
    assert.deepEqual(parseSafetensors(fileOf(`{"__metadata__":null}`)).metadata, {});
  });

  it("gives zero-copy views into the file buffer; copies only a misaligned tensor", async () => {
    const bytes = serializeSafetensors(SAMPLE);
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    assert.equal(n % 8, 0, "header padded to 8 bytes");
    const f = parseSafetensors(bytes);
    for (const name of f.names()) {
      const t = f.get(name);
      assert.equal(t.data.buffer, bytes.buffer, `${name} is a view`);
      assert.equal(t.data.byteOffset % t.data.BYTES_PER_ELEMENT, 0);
    }
    // Through the file system too: the tensors view the one buffer the file was read into.
    const path = join(tmp(), "w.safetensors");
    await writeSafetensors(path, SAMPLE);
    const g = await readSafetensors(path);
    assert.ok(g.bytes);
    for (const name of g.names()) assert.equal(g.get(name).data.buffer, g.bytes.buffer, name);
    // A U8 byte first, then an F32 at data offset 1 with an 8-byte-aligned data start: misaligned.
    const header = `{"u":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"f":{"dtype":"F32","shape":[2],"data_offsets":[1,9]}}`;
    const data = [7, ...new Uint8Array(Float32Array.of(1.5, -3).buffer)];
    const text = header + " ".repeat((8 - (header.length % 8)) % 8);
    const odd = parseSafetensors(fileOf(text, data));
    const t = odd.get("f");
    assert.deepEqual(values(t), [1.5, -3]);
    assert.notEqual(t.data.buffer, odd.bytes!.buffer);
    assert.equal(t.data.buffer.byteLength, 8, "copies that tensor only, never the file");
    assert.equal(odd.get("u").data.buffer, odd.bytes!.buffer);
    // A file held at an odd offset inside a bigger buffer still decodes (copying what is misaligned).
    const host = new Uint8Array(bytes.length + 3);
    host.set(bytes, 3);
    const shifted = parseSafetensors(host.subarray(3));
    for (const [name, s] of Object.entries(SAMPLE)) assert.deepEqual(values(shifted.get(name)), values(s), name);
  });

  it("lays the file out byte-for-byte like the reference library (metadata first, dtype rank then UTF-8 name, space padding)", () => {
    const tensors = new Map<string, Tensor>([
      ["b", { dtype: "float32", shape: [2], data: Float32Array.of(1, 2) }],
      ["0", { dtype: "uint8", shape: [3], data: Uint8Array.of(9, 8, 7) }],
      ["c", { dtype: "bfloat16", shape: [3], data: Uint16Array.of(0x3f80, 0x4000, 0x4040) }],
      ["\u{1F600}", { dtype: "float32", shape: [], data: Float32Array.of(5) }],
      ["a", { dtype: "int64", shape: [1], data: BigInt64Array.of(-1n) }],
      ["\uff01", { dtype: "float32", shape: [], data: Float32Array.of(4) }],
      ["d", { dtype: "float64", shape: [1], data: Float64Array.of(0.5) }],
    ]);
    // Hand-written from the Rust `prepare`/`Metadata::serialize`: I64 > F64 > F32 > BF16 > U8 and
    // byte-wise names, so U+FF01 (EF BC 81) sorts before U+1F600 (F0 9F 98 80), unlike UTF-16.
    const header =
      `{"__metadata__":{"format":"pt"},` +
      `"a":{"dtype":"I64","shape":[1],"data_offsets":[0,8]},` +
      `"d":{"dtype":"F64","shape":[1],"data_offsets":[8,16]},` +
      `"b":{"dtype":"F32","shape":[2],"data_offsets":[16,24]},` +
      `"\uff01":{"dtype":"F32","shape":[],"data_offsets":[24,28]},` +
      `"\u{1F600}":{"dtype":"F32","shape":[],"data_offsets":[28,32]},` +
      `"c":{"dtype":"BF16","shape":[3],"data_offsets":[32,38]},` +
      `"0":{"dtype":"U8","shape":[3],"data_offsets":[38,41]}}`;
    const h = enc.encode(header);
    const padded = Math.ceil(h.length / 8) * 8;
    const data = [
      ...[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], // I64 -1
      ...[0, 0, 0, 0, 0, 0, 0xe0, 0x3f], // F64 0.5
      ...[0, 0, 0x80, 0x3f, 0, 0, 0, 0x40], // F32 1, 2
      ...[0, 0, 0x80, 0x40], // F32 4
      ...[0, 0, 0xa0, 0x40], // F32 5
      ...[0x80, 0x3f, 0x00, 0x40, 0x40, 0x40], // BF16 1, 2, 3
      ...[9, 8, 7], // U8
    ];
    const expected = new Uint8Array(8 + padded + data.length);
    new DataView(expected.buffer).setBigUint64(0, BigInt(padded), true);
    expected.fill(0x20, 8, 8 + padded);
    expected.set(h, 8);
    expected.set(data, 8 + padded);
    assert.deepEqual(serializeSafetensors(tensors, { format: "pt" }), expected);
  });

  it("parses files written by hand from the spec: any key order, whitespace, trailing spaces", () => {
    // The example in the Rust crate's documentation (unpadded, 60-byte header).
    const doc = fileOf(`{"test":{"dtype":"I32","shape":[2,2],"data_offsets":[0,16]}}`, new Uint8Array(16));
    assert.equal(doc[0], 60);
    const d = parseSafetensors(doc).get("test");
    assert.deepEqual([d.dtype, d.shape, values(d)], ["int32", [2, 2], [0, 0, 0, 0]]);

    const header =
      `{ "wbf": {"dtype": "BF16", "shape": [1], "data_offsets": [12, 14]},\n` +
      `  "__metadata__": {"format": "pt", "source": "hand"},\n` +
      `  "scale": {"shape": [], "dtype": "I64", "data_offsets": [0, 8]},\n` +
      `  "w16": {"data_offsets": [8, 12], "dtype": "F16", "shape": [2]},\n` +
      `  "mask": {"dtype": "BOOL", "shape": [2], "data_offsets": [14, 16]},\n` +
      `  "empty": {"dtype": "F32", "shape": [0, 3], "data_offsets": [16, 16]} }     `;
    const data = [0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0x3c, 0x00, 0xc1, 0x80, 0x3f, 0x01, 0x00];
    const f = parseSafetensors(fileOf(header, data));
    assert.deepEqual(f.metadata, { format: "pt", source: "hand" });
    assert.deepEqual(f.names(), ["scale", "w16", "wbf", "mask", "empty"], "data order");
    assert.deepEqual(values(f.get("scale")), [-2n]);
    assert.deepEqual(f.get("scale").shape, []);
    assert.deepEqual(values(toFloat32(f.get("w16"))), [1, -2.5]);
    assert.deepEqual(values(toFloat32(f.get("wbf"))), [1]);
    assert.deepEqual([f.get("mask").dtype, ...values(f.get("mask"))], ["bool", 1, 0]);
    assert.deepEqual([f.get("empty").shape, f.get("empty").data.length], [[0, 3], 0]);
    const info = f.tensors.get("w16")!;
    assert.deepEqual(info, { dtype: "F16", shape: [2], byteOffset: 8 + enc.encode(header).length + 8, byteLength: 4 });
  });

  it("widens I16/U16/U32/U64 exactly; F8/F4 parse but only give raw bytes", () => {
    const header = JSON.stringify({
      i16: { dtype: "I16", shape: [2], data_offsets: [0, 4] },
      u16: { dtype: "U16", shape: [1], data_offsets: [4, 6] },
      f8: { dtype: "F8_E4M3", shape: [2], data_offsets: [6, 8] },
      u32: { dtype: "U32", shape: [1], data_offsets: [8, 12] },
      f4: { dtype: "F4", shape: [4], data_offsets: [12, 14] },
      e5: { dtype: "F8_E5M2", shape: [2], data_offsets: [14, 16] },
      u64: { dtype: "U64", shape: [1], data_offsets: [16, 24] },
    });
    const data = [0xfe, 0xff, 3, 0, 0xff, 0xff, 0x38, 0xb8, 0xff, 0xff, 0xff, 0xff, 0x12, 0x34, 0x3c, 0xbc, ...[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]];
    const f = parseSafetensors(fileOf(header, data), "x.safetensors");
    assert.deepEqual([f.get("i16").dtype, ...values(f.get("i16"))], ["int32", -2, 3]);
    assert.deepEqual([f.get("u16").dtype, ...values(f.get("u16"))], ["int32", 65535]);
    assert.deepEqual([f.get("u32").dtype, ...values(f.get("u32"))], ["int64", 4294967295n]);
    assert.deepEqual([f.get("u64").dtype, ...values(f.get("u64"))], ["int64", (1n << 63n) - 1n]);
    assert.throws(() => f.get("f8"), /^SafetensorsError: x.safetensors: tensor "f8": dtype F8_E4M3 has no equivalent here .*use getBytes\("f8"\)/);
    assert.throws(() => f.get("f4"), /tensor "f4": dtype F4 has no equivalent/);
    assert.deepEqual(Array.from(f.getBytes("f8")), [0x38, 0xb8]);
    assert.equal(f.getBytes("e5").buffer, f.bytes!.buffer);
    assert.deepEqual(Array.from(f.getBytes("f4")), [0x12, 0x34]);
    const big = fileOf(JSON.stringify({ u: { dtype: "U64", shape: [2], data_offsets: [0, 16] } }), [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x80]);
    assert.throws(() => parseSafetensors(big, "x.safetensors").get("u"), /tensor "u": U64 element 1 is 9223372036854775808, which does not fit int64/);
  });
});

describe("safetensors: half precision", () => {
  it("decodes float16 bit patterns exactly", () => {
    assert.equal(float16BitsToFloat32(0x3c00), 1);
    assert.equal(float16BitsToFloat32(0xc100), -2.5);
    assert.equal(float16BitsToFloat32(0x7bff), 65504);
    assert.equal(float16BitsToFloat32(0x0001), 2 ** -24, "smallest subnormal");
    assert.equal(float16BitsToFloat32(0x03ff), 1023 * 2 ** -24, "largest subnormal");
    assert.equal(float16BitsToFloat32(0x0400), 2 ** -14, "smallest normal");
    assert.equal(float16BitsToFloat32(0x7c00), Infinity);
    assert.equal(float16BitsToFloat32(0xfc00), -Infinity);
    assert.ok(Number.isNaN(float16BitsToFloat32(0x7e00)));
    assert.ok(Number.isNaN(float16BitsToFloat32(0xfc01)));
    assert.ok(Object.is(float16BitsToFloat32(0x8000), -0));
  });

  it("decodes bfloat16 bit patterns exactly", () => {
    assert.equal(bfloat16BitsToFloat32(0x3f80), 1);
    assert.equal(bfloat16BitsToFloat32(0xc020), -2.5);
    assert.equal(bfloat16BitsToFloat32(0x7f7f), 3.3895313892515355e38, "largest finite");
    assert.equal(bfloat16BitsToFloat32(0x0001), 2 ** -133, "smallest subnormal");
    assert.equal(bfloat16BitsToFloat32(0x7f80), Infinity);
    assert.equal(bfloat16BitsToFloat32(0xff80), -Infinity);
    assert.ok(Number.isNaN(bfloat16BitsToFloat32(0x7fc0)));
    assert.ok(Object.is(bfloat16BitsToFloat32(0x8000), -0));
  });

  it("encodes with round-to-nearest-even, overflow to inf, underflow through subnormals", () => {
    assert.equal(float32ToFloat16Bits(1), 0x3c00);
    assert.equal(float32ToFloat16Bits(-2.5), 0xc100);
    assert.equal(float32ToFloat16Bits(65504), 0x7bff);
    assert.equal(float32ToFloat16Bits(65519), 0x7bff, "below the halfway point to 65536");
    assert.equal(float32ToFloat16Bits(65520), 0x7c00, "halfway rounds to even: infinity");
    assert.equal(float32ToFloat16Bits(1e6), 0x7c00);
    assert.equal(float32ToFloat16Bits(-Infinity), 0xfc00);
    assert.equal(float32ToFloat16Bits(2 ** -24), 0x0001);
    assert.equal(float32ToFloat16Bits(2 ** -25), 0x0000, "halfway to the smallest subnormal: even (0)");
    assert.equal(float32ToFloat16Bits(1.5 * 2 ** -25), 0x0001);
    assert.equal(float32ToFloat16Bits(3 * 2 ** -25), 0x0002, "halfway between 1 and 2 ulps: even (2)");
    assert.equal(float32ToFloat16Bits(-(2 ** -30)), 0x8000);
    assert.equal(float32ToFloat16Bits(1023.5 * 2 ** -24), 0x0400, "rounds up into the smallest normal");
    assert.equal(float32ToFloat16Bits(1 + 2 ** -11), 0x3c00, "tie rounds to even (down)");
    assert.equal(float32ToFloat16Bits(1 + 3 * 2 ** -11), 0x3c02, "tie rounds to even (up)");
    assert.equal(float32ToFloat16Bits(NaN) & 0x7e00, 0x7e00);
    assert.equal(float32ToBfloat16Bits(1), 0x3f80);
    assert.equal(float32ToBfloat16Bits(-2.5), 0xc020);
    assert.equal(float32ToBfloat16Bits(1 + 2 ** -8), 0x3f80, "tie rounds to even (down)");
    assert.equal(float32ToBfloat16Bits(1 + 3 * 2 ** -8), 0x3f82, "tie rounds to even (up)");
    assert.equal(float32ToBfloat16Bits(3.4028234663852886e38), 0x7f80, "float32 max rounds to inf");
    assert.equal(float32ToBfloat16Bits(Infinity), 0x7f80);
    assert.ok(Number.isNaN(bfloat16BitsToFloat32(float32ToBfloat16Bits(NaN))));
    // Every finite half and bfloat16 value survives decode -> encode.
    for (let h = 0; h < 0x10000; h++) {
      const x = float16BitsToFloat32(h);
      if (!Number.isNaN(x)) assert.equal(float32ToFloat16Bits(x), h);
      const b = bfloat16BitsToFloat32(h);
      if (!Number.isNaN(b)) assert.equal(float32ToBfloat16Bits(b), h);
    }
  });

  it("toFloat32 converts float16/bfloat16/float64 tensors and passes float32 through", () => {
    const half = toFloat32({ dtype: "float16", shape: [5], data: Uint16Array.of(0x3c00, 0xc100, 0x0001, 0x7c00, 0x7e00) });
    assert.deepEqual(half.shape, [5]);
    assert.deepEqual(values(half).slice(0, 4), [1, -2.5, Math.fround(2 ** -24), Infinity]);
    assert.ok(Number.isNaN(half.data[4]!));
    assert.deepEqual(values(toFloat32({ dtype: "bfloat16", shape: [2, 1], data: Uint16Array.of(0x3f80, 0xff80) })), [1, -Infinity]);
    assert.deepEqual(values(toFloat32({ dtype: "float64", shape: [2], data: Float64Array.of(0.1, 1e300) })), [Math.fround(0.1), Infinity]);
    const f = SAMPLE["a.weight"]!;
    assert.equal(toFloat32(f), f);
    assert.throws(() => toFloat32(SAMPLE["f.i32"]!), /int32 is not a float dtype/);
  });
});

describe("safetensors: malformed files", () => {
  const ok = `"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}`;
  const eight = new Uint8Array(8);
  const entry = (body: string) => fileOf(`{"w":${body}}`, eight);

  it("rejects a bad length field or header", () => {
    expectError(new Uint8Array(5), /file is 5 bytes, shorter than the 8-byte header length field/);
    expectError(new Uint8Array(0), /file is 0 bytes/);
    const len = (n: bigint, size = 16) => {
      const b = new Uint8Array(size);
      new DataView(b.buffer).setBigUint64(0, n, true);
      return b;
    };
    expectError(len(1000n), /header length 1000 runs past the end of the file: needs 1008 bytes, file has 16/);
    expectError(len(9n), /header length 9 runs past the end of the file: needs 17 bytes, file has 16/);
    expectError(len(100_000_001n), /header length 100000001 exceeds the limit of 100000000 bytes/);
    expectError(len(0xffffffffffffffffn), /header length 18446744073709551615 exceeds the limit/);
    const badUtf8 = fileOf(`{"w":"x"}`);
    badUtf8[8 + 6] = 0xff; // the "x"
    expectError(badUtf8, /header is not valid UTF-8/);
    expectError(fileOf("\ufeff{}"), /header is not valid JSON/);
    expectError(fileOf("{not json"), /header is not valid JSON/);
    expectError(fileOf(""), /header is not valid JSON/);
    expectError(fileOf("[1,2]"), /header must be a JSON object, got \[1,2\]/);
    expectError(fileOf("null"), /header must be a JSON object, got null/);
    expectError(fileOf(`"text"`), /header must be a JSON object, got "text"/);
  });

  it("rejects entries with missing or ill-typed fields, naming the tensor and the value", () => {
    expectError(entry(`[1]`), /entry must be an object .*got \[1\]/, "w");
    expectError(entry(`3`), /entry must be an object/, "w");
    expectError(entry(`{"shape":[2],"data_offsets":[0,8]}`), /missing "dtype"/, "w");
    expectError(entry(`{"dtype":7,"shape":[2],"data_offsets":[0,8]}`), /"dtype" must be a string, got 7/, "w");
    expectError(entry(`{"dtype":"Q7","shape":[2],"data_offsets":[0,8]}`), /unknown dtype "Q7" \(known: BOOL, .*U64\)/, "w");
    expectError(entry(`{"dtype":"toString","shape":[2],"data_offsets":[0,8]}`), /unknown dtype "toString"/, "w");
    expectError(entry(`{"dtype":"f32","shape":[2],"data_offsets":[0,8]}`), /unknown dtype "f32"/, "w");
    expectError(entry(`{"dtype":"F32","data_offsets":[0,8]}`), /missing "shape"/, "w");
    expectError(entry(`{"dtype":"F32","shape":2,"data_offsets":[0,8]}`), /"shape" must be a list of non-negative integers, got 2/, "w");
    expectError(entry(`{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}`), /shape\[0\] is -2, expected a non-negative integer/, "w");
    expectError(entry(`{"dtype":"F32","shape":[1,1.5],"data_offsets":[0,8]}`), /shape\[1\] is 1.5, expected a non-negative integer/, "w");
    expectError(entry(`{"dtype":"F32","shape":["2"],"data_offsets":[0,8]}`), /shape\[0\] is "2"/, "w");
    expectError(entry(`{"dtype":"F32","shape":[2]}`), /missing "data_offsets"/, "w");
    expectError(entry(`{"dtype":"F32","shape":[2],"data_offsets":[0]}`), /"data_offsets" must be \[begin, end\], got \[0\]/, "w");
    expectError(entry(`{"dtype":"F32","shape":[2],"data_offsets":{"0":0,"1":8}}`), /"data_offsets" must be \[begin, end\]/, "w");
    expectError(entry(`{"dtype":"F32","shape":[2],"data_offsets":[-1,8]}`), /data_offsets\[0\] is -1, expected a non-negative integer/, "w");
    expectError(entry(`{"dtype":"F32","shape":[2],"data_offsets":[0,8.5]}`), /data_offsets\[1\] is 8.5/, "w");
    expectError(entry(`{"dtype":"F32","shape":[2],"data_offsets":[0,1e400]}`), /data_offsets\[1\] is Infinity/, "w");
  });

  it("rejects bad offsets and sizes with expected vs actual values", () => {
    expectError(entry(`{"dtype":"F32","shape":[2],"data_offsets":[8,0]}`), /data_offsets \[8, 0\]: end 0 is before begin 8/, "w");
    expectError(entry(`{"dtype":"F32","shape":[3],"data_offsets":[0,12]}`), /data_offsets \[0, 12\] run past the data section: end 12 > 8 bytes/, "w");
    expectError(entry(`{"dtype":"F32","shape":[3],"data_offsets":[0,8]}`), /shape \[3\] of F32 needs 12 bytes, but data_offsets \[0, 8\] span 8/, "w");
    expectError(entry(`{"dtype":"F64","shape":[2],"data_offsets":[0,8]}`), /shape \[2\] of F64 needs 16 bytes/, "w");
    expectError(entry(`{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}`), /needs 73786976294838206464 bytes/, "w");
    expectError(fileOf(`{"f":{"dtype":"F4","shape":[3],"data_offsets":[0,2]}}`, [0, 0]), /shape \[3\] of F4 is 12 bits, not a whole number of bytes/, "f");
    expectError(fileOf(`{${ok},"v":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, eight), /data_offsets \[4, 8\] overlap: expected to start at 8 \(the end of tensor "w"\)/, "v");
    expectError(fileOf(`{${ok},"v":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, eight), /overlap/);
    expectError(fileOf(`{"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, eight), /gap in the data section: data_offsets \[4, 8\] start at 4, expected 0 \(the start of the data section\)/, "w");
    expectError(
      fileOf(`{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"b":{"dtype":"U8","shape":[2],"data_offsets":[4,6]}}`, [1, 2, 3, 4, 5, 6]),
      /tensor "b": gap in the data section: .*start at 4, expected 2 \(the end of tensor "a"\)/,
    );
    expectError(fileOf(`{${ok}}`, new Uint8Array(12)), /data section is 12 bytes but the tensors cover 8: 4 trailing bytes not covered by any tensor/);
    expectError(fileOf(`{}`, [0]), /1 trailing bytes/);
  });

  it("rejects bad metadata and reports unknown tensor names", () => {
    expectError(fileOf(`{"__metadata__":{"n":3},${ok}}`, eight), /__metadata__\["n"\] must be a string, got 3/);
    expectError(fileOf(`{"__metadata__":{"n":null}}`), /__metadata__\["n"\] must be a string, got null/);
    expectError(fileOf(`{"__metadata__":["pt"]}`), /__metadata__ must be an object of strings, got \["pt"\]/);
    expectError(fileOf(`{"__metadata__":"pt"}`), /__metadata__ must be an object of strings/);
    const f = parseSafetensors(fileOf(`{${ok}}`, eight), "x.safetensors");
    assert.throws(() => f.get("nope"), (e: unknown) => e instanceof SafetensorsError && e.message === `x.safetensors: tensor "nope": no such tensor (the file has 1 tensor)`);
    assert.throws(() => f.getBytes("nope"), SafetensorsError);
  });

  it("randomized corruption: 300 seeded mutations either raise SafetensorsError or parse consistently", { timeout: 60_000 }, () => {
    const valid = serializeSafetensors(SAMPLE, { format: "pt", step: "12" });
    const headerEnd = 8 + Number(new DataView(valid.buffer).getBigUint64(0, true));
    const rand = seededRandom(0x5afe7e45);
    const pick = (n: number) => Math.floor(rand() * n);
    const garbage = (n: number) => Uint8Array.from({ length: n }, () => (rand() < 0.5 ? pick(256) : '{}[]":,0123456789 -.eE'.charCodeAt(pick(22))));
    const counts = { rejected: 0, accepted: 0 };
    for (let trial = 0; trial < 300; trial++) {
      let bytes = valid.slice();
      const kind = trial % 6;
      if (kind === 0) {
        for (let k = 1 + pick(3); k > 0; k--) {
          const at = 8 + pick(headerEnd - 8);
          bytes[at] = bytes[at]! ^ (1 << pick(8)); // flip header bits
        }
      } else if (kind === 1) {
        for (let k = 1 + pick(3); k > 0; k--) {
          // turn one header digit into another digit: plausible-looking shapes and offsets
          const digits = [...bytes.subarray(8, headerEnd).keys()].filter((i) => bytes[8 + i]! >= 0x30 && bytes[8 + i]! <= 0x39);
          bytes[8 + digits[pick(digits.length)]!] = 0x30 + pick(10);
        }
      } else if (kind === 2) {
        bytes = bytes.slice(0, pick(bytes.length)); // truncate
      } else if (kind === 3) {
        const n = [BigInt(pick(bytes.length * 2)), BigInt(headerEnd - 8 + pick(17) - 8), BigInt(pick(2 ** 30)) << BigInt(pick(34))][pick(3)]!;
        new DataView(bytes.buffer).setBigUint64(0, BigInt.asUintN(64, n), true); // header length field
      } else if (kind === 4) {
        const at = pick(bytes.length); // splice garbage in (or cut some out)
        bytes = Uint8Array.from([...bytes.subarray(0, at), ...garbage(pick(24)), ...bytes.subarray(at + pick(8))]);
      } else {
        bytes.set(garbage(1 + pick(12)), pick(bytes.length - 12)); // overwrite anywhere
      }
      try {
        const f = parseSafetensors(bytes, "fuzz");
        counts.accepted++;
        for (const name of f.names()) {
          const info = f.tensors.get(name)!;
          assert.equal(f.getBytes(name).byteLength, info.byteLength);
          let t: Tensor;
          try {
            t = f.get(name);
          } catch (e) {
            assert.ok(e instanceof SafetensorsError, `trial ${trial}: get(${name}): ${String(e)}`);
            continue;
          }
          assert.equal(t.data.length, t.shape.reduce((a, b) => a * b, 1), `trial ${trial}: ${name} data matches shape`);
        }
      } catch (e) {
        assert.ok(e instanceof SafetensorsError, `trial ${trial} (kind ${kind}): ${e instanceof Error ? `${e.constructor.name}: ${e.message}` : String(e)}`);
        assert.ok(e.message.startsWith("fuzz: "));
        counts.rejected++;
      }
    }
    assert.equal(counts.accepted + counts.rejected, 300);
    assert.ok(counts.rejected > 200, `most corruptions are detected (${JSON.stringify(counts)})`);
    assert.ok(counts.accepted > 0, `some harmless mutations parse (${JSON.stringify(counts)})`);
  });
});

describe("safetensors: files on disk", () => {
  it("reads a file, and reads big files in tensor-aligned pieces with the same result", async () => {
    const dir = tmp();
    const path = join(dir, "w.safetensors");
    await writeSafetensors(path, SAMPLE, { format: "pt" });
    const whole = await readSafetensors(path);
    assert.equal(whole.source, path);
    assert.deepEqual(whole.metadata, { format: "pt" });
    assert.deepEqual(whole.bytes, new Uint8Array(readFileSync(path)));
    for (const limit of [0, 16, 64]) {
      const pieces = await readSafetensors(path, { maxBufferBytes: limit });
      assert.equal(pieces.bytes, undefined);
      assert.deepEqual(pieces.names(), whole.names());
      assert.deepEqual(pieces.metadata, whole.metadata);
      for (const name of whole.names()) {
        const t = pieces.get(name);
        assert.deepEqual([t.dtype, t.shape, values(t)], [whole.get(name).dtype, whole.get(name).shape, values(whole.get(name))], name);
        assert.ok(t.data.buffer.byteLength < whole.bytes!.byteLength, `${name}: a piece, not the whole file`);
        assert.equal(t.data.byteOffset % t.data.BYTES_PER_ELEMENT, 0, `${name}: aligned view`);
      }
    }
    await assert.rejects(readSafetensors(join(dir, "missing.safetensors")), (e: unknown) => e instanceof SafetensorsError && /missing.safetensors: cannot open \(ENOENT/.test(e.message));
    writeFileSync(join(dir, "short.safetensors"), Uint8Array.of(1, 2, 3));
    await assert.rejects(readSafetensors(join(dir, "short.safetensors"), { maxBufferBytes: 0 }), /short.safetensors: file is 3 bytes, shorter than the 8-byte/);
    writeFileSync(join(dir, "bad.safetensors"), fileOf(`{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, new Uint8Array(4)));
    await assert.rejects(readSafetensors(join(dir, "bad.safetensors"), { maxBufferBytes: 4 }), /bad.safetensors: tensor "w": data_offsets \[0, 8\] run past the data section: end 8 > 4 bytes/);
  });

  it("checks the header of a 3 GB sparse file before reading any data: clear errors, no big allocation", async () => {
    const dir = tmp();
    const GB3 = 3 * 2 ** 30;
    const sparse = (name: string, head: Uint8Array) => {
      const path = join(dir, name);
      writeFileSync(path, head);
      truncateSync(path, GB3); // a hole: costs no disk and reads back as zeros
      return path;
    };
    const lengthField = (n: bigint) => {
      const b = new Uint8Array(8);
      new DataView(b.buffer).setBigUint64(0, n, true);
      return b;
    };
    const cases: [string, Uint8Array, RegExp][] = [
      // A well-formed header whose one tensor covers 8 bytes of a 3 GB data section.
      ["trailing.safetensors", fileOf(`{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, new Uint8Array(8)), /trailing\.safetensors: data section is \d+ bytes but the tensors cover 8: \d+ trailing bytes/],
      // Header length beyond the reference library's 100 MB limit (the file is big enough to hold it).
      ["huge-header.safetensors", lengthField(2n ** 30n), /huge-header\.safetensors: header length 1073741824 exceeds the limit of 100000000 bytes/],
      // A header length inside the limit, over zero bytes (the hole).
      ["zeros.safetensors", lengthField(1000n), /zeros\.safetensors: header is not valid JSON/],
    ];
    for (const [name, head, error] of cases) {
      const path = sparse(name, head);
      const before = process.memoryUsage();
      await assert.rejects(readSafetensors(path), (e: unknown) => e instanceof SafetensorsError && error.test(e.message), name);
      const after = process.memoryUsage();
      // Reading the file whole would hold 3 GB of buffers here (old behaviour); the header is all that is read.
      const grown = (after.arrayBuffers - before.arrayBuffers) / 2 ** 20;
      assert.ok(grown < 64, `${name}: array buffers grew by ${grown.toFixed(0)} MB`);
      assert.ok((after.rss - before.rss) / 2 ** 20 < 512, `${name}: rss grew by ${((after.rss - before.rss) / 2 ** 20).toFixed(0)} MB`);
    }
  });

  it("readSafetensorsHeader gives names, dtypes and shapes of a 3 GB file without reading its data", async () => {
    const dir = tmp();
    const path = join(dir, "big.safetensors");
    const n = 3 * 2 ** 30;
    writeFileSync(path, fileOf(`{"__metadata__":{"format":"pt"},"w":{"dtype":"F32","shape":[${n / 4}],"data_offsets":[0,${n}]}}`));
    truncateSync(path, readFileSync(path).length + n);
    const before = process.memoryUsage().arrayBuffers;
    const { metadata, tensors } = await readSafetensorsHeader(path);
    assert.deepEqual(metadata, { format: "pt" });
    assert.deepEqual([...tensors.keys()], ["w"]);
    assert.deepEqual([tensors.get("w")!.dtype, tensors.get("w")!.shape, tensors.get("w")!.byteLength], ["F32", [n / 4], n]);
    assert.ok(process.memoryUsage().arrayBuffers - before < 64 * 2 ** 20);
    writeFileSync(join(dir, "bad.safetensors"), fileOf(`{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, new Uint8Array(4)));
    await assert.rejects(readSafetensorsHeader(join(dir, "bad.safetensors")), /bad.safetensors: tensor "w": data_offsets \[0, 8\] run past the data section/);
  });

  it("refuses a huge (sparse) shard index before reading it", async () => {
    const dir = tmp();
    writeFileSync(join(dir, "model.safetensors.index.json"), "{");
    truncateSync(join(dir, "model.safetensors.index.json"), 2 ** 31);
    const before = process.memoryUsage().arrayBuffers;
    await assert.rejects(readShardedSafetensors(dir), /model.safetensors.index.json: shard index is 2147483648 bytes, over the limit of 100000000/);
    assert.ok(process.memoryUsage().arrayBuffers - before < 64 * 2 ** 20);
  });

  it("validates tensors before writing and names the tensor and the mismatch", () => {
    const bad = (t: unknown) => ({ w: t as Tensor });
    assert.throws(() => serializeSafetensors(bad({ dtype: "float32", shape: [4], data: new Float32Array(3) })), /^SafetensorsError: <serialize>: tensor "w": data has 3 elements \(12 bytes\), shape \[4\] of float32 needs 4 \(16 bytes\)/);
    assert.throws(() => serializeSafetensors(bad({ dtype: "float32", shape: [2], data: new Int32Array(2) })), /tensor "w": data for float32 must be a Float32Array, got Int32Array/);
    assert.throws(() => serializeSafetensors(bad({ dtype: "float32", shape: [-1], data: new Float32Array(0) })), /tensor "w": shape\[0\] is -1, expected a non-negative integer/);
    assert.throws(() => serializeSafetensors(bad({ dtype: "float8", shape: [1], data: new Uint8Array(1) })), /tensor "w": cannot save dtype "float8"/);
    assert.throws(() => serializeSafetensors(bad(null)), /tensor "w": expected a tensor/);
    assert.throws(() => serializeSafetensors({ __metadata__: SAMPLE["k.scalar"]! }), /"__metadata__" is reserved/);
    assert.throws(() => serializeSafetensors(SAMPLE, { step: 3 } as unknown as Record<string, string>), /metadata\["step"\] must be a string, got 3/);
  });

  it("writes atomically: a failed write leaves the old file byte-identical and no temp files", async () => {
    const dir = tmp();
    const path = join(dir, "model.safetensors");
    await writeSafetensors(path, SAMPLE);
    const before = readFileSync(path);
    const listing = () => readdirSync(dir).sort();

    // Invalid tensor: rejected before anything is written.
    const bad = { ...SAMPLE, w: { dtype: "float32", shape: [4], data: new Float32Array(3) } as Tensor };
    await assert.rejects(writeSafetensors(path, bad), (e: unknown) => e instanceof SafetensorsError && e.message.startsWith(`${path}: tensor "w": data has 3 elements`));
    assert.deepEqual(readFileSync(path), before);
    assert.deepEqual(listing(), ["model.safetensors"]);

    // Failure midway through writing the temp file (which sits next to the target meanwhile).
    await assert.rejects(
      writeFileAtomic(path, async (fh) => {
        await fh.write(new Uint8Array(1000).fill(7));
        const temps = listing().filter((f) => f !== "model.safetensors");
        assert.equal(temps.length, 1);
        assert.match(temps[0]!, new RegExp(`^model\\.safetensors\\.tmp-${process.pid}-[0-9a-f]+$`));
        throw new Error("disk full (simulated)");
      }),
      /disk full \(simulated\)/,
    );
    assert.deepEqual(readFileSync(path), before);
    assert.deepEqual(listing(), ["model.safetensors"]);

    // Failure at the rename (the target is a non-empty directory).
    const blocked = join(dir, "blocked.safetensors");
    mkdirSync(blocked);
    writeFileSync(join(blocked, "keep"), "x");
    await assert.rejects(writeSafetensors(blocked, SAMPLE), (e: unknown) => e instanceof SafetensorsError && e.message.startsWith(`${blocked}: could not write`));
    assert.deepEqual(readdirSync(blocked), ["keep"]);
    assert.deepEqual(listing(), ["blocked.safetensors", "model.safetensors"]);

    // A successful overwrite replaces the content and leaves nothing else behind.
    await writeSafetensors(path, { only: SAMPLE["e.ids"]! }, { v: "2" });
    const now = await readSafetensors(path);
    assert.deepEqual([now.names(), now.metadata], [["only"], { v: "2" }]);
    assert.deepEqual(listing(), ["blocked.safetensors", "model.safetensors"]);
  });
});

describe("safetensors: sharded checkpoints", () => {
  const layer = (i: number, n = 16): Tensor => ({ dtype: "float32", shape: [n], data: Float32Array.from({ length: n }, (_, j) => i * 100 + j) });
  const TENSORS: Record<string, Tensor> = {
    "layer.0.weight": layer(0),
    "layer.1.weight": layer(1),
    "layer.2.weight": layer(2),
    "layer.3.big": layer(3, 64), // 256 bytes: more than a shard, so a shard of its own
    "layer.4.ids": SAMPLE["e.ids"]!,
    "layer.5.half": SAMPLE["c.half"]!,
    "layer.6.weight": layer(6),
  };

  it("writes ≥3 shards plus a sorted index and reads them back through it", async () => {
    const dir = tmp();
    writeFileSync(join(dir, "model.safetensors"), "stale single file");
    writeFileSync(join(dir, "model-00009-of-00009.safetensors"), "stale shard");
    writeFileSync(join(dir, "unrelated.safetensors"), "keep me");
    const files = await writeShardedSafetensors(dir, TENSORS, { maxShardBytes: 150 });
    assert.ok(files.length >= 3, `${files.length} shards`);
    files.forEach((f, i) => assert.equal(f, `model-${String(i + 1).padStart(5, "0")}-of-${String(files.length).padStart(5, "0")}.safetensors`));
    assert.deepEqual(readdirSync(dir).sort(), [...files, "model.safetensors.index.json", "unrelated.safetensors"].sort(), "stale model files removed, others kept");

    const text = readFileSync(join(dir, "model.safetensors.index.json"), "utf8");
    const index = JSON.parse(text) as { metadata: { total_size: number }; weight_map: Record<string, string> };
    const total = Object.values(TENSORS).reduce((s, t) => s + t.data.byteLength, 0);
    assert.equal(index.metadata.total_size, total);
    assert.deepEqual(Object.keys(index.weight_map), Object.keys(TENSORS).sort());
    assert.ok(text.startsWith(`{\n  "metadata": {\n    "total_size": ${total}\n  },\n  "weight_map": {\n    "layer.0.weight": "model-00001-of-`) && text.endsWith("}\n"));
    for (const file of files) {
      const shard = await readSafetensors(join(dir, file));
      assert.deepEqual(shard.metadata, { format: "pt" });
      const bytes = shard.names().reduce((s, n) => s + shard.tensors.get(n)!.byteLength, 0);
      assert.ok(bytes <= 150 || shard.names().length === 1, `${file}: ${bytes} tensor bytes`);
    }
    assert.deepEqual((await readSafetensors(join(dir, index.weight_map["layer.3.big"]!))).names(), ["layer.3.big"]);

    for (const w of [await readShardedSafetensors(dir), await loadSafetensorsWeights(dir)]) {
      assert.deepEqual(w.names().sort(), Object.keys(TENSORS).sort());
      assert.equal(w.metadata.total_size, String(total));
      for (const [name, t] of Object.entries(TENSORS)) assert.deepEqual([w.get(name).dtype, w.get(name).shape, values(w.get(name))], [t.dtype, t.shape, values(t)], name);
      assert.ok(w.has("layer.0.weight") && !w.has("nope"));
      assert.throws(() => w.get("nope"), /model.safetensors.index.json: tensor "nope": no such tensor/);
    }
    assert.equal((await readShardedSafetensors(dir)).shards.size, files.length, "each shard opened once");

    // Saving again with bigger shards replaces the old set completely.
    const again = await writeShardedSafetensors(dir, TENSORS, { maxShardBytes: 10_000, prefix: "model" });
    assert.deepEqual(again, ["model-00001-of-00001.safetensors"]);
    assert.deepEqual(readdirSync(dir).sort(), [...again, "model.safetensors.index.json", "unrelated.safetensors"].sort());
    assert.deepEqual((await loadSafetensorsWeights(dir)).names().sort(), Object.keys(TENSORS).sort());
  });

  it("loadSafetensorsWeights prefers model.safetensors and explains when there is neither", async () => {
    const dir = tmp();
    await writeSafetensors(join(dir, "model.safetensors"), { x: SAMPLE["k.scalar"]! });
    const w = await loadSafetensorsWeights(dir);
    assert.deepEqual([w.source, w.names()], [join(dir, "model.safetensors"), ["x"]]);
    const empty = tmp();
    await assert.rejects(loadSafetensorsWeights(empty), (e: unknown) => e instanceof SafetensorsError && e.message === `${empty}: no model.safetensors or model.safetensors.index.json found (only safetensors checkpoints are supported)`);
  });

  it("rejects malformed indexes, missing shards and inconsistent shards, naming index, tensor and file", async () => {
    const dir = tmp();
    const files = await writeShardedSafetensors(dir, TENSORS, { maxShardBytes: 150 });
    const indexPath = join(dir, "model.safetensors.index.json");
    const good = JSON.parse(readFileSync(indexPath, "utf8")) as { weight_map: Record<string, string> };
    const withIndex = async (index: unknown, pattern: RegExp) => {
      writeFileSync(indexPath, typeof index === "string" ? index : JSON.stringify(index));
      await assert.rejects(readShardedSafetensors(dir), (e: unknown) => {
        assert.ok(e instanceof SafetensorsError, String(e));
        assert.match(e.message, pattern);
        return true;
      });
    };
    const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    const ip = esc(indexPath);
    await withIndex("{", new RegExp(`^${ip}: shard index is not valid JSON`));
    await withIndex("[]", new RegExp(`^${ip}: shard index must be a JSON object, got \\[\\]`));
    await withIndex({ metadata: {} }, new RegExp(`^${ip}: shard index needs a "weight_map" object .*got undefined`));
    await withIndex({ weight_map: [] }, /needs a "weight_map" object/);
    await withIndex({ metadata: 5, weight_map: {} }, /"metadata" must be an object, got 5/);
    await withIndex({ weight_map: { a: 3 } }, new RegExp(`^${ip}: tensor "a": weight_map entry must be a file name in .*got 3`));
    await withIndex({ weight_map: { a: "../model.safetensors" } }, /tensor "a": weight_map entry must be a file name/);
    await withIndex({ weight_map: { ...good.weight_map, "layer.0.weight": "missing.safetensors" } }, new RegExp(`^${ip}: tensor "layer.0.weight": weight_map points to "missing.safetensors", which cannot be read \\(ENOENT`));
    await withIndex({ weight_map: { ...good.weight_map, "layer.0.weight": files[1] } }, new RegExp(`^${ip}: tensor "layer.0.weight": weight_map puts it in ${esc(files[1]!)}, but that shard has no such tensor`));
    await withIndex({ weight_map: { ...good.weight_map, ghost: files[0] } }, /tensor "ghost": weight_map puts it in model-00001/);
    // The same tensor stored in two shards is ambiguous.
    const dup = join(dir, "dup.safetensors");
    await writeSafetensors(dup, { other: layer(0) });
    await withIndex({ weight_map: { ...good.weight_map, extra: "dup.safetensors" } }, /tensor "extra": weight_map puts it in dup.safetensors/);
    await writeSafetensors(dup, { "layer.0.weight": layer(0), extra: layer(9) });
    await withIndex({ weight_map: { ...good.weight_map, extra: "dup.safetensors" } }, /tensor "layer.0.weight": is stored in two shards, model-00001-of-\d+.safetensors and dup.safetensors/);
    // A corrupt shard reports the shard's own path.
    writeFileSync(indexPath, JSON.stringify(good));
    writeFileSync(join(dir, files[0]!), Uint8Array.of(1, 2));
    await assert.rejects(readShardedSafetensors(dir), new RegExp(`^SafetensorsError: ${esc(join(dir, files[0]!))}: file is 2 bytes`));
    await assert.rejects(writeShardedSafetensors(dir, TENSORS, { maxShardBytes: 0 }), /maxShardBytes must be a positive number, got 0/);
  });
});
