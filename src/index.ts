// peftjs public API: the compute engine (graph IR, autodiff, ONNX Runtime execution) and I/O.
export * from "./ir/dtype.js";
export * from "./ir/shape.js";
export * from "./ir/tensor.js";
export { Graph, Value, Node, Param, type OpDef, type GradRule, type GradContext } from "./ir/graph.js";
export * from "./ir/ops/index.js";
export * from "./ir/composites/activations.js";
export * from "./ir/composites/norms.js";
export * from "./ir/composites/linear.js";
export * from "./ir/composites/attention.js";
export * from "./ir/composites/rotary.js";
export * from "./ir/composites/losses.js";
export { gradients, MissingGradientError, type GradientOptions } from "./autodiff/gradients.js";
export { compile, CompiledGraph, type SessionOptions } from "./runtime/session.js";
export { lowerToOnnx, OPSET, type LoweredModel } from "./runtime/lower.js";
export { seededRandom, fillNormal } from "./ir/random.js";
export { checkGradients, type GradCheckOptions, type GradCheckResult } from "./autodiff/gradcheck.js";
export { AdamW, SGD, type AdamWOptions } from "./train/optimizers.js";
export { TrainStep, type TrainStepOptions, type StepResult } from "./train/train-step.js";
