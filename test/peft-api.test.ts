// The PeftModel API beyond the conformance suite: adapter management, layer ablation, combined
// adapters, the parameter report and gradient checkpointing through adapters.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { seededRandom } from "../src/ir/random.js";
import { loadModel, PretrainedModel } from "../src/models/pretrained.js";
import { PeftModel } from "../src/peft/peft-model.js";
import { compile } from "../src/runtime/session.js";
import { TrainStep } from "../src/train/train-step.js";
import { int64 } from "../src/ir/tensor.js";

const FIXTURES = join(import.meta.dirname, "fixtures", "models");
const lora = (r: number) => ({ peft_type: "LORA", r, lora_alpha: 2 * r, target_modules: ["query", "value"] });

function perturb(peft: PeftModel, name: string, seed: number): void {
  const rand = seededRandom(seed);
  for (const t of peft.adapters.get(name)!.tensors.values()) (t.data as Float32Array).forEach((v, i, d) => (d[i] = v + (rand() - 0.5) * 0.3));
}

async function logits(peft: PeftModel, base: PretrainedModel): Promise<Float32Array> {
  const step = await compile({ l: peft.build().outputs.last_hidden_state }, { threads: 1 });
  const out = await step.run(peft.prepareInputs(base.tokenizer!.encodeBatch(["the cat sat on the mat", "a dog"])));
  await step.release();
  return out.l!.data as Float32Array;
}
const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);

describe("PeftModel API", () => {
  it("adds, switches, combines and deletes adapters; disabling restores the base", async () => {
    const base = await loadModel(join(FIXTURES, "bert-tiny"));
    const peft = PeftModel.create(base, lora(2), "a");
    peft.addAdapter("b", lora(3));
    perturb(peft, "a", 1);
    perturb(peft, "b", 2);
    const baseOut = await peft.withAdaptersDisabled(() => logits(peft, base));
    const a = await logits(peft, base);
    assert.ok(maxDiff(a, baseOut) > 1e-3, "adapter a changes the output");
    peft.setAdapter(["a", "b"]);
    const both = await logits(peft, base);

    peft.addWeightedAdapter(["a", "b"], [1, 1], "cat", { combination: "cat" });
    peft.setAdapter("cat");
    assert.ok(maxDiff(await logits(peft, base), both) < 1e-5, "cat equals both adapters active");
    peft.addWeightedAdapter(["a", "b"], [1, 1], "svd", { combination: "svd", svdRank: 5 });
    peft.setAdapter("svd");
    assert.ok(maxDiff(await logits(peft, base), both) < 1e-4, "full-rank svd equals both adapters active");
    peft.addWeightedAdapter(["a"], [1], "lin", { combination: "linear" });
    peft.setAdapter("lin");
    assert.ok(maxDiff(await logits(peft, base), a) < 1e-5, "linear with one adapter and weight 1 equals it");
    assert.throws(() => peft.addWeightedAdapter(["a", "b"], [1, 1], "x", { combination: "linear" }), /same r/);

    peft.setAdapter("a");
    peft.disableAdapterLayers(0, base.config.layers - 1);
    assert.ok(maxDiff(await logits(peft, base), baseOut) < 1e-6, "adapters removed from every layer = base");
    peft.disableAdapterLayers(1, 1);
    peft.enableAllAdapterLayers();
    peft.disableAdapterLayers(1, 1);
    const partial = await logits(peft, base);
    assert.ok(maxDiff(partial, a) > 1e-4 && maxDiff(partial, baseOut) > 1e-4, "removing layer 1's adapter changes the output, but not back to base");
    peft.enableAllAdapterLayers();

    // merge() keeps the adapter: merged equals unmerged, unmerge() restores the hooked graph.
    peft.merge({ safe: true });
    assert.ok(peft.isMerged);
    assert.ok(maxDiff(await logits(peft, base), a) < 1e-5, "merged equals unmerged");
    assert.throws(() => peft.merge(), /already merged/);
    peft.unmerge();
    assert.ok(maxDiff(await logits(peft, base), a) < 1e-6, "unmerged again");

    peft.deleteAdapter("b");
    assert.deepEqual(peft.activeAdapters, ["a"]);
    assert.throws(() => peft.setAdapter("b"), /no adapter "b"; adapters: a, cat, svd, lin/);
  });

  it("prints the trainable-parameter report in PEFT's format", async () => {
    const base = await loadModel(join(FIXTURES, "bert-tiny"));
    const lines: string[] = [];
    PeftModel.create(base, lora(2)).printTrainableParameters((s) => lines.push(s));
    // 2 layers x 2 modules x r (in + out) = 2 * 2 * 2 * 64; the base has 24,542 - head weights.
    const all = [...base.modules().params.values()].reduce((a, s) => a + s.reduce((x, y) => x * y, 1), 0) + 512;
    assert.deepEqual(lines, [`trainable params: 512 || all params: ${all.toLocaleString("en-US")} || trainable%: ${((100 * 512) / all).toFixed(4)}`]);
    // Full fine-tuning trains every parameter, the head included, in place: 100%.
    const head = await loadModel(join(FIXTURES, "bert-tiny"), { task: "sequence-classification" });
    const full = PeftModel.create(head, { peft_type: "FULL" }).countParameters();
    assert.equal(full.trainable, full.all);
  });

  it("gradient checkpointing through adapters gives the same loss and gradients", async () => {
    const base = await loadModel(join(FIXTURES, "bert-tiny"), { task: "sequence-classification" });
    const peft = PeftModel.create(base, lora(2));
    perturb(peft, "default", 3);
    const feeds = peft.prepareInputs(base.tokenizer!.encodeBatch(["the cat sat on the mat", "a dog"]), { labels: int64([2], [1, 2]) });
    const run = async (gradientCheckpointing: boolean) => {
      const step = await TrainStep.create(peft.build({ withLoss: true, gradientCheckpointing }).outputs.loss!, { session: { threads: 1 } });
      const r = await step.run(feeds);
      await step.release();
      return r;
    };
    const [plain, ckpt] = [await run(false), await run(true)];
    assert.ok(Math.abs(plain.loss - ckpt.loss) < 1e-6);
    for (const [k, g] of plain.grads) assert.ok(maxDiff(g.data as Float32Array, ckpt.grads.get(k)!.data as Float32Array) < 1e-5, k);
  });
});

