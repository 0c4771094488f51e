// safetensors: round trips, zero-copy views, format details, every malformed-file error, a
// randomized corruption test, atomic writes and sharded checkpoints.
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { seededRandom } from "../ir/random.js";
import { type Tensor } from "../ir/tensor.js";
import { bfloat16BitsToFloat32, float16BitsToFloat32, float32ToBfloat16Bits, float32ToFloat16Bits, toFloat32 } from "./half.js";
import {
  loadSafetensorsWeights, parseSafetensors, readSafetensors, readShardedSafetensors, SafetensorsError, serializeSafetensors,
  writeSafetensors, writeShardedSafetensors,
} from "./safetensors.js";

const tmp = () => mkdtempSync(join(tmpdir(), "peftjs-st-"));

const SAMPLE: Record<string, Tensor> = {
  "a.weight": { dtype: "float32", shape: [2, 3], data: Float32Array.of(1, 2, 3, 4, 5, 6) },
  "b.f64": { dtype: "float64", shape: [2], data: Float64Array.of(Math.PI, -1e300) },
  "c.half": { dtype: "float16", shape: [3], data: Uint16Array.of(0x3c00, 0xc100, 0x7bff) },
  "d.bf16": { dtype: "bfloat16", shape: [1], data: Uint16Array.of(0x3f80) },
  "e.ids": { dtype: "int64", shape: [2], data: BigInt64Array.of(-5n, 1n << 40n) },
  "f.i32": { dtype: "int32", shape: [1, 1], data: Int32Array.of(-7) },
  "g.i8": { dtype: "int8", shape: [2], data: Int8Array.of(-128, 127) },
  "h.u8": { dtype: "uint8", shape: [2], data: Uint8Array.of(0, 255) },
  "i.mask": { dtype: "bool", shape: [3], data: Uint8Array.of(1, 0, 1) },
  "j.empty": { dtype: "float32", shape: [0, 4], data: new Float32Array(0) },
  "k.scalar": { dtype: "float32", shape: [], data: Float32Array.of(42) },
};

/** A file from a literal header and data bytes (as another implementation would write it). */
function handMade(header: unknown, data: Uint8Array, headerText?: string): Uint8Array {
  const h = new TextEncoder().encode(headerText ?? JSON.stringify(header));
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}
const f32bytes = (...xs: number[]) => new Uint8Array(Float32Array.from(xs).buffer);
const expectError = (bytes: Uint8Array, pattern: RegExp) => assert.throws(() => parseSafetensors(bytes, "x.safetensors"), (e: Error) => e instanceof SafetensorsError && e.message.startsWith("x.safetensors: ") && pattern.test(e.message));

