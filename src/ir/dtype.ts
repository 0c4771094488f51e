// Element types of graph values and host tensors, with their byte sizes and JS storage.

/** Element types the IR knows. `float16`/`bfloat16` are stored as raw 16-bit words. */
export type DType = "float32" | "float64" | "float16" | "bfloat16" | "int64" | "int32" | "int8" | "uint8" | "bool";

/** The typed array that holds the elements of each dtype on the host. */
export interface TypedArrayOf {
  float32: Float32Array;
  float64: Float64Array;
  float16: Uint16Array;
  bfloat16: Uint16Array;
  int64: BigInt64Array;
  int32: Int32Array;
  int8: Int8Array;
  uint8: Uint8Array;
  bool: Uint8Array;
}
export type TensorArray = TypedArrayOf[DType];

export const BYTES_PER_ELEMENT: Readonly<Record<DType, number>> = {
  float32: 4,
  float64: 8,
  float16: 2,
  bfloat16: 2,
  int64: 8,
  int32: 4,
  int8: 1,
  uint8: 1,
  bool: 1,
};

const FLOAT_DTYPES: ReadonlySet<DType> = new Set(["float32", "float64", "float16", "bfloat16"]);

/** Whether values of this dtype can carry gradients. */
export function isFloat(dtype: DType): boolean {
  return FLOAT_DTYPES.has(dtype);
}

/** A zero-filled typed array for `n` elements of `dtype`. */
export function allocate<D extends DType>(dtype: D, n: number): TypedArrayOf[D] {
  return typedArrayView(dtype, new ArrayBuffer(n * BYTES_PER_ELEMENT[dtype]), 0, n);
}

/** A typed-array view (no copy) of `n` elements of `dtype` at `byteOffset` of `buffer`. */
export function typedArrayView<D extends DType>(dtype: D, buffer: ArrayBufferLike, byteOffset: number, n: number): TypedArrayOf[D] {
  const ctor = TYPED_ARRAY[dtype] as new (b: ArrayBuffer, o: number, n: number) => TypedArrayOf[D];
  return new ctor(buffer as ArrayBuffer, byteOffset, n);
}

/** The typed-array class storing each dtype. */
export const TYPED_ARRAY: Readonly<Record<DType, Function>> = {
  float32: Float32Array,
  float64: Float64Array,
  float16: Uint16Array,
  bfloat16: Uint16Array,
  int64: BigInt64Array,
  int32: Int32Array,
  int8: Int8Array,
  uint8: Uint8Array,
  bool: Uint8Array,
};