describe("class names saved with an adapter", () => {
  it("labels.json round-trips, names the merged checkpoint's classes, and a malformed one is a named error", async () => {
    const base = await loadModel(join(FIXTURES, "bert-tiny"), { task: "sequence-classification" });
    const peft = PeftModel.create(base, lora(2));
    assert.deepEqual(peft.labelNames(), ["neg", "neu", "pos"], "the base config's id2label until the adapter has its own");
    peft.labels.set("default", ["ham", "spam", "eggs"]);
    const dir = mkdtempSync(join(tmpdir(), "peftjs-labels-"));
    await peft.save(dir);
    const loaded = await PeftModel.load(base, dir);
    assert.deepEqual(loaded.labelNames(), ["ham", "spam", "eggs"]);
    assert.deepEqual(loaded.mergeAndUnload().config.id2label, { 0: "ham", 1: "spam", 2: "eggs" });
    writeFileSync(join(dir, "labels.json"), JSON.stringify({ id2label: { 0: "ham", 2: "spam" } }));
    const again = new PeftModel(base);
    await assert.rejects(again.loadAdapter(dir), /labels\.json: id2label must map 0\.\.1 to class names/);
    assert.equal(again.adapters.size, 0, "a failed load adds no adapter");
    // transformers' placeholder names (LABEL_0, LABEL_1, ...) name nothing.
    const raw = JSON.parse(readFileSync(join(FIXTURES, "bert-tiny", "config.json"), "utf8")) as Record<string, unknown>;
    const unnamed = PretrainedModel.fromConfig({ ...raw, id2label: { 0: "LABEL_0", 1: "LABEL_1" } }, undefined, "sequence-classification", "unnamed");
    assert.equal(new PeftModel(unnamed).labelNames(), undefined);
  });
});

