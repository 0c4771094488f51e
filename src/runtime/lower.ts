// Lowering: the part of an IR graph that computes the requested outputs becomes an ONNX
// ModelProto of standard-domain ops (OPSET and IR_VERSION below). Frozen parameters are
// initializers whose bytes stay in our typed arrays and reach ORT as external data; trainable
// parameters are inputs.
import { BYTES_PER_ELEMENT, type DType } from "../ir/dtype.js";
import { type AttrKind, type AttrValue, type LoweredNode, type LoweringContext, type Node, type Param, type Value } from "../ir/graph.js";
import { type Shape } from "../ir/shape.js";
import { type Tensor } from "../ir/tensor.js";
import { lowerGemmAccumulation, planGemmAccumulation } from "./gemm-accumulate.js";
import { ModelProto, OnnxAttributeType, OnnxDataType } from "./onnx-schema.js";
import { absorbedForWebGpu, fixShapes, int32Context, lowerForWebGpu } from "./webgpu-lowering.js";

/** ONNX opset of the standard domain (20: Gelu; reductions take axes as an input since 18). */
export const OPSET = 20;
/** ONNX IR version written (9: the one that goes with opset 19-20). */
export const IR_VERSION = 9;
/** Initializers at least this large are passed as external data rather than embedded. */
const EXTERNAL_MIN_BYTES = 1024;

export interface ExternalData {
  path: string;
  data: Uint8Array;
}

export interface LoweredModel {
  /** The serialized ModelProto. */
  bytes: Uint8Array;
  /** Buffers for initializers stored as external data, by location. */
  externalData: ExternalData[];
  /** Graph inputs fed by the caller (not trainable parameters), in order. */
  inputs: Value[];
  /** Parameters the graph takes as inputs (trainable ones; frozen too with frozenAsInputs), in order. */
  trainable: Param[];
  /** Names of the outputs, as requested. */
  outputs: string[];
  /** Number of ONNX nodes. */
  nodeCount: number;
  /** ONNX nodes per op type (e.g. to verify that no frozen-weight gradient was built). */
  opCounts: Record<string, number>;
  /** The fixed sizes of symbolic input dimensions the model was specialized to (LowerOptions.dims). */
  dims?: Readonly<Record<string, number>>;
  /** int64 inputs the model takes as int32 (target "webgpu" with dims); callers convert their values. */
  int32Inputs?: readonly string[];
}

type Proto = Record<string, unknown>;

function bytesOf(t: Tensor): Uint8Array {
  return new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.length * BYTES_PER_ELEMENT[t.dtype]);
}

function valueInfo(name: string, dtype: DType, shape: Shape): Proto {
  return {
    name,
    type: { tensorType: { elemType: OnnxDataType[dtype], shape: { dim: shape.map((d) => (typeof d === "number" ? { dimValue: d } : { dimParam: d })) } } },
  };
}

function attribute(name: string, a: { kind: AttrKind; value: AttrValue } | { kind: "tensor"; value: Tensor }): Proto {
  switch (a.kind) {
    case "int":
      return { name, type: OnnxAttributeType.INT, i: a.value };
    case "float":
      return { name, type: OnnxAttributeType.FLOAT, f: a.value };
    case "ints":
      return { name, type: OnnxAttributeType.INTS, ints: a.value };
    case "floats":
      return { name, type: OnnxAttributeType.FLOATS, floats: a.value };
    case "string":
      return { name, type: OnnxAttributeType.STRING, s: new TextEncoder().encode(a.value as string) };
    case "tensor":
      return { name, type: OnnxAttributeType.TENSOR, t: { dims: a.value.shape, dataType: OnnxDataType[a.value.dtype], rawData: bytesOf(a.value) } };
  }
}

/** The nodes needed for `roots`, in graph (topological) order. */
export function neededNodes(roots: readonly Value[]): Node[] {
  const needed = new Set<Node>();
  const stack = roots.map((v) => v.producer).filter((n): n is Node => n !== undefined);
  while (stack.length) {
    const n = stack.pop()!;
    if (needed.has(n)) continue;
    needed.add(n);
    for (const v of n.inputs) if (v?.producer && !needed.has(v.producer)) stack.push(v.producer);
  }
  const graph = roots[0]?.graph;
  return graph ? graph.nodes.filter((n) => needed.has(n)) : [];
}

/** Lower the computation of `outputs` (name -> value) to ONNX. */
export interface LowerOptions {
  /**
   * Feed frozen parameters as inputs on every run instead of baking them in as initializers.
   * ORT then reads our buffers without keeping its own copy of the weights (less memory; no
   * weight prepacking, which costs a large-batch GEMM nothing measurable and a small one time).
   * Deferred parameters (`Param.defer`, held nowhere) stay initializers.
   */
  frozenAsInputs?: boolean;
  /**
   * "webgpu": write ops that ONNX Runtime's WebGPU provider has no kernels for with ops it has
   * (webgpu-lowering.ts); same results. Default: the plainest ONNX for the CPU providers.
   */
  target?: "cpu" | "webgpu";
  /**
   * Target "webgpu" only: fixed sizes of the inputs' symbolic dimensions (e.g. { batch: 8, seq: 128 }).
   * The model is written for exactly these shapes: shape arithmetic becomes int64 constants, so
   * no Shape/Slice/Concat chain is left for ONNX Runtime to run on its CPU provider, and int64
   * inputs and the integers computed from them (labels, ids, masks) are int32 in the model
   * (LoweredModel.int32Inputs), which the WebGPU provider has kernels for.
   */
  dims?: Readonly<Record<string, number>>;
}

