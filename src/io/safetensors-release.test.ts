// ReadOptions.separate (a buffer per tensor) and release(name): what a quantized model uses to
// drop the float32 weights it quantized.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { type Tensor } from "../ir/tensor.js";
import { readSafetensors, readShardedSafetensors, SafetensorsError, writeSafetensors, writeShardedSafetensors } from "./safetensors.js";

const dir = mkdtempSync(join(tmpdir(), "peftjs-st-release-"));
after(() => rmSync(dir, { recursive: true, force: true }));

const TENSORS: Record<string, Tensor> = {
  "a.weight": { dtype: "float32", shape: [2, 3], data: Float32Array.of(1, 2, 3, 4, 5, -6.5) },
  "b.half": { dtype: "float16", shape: [3], data: Uint16Array.of(0x3c00, 0xc100, 0x7bff) },
  "c.ids": { dtype: "int64", shape: [2], data: BigInt64Array.of(-5n, 1n << 40n) },
  "d.u8": { dtype: "uint8", shape: [3], data: Uint8Array.of(0, 1, 255) },
};
const values = (t: Tensor) => Array.from(t.data as ArrayLike<number | bigint>);

describe("safetensors: separate buffers and release", () => {
  it("separate: every tensor in a buffer of its own, same values as one buffer", async () => {
    const path = join(dir, "m.safetensors");
    await writeSafetensors(path, TENSORS);
    const whole = await readSafetensors(path);
    const apart = await readSafetensors(path, { separate: true });
    assert.ok(whole.bytes && !apart.bytes);
    const buffers = new Set<ArrayBufferLike>();
    for (const name of Object.keys(TENSORS)) {
      const t = apart.get(name);
      assert.deepEqual(values(t), values(whole.get(name)), name);
      assert.equal(t.data.buffer === whole.get(name).data.buffer, false);
      buffers.add(t.data.buffer);
      // The buffer holds this tensor and at most 7 bytes of alignment padding.
      assert.ok(t.data.buffer.byteLength - t.data.byteLength < 8, `${name}: buffer of ${t.data.buffer.byteLength} bytes for ${t.data.byteLength}`);
    }
    assert.equal(buffers.size, Object.keys(TENSORS).length);
    // Views into one buffer for the default read.
    assert.equal(new Set(Object.keys(TENSORS).map((n) => whole.get(n).data.buffer)).size, 1);
  });

  for (const separate of [false, true]) {
    it(`release (separate: ${separate}): get and getBytes of it throw, the rest and the layout stay`, async () => {
      const path = join(dir, "m.safetensors");
      await writeSafetensors(path, TENSORS);
      const f = await readSafetensors(path, { separate });
      f.release("a.weight");
      assert.throws(() => f.get("a.weight"), (e: unknown) => e instanceof SafetensorsError && /tensor "a\.weight": its data was released/.test(e.message));
      assert.throws(() => f.getBytes("a.weight"), /its data was released/);
      assert.ok(f.has("a.weight"));
      assert.deepEqual(f.tensors.get("a.weight")!.shape, [2, 3]);
      assert.deepEqual(values(f.get("c.ids")), [-5n, 1n << 40n]);
      assert.throws(() => f.release("nope"), /tensor "nope": no such tensor/);
    });
  }

  it("release on a sharded checkpoint releases it in its shard", async () => {
    const sharded = join(dir, "sharded");
    await writeShardedSafetensors(sharded, TENSORS, { maxShardBytes: 24 });
    const w = await readShardedSafetensors(sharded, undefined, { separate: true });
    assert.ok(w.shards.size > 1);
    w.release("c.ids");
    assert.throws(() => w.get("c.ids"), /its data was released/);
    assert.deepEqual(values(w.get("d.u8")), [0, 1, 255]);
    assert.throws(() => w.release("nope"), /tensor "nope"/);
  });
});
