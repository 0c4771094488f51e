// `npm run bench -- web`: a LoRA training step in headless Chromium (the browser bundle on
// onnxruntime-web's wasm backend, cross-origin isolated so wasm threads work) against the same
// step in Node on onnxruntime-node, both in this run with the same thread count. Cases:
// encoder-mini (batch 8 x 64) and one BERT-base-sized layer (random weights, batch 8 x 128),
// LoRA r=8 on query/value with dropout, AdamW. Prints one JSON line per case:
// {"case":"web_lora_step","model","backend":"wasm","threads","web_ms","node_ms","ratio"}: medians in
// ms over the timed steps of `--rounds` (default 2) rounds that alternate Node and the page,
// ratio = web / node. Each round starts with untimed steps, in both runtimes alike: at least
// 2 and for `--warmup-seconds` (default 20), since Chromium runs ONNX Runtime's wasm as baseline
// code until V8 has optimized its hot functions in the background (encoder-mini, 2 threads:
// ~600-900 ms per step in the first ~10 s, 270-330 ms after ~20 s). The minima beside them as
// web_ms_min, node_ms_min, ratio_min; web_peak_rss_mb, the Chromium renderer's peak RSS so far,
// and node_peak_rss_mb, this process's. `--case smollm135m` (not run by default: minutes per step)
// is the stretch: a SmolLM-135M-sized decoder (its config, random weights), batch 4 x 256,
// LM loss, LoRA on q_proj / v_proj; a failure in the page (e.g. out of wasm memory) is its result.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { chromiumSkipReason } from "../test/browser-support.js";
import { SMOLLM_135M } from "./checkpoints.js";
import { peakRssMb, stats } from "./measure.js";
import { timeLoraSteps, type ModelSource } from "../test/web-lora-steps.js";
import { openWebPage } from "../test/web-page.js";

const ROOT = join(import.meta.dirname, "..");

/** One BERT-base encoder layer (hidden 768, 12 heads, FFN 3072) with BERT's vocabulary and positions. */
const BERT_BASE_LAYER = {
  model_type: "bert", architectures: ["BertForSequenceClassification"], vocab_size: 30522, hidden_size: 768, num_hidden_layers: 1, num_attention_heads: 12,
  intermediate_size: 3072, hidden_act: "gelu", max_position_embeddings: 512, type_vocab_size: 2, layer_norm_eps: 1e-12, hidden_dropout_prob: 0.1,
  attention_probs_dropout_prob: 0.1, pad_token_id: 0, num_labels: 2,
};

/** Cases by name: the model, its batch, and whether a plain `bench -- web` runs it. */
const CASES = {
  "encoder-mini": { batch: 8, seqLen: 64, byDefault: true },
  "bert-base-layer": { batch: 8, seqLen: 128, byDefault: true, config: BERT_BASE_LAYER },
  // The stretch: a SmolLM-135M-sized decoder (its config, random weights), LM loss, LoRA on
  // q_proj / v_proj; minutes per step in wasm, so only with --case smollm135m.
  smollm135m: { batch: 4, seqLen: 256, byDefault: false, config: SMOLLM_135M as unknown as Record<string, unknown> },
} as const;
type CaseName = keyof typeof CASES;

/**
 * Peak RSS (VmHWM, MB) of the largest Chromium renderer process this process started: the page's
 * JavaScript heap, the wasm memory and its worker threads live there. Linux only (else null).
 */
function rendererPeakRssMb(): number | null {
  try {
    const parent = new Map<number, number>();
    for (const e of readdirSync("/proc")) {
      if (!/^\d+$/.test(e)) continue;
      try {
        // "pid (comm) state ppid ...": comm may hold spaces, so split after its closing paren.
        const stat = readFileSync(`/proc/${e}/stat`, "utf8");
        parent.set(Number(e), Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]));
      } catch {
        // exited meanwhile
      }
    }
    const ours = (pid: number): boolean => {
      for (let p = parent.get(pid); p !== undefined && p > 1; p = parent.get(p)) if (p === process.pid) return true;
      return false;
    };
    let best: number | null = null;
    for (const pid of parent.keys()) {
      if (!ours(pid)) continue;
      try {
        if (!readFileSync(`/proc/${pid}/cmdline`, "utf8").includes("--type=renderer")) continue;
        const mb = peakRssMb(pid);
        if (mb !== null) best = Math.max(best ?? 0, mb);
      } catch {
        // exited meanwhile
      }
    }
    return best;
  } catch {
    return null;
  }
}