describe("safetensors", () => {
  it("round-trips every dtype, empty tensors, scalars and metadata", () => {
    const bytes = serializeSafetensors(SAMPLE, { format: "pt", note: "hi" });
    const f = parseSafetensors(bytes);
    assert.deepEqual(f.metadata, { format: "pt", note: "hi" });
    assert.deepEqual(f.names().sort(), Object.keys(SAMPLE).sort());
    for (const [name, t] of Object.entries(SAMPLE)) {
      const r = f.get(name);
      assert.equal(r.dtype, t.dtype, name);
      assert.deepEqual(r.shape, t.shape, name);
      assert.deepEqual(Array.from(r.data as ArrayLike<number | bigint>), Array.from(t.data as ArrayLike<number | bigint>), name);
    }
  });

  it("returns views into the file buffer (no copy) and pads the header to 8 bytes", () => {
    const bytes = serializeSafetensors(SAMPLE);
    const headerLen = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    assert.equal(headerLen % 8, 0);
    const t = parseSafetensors(bytes).get("b.f64");
    assert.equal(t.data.buffer, bytes.buffer);
  });

  it("orders tensors by alignment then name, like the reference implementation", () => {
    const f = parseSafetensors(serializeSafetensors(SAMPLE));
    const order = [...f.tensors].sort((a, b) => a[1].byteOffset - b[1].byteOffset).map(([k]) => k);
    for (const [name, info] of f.tensors) assert.equal(info.byteOffset % 8 === 0 || info.dtype !== "F64", true, `${name} aligned`);
    assert.deepEqual(order.slice(0, 2), ["b.f64", "e.ids"]);
    assert.deepEqual(order.slice(-3), ["g.i8", "h.u8", "i.mask"]);
  });

  it("parses a file written from the spec by hand, with trailing header spaces", () => {
    const header = { __metadata__: { format: "pt" }, w: { dtype: "F32", shape: [2], data_offsets: [0, 8] }, z: { dtype: "F32", shape: [1], data_offsets: [8, 12] } };
    const text = JSON.stringify(header) + "    ";
    const f = parseSafetensors(handMade(null, f32bytes(1.5, -2, 7), text));
    assert.deepEqual(Array.from(f.get("w").data as Float32Array), [1.5, -2]);
    assert.deepEqual(Array.from(f.get("z").data as Float32Array), [7]);
    assert.deepEqual(f.metadata, { format: "pt" });
  });

  it("decodes float16 and bfloat16 bit-exactly and encodes with round-to-nearest-even", () => {
    assert.equal(float16BitsToFloat32(0x3c00), 1);
    assert.equal(float16BitsToFloat32(0xc100), -2.5);
    assert.equal(float16BitsToFloat32(0x7bff), 65504);
    assert.equal(float16BitsToFloat32(0x0001), 2 ** -24);
    assert.equal(float16BitsToFloat32(0x7c00), Infinity);
    assert.ok(Number.isNaN(float16BitsToFloat32(0x7e00)));
    assert.equal(bfloat16BitsToFloat32(0x3f80), 1);
    assert.equal(bfloat16BitsToFloat32(0xc020), -2.5);
    assert.equal(float32ToFloat16Bits(1), 0x3c00);
    assert.equal(float32ToFloat16Bits(65504), 0x7bff);
    assert.equal(float32ToFloat16Bits(1e6), 0x7c00);
    assert.equal(float32ToFloat16Bits(2 ** -24), 0x0001);
    assert.equal(float32ToFloat16Bits(1 + 2 ** -11), 0x3c00, "tie rounds to even");
    assert.equal(float32ToFloat16Bits(1 + 3 * 2 ** -11), 0x3c02, "tie rounds to even (up)");
    assert.equal(float32ToBfloat16Bits(1), 0x3f80);
    assert.equal(float32ToBfloat16Bits(-2.5), 0xc020);
    for (let h = 0; h < 0x10000; h += 7) {
      const x = float16BitsToFloat32(h);
      if (!Number.isNaN(x)) assert.equal(float32ToFloat16Bits(x), h === 0x8000 ? 0x8000 : h, `half ${h.toString(16)}`);
    }
    assert.deepEqual(Array.from(toFloat32(SAMPLE["c.half"]!).data), [1, -2.5, 65504]);
  });

  it("rejects each kind of malformed file with an error naming the file, tensor and values", () => {
    const ok = { w: { dtype: "F32", shape: [2], data_offsets: [0, 8] } };
    expectError(new Uint8Array(5), /5 bytes, shorter than the 8-byte header length/);
    const big = new Uint8Array(16);
    new DataView(big.buffer).setBigUint64(0, 1000n, true);
    expectError(big, /header length 1000 runs past the end of the file \(16 bytes\)/);
    new DataView(big.buffer).setBigUint64(0, 1n << 40n, true);
    expectError(big, /exceeds the 100 MB limit/);
    expectError(handMade(null, f32bytes(1, 2), "{not json"), /not valid UTF-8 JSON/);
    expectError(handMade(null, f32bytes(1, 2), "[1,2]"), /not a JSON object/);
    expectError(handMade({ w: { shape: [2], data_offsets: [0, 8] } }, f32bytes(1, 2)), /tensor "w": missing dtype/);
    expectError(handMade({ w: { dtype: "Q7", shape: [2], data_offsets: [0, 8] } }, f32bytes(1, 2)), /tensor "w": unsupported dtype "Q7"/);
    expectError(handMade({ w: { dtype: "F32", shape: [-2], data_offsets: [0, 8] } }, f32bytes(1, 2)), /tensor "w": shape must be a list of non-negative integers/);
    expectError(handMade({ w: { dtype: "F32", shape: [2], data_offsets: [0] } }, f32bytes(1, 2)), /tensor "w": data_offsets must be \[begin, end\]/);
    expectError(handMade({ w: { dtype: "F32", shape: [2], data_offsets: [8, 0] } }, f32bytes(1, 2)), /end 0 < begin 8/);
    expectError(handMade({ w: { dtype: "F32", shape: [2], data_offsets: [0, 12] } }, f32bytes(1, 2)), /run past the data section \(8 bytes\)/);
    expectError(handMade({ w: { dtype: "F32", shape: [3], data_offsets: [0, 8] } }, f32bytes(1, 2)), /tensor "w": 8 bytes for shape \[3\] of F32, expected 12/);
    expectError(handMade({ w: { dtype: "F32", shape: [2], data_offsets: [0, 8] }, v: { dtype: "F32", shape: [1], data_offsets: [4, 8] } }, f32bytes(1, 2)), /overlap/);
    expectError(handMade({ w: { dtype: "F32", shape: [1], data_offsets: [4, 8] } }, f32bytes(1, 2)), /gap in the data section before offset 4/);
    expectError(handMade(ok, f32bytes(1, 2, 3)), /4 trailing bytes not covered/);
    expectError(handMade({ __metadata__: { n: 3 }, ...ok }, f32bytes(1, 2)), /__metadata__\["n"\] must be a string/);
    assert.throws(() => parseSafetensors(handMade(ok, f32bytes(1, 2)), "x.safetensors").get("nope"), /x.safetensors: no tensor named "nope"/);
  });

  it("randomized corruption: every mutation either parses consistently or raises SafetensorsError", () => {
    const valid = serializeSafetensors(SAMPLE, { format: "pt" });
    const rand = seededRandom(2024);
    const pick = (n: number) => Math.floor(rand() * n);
    let rejected = 0;
    for (let trial = 0; trial < 400; trial++) {
      let bytes = valid.slice();
      const kind = trial % 5;
      if (kind === 0) for (let k = 0; k < 1 + pick(4); k++) bytes[8 + pick(200)] = pick(256); // header bytes
      else if (kind === 1) bytes = bytes.slice(0, pick(bytes.length)); // truncation
      else if (kind === 2) new DataView(bytes.buffer).setBigUint64(0, BigInt(pick(bytes.length * 2)), true); // header length
      else if (kind === 3) bytes.set(Uint8Array.from({ length: 1 + pick(16) }, () => pick(256)), pick(bytes.length - 16)); // garbage overwrite
      else bytes = Uint8Array.from([...bytes.slice(0, 8 + pick(300)), ...Array.from({ length: pick(30) }, () => pick(256)), ...bytes.slice(8 + pick(300))]);
      try {
        const f = parseSafetensors(bytes, "fuzz");
        for (const name of f.names()) {
          const t = f.get(name);
          assert.equal(t.data.length, t.shape.reduce((a, b) => a * b, 1), `${name} data matches shape`);
        }
      } catch (e) {
        assert.ok(e instanceof SafetensorsError, `trial ${trial}: ${(e as Error).constructor.name}: ${(e as Error).message}`);
        rejected++;
      }
    }
    assert.ok(rejected > 300, `most corruptions are detected (${rejected}/400)`);
  });

  it("writes atomically: a failed write leaves the old file intact and no temp files", async () => {
    const dir = tmp();
    const path = join(dir, "model.safetensors");
    await writeSafetensors(path, SAMPLE);
    const before = readFileSync(path);
    const bad = { w: { dtype: "float32", shape: [4], data: new Float32Array(3) } as Tensor };
    await assert.rejects(writeSafetensors(path, bad), /tensor "w": 12 bytes of data for shape \[4\]/);
    assert.deepEqual(readFileSync(path), before);
    assert.deepEqual(readdirSync(dir), ["model.safetensors"]);
    assert.equal((await readSafetensors(path)).get("a.weight").shape[1], 3);
  });

  it("writes and reads sharded checkpoints through the index", async () => {
    const dir = tmp();
    const tensors = Object.fromEntries(Array.from({ length: 6 }, (_, i) => [`layer.${i}.weight`, { dtype: "float32", shape: [16], data: Float32Array.from({ length: 16 }, (_, j) => i * 100 + j) } as Tensor]));
    const files = await writeShardedSafetensors(dir, tensors, { maxShardBytes: 150 });
    assert.ok(files.length >= 3, `${files.length} shards`);
    assert.equal(files[0], `model-00001-of-${String(files.length).padStart(5, "0")}.safetensors`);
    const index = JSON.parse(readFileSync(join(dir, "model.safetensors.index.json"), "utf8"));
    assert.equal(index.metadata.total_size, 6 * 64);
    const w = await loadSafetensorsWeights(dir);
    assert.equal(w.names().length, 6);
    assert.equal((w.get("layer.5.weight").data as Float32Array)[3], 503);
    writeFileSync(join(dir, "model.safetensors.index.json"), JSON.stringify({ weight_map: { "layer.0.weight": "missing.safetensors" } }));
    await assert.rejects(readShardedSafetensors(dir), /missing.safetensors: ENOENT/);
    writeFileSync(join(dir, "model.safetensors.index.json"), "{");
    await assert.rejects(readShardedSafetensors(dir), /model.safetensors.index.json: /);
    await assert.rejects(loadSafetensorsWeights(tmp()), /no model.safetensors or model.safetensors.index.json found/);
  });
});
