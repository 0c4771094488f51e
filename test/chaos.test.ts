// Chaos: `peftjs train` killed (SIGKILL) at random moments, over and over, including while it
// writes checkpoints (one per step here) and the final adapter. After every kill the output folder
// must hold only complete sets (an adapter there loads strictly and is the finished run's own),
// and resuming must end at the uninterrupted run's adapter, bit for bit (dropout on).
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, watch, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { seededRandom } from "../src/ir/random.js";
import { readSafetensors } from "../src/io/safetensors.js";
import { loadModel } from "../src/models/pretrained.js";
import { PeftModel } from "../src/peft/peft-model.js";
import { FIXTURES, RECORDS } from "./support/tiny-training.js";

const BIN = join(import.meta.dirname, "..", "bin", "peftjs.js");
const BERT = join(FIXTURES, "bert-tiny");
const KILLS = 6;

/** When to kill a run: at the n-th change in its output folder, or when an entry whose name starts with `name` appears. */
type Trigger = { event: number } | { name: string };

/**
 * Run the CLI with its output folder `output` watched; SIGKILL it when `trigger` fires. Resolves
 * with how it ended and how many changes the folder saw.
 */
function train(args: string[], output: string, trigger?: Trigger): Promise<{ code: number | null; killed: boolean; events: number; out: string }> {
  mkdirSync(output, { recursive: true });
  const child = spawn(process.execPath, [BIN, "train", ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr.on("data", (d: Buffer) => (out += d.toString()));
  let events = 0;
  const watcher = watch(output, (_, name) => {
    events++;
    // A name trigger fires when such an entry appears (not when a leftover one is cleaned up).
    if (trigger && ("event" in trigger ? events === trigger.event : name?.startsWith(trigger.name) && existsSync(join(output, name)))) child.kill("SIGKILL");
  });
  return new Promise((resolve) => {
    child.on("exit", (code, signal) => {
      watcher.close();
      resolve({ code, killed: signal === "SIGKILL", events, out });
    });
  });
}

/** Every tensor of an adapter folder, by key. */
async function adapterTensors(dir: string): Promise<Record<string, number[]>> {
  const st = await readSafetensors(join(dir, "adapter_model.safetensors"));
  return Object.fromEntries(st.names().sort().map((n) => [n, Array.from(st.get(n).data as Float32Array)]));
}

/** The adapter folder loads strictly onto the base model, and its config's rank matches its weights. */
async function assertLoadable(dir: string): Promise<void> {
  const config = JSON.parse(readFileSync(join(dir, "adapter_config.json"), "utf8")) as { r: number };
  const labels = JSON.parse(readFileSync(join(dir, "labels.json"), "utf8")) as { id2label: Record<string, string> };
  const base = await loadModel(BERT, { task: "sequence-classification" });
  (base.config as { numLabels: number }).numLabels = Object.keys(labels.id2label).length;
  await PeftModel.load(base, dir);
  const st = await readSafetensors(join(dir, "adapter_model.safetensors"));
  for (const n of st.names()) if (n.includes("lora_A")) assert.equal(st.get(n).shape[0], config.r, `${dir}: ${n} against r=${config.r}`);
}

describe("chaos: train killed at random points", () => {
  it(`${KILLS} SIGKILLs (during steps and saves) never leave a broken output, and resuming ends bit for bit at the uninterrupted adapter`, async () => {
    const dir = mkdtempSync(join(tmpdir(), "peftjs-chaos-"));
    const data = join(dir, "train.jsonl");
    writeFileSync(data, RECORDS.map((r) => JSON.stringify(r)).join("\n"));
    // --eval-every 1: an evaluation and a checkpoint after every step, so kills often land in saves;
    // --grad-accum 2 over an odd number of batches an epoch: kills land between micro-batches, and
    // each epoch ends on a step of one batch.
    const args = (output: string) => ["--model", BERT, "--data", data, "--output", output, "--epochs", "3", "--batch-size", "5", "--grad-accum", "2", "--lr", "0.01", "--threads", "1", "--eval-every", "1", "--r", "4", "--target-modules", "query,value", "--max-length", "32"];
    const reference = await train(args(join(dir, "reference")), join(dir, "reference"));
    assert.equal(reference.code, 0, reference.out);
    const expected = await adapterTensors(join(dir, "reference", "adapter"));

    const out = join(dir, "chaos");
    const rand = seededRandom(2024);
    // At random changes (each run going on from the last one's checkpoint, a third of the run at
    // most), then at the critical moments: between the two renames that swap a checkpoint in
    // (checkpoint-last briefly absent), and while the final adapter is staged.
    const triggers: Trigger[] = [];
    while (triggers.length < KILLS - 2) triggers.push({ event: 1 + Math.floor((rand() * reference.events) / 3) });
    triggers.push({ name: "checkpoint-last.old-" }, { name: "adapter.tmp-" });
    let kills = 0;
    for (const [i, trigger] of triggers.entries()) {
      const r = await train([...args(out), ...(i > 0 ? ["--resume"] : [])], out, trigger);
      assert.ok(r.killed || r.code === 0, `run ${i} failed by itself:\n${r.out}`);
      if (r.killed) kills++;
      if (existsSync(join(out, "adapter"))) {
        // Only the final step writes adapter/, so any adapter there is the finished run's.
        await assertLoadable(join(out, "adapter"));
        assert.deepEqual(await adapterTensors(join(out, "adapter")), expected, `run ${i}: adapter/ differs from the uninterrupted run's`);
      }
      // A kill between the renames leaves checkpoint-last absent; the next run restores it.
      if (existsSync(join(out, "checkpoint-last"))) await assertLoadable(join(out, "checkpoint-last"));
    }
    assert.ok(kills >= KILLS / 2, `only ${kills} of ${KILLS} runs were killed`);
    const last = await train([...args(out), "--resume"], out);
    assert.equal(last.code, 0, last.out);
    assert.deepEqual(await adapterTensors(join(out, "adapter")), expected, "resumed through the kills, the adapter is the uninterrupted run's");
    assert.deepEqual(readdirSync(out).filter((f) => f.includes(".tmp-") || f.includes(".old-")), [], "no temp folders left");
    // Each step is logged once, as in the uninterrupted run.
    const steps = (d: string) => readFileSync(join(d, "metrics.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as { step: number; loss?: number }).filter((e) => e.loss !== undefined).map((e) => [e.step, e.loss]);
    assert.deepEqual(steps(out), steps(join(dir, "reference")));
  });
});
