// Benchmark entry point: `npm run bench -- <name> [options]`.
import { main as engine } from "./engine.js";
import { main as models } from "./models.js";
import { main as tuners } from "./tuners.js";

const BENCHMARKS: Record<string, { run: (args: string[]) => Promise<void>; about: string }> = {
  engine: { run: engine, about: "BERT-base-sized encoder stack with LoRA: training step vs a PyTorch reference" },
  models: { run: models, about: "BERT-base forward and GPT-2-small cached generation vs a PyTorch reference" },
  tuners: { run: tuners, about: "step time / peak memory of PEFT methods vs full fine-tuning; inference latency of adapters vs base" },
};

const [name, ...args] = process.argv.slice(2);
const bench = name ? BENCHMARKS[name] : undefined;
if (!bench) {
  console.error(`usage: npm run bench -- <name> [options]\n${Object.entries(BENCHMARKS).map(([k, b]) => `  ${k.padEnd(8)} ${b.about}`).join("\n")}`);
  process.exit(name ? 1 : 0);
}
await bench.run(args);