export function lowerToOnnx(outputs: Readonly<Record<string, Value>>, opts: LowerOptions = {}, graphName = "peftjs"): LoweredModel {
  const roots = Object.values(outputs);
  if (roots.length === 0) throw new Error("lowerToOnnx: no outputs requested");
  const nodes = neededNodes(roots);
  const webgpu = opts.target === "webgpu";
  if (opts.dims && !webgpu) throw new Error(`lowerToOnnx: dims (fixed input dimensions) are for target "webgpu" only, got target "${opts.target ?? "cpu"}"`);
  const fixed = opts.dims ? fixShapes(nodes, opts.dims) : undefined;
  const spec = fixed?.spec;
  const onnxDtype = (v: Value): DType => (fixed?.int32.has(v) ? "int32" : v.dtype);
  /** Values the specialization computed: written as constants when used, their nodes not at all. */
  const folded = new Set<Value>();

  const names = new Map<Value, string>();
  const initializers: Proto[] = [];
  const externalData: ExternalData[] = [];
  const inputs: Value[] = [];
  const trainable: Param[] = [];
  const constNames = new Map<string, string>();
  const protoNodes: Proto[] = [];
  let tmp = 0;

  const addInitializer = (name: string, t: Tensor) => {
    const raw = bytesOf(t);
    const proto: Proto = { name, dims: t.shape, dataType: OnnxDataType[t.dtype] };
    if (raw.byteLength >= EXTERNAL_MIN_BYTES) {
      const path = `ext${externalData.length}`;
      externalData.push({ path, data: raw });
      proto.dataLocation = 1;
      proto.externalData = [
        { key: "location", value: path },
        { key: "offset", value: "0" },
        { key: "length", value: String(raw.byteLength) },
      ];
    } else {
      proto.rawData = raw;
    }
    initializers.push(proto);
  };

  const name = (v: Value | undefined): string => {
    if (!v) return "";
    let n = names.get(v);
    if (n !== undefined) return n;
    const s = v.source;
    if (s.kind === "input") {
      n = s.name;
      inputs.push(v);
    } else if (s.kind === "param") {
      n = s.param.name;
      // A deferred parameter has no buffer to feed in place: fed, it would be recomputed on every
      // run; as an initializer it is computed once, here.
      if (s.param.trainable || (opts.frozenAsInputs && !s.param.deferred)) trainable.push(s.param);
      else addInitializer(n, s.param.tensor);
    } else if (s.kind === "constant") {
      n = `const_${v.id}`;
      addInitializer(n, s.tensor);
    } else if (folded.has(v)) {
      const shape = spec!.shape(v);
      const k = spec!.constant(v)!;
      n = constant(`i64${JSON.stringify(shape)}[${k.join(",")}]`, () => ({ dtype: "int64", shape: [...shape], data: BigInt64Array.from(k, (x) => BigInt(x)) }));
    } else {
      n = `t${v.id}`;
    }
    names.set(v, n);
    return n;
  };

  const constant = (key: string, t: () => Tensor): string => {
    let n = constNames.get(key);
    if (!n) {
      n = `c_${constNames.size}`;
      constNames.set(key, n);
      addInitializer(n, t());
    }
    return n;
  };
  let emitting: Node | undefined;
  const domains = new Set<string>();
  const protoNode = (lowered: LoweredNode, id: string, output: string[]): Proto => {
    if (lowered.domain) domains.add(lowered.domain);
    return {
      name: `${lowered.opType}_${id}`,
      opType: lowered.opType,
      ...(lowered.domain ? { domain: lowered.domain } : {}),
      input: lowered.inputs,
      output,
      attribute: Object.entries(lowered.attrs ?? {}).map(([k, a]) => attribute(k, a)),
    };
  };
  const ctx: LoweringContext = {
    emit: (lowered, count) => {
      const id = `${emitting?.id ?? "x"}_${tmp++}`;
      const outs = Array.from({ length: count }, (_, i) => `e${id}_${i}`);
      protoNodes.push(protoNode(lowered, id, outs));
      return outs;
    },
    name,
    int64s: (vals) => constant(`i64[${vals.join(",")}]`, () => ({ dtype: "int64", shape: [vals.length], data: BigInt64Array.from(vals, (x) => BigInt(x)) })),
    scalar: (dtype, value) =>
      constant(`${dtype}:${value}`, () => {
        const data =
          dtype === "float64" ? Float64Array.of(value) : dtype === "int64" ? BigInt64Array.of(BigInt(value)) : dtype === "bool" || dtype === "uint8" ? Uint8Array.of(value) : Float32Array.of(value);
        if (dtype === "float16" || dtype === "bfloat16" || dtype === "int32" || dtype === "int8") throw new TypeError(`lowering: scalar of ${dtype} unsupported`);
        return { dtype, shape: [], data };
      }),
  };

  // Requested outputs that are produced by nodes take the requested name directly.
  const outputNames = new Map<Value, string>();
  for (const [outName, v] of Object.entries(outputs)) {
    if (v.producer && !outputNames.has(v) && !fixed?.int32.has(v)) {
      outputNames.set(v, outName);
      names.set(v, outName);
    }
  }

  const accumulate = planGemmAccumulation(nodes, roots);
  const absorbed = new Set([...accumulate.values()].map((a) => a.gemm));
  if (spec) {
    // int64 values the specialization computed (shapes and what is derived from them) are constants.
    for (const n of nodes) {
      const out = n.outputs[0]!;
      const k = n.outputs.length === 1 && !roots.includes(out) ? spec.constant(out) : undefined;
      if (!k) continue;
      folded.add(out);
      absorbed.add(n);
    }
  }
  if (webgpu) {
    const consumers = new Map<Node, Node[]>();
    for (const n of nodes) for (const v of n.inputs) if (v?.producer) consumers.set(v.producer, [...(consumers.get(v.producer) ?? []), n]);
    for (const n of nodes) if (!n.outputs.some((o) => roots.includes(o)) && absorbedForWebGpu(n, consumers.get(n) ?? [])) absorbed.add(n);
  }
  for (const node of nodes) {
    if (absorbed.has(node)) continue;
    const acc = accumulate.get(node);
    emitting = node;
    const c = fixed ? int32Context(node, ctx, fixed) : ctx;
    const lowered: LoweredNode =
      (webgpu && !acc ? lowerForWebGpu(node, c, fixed) : undefined) ?? (acc ? lowerGemmAccumulation(acc, c) : node.op.lower ? node.op.lower(node, c) : defaultLowering(node, c));
    protoNodes.push(protoNode(lowered, String(node.id), node.outputs.map((o) => name(o))));
  }

  const shapeOf = (v: Value): Shape => (spec ? spec.shape(v) : v.shape);
  const graphOutputs: Proto[] = [];
  for (const [outName, v] of Object.entries(outputs)) {
    const n = name(v);
    if (fixed?.int32.has(v)) {
      // Computed as int32 on the device; the output keeps its int64 dtype.
      protoNodes.push({ name: `Cast_${outName}_${tmp++}`, opType: "Cast", input: [n], output: [outName], attribute: [attribute("to", { kind: "int", value: OnnxDataType.int64 })] });
    } else if (n !== outName) protoNodes.push({ name: `Identity_${outName}_${tmp++}`, opType: "Identity", input: [n], output: [outName] });
    graphOutputs.push(valueInfo(outName, v.dtype, shapeOf(v)));
  }

  // Declared shapes of intermediates (symbolic dims as dim_param) let ORT's fusions that check
  // ranks and shapes (SkipLayerNormalization, attention) apply to dynamic-shape graphs.
  const valueInfos: Proto[] = [];
  const outputSet = new Set(Object.keys(outputs));
  for (const node of nodes) {
    if (absorbed.has(node)) continue;
    for (const o of node.outputs) {
      const n = names.get(o);
      if (n !== undefined && !outputSet.has(n)) valueInfos.push(valueInfo(n, onnxDtype(o), shapeOf(o)));
    }
  }

  const graphInputs = [...inputs.map((v) => valueInfo(names.get(v)!, onnxDtype(v), shapeOf(v))), ...trainable.map((p) => valueInfo(p.name, p.dtype, p.shape))];
  const model = ModelProto.create({
    irVersion: IR_VERSION,
    producerName: "peftjs",
    opsetImport: [{ domain: "", version: OPSET }, ...[...domains].map((domain) => ({ domain, version: 1 }))],
    graph: { name: graphName, node: protoNodes, initializer: initializers, input: graphInputs, output: graphOutputs, valueInfo: valueInfos },
  });
  const opCounts: Record<string, number> = {};
  for (const n of protoNodes) opCounts[n.opType as string] = (opCounts[n.opType as string] ?? 0) + 1;
  return { bytes: ModelProto.encode(model).finish(), externalData, inputs, trainable, outputs: Object.keys(outputs), nodeCount: protoNodes.length, opCounts, ...(fixed ? { dims: opts.dims, int32Inputs: inputs.filter((v) => fixed.int32.has(v)).map((v) => names.get(v)!) } : {}) };
}

function defaultLowering(node: Node, ctx: LoweringContext): LoweredNode {
  const attrs: NonNullable<LoweredNode["attrs"]> = {};
  for (const [k, v] of Object.entries(node.attrs)) attrs[k] = { kind: node.op.attrs[k]!, value: v };
  return { opType: node.op.type, inputs: node.inputs.map((v) => ctx.name(v)), attrs };
}
