// Test support for the server tests: adapters made with the library (seeded, so each differs),
// written in PEFT's layout under an adapter root, and the answers `peftjs predict` gives for them.
import { mkdtemp, mkdir, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { seededRandom } from "../src/autodiff/gradcheck.js";
import { loadModel } from "../src/models/pretrained.js";
import { type Task } from "../src/models/task.js";
import { PeftModel, type PeftConfigInput } from "../src/peft/peft-model.js";

export const FIXTURES = join(import.meta.dirname, "fixtures", "models");

export const LORA = { peft_type: "LORA", r: 4, lora_alpha: 8, target_modules: ["query", "value"] } as const;

/** Write adapters `names` (seeded random tensors) for `model` under a new root; returns the root. */
export async function makeAdapters(modelDir: string, task: Task, specs: { name: string; config?: PeftConfigInput; labels?: string[]; seed: number }[], root?: string): Promise<string> {
  root ??= await mkdtemp(join(tmpdir(), "peftjs-serve-"));
  for (const s of specs) {
    const model = await loadModel(modelDir, { task });
    if (s.labels) (model.config as { numLabels: number }).numLabels = s.labels.length;
    const peft = new PeftModel(model);
    // never: the config is checked at run time (parseConfig); the static field check needs a literal.
    peft.addAdapter(s.name, (s.config ?? LORA) as never);
    const rand = seededRandom(s.seed);
    for (const t of peft.adapters.get(s.name)!.tensors.values()) (t.data as Float32Array).forEach((v, i, d) => (d[i] = v + (rand() - 0.5) * 0.5));
    if (s.labels) peft.labels.set(s.name, s.labels);
    await peft.save(root, { adapters: [s.name] });
  }
  return root;
}

/** A folder with broken adapter files under `root`. */
export async function corruptAdapter(root: string, name: string, files: Record<string, string>): Promise<void> {
  await mkdir(join(root, name), { recursive: true });
  for (const [f, text] of Object.entries(files)) await writeFile(join(root, name, f), text);
}

// any: tests read fields of many response shapes; each assertion checks what it reads.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function postJson(url: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: any; headers: Headers }> {
  const res = await fetch(url, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: typeof body === "string" ? body : JSON.stringify(body) });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // not JSON: keep the text
  }
  return { status: res.status, body: parsed, headers: res.headers };
}
