// Dynamic int8 quantization of an exported graph (what onnxruntime's quantize_dynamic writes,
// per channel): every Gemm / MatMul with a float32 2-D weight initializer becomes
// DynamicQuantizeLinear (activations: uint8, scale and zero point found at run time) ->
// MatMulInteger against symmetric int8 weights with one scale per output channel -> Cast -> Mul
// by activation scale x channel scales (-> Add bias). Weights are quantized and stored as the
// int8 training base does (src/ir/quantize.ts): uint8 with zero point 128, since ORT's u8 x s8
// kernels saturate on full-range int8 weights.
import { int8Storage, quantizeInt8, transposeInt8, zeroPoints } from "../ir/quantize.js";
import { OnnxAttributeType, OnnxDataType } from "../runtime/onnx-schema.js";
import { type GraphProto, type NodeProto, type Proto, type TensorProto } from "./onnx-file.js";

const num = (d: number | { toNumber(): number }): number => (typeof d === "number" ? d : d.toNumber());

function intAttr(node: NodeProto, name: string, fallback: number): number {
  const a = node.attribute.find((x) => x.name === name);
  return a ? num(a.i as number) : fallback;
}
function floatAttr(node: NodeProto, name: string, fallback: number): number {
  const a = node.attribute.find((x) => x.name === name);
  return a ? (a.f as number) : fallback;
}

function bytes(a: Uint8Array | Float32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** Quantize the weights of `graph` in place; returns how many matrices were quantized. */
export function quantizeOnnxInt8(graph: GraphProto): number {
  const inits = new Map(graph.initializer.map((t) => [t.name, t]));
  const uses = new Map<string, number>();
  for (const n of graph.node) for (const i of n.input) uses.set(i, (uses.get(i) ?? 0) + 1);
  const nodes: NodeProto[] = [];
  const dropped = new Set<string>();
  let count = 0;
  for (const node of graph.node) {
    const w = inits.get(node.input[1] ?? "");
    const ok =
      w && w.dataType === OnnxDataType.float32 && w.dims.length === 2 && w.rawData &&
      (node.opType === "MatMul" || (node.opType === "Gemm" && intAttr(node, "transA", 0) === 0 && floatAttr(node, "alpha", 1) === 1 && floatAttr(node, "beta", 1) === 1));
    if (!ok) {
      nodes.push(node);
      continue;
    }
    const [rows, cols] = w.dims.map(num) as [number, number];
    const raw = w.rawData!;
    const data = new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
    // MatMulInteger wants B as [K, N]; a Gemm with transB holds W as [N, K].
    const transB = node.opType === "Gemm" && intAttr(node, "transB", 0) === 1;
    let q = quantizeInt8({ dtype: "float32", shape: [rows, cols], data }, transB ? 0 : 1);
    if (transB) q = transposeInt8(q);
    const id = `${node.name}_q8`;
    const add = (t: TensorProto) => graph.initializer.push(t);
    add({ name: `${id}_W`, dims: [...q.shape], dataType: OnnxDataType.uint8, rawData: int8Storage(q.q) });
    add({ name: `${id}_Wzero`, dims: [q.scale.length], dataType: OnnxDataType.uint8, rawData: zeroPoints(q.scale.length) });
    add({ name: `${id}_Wscale`, dims: [q.scale.length], dataType: OnnxDataType.float32, rawData: bytes(q.scale) });
    const out = node.output[0]!;
    const mk = (opType: string, input: string[], output: string[], attribute: Proto[] = []): NodeProto => ({ name: `${id}_${opType}_${output[0]}`, opType, input, output, attribute });
    nodes.push(
      mk("DynamicQuantizeLinear", [node.input[0]!], [`${id}_xq`, `${id}_xs`, `${id}_xz`]),
      mk("MatMulInteger", [`${id}_xq`, `${id}_W`, `${id}_xz`, `${id}_Wzero`], [`${id}_acc`]),
      mk("Cast", [`${id}_acc`], [`${id}_accf`], [{ name: "to", type: OnnxAttributeType.INT, i: OnnxDataType.float32 }]),
      mk("Mul", [`${id}_xs`, `${id}_Wscale`], [`${id}_scale`]),
      mk("Mul", [`${id}_accf`, `${id}_scale`], [node.input[2] ? `${id}_y` : out]),
    );
    if (node.input[2]) nodes.push(mk("Add", [`${id}_y`, node.input[2]], [out]));
    uses.set(w.name, uses.get(w.name)! - 1);
    if (uses.get(w.name) === 0) dropped.add(w.name);
    count++;
  }
  graph.node = nodes;
  graph.initializer = graph.initializer.filter((t) => !dropped.has(t.name));
  return count;
}
