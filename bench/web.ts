// `npm run bench -- web`: a LoRA training step in headless Chromium (the browser bundle on
// onnxruntime-web's wasm backend, cross-origin isolated so wasm threads work) against the same
// step in Node on onnxruntime-node, both in this run with the same thread count. Cases:
// encoder-mini (batch 8 x 64) and one BERT-base-sized layer (random weights, batch 8 x 128),
// LoRA r=8 on query/value with dropout, AdamW. Prints one JSON line per case:
// {"case":"web_lora_step","model","backend":"wasm","threads","web_ms","node_ms","ratio"}: medians in
// ms over the timed steps (after 2 untimed ones), ratio = web / node; the minima beside them as
// web_ms_min, node_ms_min, ratio_min.
import { join } from "node:path";
import { parseArgs } from "node:util";
import { chromiumSkipReason } from "../test/browser-support.js";
import { stats } from "./measure.js";
import { timeLoraSteps, type ModelSource } from "../test/web-lora-steps.js";
import { openWebPage } from "../test/web-page.js";

const ROOT = join(import.meta.dirname, "..");

/** One BERT-base encoder layer (hidden 768, 12 heads, FFN 3072) with BERT's vocabulary and positions. */
const BERT_BASE_LAYER = {
  model_type: "bert", architectures: ["BertForSequenceClassification"], vocab_size: 30522, hidden_size: 768, num_hidden_layers: 1, num_attention_heads: 12,
  intermediate_size: 3072, hidden_act: "gelu", max_position_embeddings: 512, type_vocab_size: 2, layer_norm_eps: 1e-12, hidden_dropout_prob: 0.1,
  attention_probs_dropout_prob: 0.1, pad_token_id: 0, num_labels: 2,
};

const CASES = {
  "encoder-mini": { batch: 8, seqLen: 64 },
  "bert-base-layer": { batch: 8, seqLen: 128 },
} as const;
type CaseName = keyof typeof CASES;


export async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      steps: { type: "string", default: "5" },
      threads: { type: "string", default: "2" },
      case: { type: "string", multiple: true },
    },
  });
  const skip = chromiumSkipReason();
  if (skip) throw new Error(`bench web needs Chromium: ${skip}`);
  const steps = Number(values.steps);
  const threads = Number(values.threads);
  const names = (values.case ?? Object.keys(CASES)) as CaseName[];
  for (const n of names) if (!(n in CASES)) throw new Error(`--case ${n}: unknown; cases are ${Object.keys(CASES).join(", ")}`);
  const web = await openWebPage();
  try {
    for (const name of names) {
      const { batch, seqLen } = CASES[name];
      const nodeSource: ModelSource = name === "encoder-mini" ? join(ROOT, "models", "encoder-mini") : { config: BERT_BASE_LAYER, name };
      const pageSource = name === "encoder-mini" ? { url: `${web.url}/models/encoder-mini/` } : { config: BERT_BASE_LAYER, name };
      const nodeMs = await timeLoraSteps(nodeSource, { threads, steps, batch, seqLen });
      const r = await web.page
        .evaluate(
          ([source, opts]) => (globalThis as unknown as { peftjsTest: { timedSteps(s: unknown, o: unknown): Promise<{ ms: number[]; numThreads: number }> } }).peftjsTest.timedSteps(source, opts),
          [pageSource, { threads, steps, batch, seqLen }] as const,
        )
        .catch((e: Error) => {
          throw new Error(`${e.message}\npage log:\n${web.log.join("\n")}`);
        });
      if (r.numThreads !== threads) throw new Error(`the page runs ${r.numThreads} wasm threads, asked for ${threads}`);
      const [w, nd] = [stats(r.ms), stats(nodeMs)];
      console.log(JSON.stringify({
        case: "web_lora_step", model: name, backend: "wasm", threads, batch, seq: seqLen, steps,
        web_ms: w.median, node_ms: nd.median, ratio: +(w.median / nd.median).toFixed(2),
        web_ms_min: w.min, node_ms_min: nd.min, ratio_min: +(w.min / nd.min).toFixed(2),
      }));
    }
  } finally {
    await web.close();
  }
}
