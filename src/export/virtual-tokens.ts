// Prompt tuning and P-tuning in an exported encoder: the graph peftjs builds takes `n` placeholder
// tokens in front of every row (the adapter swaps their embeddings for the prompt), but
// transformers.js feeds only the text's tokens. This rewrites the exported graph so that it takes
// the text's tokens and makes the placeholders itself — ids 0, mask 1, token type 0 in front, as
// PeftModel.prepareInputs does (positions then follow from the longer mask inside the graph) — and
// returns per-token outputs for the real tokens only.
import { OnnxAttributeType, OnnxDataType } from "../runtime/onnx-schema.js";
import { type GraphProto, type NodeProto, type Proto, type TensorProto } from "./onnx-file.js";

/** What the placeholders of each input hold (PeftModel.prepareInputs). */
const FILL: Record<string, bigint> = { input_ids: 0n, attention_mask: 1n, token_type_ids: 0n };

const int64s = (name: string, values: readonly bigint[]): TensorProto => ({
  name, dims: [values.length], dataType: OnnxDataType.int64, rawData: new Uint8Array(BigInt64Array.from(values).buffer),
});

/**
 * Rewrite `graph` in place: its inputs `input_ids`, `attention_mask` (and `token_type_ids`) become
 * the real tokens only, `n` placeholders are concatenated in front of them inside the graph, and each
 * output named in `perToken` ([batch, seq, ...]) drops its first `n` positions.
 */
export function prependVirtualTokens(graph: GraphProto, n: number, perToken: readonly string[]): void {
  const inputs = graph.input.map((i) => i.name as string).filter((name) => name in FILL);
  if (!inputs.includes("input_ids")) throw new Error("export: the graph has no input_ids to put virtual tokens in front of");
  const renameUses = (from: string, to: string, where: "input" | "output") => {
    for (const node of graph.node) node[where] = node[where].map((x) => (x === from ? to : x));
  };
  const mk = (opType: string, input: string[], output: string, attribute: Proto[] = []): NodeProto => ({ name: `virtual_tokens_${output}`, opType, input, output: [output], attribute });

  // [batch, n]: the batch size comes from input_ids at run time.
  const front: NodeProto[] = [
    mk("Shape", ["input_ids"], "vt_shape"),
    mk("Gather", ["vt_shape", "vt_zero"], "vt_batch", [{ name: "axis", type: OnnxAttributeType.INT, i: 0 }]),
    mk("Concat", ["vt_batch", "vt_count"], "vt_dims", [{ name: "axis", type: OnnxAttributeType.INT, i: 0 }]),
  ];
  graph.initializer.push(int64s("vt_zero", [0n]), int64s("vt_count", [BigInt(n)]));
  for (const name of inputs) {
    const full = `${name}_with_virtual_tokens`;
    renameUses(name, full, "input");
    const value: TensorProto = { name: "value", dims: [1], dataType: OnnxDataType.int64, rawData: new Uint8Array(BigInt64Array.of(FILL[name]!).buffer) };
    front.push(
      mk("ConstantOfShape", ["vt_dims"], `vt_${name}`, [{ name: "value", type: OnnxAttributeType.TENSOR, t: value }]),
      mk("Concat", [`vt_${name}`, name], full, [{ name: "axis", type: OnnxAttributeType.INT, i: 1 }]),
    );
  }

  const back: NodeProto[] = [];
  if (perToken.length) graph.initializer.push(int64s("vt_end", [2n ** 62n]), int64s("vt_axis", [1n]));
  for (const name of perToken) {
    if (!graph.output.some((o) => o.name === name)) throw new Error(`export: the graph has no output ${name}`);
    const full = `${name}_with_virtual_tokens`;
    renameUses(name, full, "output");
    renameUses(name, full, "input");
    back.push(mk("Slice", [full, "vt_count", "vt_end", "vt_axis"], name));
  }
  graph.node = [...front, ...graph.node, ...back];
  // The recorded intermediate shapes name the placeholder-padded length after the real one.
  graph.valueInfo = [];
}
