// Experiment entry point: `npm run experiment -- <name> [options]`. Experiments train real
// models on real data and commit their results under bench/results/.
import { main as ablation } from "./experiments/ablation.js";
import { main as methods } from "./experiments/methods.js";
import { dispatch, type Jobs } from "./dispatch.js";

const EXPERIMENTS: Jobs = {
  methods: { run: methods, about: "every PEFT method on spam + SOTU party, 3 seeds, fixed budget: accuracy/F1 vs trainable parameters, step time, memory, adapter size" },
  ablation: { run: ablation, about: "remove trained adapters from layer spans i..j and report the accuracy drop matrix" },
};

await dispatch("experiment", EXPERIMENTS);
