// INT8 adapter files, a peftjs extension for deployment (~4x smaller downloads): every 2-D float
// tensor of the adapter stored as symmetric int8 with one float32 scale per channel along its
// shorter side (per rank channel of lora_A [r, in] and lora_B [out, r]: r scales each, where one
// per row of lora_B would cost half as much as its values), loaded back by dequantizing. Python PEFT cannot read these folders; float32 stays the default.
//
// Layout, next to an ordinary adapter folder's other files:
// - adapter_config.json: PEFT's config plus `"peftjs_weights": "int8"` (INT8_CONFIG_FLAG);
// - adapter_model.int8.safetensors (INT8_ADAPTER_WEIGHTS), not adapter_model.safetensors, so that
//   PEFT's from_pretrained stops with "can't find weights" instead of loading int8 values as floats:
//   `<key>` int8 [rows, cols] and `<key>.scale` float32 [rows] (value = int8 * scale[row]) or,
//   when cols < rows, [cols] (value = int8 * scale[col]); other tensors (vectors, tiny matrices)
//   unchanged in float32.
import { copyFile, join, mkdir, readdir, readFile } from "../platform/host.js";
import { readSafetensors, writeFileAtomic, writeSafetensors } from "../io/safetensors.js";
import { dequantizeInt8, quantizeInt8 } from "../ir/quantize.js";
import { type Tensor } from "../ir/tensor.js";
import { AdapterConfigError } from "../tuners/tuner.js";

export const INT8_ADAPTER_WEIGHTS = "adapter_model.int8.safetensors";
/** The adapter_config.json field that marks an INT8 adapter folder (value "int8"). */
export const INT8_CONFIG_FLAG = "peftjs_weights";
const SCALE_SUFFIX = ".scale";
/** Matrices smaller than this stay float32 (a scale per row would save nothing). */
const MIN_ELEMENTS = 64;

/** Whether an adapter config (as read from adapter_config.json) marks an INT8 adapter folder. */
export function isInt8AdapterConfig(json: Record<string, unknown>): boolean {
  return INT8_CONFIG_FLAG in json;
}

/** The adapter's tensors with 2-D float32 ones quantized to int8 + per-row scales. */
export function quantizeAdapterTensors(tensors: ReadonlyMap<string, Tensor>): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  for (const [key, t] of tensors) {
    if (t.dtype !== "float32" || t.shape.length !== 2 || t.data.length < MIN_ELEMENTS) {
      out.set(key, t);
      continue;
    }
    const axis = t.shape[1]! < t.shape[0]! ? 1 : 0;
    const q = quantizeInt8(t, axis);
    out.set(key, { dtype: "int8", shape: t.shape, data: q.q });
    out.set(key + SCALE_SUFFIX, { dtype: "float32", shape: [q.scale.length], data: q.scale });
  }
  return out;
}

/** Inverse of quantizeAdapterTensors: int8 tensors dequantized with their scales. */
export function dequantizeAdapterTensors(tensors: ReadonlyMap<string, Tensor>, source: string): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  for (const [key, t] of tensors) {
    if (key.endsWith(SCALE_SUFFIX) && tensors.get(key.slice(0, -SCALE_SUFFIX.length))?.dtype === "int8") continue;
    if (t.dtype !== "int8") {
      out.set(key, t);
      continue;
    }
    const scale = tensors.get(key + SCALE_SUFFIX);
    const [rows, cols] = t.shape as [number, number];
    const expected = cols < rows ? cols : rows;
    if (t.shape.length !== 2 || !scale || scale.dtype !== "float32" || scale.data.length !== expected) {
      throw new AdapterConfigError(`${source}: int8 tensor "${key}" [${t.shape.join(", ")}] needs a float32 "${key}${SCALE_SUFFIX}" of ${expected} scales, found ${scale ? `${scale.dtype}[${scale.shape.join(", ")}]` : "none"}`);
    }
    out.set(key, dequantizeInt8({ q: t.data as Int8Array, scale: scale.data as Float32Array, shape: [rows, cols], channelAxis: cols < rows ? 1 : 0 }));
  }
  return out;
}

/**
 * Read an INT8 adapter folder: its config without the peftjs flag (what PEFT's config class
 * holds) and its tensors dequantized to float32.
 */
export async function readInt8Adapter(dir: string, config: Record<string, unknown>): Promise<{ config: Record<string, unknown>; tensors: Map<string, Tensor> }> {
  const configPath = join(dir, "adapter_config.json");
  const flag = config[INT8_CONFIG_FLAG];
  if (flag !== "int8") throw new AdapterConfigError(`${configPath}: ${INT8_CONFIG_FLAG} must be "int8" (an INT8 adapter written by peftjs quantize-adapter), got ${JSON.stringify(flag)}`);
  const { [INT8_CONFIG_FLAG]: _, ...rest } = config;
  const path = join(dir, INT8_ADAPTER_WEIGHTS);
  const file = await readSafetensors(path);
  return { config: rest, tensors: dequantizeAdapterTensors(new Map(file.names().map((n) => [n, file.get(n)])), path) };
}

/**
 * Write an INT8 copy of the float adapter folder `src` into `dst` (`peftjs quantize-adapter`):
 * the flagged config, the int8 weights, and the folder's other files (labels.json, README.md).
 *
 * @example
 *   const { bytesBefore, bytesAfter } = await quantizeAdapterDir("out/adapter", "out/adapter-int8");
 *   const peft = await PeftModel.load(base, "out/adapter-int8"); // dequantized on load
 */
export async function quantizeAdapterDir(src: string, dst: string): Promise<{ bytesBefore: number; bytesAfter: number; tensors: number; quantized: number }> {
  const configPath = join(src, "adapter_config.json");
  const config = JSON.parse(await readFile(configPath, "utf8")) as Record<string, unknown>;
  if (isInt8AdapterConfig(config)) throw new AdapterConfigError(`${configPath}: already an INT8 adapter (${INT8_CONFIG_FLAG} is set)`);
  const weightsPath = join(src, "adapter_model.safetensors");
  const file = await readSafetensors(weightsPath);
  const tensors = new Map(file.names().map((n) => [n, file.get(n)]));
  const quantized = quantizeAdapterTensors(tensors);
  await mkdir(dst, { recursive: true });
  await writeSafetensors(join(dst, INT8_ADAPTER_WEIGHTS), quantized, { format: "pt", peftjs_weights: "int8" });
  await writeFileAtomic(join(dst, "adapter_config.json"), JSON.stringify({ ...config, [INT8_CONFIG_FLAG]: "int8" }, null, 2));
  for (const f of await readdir(src)) {
    if (f !== "adapter_config.json" && f !== "adapter_model.safetensors" && /\.(json|md|txt)$/.test(f)) await copyFile(join(src, f), join(dst, f));
  }
  const size = (m: ReadonlyMap<string, Tensor>) => [...m.values()].reduce((a, t) => a + t.data.byteLength, 0);
  return { bytesBefore: size(tensors), bytesAfter: size(quantized), tensors: tensors.size, quantized: [...quantized.values()].filter((t) => t.dtype === "int8").length };
}
