// A lowered graph as a file other runtimes load on their own: the frozen weights the training
// runtime passes as in-memory external data, and adapter tensors fed as inputs, become
// initializers inside the file (or, past protobuf's 2 GB, in one data file beside it, by relative
// location); symbolic dimensions take the names the consumer resolves.
import { BYTES_PER_ELEMENT } from "../ir/dtype.js";
import { type LoweredModel } from "../runtime/lower.js";
import { ModelProto, OnnxDataType } from "../runtime/onnx-schema.js";

/** Loosely typed protobuf messages (protobufjs objects of the schema in onnx-schema.ts). */
export type Proto = Record<string, unknown>;
export interface TensorProto extends Proto {
  name: string;
  dims: (number | { toNumber(): number })[];
  dataType: number;
  rawData?: Uint8Array;
  dataLocation?: number;
  externalData?: { key: string; value: string }[];
}
export interface NodeProto extends Proto {
  name: string;
  opType: string;
  input: string[];
  output: string[];
  attribute: Proto[];
  domain?: string;
}
export interface GraphProto extends Proto {
  node: NodeProto[];
  initializer: TensorProto[];
  input: Proto[];
  output: Proto[];
  valueInfo: Proto[];
}

export interface OnnxWeights {
  /** The serialized ModelProto. */
  model: Uint8Array;
  /** The weights, when they went to a data file beside the model (its name, relative). */
  external?: { file: string; data: Uint8Array };
}

export interface EmbedOptions {
  /** Above this many bytes of weights, write them to `dataFile` instead. */
  externalAbove: number;
  /** Name of the data file, relative to the model file (e.g. "model.onnx_data"). */
  dataFile: string;
  /** Symbolic dimension names to rename (each part of a product or sum is renamed). */
  rename?: Record<string, string>;
  /** Rewrite the graph once its weights are initializers (e.g. int8 quantization). */
  transform?: (graph: GraphProto) => void;
}

/** The model of `lowered` with every weight inside (or in one relative data file). */
export function embedWeights(lowered: LoweredModel, opts: EmbedOptions): OnnxWeights {
  const model = ModelProto.decode(lowered.bytes) as unknown as Proto & { graph: GraphProto };
  const graph = model.graph;
  const buffers = new Map(lowered.externalData.map((e) => [e.path, e.data]));
  for (const t of graph.initializer) {
    if (t.dataLocation !== 1) continue;
    const location = t.externalData?.find((e) => e.key === "location")?.value;
    const data = location === undefined ? undefined : buffers.get(location);
    if (!data) throw new Error(`export: initializer ${t.name} has no in-memory data (${location})`);
    t.rawData = data;
    t.externalData = [];
    t.dataLocation = 0;
  }
  // Adapter tensors kept in the graph (unmerged methods) are inputs of the training graph; here
  // they are weights like any other.
  const params = new Set(lowered.trainable.map((p) => p.name));
  graph.input = graph.input.filter((i) => !params.has(i.name as string));
  for (const p of lowered.trainable) {
    const t = p.tensor;
    graph.initializer.push({ name: p.name, dims: [...t.shape], dataType: OnnxDataType[t.dtype], rawData: new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.length * BYTES_PER_ELEMENT[t.dtype]) });
  }
  opts.transform?.(graph);
  if (opts.rename) renameDims(graph, opts.rename);

  let external: OnnxWeights["external"];
  const total = graph.initializer.reduce((n, t) => n + (t.rawData?.byteLength ?? 0), 0);
  if (total > opts.externalAbove) {
    // 64-byte aligned, as onnx's save_model writes them; small tensors stay inline.
    const big = graph.initializer.filter((t) => (t.rawData?.byteLength ?? 0) >= 1024);
    let size = 0;
    const offsets = big.map((t) => {
      const o = size;
      size = Math.ceil((o + t.rawData!.byteLength) / 64) * 64;
      return o;
    });
    const data = new Uint8Array(size);
    big.forEach((t, i) => {
      data.set(t.rawData!, offsets[i]!);
      t.externalData = [
        { key: "location", value: opts.dataFile },
        { key: "offset", value: String(offsets[i]) },
        { key: "length", value: String(t.rawData!.byteLength) },
      ];
      t.dataLocation = 1;
      t.rawData = new Uint8Array(0);
    });
    external = { file: opts.dataFile, data };
  }
  return { model: ModelProto.encode(model).finish(), external };
}

function renameDims(graph: GraphProto, rename: Record<string, string>): void {
  const fix = (s: string) => s.split(/([*+])/).map((part) => rename[part] ?? part).join("");
  for (const info of [...graph.input, ...graph.output, ...graph.valueInfo]) {
    const dims = ((info.type as Proto | undefined)?.tensorType as Proto | undefined)?.shape as { dim?: Proto[] } | undefined;
    for (const d of dims?.dim ?? []) if (typeof d.dimParam === "string" && d.dimParam) d.dimParam = fix(d.dimParam);
  }
}