export async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      steps: { type: "string", default: "5" },
      "warmup-seconds": { type: "string", default: "20" },
      rounds: { type: "string", default: "2" },
      threads: { type: "string", default: "2" },
      case: { type: "string", multiple: true },
    },
  });
  const skip = chromiumSkipReason();
  if (skip) throw new Error(`bench web needs Chromium: ${skip}`);
  const steps = Number(values.steps);
  const threads = Number(values.threads);
  const rounds = Number(values.rounds);
  if (!Number.isInteger(rounds) || rounds < 1) throw new Error(`--rounds must be a whole number >= 1, got "${values.rounds}"`);
  const warmupSecs = Number(values["warmup-seconds"]);
  if (!(warmupSecs >= 0)) throw new Error(`--warmup-seconds must be a number of seconds >= 0, got "${values["warmup-seconds"]}"`);
  const names = (values.case ?? Object.keys(CASES).filter((n) => CASES[n as CaseName].byDefault)) as CaseName[];
  for (const n of names) if (!(n in CASES)) throw new Error(`--case ${n}: unknown; cases are ${Object.keys(CASES).join(", ")}`);
  const web = await openWebPage();
  try {
    for (const name of names) {
      const c = CASES[name];
      const { batch, seqLen } = c;
      // The big decoder: 2 timed steps after 1 untimed (each takes a minute or more in wasm).
      const [n, warmup, warmupSeconds] = name === "smollm135m" ? [Math.min(steps, 2), 1, 0] : [steps, 2, warmupSecs];
      const nodeSource: ModelSource = "config" in c ? { config: c.config, name } : join(ROOT, "models", name);
      const pageSource = "config" in c ? { config: c.config, name } : { url: `${web.url}/models/${name}/` };
      const caseRounds = name === "smollm135m" ? 1 : rounds;
      const line = { case: "web_lora_step", model: name, backend: "wasm", threads, batch, seq: seqLen, steps: n, rounds: caseRounds };
      // Rounds alternate Node and the page, so that both runtimes meet the same stretch of machine
      // load; each round warms up again (the page's optimized wasm code stays).
      const nodeMs: number[] = [];
      const r: { ms: number[]; numThreads: number } = { ms: [], numThreads: 0 };
      try {
        for (let round = 0; round < caseRounds; round++) {
          nodeMs.push(...(await timeLoraSteps(nodeSource, { threads, steps: n, warmup, warmupSeconds, batch, seqLen })));
          const page = await web.page.evaluate(
            ([source, opts]) => (globalThis as unknown as { peftjsTest: { timedSteps(s: unknown, o: unknown): Promise<{ ms: number[]; numThreads: number }> } }).peftjsTest.timedSteps(source, opts),
            [pageSource, { threads, steps: n, warmup, warmupSeconds, batch, seqLen }] as const,
          );
          r.ms.push(...page.ms);
          r.numThreads = page.numThreads;
        }
      } catch (e) {
        if (name !== "smollm135m") throw new Error(`${(e as Error).message}\npage log:\n${web.log.join("\n")}`);
        // The stretch case reports a failure (e.g. out of wasm memory) as its result.
        console.log(JSON.stringify({ ...line, error: (e as Error).message.split("\n")[0], web_peak_rss_mb: rendererPeakRssMb(), node_ms: nodeMs.length ? stats(nodeMs).median : null, node_peak_rss_mb: peakRssMb() }));
        continue;
      }
      if (r.numThreads !== threads) throw new Error(`the page runs ${r.numThreads} wasm threads, asked for ${threads}`);
      const [w, nd] = [stats(r.ms), stats(nodeMs)];
      console.log(JSON.stringify({
        ...line, web_ms: w.median, node_ms: nd.median, ratio: +(w.median / nd.median).toFixed(2),
        web_ms_min: w.min, node_ms_min: nd.min, ratio_min: +(w.min / nd.min).toFixed(2),
        web_peak_rss_mb: rendererPeakRssMb(), node_peak_rss_mb: peakRssMb(),
      }));
    }
  } finally {
    await web.close();
  }
}
