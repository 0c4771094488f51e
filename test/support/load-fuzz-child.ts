// Child process of test/load-fuzz.test.ts: corrupts a model folder and an adapter folder at random
// (config.json, adapter_config.json, both safetensors files), runs `peftjs info --adapter` on each
// corruption, and prints one JSON line per run. A separate process, so that a hang is caught by
// the parent's timeout instead of blocking the test runner.
import { createHash } from "node:crypto";
import { cpSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { main } from "../../src/cli/main.js";
import { seededRandom } from "../../src/ir/random.js";

const [modelSrc, adapterSrc, seedText, runsText] = process.argv.slice(2) as [string, string, string, string];
const rand = seededRandom(Number(seedText));
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
const NASTY: unknown[] = [null, -1, 0, 1.5, 1e9, 1e300, -1e9, "", "x", "../../etc", [], {}, [1, 2], true, "LORA", "PREFIX_TUNING", 2 ** 53, "(.*.*)*z", "q(?=v)"];

/** A JSON file with one field changed, removed or added, or its text cut or garbled. */
function corruptJson(text: string): string | Uint8Array {
  const r = rand();
  if (r < 0.15) return text.slice(0, Math.floor(rand() * text.length));
  if (r < 0.25) return Uint8Array.from(Buffer.from(text), (b) => (rand() < 0.02 ? Math.floor(rand() * 256) : b));
  const obj = JSON.parse(text) as Record<string, unknown>;
  const keys = Object.keys(obj);
  if (r < 0.4) delete obj[pick(keys)];
  else if (r < 0.5) obj[`${pick(keys)}_x`] = pick(NASTY);
  else obj[pick(keys)] = pick(NASTY);
  return JSON.stringify(obj);
}

/** A safetensors file with its length prefix, header or data damaged, or cut short. */
function corruptSafetensors(bytes: Uint8Array): Uint8Array {
  const out = Uint8Array.from(bytes);
  const view = new DataView(out.buffer);
  const headerLength = Number(view.getBigUint64(0, true));
  const r = rand();
  if (r < 0.2) return out.subarray(0, Math.floor(rand() * out.length));
  if (r < 0.35) {
    view.setBigUint64(0, BigInt(pick([0, 1, headerLength - 1, headerLength + 1, out.length, 2 ** 40, 2 ** 63])), true);
    return out;
  }
  if (r < 0.75) {
    // Inside the header: digits and punctuation swapped for others (shapes, offsets, dtypes, names).
    for (let n = 0; n < 1 + Math.floor(rand() * 4); n++) {
      const i = 8 + Math.floor(rand() * headerLength);
      out[i] = pick([...Buffer.from('0123456789[],:"{}9-.eF')]);
    }
    return out;
  }
  for (let n = 0; n < 8; n++) out[8 + headerLength + Math.floor(rand() * (out.length - 8 - headerLength))] = Math.floor(rand() * 256);
  return out;
}

const digest = (dir: string) => {
  const h = createHash("sha256");
  for (const f of readdirSync(dir).sort()) h.update(f).update(readFileSync(join(dir, f)));
  return h.digest("hex");
};

const baseline = process.memoryUsage().arrayBuffers;
for (let run = 0; run < Number(runsText); run++) {
  const work = mkdtempSync(join(tmpdir(), "peftjs-load-fuzz-"));
  const model = join(work, "model");
  const adapter = join(work, "adapter");
  cpSync(modelSrc, model, { recursive: true });
  cpSync(adapterSrc, adapter, { recursive: true });
  const target = pick([join(model, "config.json"), join(model, "model.safetensors"), join(adapter, "adapter_config.json"), join(adapter, "adapter_model.safetensors")]);
  const original = readFileSync(target);
  writeFileSync(target, target.endsWith(".json") ? corruptJson(original.toString("utf8")) : corruptSafetensors(original));
  const before = [digest(model), digest(adapter)];
  let err = "";
  let code: number;
  try {
    code = await main(["info", model, "--adapter", adapter], { out: () => undefined, write: () => undefined, err: (s) => (err += `${s}\n`) });
  } catch (e) {
    code = -1;
    err = `uncaught: ${(e as Error).stack}`;
  }
  const unchanged = digest(model) === before[0] && digest(adapter) === before[1];
  const grew = process.memoryUsage().arrayBuffers - baseline;
  process.stdout.write(`${JSON.stringify({ run, target: target.slice(work.length + 1), code, err, unchanged, grewMiB: Math.round(grew / 2 ** 20) })}\n`);
}
