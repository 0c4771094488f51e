// Reverse-mode autodiff over the IR: appends the backward pass to the graph as new nodes.
// Only what the requested gradients need is built (no weight gradients for frozen parameters),
// broadcasting is undone once, here, and checkpointed segments are recomputed in the backward.
import { isFloat } from "../ir/dtype.js";
import { type GradContext, type Node, type Value } from "../ir/graph.js";
import { add, cast, mul, reduceSum, squeeze, zerosLike } from "../ir/ops/index.js";
import { formatShape, sameDim, sameShape, type Shape } from "../ir/shape.js";

export interface GradientOptions {
  /** Gradient of the output to start from; required when `y` is not a scalar. Default: 1. */
  seed?: Value;
}

/** Raised when a node on the path to a requested gradient has no gradient rule. */
export class MissingGradientError extends Error {}

/**
 * Gradients of `y` with respect to each of `wrt` (parameters, inputs or any value), as new
 * graph values. A value that `y` does not depend on gets zeros.
 *
 * @example
 *   const loss = crossEntropy(logits, labels);
 *   const [dW] = gradients(loss, [w]);
 */
export function gradients(y: Value, wrt: readonly Value[], opts: GradientOptions = {}): Value[] {
  const graph = y.graph;
  const end = y.producer ? graph.nodes.indexOf(y.producer) : -1;
  const nodes = graph.nodes.slice(0, end + 1);

  // Forward: which values depend on the wrt set (only those need gradients).
  const requires = new Set<Value>(wrt);
  for (const node of nodes) {
    if (node.op.grad === "nondifferentiable") continue;
    if (node.inputs.some((v) => v && requires.has(v))) for (const out of node.outputs) if (isFloat(out.dtype)) requires.add(out);
  }

  const grads = new Map<Value, Value>();
  const accumulate = (v: Value, g: Value) => {
    const prev = grads.get(v);
    grads.set(v, prev ? add(prev, g) : g);
  };
  accumulate(y, opts.seed ?? unitSeed(y));

  // The last checkpointed segment is not recomputed: its backward runs right after its
  // forward, so keeping its activations adds nothing to peak memory.
  const lastSegment = nodes.findLast((n) => n.segment !== undefined)?.segment;
  const recompute = new Recomputer();
  for (let n = nodes.length - 1; n >= 0; n--) {
    const node = nodes[n]!;
    const dy = node.outputs.map((o) => grads.get(o));
    if (dy.every((g) => g === undefined)) continue;
    const needs = node.inputs.map((v) => v !== undefined && requires.has(v) && isFloat(v.dtype));
    if (!needs.some(Boolean)) continue;
    const rule = node.op.grad;
    if (rule === "nondifferentiable") continue;
    if (!rule) {
      throw new MissingGradientError(`no gradient rule registered for op ${node.op.type} (node producing ${node.outputs[0]}); it lies between the loss and ${wrt.length === 1 ? String(wrt[0]) : "the requested values"}`);
    }
    const seen = node.segment === undefined || node.segment === lastSegment ? node : recompute.node(node, dy.find((g) => g !== undefined)!);
    const ctx: GradContext = { node, inputs: seen.inputs as Value[], outputs: seen.outputs, attrs: node.attrs, dy, needs };
    const dx = rule(ctx);
    node.inputs.forEach((v, i) => {
      const g = dx[i];
      if (v && needs[i] && g) accumulate(v, sumToShape(g, v.shape, node));
    });
  }
  return wrt.map((v) => grads.get(v) ?? zerosLike(v));
}

function unitSeed(y: Value): Value {
  if (!y.shape.every((d) => d === 1)) throw new RangeError(`gradients: ${y} is not a scalar; pass opts.seed`);
  return y.rank === 0 ? y.graph.scalar(y.dtype, 1) : add(zerosLike(y), 1);
}

/** Sum a broadcast gradient down to the shape of the value it belongs to. */
function sumToShape(g: Value, target: Shape, node: Node): Value {
  if (sameShape(g.shape, target)) return g;
  const lead = g.rank - target.length;
  const fail = () => new RangeError(`gradient of ${node.op.type} has shape ${formatShape(g.shape)}, which does not reduce to the input shape ${formatShape(target)}`);
  if (lead < 0) throw fail();
  const axes = [...Array(lead).keys()];
  target.forEach((d, i) => {
    if (d === 1 && g.shape[lead + i] !== 1) axes.push(lead + i);
    else if (!sameDim(d, g.shape[lead + i]!)) throw fail();
  });
  let r = axes.length ? reduceSum(g, axes, true) : g;
  if (lead > 0) r = squeeze(r, [...Array(lead).keys()]);
  if (!sameShape(r.shape, target)) throw fail();
  return r;
}

/**
 * Recomputes checkpointed segments in the backward pass. Each segment's forward nodes are cloned
 * from the segment's inputs; the clones take a zero-valued dependency on the gradient entering
 * the segment, so ORT can neither merge them with the originals (common-subexpression
 * elimination) nor run them before the backward pass reaches the segment.
 */
class Recomputer {
  private readonly clones = new Map<Value, Value>();
  private readonly boundary = new Map<string, Map<Value, Value>>();
  private readonly deps = new Map<string, Value>();

  /** The node as recomputed: its inputs and outputs replaced by recomputed values. */
  node(node: Node, incoming: Value): { inputs: (Value | undefined)[]; outputs: Value[] } {
    const seg = node.segment!;
    if (!this.deps.has(seg)) this.deps.set(seg, mul(reduceSum(incoming, [...incoming.shape.keys()], false), 0));
    return { inputs: node.inputs.map((v) => v && this.value(v, seg)), outputs: node.outputs.map((o) => this.value(o, seg)) };
  }

  private value(v: Value, seg: string): Value {
    const producer = v.producer;
    if (!producer || producer.segment !== seg) return this.boundaryValue(v, seg);
    let c = this.clones.get(v);
    if (!c) {
      const inputs = producer.inputs.map((x) => x && this.value(x, seg));
      const outs = v.graph.apply(producer.op, inputs, producer.attrs);
      producer.outputs.forEach((o, i) => this.clones.set(o, outs[i]!));
      c = this.clones.get(v)!;
    }
    return c;
  }

  private boundaryValue(v: Value, seg: string): Value {
    if (!v.producer || !isFloat(v.dtype)) return v;
    let m = this.boundary.get(seg);
    if (!m) this.boundary.set(seg, (m = new Map()));
    let b = m.get(v);
    if (!b) m.set(v, (b = add(v, cast(this.deps.get(seg)!, v.dtype))));
    return b;
  }
}
