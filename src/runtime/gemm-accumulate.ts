// A lowering-time rewrite: Add(Gemm(A, B), X) -> Gemm(A, B, C=X, beta=1) when the Gemm output
// has no other use. Backward passes sum many GEMM results (the gradient of a hidden state that
// feeds q, k, v, LoRA and the residual); folding the sum into the GEMM saves a full read and
// write of the activation per term (measured by `npm run bench -- engine`).
import { type LoweredNode, type LoweringContext, type Node, type Value } from "../ir/graph.js";
import { sameShape } from "../ir/shape.js";

export interface GemmAccumulation {
  gemm: Node;
  addend: Value;
}

/** Which Add nodes absorb which Gemm (keyed by the Add node). */
export function planGemmAccumulation(nodes: readonly Node[], roots: readonly Value[]): Map<Node, GemmAccumulation> {
  const uses = new Map<Value, number>();
  const use = (v: Value | undefined) => v && uses.set(v, (uses.get(v) ?? 0) + 1);
  for (const n of nodes) n.inputs.forEach(use);
  roots.forEach(use);
  const plan = new Map<Node, GemmAccumulation>();
  const absorbed = new Set<Node>();
  for (const n of nodes) {
    if (n.op.type !== "Add") continue;
    const out = n.outputs[0]!;
    for (const [i, j] of [[0, 1], [1, 0]] as const) {
      const p = n.inputs[i];
      const q = n.inputs[j];
      const gemm = p?.producer;
      if (!p || !q || !gemm || gemm.op.type !== "Gemm" || gemm.inputs[2] || absorbed.has(gemm) || uses.get(p) !== 1) continue;
      if (q.dtype !== out.dtype || !sameShape(q.shape, out.shape) || !sameShape(p.shape, out.shape)) continue;
      plan.set(n, { gemm, addend: q });
      absorbed.add(gemm);
      break;
    }
  }
  return plan;
}

export function lowerGemmAccumulation({ gemm, addend }: GemmAccumulation, ctx: LoweringContext): LoweredNode {
  const { alpha, transA, transB } = gemm.attrs as { alpha: number; transA: number; transB: number };
  return {
    opType: "Gemm",
    inputs: [ctx.name(gemm.inputs[0]), ctx.name(gemm.inputs[1]), ctx.name(addend)],
    attrs: { alpha: { kind: "float", value: alpha }, beta: { kind: "float", value: 1 }, transA: { kind: "int", value: transA }, transB: { kind: "int", value: transB } },
  };
}
