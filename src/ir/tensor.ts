// Host tensors: a dtype, a static shape and a typed array. What goes in and out of a run.
import { allocate, type DType, type TypedArrayOf } from "./dtype.js";

export interface Tensor<D extends DType = DType> {
  readonly dtype: D;
  readonly shape: readonly number[];
  readonly data: TypedArrayOf[D];
}

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** A tensor from data; checks that the element count matches the shape. */
export function tensor<D extends DType>(dtype: D, shape: readonly number[], data: TypedArrayOf[D]): Tensor<D> {
  if (data.length !== numel(shape)) {
    throw new RangeError(`tensor: ${data.length} elements do not fill shape [${shape.join(", ")}] (${numel(shape)} elements)`);
  }
  return { dtype, shape: [...shape], data };
}

export function zeros<D extends DType>(dtype: D, shape: readonly number[]): Tensor<D> {
  return { dtype, shape: [...shape], data: allocate(dtype, numel(shape)) };
}

/** A float32 tensor from plain numbers (handy in examples and tests). */
export function float32(shape: readonly number[], values: ArrayLike<number>): Tensor<"float32"> {
  return tensor("float32", shape, Float32Array.from(values));
}

/** An int64 tensor from plain numbers (token ids, labels). */
export function int64(shape: readonly number[], values: ArrayLike<number>): Tensor<"int64"> {
  return tensor("int64", shape, BigInt64Array.from(Array.from(values, (v) => BigInt(v))));
}
