// Gradient checking against central finite differences. Used by the test suites of ops,
// composites, models and tuners; exported so users can check their own graphs.
import { type Graph, type Value } from "../ir/graph.js";
import { mul, sumAll } from "../ir/ops/index.js";
import { type Tensor } from "../ir/tensor.js";
import { compile } from "../runtime/session.js";
import { seededRandom } from "../ir/random.js";
import { gradients } from "./gradients.js";

export { seededRandom };

export interface GradCheckOptions {
  /** Finite-difference step (default 1e-6, for float64). */
  eps?: number;
  /** Relative tolerance (default 1e-5). */
  rtol?: number;
  /** Absolute tolerance (default 1e-7). */
  atol?: number;
  /** Check at most this many elements per input, chosen at random (default: all up to 64). */
  maxElements?: number;
  /** Seed for the projection weights and element choice. */
  seed?: number;
}

export interface GradMismatch {
  input: string;
  index: number;
  analytic: number;
  numeric: number;
}

export interface GradCheckResult {
  checked: number;
  maxAbsError: number;
  mismatches: GradMismatch[];
}

/**
 * Compare the autodiff gradients of `sum(output * R)` (R a fixed random tensor) with respect to
 * the graph inputs named in `wrt` against central finite differences of the same scalar.
 * `output` must have a static shape.
 */
export async function checkGradients(
  graph: Graph,
  output: Value,
  feeds: Readonly<Record<string, Tensor>>,
  wrt: readonly string[],
  opts: GradCheckOptions = {},
): Promise<GradCheckResult> {
  const { eps = 1e-6, rtol = 1e-5, atol = 1e-7, maxElements = 64, seed = 1 } = opts;
  const rand = seededRandom(seed);
  const shape = output.shape.map((d) => {
    if (typeof d !== "number") throw new RangeError(`checkGradients: output shape must be static, got ${output}`);
    return d;
  });
  const n = shape.reduce((a, b) => a * b, 1);
  const r = Float64Array.from({ length: n }, () => rand() * 2 - 1);
  const proj = graph.constant({ dtype: output.dtype, shape, data: output.dtype === "float64" ? r : Float32Array.from(r) });
  const loss = sumAll(mul(output, proj));
  const inputs = wrt.map((name) => {
    const v = graph.inputs.get(name);
    if (!v) throw new Error(`checkGradients: no graph input named "${name}"`);
    return v;
  });
  const grads = gradients(loss, inputs);
  const outputs: Record<string, Value> = { loss };
  grads.forEach((g, i) => (outputs[`grad:${wrt[i]}`] = g));
  // ORT's extended fusions (e.g. QuickGelu) have float32-only kernels; float64 checks stay basic.
  const session = { threads: 1, optimizationLevel: "basic" } as const;
  const analytic = await compile(outputs, session);
  const forward = await compile({ loss }, session);
  const base = await analytic.run(feeds);

  const result: GradCheckResult = { checked: 0, maxAbsError: 0, mismatches: [] };
  for (const name of wrt) {
    const x = feeds[name]!;
    const g = base[`grad:${name}`]!;
    const count = x.data.length;
    const indices = count <= maxElements ? [...Array(count).keys()] : Array.from({ length: maxElements }, () => Math.floor(rand() * count));
    for (const i of indices) {
      const data = (x.data as Float64Array).slice();
      const at = async (delta: number) => {
        data[i] = (x.data as Float64Array)[i]! + delta;
        const out = await forward.run({ ...feeds, [name]: { ...x, data } });
        return Number(out.loss!.data[0]);
      };
      const numeric = ((await at(eps)) - (await at(-eps))) / (2 * eps);
      const a = Number(g.data[i]);
      const err = Math.abs(a - numeric);
      result.checked++;
      result.maxAbsError = Math.max(result.maxAbsError, err);
      if (!(err <= atol + rtol * Math.max(Math.abs(a), Math.abs(numeric)))) result.mismatches.push({ input: name, index: i, analytic: a, numeric });
    }
  }
  await analytic.release();
  await forward.release();
  return result;
}
