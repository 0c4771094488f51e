// The shared gradient conformance runner: a case builds a graph from named inputs, and the
// gradients of its output are checked against central finite differences.
import assert from "node:assert/strict";
import { checkGradients, type GradCheckOptions } from "../src/autodiff/gradcheck.js";
import { isFloat } from "../src/ir/dtype.js";
import { Graph, type Value } from "../src/ir/graph.js";
import { type Tensor } from "../src/ir/tensor.js";
import { compile } from "../src/runtime/session.js";

export interface GradCase {
  name: string;
  inputs: Record<string, Tensor>;
  /** Inputs to differentiate (default: every float input). */
  wrt?: string[];
  build: (v: Record<string, Value>) => Value;
  opts?: GradCheckOptions;
}
export interface ForwardCase {
  name: string;
  inputs: Record<string, Tensor>;
  build: (v: Record<string, Value>) => Value;
  expect: number[];
}
export function buildGraph(inputs: Record<string, Tensor>): { graph: Graph; vals: Record<string, Value> } {
  const graph = new Graph();
  const vals: Record<string, Value> = {};
  for (const [name, t] of Object.entries(inputs)) vals[name] = graph.input(name, t.dtype, t.shape);
  return { graph, vals };
}

export async function runGradCase(c: GradCase): Promise<void> {
  const { graph, vals } = buildGraph(c.inputs);
  const out = c.build(vals);
  const wrt = c.wrt ?? Object.keys(c.inputs).filter((k) => isFloat(c.inputs[k]!.dtype));
  const res = await checkGradients(graph, out, c.inputs, wrt, c.opts);
  assert.ok(res.checked > 0, "nothing was checked");
  assert.deepEqual(res.mismatches, [], `gradient mismatches (max abs error ${res.maxAbsError})`);
}

export async function runForwardCase(c: ForwardCase): Promise<void> {
  const { vals } = buildGraph(c.inputs);
  const out = c.build(vals);
  const step = await compile({ out }, { threads: 1 });
  const res = await step.run(c.inputs);
  assert.deepEqual(Array.from(res.out!.data, Number), c.expect);
  await step.release();
}

