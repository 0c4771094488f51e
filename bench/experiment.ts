// Experiment entry point: `npm run experiment -- <name> [options]`. Experiments train real
// models on real data and commit their results under bench/results/.
import { main as ablation } from "./experiments/ablation.js";
import { main as methods } from "./experiments/methods.js";
import { main as pretraining } from "./experiments/pretraining.js";
import { dispatch, type Jobs } from "./dispatch.js";

const EXPERIMENTS: Jobs = {
  methods: { run: methods, about: "every PEFT method on spam + SOTU party, 3 seeds, fixed budget: accuracy/F1 vs trainable parameters, step time, memory, adapter size" },
  ablation: { run: ablation, about: "remove trained adapters from layer spans i..j and report the accuracy drop matrix" },
  pretraining: { run: pretraining, about: "full fine-tuning and LoRA from the pretrained base vs from random init, each at the best of a learning-rate sweep, 3 seeds" },
};

await dispatch("experiment", EXPERIMENTS);
