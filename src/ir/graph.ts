// The graph IR: values with dtypes and (symbolic) shapes, nodes that apply registered ops,
// parameters (frozen or trainable) bound by name, and checkpoint segments for recomputation.
import { type DType, type TensorArray } from "./dtype.js";
import { formatShape, type Dim, type Shape } from "./shape.js";
import { numel, type Tensor } from "./tensor.js";

/** Attribute kinds, used to lower attributes to ONNX and to validate them. */
export type AttrKind = "int" | "float" | "ints" | "floats" | "string";
export type AttrValue = number | string | readonly number[];
export type Attrs = Readonly<Record<string, AttrValue>>;

/** What shape inference returns for one output. */
export interface OutputType {
  dtype: DType;
  shape: Shape;
  /** For small int64 vectors (shapes): their contents, symbolic where not constant. */
  known?: readonly Dim[];
}

/** Context given to a gradient rule. `dy[i]` is the gradient of output i (undefined: none flows). */
export interface GradContext<A extends Attrs = Attrs> {
  readonly node: Node;
  readonly inputs: readonly Value[];
  readonly outputs: readonly Value[];
  readonly attrs: A;
  readonly dy: readonly (Value | undefined)[];
  /** Whether the gradient of input i is needed; rules skip work for inputs that are not. */
  readonly needs: readonly boolean[];
}

/**
 * A gradient rule returns one gradient per input (undefined where none is needed or none flows).
 * A returned gradient may have the broadcast (output) shape: the engine sums it down to the
 * input's shape, once, centrally.
 */
export type GradRule<A extends Attrs = Attrs> = (ctx: GradContext<A>) => readonly (Value | undefined)[];

/** How a node becomes ONNX: op type, input names, attributes (already in ONNX form). */
export interface LoweringContext {
  /** ONNX name of an IR value (undefined input: an omitted optional input). */
  name(v: Value | undefined): string;
  /** Name of a constant int64 vector initializer. */
  int64s(values: readonly number[]): string;
  /** Name of a scalar constant initializer of `dtype`. */
  scalar(dtype: DType, value: number): string;
  /**
   * Emit a helper ONNX node before the node being lowered (an op that lowers to several nodes,
   * e.g. the quantized linear); returns the names of its `outputs` fresh outputs.
   */
  emit(node: LoweredNode, outputs: number): string[];
}
export interface LoweredNode {
  opType: string;
  /** Operator domain ("" standard, "com.microsoft" for ONNX Runtime's contrib ops). */
  domain?: string;
  inputs: string[];
  attrs?: Record<string, { kind: AttrKind; value: AttrValue } | { kind: "tensor"; value: Tensor }>;
}

/**
 * Everything about one op: its ONNX name, its attributes, shape/dtype inference, its lowering
 * and its gradient rule. `grad: "nondifferentiable"` marks ops whose outputs must not be
 * differentiated (integer results, masks); an op without `grad` has no rule yet, and asking for
 * its gradient is an error that names it.
 */
export interface OpDef<A extends Attrs = Attrs> {
  readonly type: string;
  readonly attrs: Readonly<Record<string, AttrKind>>;
  readonly infer: (inputs: readonly (Value | undefined)[], attrs: A) => OutputType[];
  readonly grad?: GradRule<A> | "nondifferentiable";
  /** Custom lowering; the default passes inputs through and attributes by their kinds. */
  readonly lower?: (node: Node, ctx: LoweringContext) => LoweredNode;
}

/** Where a value comes from. */
export type Source =
  | { kind: "input"; name: string }
  | { kind: "param"; param: Param }
  | { kind: "constant"; tensor: Tensor }
  | { kind: "node"; node: Node; index: number };

export class Value {
  constructor(
    readonly graph: Graph,
    readonly id: number,
    readonly dtype: DType,
    readonly shape: Shape,
    readonly source: Source,
    readonly known?: readonly Dim[],
  ) {}

  get rank(): number {
    return this.shape.length;
  }

  /** The node that produced this value, if any. */
  get producer(): Node | undefined {
    return this.source.kind === "node" ? this.source.node : undefined;
  }

  toString(): string {
    const s = this.source;
    const origin =
      s.kind === "input" ? `input "${s.name}"` : s.kind === "param" ? `param "${s.param.name}"` : s.kind === "constant" ? "constant" : `${s.node.op.type} output ${s.index}`;
    return `${origin} ${this.dtype}${formatShape(this.shape)}`;
  }
}

export class Node {
  constructor(
    readonly id: number,
    readonly op: OpDef,
    readonly inputs: readonly (Value | undefined)[],
    readonly attrs: Attrs,
    readonly segment: string | undefined,
  ) {}
  outputs: Value[] = [];
}

/** A named weight. Frozen parameters become ONNX initializers; trainable ones are fed each run. */
export class Param {
  private values: TensorArray | undefined;
  private compute: (() => TensorArray) | undefined;

  constructor(
    readonly name: string,
    data: TensorArray | (() => TensorArray),
    readonly dtype: DType,
    readonly shape: readonly number[],
    public trainable: boolean,
  ) {
    if (typeof data === "function") this.compute = data;
    else this.values = data;
  }
  /** The graph value that stands for this parameter. */
  value!: Value;

  /** The values: held, or computed on each read for a deferred parameter (see `defer`). */
  get data(): TensorArray {
    return this.compute ? this.compute() : this.values!;
  }

