// Experiment entry point: `npm run experiment -- <name> [options]`. Experiments train real
// models on real data and commit their results under bench/results/.
import { main as ablation } from "./experiments/ablation.js";
import { main as methods } from "./experiments/methods.js";

const EXPERIMENTS: Record<string, { run: (args: string[]) => Promise<void>; about: string }> = {
  methods: { run: methods, about: "every PEFT method on spam + SOTU party, 3 seeds, fixed budget: accuracy/F1 vs trainable parameters, step time, memory, adapter size" },
  ablation: { run: ablation, about: "remove trained adapters from layer spans i..j and report the accuracy drop matrix" },
};

const [name, ...args] = process.argv.slice(2);
const experiment = name ? EXPERIMENTS[name] : undefined;
if (!experiment) {
  console.error(`usage: npm run experiment -- <name> [options]\n${Object.entries(EXPERIMENTS).map(([k, e]) => `  ${k.padEnd(9)} ${e.about}`).join("\n")}`);
  process.exit(name ? 1 : 0);
}
await experiment.run(args);
