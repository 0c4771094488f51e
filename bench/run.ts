// Benchmark entry point: `npm run bench -- <name> [options]`.
import { main as dropout } from "./dropout.js";
import { main as engine } from "./engine.js";
import { main as models } from "./models.js";
import { main as quant } from "./quant.js";
import { main as quantAccuracy } from "./quant-accuracy.js";
import { main as serve } from "./serve.js";
import { main as tuners } from "./tuners.js";
import { main as web } from "./web.js";
import { dispatch, type Jobs } from "./dispatch.js";

const BENCHMARKS: Jobs = {
  engine: { run: engine, about: "BERT-base-sized encoder stack with LoRA: training step vs a PyTorch reference" },
  models: { run: models, about: "BERT-base forward and GPT-2-small cached generation vs a PyTorch reference" },
  dropout: { run: dropout, about: "hashed dropout masks (reproducible) vs ONNX Dropout vs none: per site and in a LoRA training step" },
  quant: { run: quant, about: "int8 frozen base vs float32: LoRA training step, forward, generation, int8 kernels; weights and peak RSS; a SmolLM-135M-sized LoRA step vs a PyTorch reference" },
  "quant-accuracy": { run: quantAccuracy, about: "int8 frozen base vs float32: decoder-mini held-out perplexity, LoRA accuracy on the demo tasks" },
  serve: { run: serve, about: "the multi-adapter server: classify and generate throughput and latency with N adapters, batching gain over one request at a time" },
  web: { run: web, about: "a LoRA training step in headless Chromium (onnxruntime-web, wasm threads) vs Node (onnxruntime-node): encoder-mini, one BERT-base layer" },
  tuners: { run: tuners, about: "step time / peak memory of PEFT methods vs full fine-tuning; inference latency of adapters vs base" },
};

await dispatch("bench", BENCHMARKS);
