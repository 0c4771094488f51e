// Losses composed from primitives.
import { type Value } from "../graph.js";
import { cast, div, equal, gatherElements, logSoftmax, max, mul, neg, not, reduceSum, squeeze, unsqueeze, where } from "../ops/index.js";

/**
 * Mean cross-entropy of `logits` [N, C] against int64 `labels` [N], skipping labels equal to
 * `ignoreIndex` (PyTorch's default -100). Returns a scalar; 0 when every label is ignored.
 */
export function crossEntropy(logits: Value, labels: Value, ignoreIndex = -100): Value {
  if (logits.rank !== 2 || labels.rank !== 1) throw new RangeError(`crossEntropy: expected logits [N, C] and labels [N], got ${logits} and ${labels}`);
  if (labels.dtype !== "int64") throw new TypeError(`crossEntropy: labels must be int64, got ${labels.dtype}`);
  const ignored = equal(labels, ignoreIndex);
  const safe = where(ignored, 0, labels);
  const picked = squeeze(gatherElements(logSoftmax(logits, -1), unsqueeze(safe, [1]), 1), [1]);
  const keep = cast(not(ignored), logits.dtype);
  const count = reduceSum(keep, [0], false);
  return div(neg(reduceSum(mul(picked, keep), [0], false)), max(count, 1));
}
