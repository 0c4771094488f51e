// The graphs of the tuner conformance suite (test/tuners.test.ts): every method preset of the
// registry on each architecture family's tiny fixture, as a training step (forward + backward,
// dropout on) and as inference (logits). For the WebGPU checks of test/web-webgpu.test.ts.
import { join } from "node:path";
import { gradients } from "../src/autodiff/gradients.js";
import { type Value } from "../src/ir/graph.js";
import { int64, type Tensor } from "../src/ir/tensor.js";
import { loadModel } from "../src/models/pretrained.js";
import { type Task } from "../src/models/task.js";
import { PeftModel } from "../src/peft/peft-model.js";
import { PRESETS, presetConfig } from "../src/tuners/registry.js";
import { DROPOUT_KEY } from "../src/ir/ops/nn.js";
import { dropoutKey } from "../src/train/train-step.js";

const FIXTURES = join(import.meta.dirname, "fixtures", "models");
export const WEBGPU_ARCHS: readonly { name: string; task: Task }[] = [
  { name: "bert-tiny", task: "sequence-classification" },
  { name: "gpt2-tiny", task: "causal-lm" },
  { name: "llama-tiny", task: "causal-lm" },
];

export interface ConformanceGraph {
  name: string;
  outputs: Record<string, Value>;
  feeds: Record<string, Tensor>;
  /** The feeds' sizes of the inputs' symbolic dimensions (SessionOptions.dims for WebGPU). */
  dims: Record<string, number>;
}

/** The sizes the feeds give the symbolic dimensions of `outputs`' graph inputs. */
function feedDims(outputs: Record<string, Value>, feeds: Record<string, Tensor>): Record<string, number> {
  const dims: Record<string, number> = {};
  for (const [name, v] of Object.values(outputs)[0]!.graph.inputs) {
    const t = feeds[name];
    if (t) v.shape.forEach((d, k) => typeof d === "string" && (dims[d] = t.shape[k]!));
  }
  return dims;
}

/** Test sizes: the presets' prompt lengths cut to 4 virtual tokens. */
const SMALL: Readonly<Record<string, unknown>> = { num_virtual_tokens: 4 };

/** Each preset x architecture as [training graph, inference graph], or the reason it does not build. */
export async function* conformanceGraphs(include: (preset: string, arch: string) => boolean = () => true): AsyncGenerator<ConformanceGraph | { name: string; skipped: string }> {
  for (const arch of WEBGPU_ARCHS) {
    if (!Object.keys(PRESETS).some((p) => include(p, arch.name))) continue;
    const base = await loadModel(join(FIXTURES, arch.name), { task: arch.task });
    const enc = base.tokenizer!.encodeBatch(["the cat sat on the mat", "the dog"], { paddingSide: "right" });
    const labels = arch.task === "sequence-classification" ? int64([2], [1, 0]) : enc.input_ids;
    for (const preset of Object.keys(PRESETS)) {
      if (!include(preset, arch.name)) continue;
      const name = `${preset} on ${arch.name}`;
      let peft: PeftModel;
      try {
        const cfg = presetConfig(preset, "num_virtual_tokens" in PRESETS[preset as keyof typeof PRESETS] ? SMALL : {});
        peft = PeftModel.create(base, cfg as never);
      } catch (e) {
        yield { name, skipped: (e as Error).message };
        continue;
      }
      const feeds = { ...peft.prepareInputs(enc, { labels }), [DROPOUT_KEY]: dropoutKey(1, 0) };
      const train = peft.build({ withLoss: true, training: true });
      const loss = train.outputs.loss!;
      const params = [...loss.graph.params.values()].filter((p) => p.trainable);
      const grads = gradients(loss, params.map((p) => p.value));
      const trainOutputs = { loss, ...Object.fromEntries(grads.map((g, i) => [`grad_${params[i]!.name}`, g])) };
      yield { name: `${name}: training step`, outputs: trainOutputs, feeds, dims: feedDims(trainOutputs, feeds) };
      const infer = peft.build({});
      yield { name: `${name}: inference`, outputs: { logits: infer.outputs.logits! }, feeds, dims: feedDims({ logits: infer.outputs.logits! }, feeds) };
    }
  }
}