describe("two-stage training", () => {
  it("a frozen first adapter stays fixed while a second one trains on top", async () => {
    const base = await loadModel(join(FIXTURES, "bert-tiny"), { task: "sequence-classification" });
    const peft = PeftModel.create(base, lora(2), "general");
    perturb(peft, "general", 5);
    peft.addAdapter("task", { peft_type: "BOTTLENECK", variant: "par_bn", reduction_factor: 4 });
    peft.freezeAdapter("general");
    peft.setAdapter(["general", "task"]);
    const before = [...peft.adapters.get("general")!.tensors.values()].map((t) => Float32Array.from(t.data as Float32Array));
    const step = await TrainStep.create(peft.build({ withLoss: true }).outputs.loss!, { session: { threads: 1 } });
    // Graph parameters are named <adapter>/<key> by PeftModel (src/peft/adapter-state.ts paramName).
    assert.ok(step.params.every((p) => !p.name.startsWith("general/")), "only the task adapter (and its head) is trained");
    assert.ok(step.params.some((p) => p.name.startsWith("task/")));
    const { AdamW } = await import("../src/train/optimizers.js");
    const opt = new AdamW(step.params, { lr: 0.01 });
    const feeds = peft.prepareInputs(base.tokenizer!.encodeBatch(["the cat sat", "money"]), { labels: int64([2], [1, 0]) });
    for (let i = 0; i < 3; i++) opt.step((await step.run(feeds)).grads);
    [...peft.adapters.get("general")!.tensors.values()].forEach((t, i) => assert.deepEqual(Array.from(t.data as Float32Array), Array.from(before[i]!)));
    await step.release();
  });
});

describe("AdaLoRA rank allocation", () => {
  it("prunes to the target budget on schedule, saves the kept triplets and reloads them", async () => {
    const base = await loadModel(join(FIXTURES, "bert-tiny"), { task: "sequence-classification" });
    const peft = PeftModel.create(base, { peft_type: "ADALORA", init_r: 4, target_r: 2, lora_alpha: 8, target_modules: ["query", "value"], total_step: 6, tinit: 1, tfinal: 2, deltaT: 1 });
    const adapter = peft.adapters.get("default") as import("../src/tuners/adalora/index.js").AdaLoraAdapter;
    const feeds = peft.prepareInputs(base.tokenizer!.encodeBatch(["the cat sat on the mat", "a dog", "the river bank"]), { labels: int64([3], [1, 2, 0]) });
    const step = await TrainStep.create(peft.build({ withLoss: true, training: true }).outputs.loss!, { session: { threads: 1 } });
    const { AdamW } = await import("../src/train/optimizers.js");
    const opt = new AdamW(step.params, { lr: 0.01, weightDecay: 0 });
    const budgets: number[] = [];
    for (let s = 1; s <= 6; s++) {
      const r = await step.run(feeds);
      opt.step(r.grads);
      peft.afterStep(s, r.grads);
      budgets.push(adapter.budget);
    }
    await step.release();
    // 4 modules x init_r 4 = 16 at first, down to 4 x target_r 2 = 8 in the final phase.
    assert.equal(budgets[0], 16);
    assert.deepEqual(budgets.slice(-2), [8, 8]);
    assert.ok(budgets.every((b, i) => i === 0 || b <= budgets[i - 1]!), `non-increasing budget ${budgets}`);
    const pattern = adapter.config.rank_pattern!;
    assert.equal(Object.values(pattern).flat().filter(Boolean).length, 8);
    const zeroed = [...adapter.tensors].filter(([k]) => k.endsWith(".lora_E")).flatMap(([, t]) => Array.from(t.data as Float32Array)).filter((v) => v === 0).length;
    assert.ok(zeroed >= 8, "pruned singular values are zero");

    const before = await logits(peft, base);
    const dir = (await import("node:fs")).mkdtempSync(join((await import("node:os")).tmpdir(), "peftjs-adalora-"));
    await peft.save(dir);
    const { readSafetensors } = await import("../src/io/safetensors.js");
    const file = await readSafetensors(join(dir, "adapter_model.safetensors"));
    const ranks = file.names().filter((n) => n.endsWith(".lora_E")).map((n) => file.tensors.get(n)!.shape[0]!);
    assert.equal(ranks.reduce((a, b) => a + b, 0), 8, "only the kept triplets are saved");
    const loaded = await PeftModel.load(base, dir);
    assert.ok(maxDiff(await logits(loaded, base), before) < 1e-5, "reloaded outputs");
  });
});