  /** Hold these values (an update in place, or the end of a deferral). */
  set data(values: TensorArray) {
    this.values = values;
    this.compute = undefined;
  }

  /** Whether `data` is computed on each read (see `defer`) rather than held. */
  get deferred(): boolean {
    return this.compute !== undefined;
  }

  /**
   * Hold no values: `data` is computed by `compute` on each read and not kept, until assigned.
   * For a frozen weight whose values live elsewhere, e.g. a quantized copy it is dequantized from.
   */
  defer(compute: () => TensorArray): void {
    this.values = undefined;
    this.compute = compute;
  }

  get tensor(): Tensor {
    return { dtype: this.dtype, shape: this.shape, data: this.data };
  }
}

export class Graph {
  readonly nodes: Node[] = [];
  readonly inputs = new Map<string, Value>();
  readonly params = new Map<string, Param>();
  private nextId = 0;
  private segmentName: string | undefined;
  private readonly scalarCache = new Map<string, Value>();

  /** A graph input fed at run time; dims may be symbolic (`["batch", "seq"]`). */
  input(name: string, dtype: DType, shape: Shape): Value {
    if (this.inputs.has(name) || this.params.has(name)) throw new Error(`graph input "${name}" is already defined`);
    const v = new Value(this, this.nextId++, dtype, [...shape], { kind: "input", name });
    this.inputs.set(name, v);
    return v;
  }

  /**
   * A parameter bound by name (e.g. a Hugging Face weight name). Frozen unless `trainable`.
   * `t.data` may be a function: a deferred parameter whose values are computed on each read.
   */
  param(name: string, t: Omit<Tensor, "data"> & { data: TensorArray | (() => TensorArray) }, opts: { trainable?: boolean } = {}): Value {
    if (this.params.has(name) || this.inputs.has(name)) throw new Error(`parameter "${name}" is already defined`);
    if (typeof t.data !== "function" && t.data.length !== numel(t.shape)) {
      throw new RangeError(`parameter "${name}": ${t.data.length} elements do not fill shape ${formatShape(t.shape)}`);
    }
    const p = new Param(name, t.data, t.dtype, [...t.shape], opts.trainable ?? false);
    p.value = new Value(this, this.nextId++, t.dtype, [...t.shape], { kind: "param", param: p });
    this.params.set(name, p);
    return p.value;
  }

  /** A constant tensor baked into the graph. */
  constant(t: Tensor, known?: readonly Dim[]): Value {
    return new Value(this, this.nextId++, t.dtype, [...t.shape], { kind: "constant", tensor: t }, known);
  }

  /** A scalar constant (rank 0), shared between uses. */
  scalar(dtype: DType, value: number): Value {
    const key = `${dtype}:${Object.is(value, -0) ? "-0" : value}`;
    let v = this.scalarCache.get(key);
    if (!v) {
      const data = dtype === "int64" ? BigInt64Array.of(BigInt(value)) : dtype === "float64" ? Float64Array.of(value) : dtype === "int32" ? Int32Array.of(value) : Float32Array.of(value);
      if (dtype !== "int64" && dtype !== "float64" && dtype !== "int32" && dtype !== "float32") {
        throw new TypeError(`scalar constants of dtype ${dtype} are not supported; cast a float32 one`);
      }
      v = this.constant({ dtype, shape: [], data });
      this.scalarCache.set(key, v);
    }
    return v;
  }

  /** An int64 vector constant (axes, shapes); its contents are known to shape inference. */
  int64s(values: readonly number[]): Value {
    return this.constant({ dtype: "int64", shape: [values.length], data: BigInt64Array.from(values, BigInt) }, values);
  }

  /** Apply an op: runs its shape inference and records the node. */
  apply<A extends Attrs>(op: OpDef<A>, inputs: readonly (Value | undefined)[], attrs: A = {} as A): Value[] {
    for (const v of inputs) {
      if (v && v.graph !== this) throw new Error(`${op.type}: input ${v} belongs to another graph`);
    }
    for (const key of Object.keys(attrs)) {
      if (!(key in op.attrs)) throw new Error(`${op.type}: unknown attribute "${key}" (known: ${Object.keys(op.attrs).join(", ") || "none"})`);
    }
    let types: OutputType[];
    try {
      types = op.infer(inputs, attrs);
    } catch (e) {
      const shapes = inputs.map((v) => (v ? `${v.dtype}${formatShape(v.shape)}` : "none")).join(", ");
      throw new Error(`${op.type}(${shapes}${Object.keys(attrs).length ? `; ${JSON.stringify(attrs)}` : ""}): ${(e as Error).message}`, { cause: e });
    }
    const node = new Node(this.nextId++, op as unknown as OpDef, inputs, attrs, this.segmentName);
    node.outputs = types.map((t, index) => new Value(this, this.nextId++, t.dtype, t.shape, { kind: "node", node, index }, t.known));
    this.nodes.push(node);
    return node.outputs;
  }

  /**
   * Mark the nodes built by `fn` as one checkpoint segment (e.g. one transformer layer): when
   * differentiating, their activations are recomputed in the backward pass instead of kept.
   */
  checkpoint<T>(name: string, fn: () => T): T {
    const outer = this.segmentName;
    this.segmentName = name;
    try {
      return fn();
    } finally {
      this.segmentName = outer;
    }
  }
}
