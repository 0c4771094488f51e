// Gradient clipping by global norm (torch.nn.utils.clip_grad_norm_).
import { type Tensor } from "../ir/tensor.js";

/** L2 norm over every gradient. */
export function globalNorm(grads: Iterable<Tensor>): number {
  let sum = 0;
  for (const g of grads) for (const v of g.data as Float32Array) sum += v * v;
  return Math.sqrt(sum);
}

/**
 * Scale all gradients in place so their global norm is at most `maxNorm`; returns the norm
 * before clipping. A non-finite norm is returned as is (the caller decides what to do).
 */
export function clipGradNorm(grads: Iterable<Tensor>, maxNorm: number): number {
  const list = [...grads];
  const norm = globalNorm(list);
  if (Number.isFinite(norm) && norm > maxNorm) {
    const scale = maxNorm / (norm + 1e-6);
    for (const g of list) (g.data as Float32Array).forEach((v, i, d) => (d[i] = v * scale));
  }
  return norm;
}
