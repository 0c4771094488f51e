// Activation functions composed from primitives (their gradients come from the primitives).
import { type Value } from "../graph.js";
import { add, erf, fusedGelu, mul, relu, sigmoid, tanh } from "../ops/index.js";

/**
 * GELU, exact erf form (BERT's "gelu"): x/2 * (1 + erf(x/sqrt 2)). float32 uses the fused op;
 * other dtypes the composite.
 */
export function gelu(x: Value): Value {
  if (x.dtype === "float32") return fusedGelu(x);
  return mul(mul(x, 0.5), add(erf(mul(x, Math.SQRT1_2)), 1));
}

/** GELU, tanh approximation (GPT-2's "gelu_new"): x/2 * (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). */
export function geluTanh(x: Value): Value {
  const inner = mul(add(x, mul(mul(mul(x, x), x), 0.044715)), Math.sqrt(2 / Math.PI));
  return mul(mul(x, 0.5), add(tanh(inner), 1));
}

/** SiLU / swish (Llama's "silu"): x * sigmoid(x). */
export function silu(x: Value): Value {
  return mul(x, sigmoid(x));
}

/** Activation by its Hugging Face `hidden_act` name. */
export function activation(name: string, x: Value): Value {
  switch (name) {
    case "gelu":
      return gelu(x);
    case "gelu_new":
    case "gelu_pytorch_tanh":
    case "gelu_fast":
      return geluTanh(x);
    case "silu":
    case "swish":
      return silu(x);
    case "relu":
      return relu(x);
    default:
      throw new Error(`unknown activation "${name}" (known: gelu, gelu_new, gelu_pytorch_tanh, gelu_fast, silu, swish, relu)`);
  }
}
