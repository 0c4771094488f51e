// PyTorch state dicts (`torch.save(model.state_dict())`, e.g. AdapterHub's pytorch_adapter.bin)
// read and written without Python. Reading is a restricted unpickler: it knows only the opcodes
// and globals torch.save uses for a dict of tensors (collections.OrderedDict,
// torch._utils._rebuild_tensor_v2 / _rebuild_parameter, torch.<Type>Storage persistent ids) and
// refuses every other global or object-building opcode by name, so nothing in a file is ever
// called: a pickle can name any Python function, and loading one with a general unpickler runs it.
//
// No npm package was used: the ones that parse pickles (jpickle, node-pickle) are general
// unpicklers (or shell out to Python), with no allowlist of globals and no torch zip layout; the
// allowlist is the security property, and it is small enough to own here.
import { type DType, type TypedArrayOf, BYTES_PER_ELEMENT, TYPED_ARRAY } from "../ir/dtype.js";
import { type Tensor, numel } from "../ir/tensor.js";
import { readStoredZip, writeStoredZip, ZipError } from "./stored-zip.js";

export class PickleError extends Error {}

/** torch storage classes (torch/storage.py _LegacyStorage subclasses) and their element types. */
const STORAGES: Readonly<Record<string, DType>> = {
  FloatStorage: "float32", DoubleStorage: "float64", HalfStorage: "float16", BFloat16Storage: "bfloat16",
  LongStorage: "int64", IntStorage: "int32", CharStorage: "int8", ByteStorage: "uint8", BoolStorage: "bool",
};
const STORAGE_OF: Readonly<Partial<Record<DType, string>>> = Object.fromEntries(Object.entries(STORAGES).map(([k, v]) => [v, k]));

const ALLOWED = ["collections.OrderedDict", "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_parameter", ...Object.keys(STORAGES).map((s) => `torch.${s}`)];

class Global {
  constructor(readonly name: string) {}
}
class StorageRef {
  constructor(readonly key: string, readonly dtype: DType, readonly numel: number) {}
}
class TensorRef {
  constructor(readonly storage: StorageRef, readonly offset: number, readonly size: number[], readonly stride: number[]) {}
}
const MARK = Symbol("mark");
type PValue = null | boolean | number | bigint | string | PValue[] | Map<PValue, PValue> | Global | StorageRef | TensorRef | Uint8Array;

/** Opcode names for error messages (pickletools). */
const OPCODE_NAMES: Readonly<Record<number, string>> = {
  0x81: "NEWOBJ", 0x92: "NEWOBJ_EX", 0x69: "INST", 0x6f: "OBJ", 0x52: "REDUCE", 0x62: "BUILD", 0x50: "PERSID", 0x82: "EXT1", 0x83: "EXT2", 0x84: "EXT4",
};

/**
 * Run the restricted unpickler over `data`. `source` names the file in errors. Only the value
 * shapes of a tensor state dict come out: tensors are references into the archive's storages.
 */
function unpickle(data: Uint8Array, source: string): PValue {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const latin1 = new TextDecoder("latin1");
  const utf8 = new TextDecoder("utf-8", { fatal: true });
  const stack: (PValue | typeof MARK)[] = [];
  const memo = new Map<number, PValue>();
  let at = 0;
  const fail = (why: string): never => {
    throw new PickleError(`${source}: ${why}`);
  };
  const need = (n: number) => (at + n <= data.length ? at : fail(`pickle truncated at byte ${at}`));
  const u8 = () => {
    need(1);
    return data[at++]!;
  };
  const fixed = <T>(n: number, get: (o: number) => T): T => {
    const v = get(need(n));
    at += n;
    return v;
  };
  const u32 = () => fixed(4, (o) => view.getUint32(o, true));
  const take = (n: number) => {
    need(n);
    const out = data.subarray(at, at + n);
    at += n;
    return out;
  };
  const line = () => {
    const end = data.indexOf(0x0a, at);
    if (end < 0) fail("pickle truncated (no newline)");
    const s = latin1.decode(data.subarray(at, end));
    at = end + 1;
    return s;
  };
  const pop = (): PValue => {
    const v = stack.pop();
    if (v === undefined || v === MARK) fail("pickle stack underflow");
    return v as PValue;
  };
  const popMark = (): PValue[] => {
    const i = stack.lastIndexOf(MARK);
    if (i < 0) fail("pickle has no MARK to pop to");
    const items = stack.splice(i) as PValue[];
    items.shift();
    return items;
  };
  const top = (): PValue => {
    const v = stack[stack.length - 1];
    if (v === undefined || v === MARK) fail("pickle stack underflow");
    return v as PValue;
  };
  const global = (module: string, name: string): Global => {
    const full = `${module}.${name}`;
    if (!ALLOWED.includes(full)) fail(`pickle global "${full}" is not allowed: peftjs reads only tensor state dicts (${ALLOWED.slice(0, 3).join(", ")}, torch.*Storage) and never runs code named in a pickle`);
    return new Global(full);
  };
  const int = (v: PValue, what: string): number => (typeof v === "number" && Number.isSafeInteger(v) ? v : fail(`${what}: expected an integer, got ${describe(v)}`));
  const ints = (v: PValue, what: string): number[] => (Array.isArray(v) ? v.map((x) => int(x, what)) : fail(`${what}: expected a tuple of integers, got ${describe(v)}`));
  const reduce = (fn: PValue, args: PValue): PValue => {
    if (!(fn instanceof Global)) fail(`REDUCE of ${describe(fn)} is not allowed (only allowed globals are called)`);
    if (!Array.isArray(args)) fail(`REDUCE arguments must be a tuple, got ${describe(args)}`);
    const g = fn as Global;
    const a = args as PValue[];
    switch (g.name) {
      case "collections.OrderedDict":
        if (a.length !== 0) fail("collections.OrderedDict(...) with arguments is not allowed");
        return new Map();
      case "torch._utils._rebuild_tensor_v2": {
        // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
        const [storage, offset, size, stride] = a;
        if (!(storage instanceof StorageRef)) fail(`_rebuild_tensor_v2: expected a storage, got ${describe(storage ?? null)}`);
        return new TensorRef(storage as StorageRef, int(offset ?? null, "storage offset"), ints(size ?? null, "size"), ints(stride ?? null, "stride"));
      }
      case "torch._utils._rebuild_parameter": {
        // (data, requires_grad, backward_hooks): the tensor itself.
        if (!(a[0] instanceof TensorRef)) fail(`_rebuild_parameter: expected a tensor, got ${describe(a[0] ?? null)}`);
        return a[0]!;
      }
      default:
        return fail(`calling "${g.name}" is not allowed`);
    }
  };

  for (;;) {
    const op = u8();
    switch (op) {
      case 0x80: // PROTO
        if (u8() > 5) fail("pickle protocol above 5");
        break;
      case 0x95: // FRAME
        take(8);
        break;
      case 0x2e: // STOP
        if (stack.length !== 1) fail(`pickle ends with ${stack.length} values on the stack`);
        return pop();
      case 0x28: // MARK
        stack.push(MARK);
        break;
      case 0x7d: // EMPTY_DICT
        stack.push(new Map());
        break;
      case 0x5d: // EMPTY_LIST
      case 0x29: // EMPTY_TUPLE
        stack.push([]);
        break;
      case 0x74: // TUPLE
      case 0x6c: // LIST
        stack.push(popMark());
        break;
      case 0x85: // TUPLE1
        stack.push([pop()]);
        break;
      case 0x86: {
        // TUPLE2
        const b = pop();
        stack.push([pop(), b]);
        break;
      }
      case 0x87: {
        // TUPLE3
        const c = pop();
        const b = pop();
        stack.push([pop(), b, c]);
        break;
      }
      case 0x64: {
        // DICT
        const items = popMark();
        const m = new Map<PValue, PValue>();
        for (let i = 0; i + 1 < items.length; i += 2) m.set(items[i]!, items[i + 1]!);
        stack.push(m);
        break;
      }
      case 0x61: {
        // APPEND
        const v = pop();
        const list = top();
        if (!Array.isArray(list)) fail("APPEND to a non-list");
        (list as PValue[]).push(v);
        break;
      }
      case 0x65: {
        // APPENDS
        const items = popMark();
        const list = top();
        if (!Array.isArray(list)) fail("APPENDS to a non-list");
        (list as PValue[]).push(...items);
        break;
      }
      case 0x73: {
        // SETITEM
        const v = pop();
        const k = pop();
        const m = top();
        if (!(m instanceof Map)) fail("SETITEM on a non-dict");
        (m as Map<PValue, PValue>).set(k, v);
        break;
      }
      case 0x75: {
        // SETITEMS
        const items = popMark();
        const m = top();
        if (!(m instanceof Map)) fail("SETITEMS on a non-dict");
        for (let i = 0; i + 1 < items.length; i += 2) (m as Map<PValue, PValue>).set(items[i]!, items[i + 1]!);
        break;
      }
      case 0x71: // BINPUT
        memo.set(u8(), top());
        break;
      case 0x72: // LONG_BINPUT
        memo.set(u32(), top());
        break;
      case 0x94: // MEMOIZE
        memo.set(memo.size, top());
        break;
      case 0x70: // PUT
        memo.set(Number(line()), top());
        break;
      case 0x68: // BINGET
      case 0x6a: // LONG_BINGET
      case 0x67: {
        // GET
        const i = op === 0x68 ? u8() : op === 0x6a ? u32() : Number(line());
        if (!memo.has(i)) fail(`pickle memo ${i} is unset`);
        stack.push(memo.get(i)!);
        break;
      }
      case 0x4b: // BININT1
        stack.push(u8());
        break;
      case 0x4d: // BININT2
        stack.push(fixed(2, (o) => view.getUint16(o, true)));
        break;
      case 0x4a: // BININT
        stack.push(fixed(4, (o) => view.getInt32(o, true)));
        break;
      case 0x8a: {
        // LONG1: little-endian two's complement
        const bytes = take(u8());
        let v = 0n;
        for (let i = bytes.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(bytes[i]!);
        if (bytes.length && bytes[bytes.length - 1]! & 0x80) v -= 1n << BigInt(8 * bytes.length);
        stack.push(v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v);
        break;
      }
      case 0x47: // BINFLOAT (big-endian)
        stack.push(fixed(8, (o) => view.getFloat64(o, false)));
        break;
      case 0x4e: // NONE
        stack.push(null);
        break;
      case 0x88: // NEWTRUE
        stack.push(true);
        break;
      case 0x89: // NEWFALSE
        stack.push(false);
        break;
      case 0x58: // BINUNICODE
        stack.push(utf8.decode(take(u32())));
        break;
      case 0x8c: // SHORT_BINUNICODE
        stack.push(utf8.decode(take(u8())));
        break;
      case 0x8d: {
        // BINUNICODE8
        stack.push(utf8.decode(take(Number(fixed(8, (o) => view.getBigUint64(o, true))))));
        break;
      }
      case 0x55: // SHORT_BINSTRING
        stack.push(latin1.decode(take(u8())));
        break;
      case 0x43: // SHORT_BINBYTES
        stack.push(take(u8()));
        break;
      case 0x42: // BINBYTES
        stack.push(take(u32()));
        break;
      case 0x63: {
        // GLOBAL
        const module = line();
        stack.push(global(module, line()));
        break;
      }
      case 0x93: {
        // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== "string" || typeof name !== "string") fail("STACK_GLOBAL needs two strings");
        stack.push(global(module as string, name as string));
        break;
      }
      case 0x51: {
        // BINPERSID: torch's ('storage', <Type>Storage, key, location, numel)
        const pid = pop();
        if (!Array.isArray(pid) || pid[0] !== "storage" || !(pid[1] instanceof Global) || typeof pid[2] !== "string") fail(`persistent id ${describe(pid)} is not a torch storage`);
        const [, cls, key, , n] = pid as [string, Global, string, PValue, PValue];
        stack.push(new StorageRef(key, STORAGES[cls.name.slice("torch.".length)]!, int(n ?? null, "storage size")));
        break;
      }
      case 0x52: {
        // REDUCE
        const args = pop();
        stack.push(reduce(pop(), args));
        break;
      }
      case 0x62: {
        // BUILD: only an OrderedDict's instance state (a state dict's `_metadata`), which carries nothing we use.
        const state = pop();
        if (!(top() instanceof Map) || !(state instanceof Map || state === null || Array.isArray(state))) fail(`BUILD on ${describe(top())} is not allowed`);
        break;
      }
      default:
        return fail(`pickle opcode 0x${op.toString(16).padStart(2, "0")}${OPCODE_NAMES[op] ? ` (${OPCODE_NAMES[op]})` : ""} at byte ${at - 1} is not allowed in a tensor state dict`);
    }
  }
}

function describe(v: PValue | undefined): string {
  if (v instanceof Global) return `global ${v.name}`;
  if (v instanceof TensorRef) return "a tensor";
  if (v instanceof StorageRef) return "a storage";
  if (v instanceof Map) return "a dict";
  if (Array.isArray(v)) return `a tuple of ${v.length}`;
  if (v instanceof Uint8Array) return "bytes";
  return JSON.stringify(typeof v === "bigint" ? String(v) : v) ?? String(v);
}

/**
 * The tensors of a torch.save'd state dict (the zip layout of torch >= 1.6), by key, in file
 * order. Storages are read little-endian; views (offset, strides) are copied out contiguous.
 */
export function readTorchStateDict(bytes: Uint8Array, source: string): Map<string, Tensor> {
  try {
    return readStateDict(bytes, source);
  } catch (e) {
    if (e instanceof PickleError) throw e;
    // A damaged file can also fail inside the platform (invalid UTF-8 in a key, a view past a buffer): one error type for callers.
    throw new PickleError(`${source}: not a readable torch.save state dict (${(e as Error).message})`);
  }
}

function readStateDict(bytes: Uint8Array, source: string): Map<string, Tensor> {
  if (bytes[0] === 0x80) throw new PickleError(`${source}: a legacy (torch < 1.6) torch.save file; only the zip format is read. Re-save it with a current PyTorch or as safetensors`);
  let entries: Map<string, Uint8Array>;
  try {
    entries = readStoredZip(bytes, source);
  } catch (e) {
    if (e instanceof ZipError) throw new PickleError(e.message);
    throw e;
  }
  const pkl = [...entries.keys()].find((k) => /^[^/]+\/data\.pkl$/.test(k));
  if (!pkl) throw new PickleError(`${source}: no <archive>/data.pkl in the zip; not a torch.save file`);
  const prefix = pkl.slice(0, -"data.pkl".length);
  const order = entries.get(`${prefix}byteorder`);
  if (order && new TextDecoder().decode(order).trim() !== "little") throw new PickleError(`${source}: big-endian storages are not supported`);
  const root = unpickle(entries.get(pkl)!, `${source} (${pkl})`);
  if (!(root instanceof Map)) throw new PickleError(`${source}: expected a state dict (a dict of tensors), got ${describe(root)}`);
  const out = new Map<string, Tensor>();
  for (const [k, v] of root) {
    if (typeof k !== "string") throw new PickleError(`${source}: state dict key ${describe(k)} is not a string`);
    if (!(v instanceof TensorRef)) throw new PickleError(`${source}: "${k}" is ${describe(v)}, not a tensor`);
    out.set(k, materialize(v, entries.get(`${prefix}data/${v.storage.key}`), `${source}: "${k}"`));
  }
  return out;
}

function materialize(t: TensorRef, raw: Uint8Array | undefined, where: string): Tensor {
  const { dtype } = t.storage;
  if (!raw) throw new PickleError(`${where}: its storage data/${t.storage.key} is missing from the archive`);
  const width = BYTES_PER_ELEMENT[dtype];
  if (raw.length < t.storage.numel * width) throw new PickleError(`${where}: storage data/${t.storage.key} holds ${raw.length} bytes, fewer than ${t.storage.numel} ${dtype} elements`);
  const n = numel(t.size);
  if (t.size.length !== t.stride.length || t.size.some((d) => d < 0) || t.stride.some((s) => s < 0) || t.offset < 0) throw new PickleError(`${where}: bad size/stride [${t.size}] / [${t.stride}]`);
  // A view repeating elements (stride 0, torch's expand) never comes out of state_dict(); refusing it bounds the allocation by the storage.
  if (n > t.storage.numel) throw new PickleError(`${where}: view [${t.size}] has more elements than its storage (${t.storage.numel})`);
  const last = n === 0 ? 0 : t.offset + t.size.reduce((m, d, i) => m + (d - 1) * t.stride[i]!, 0);
  if (n > 0 && last >= t.storage.numel) throw new PickleError(`${where}: view [${t.size}] at offset ${t.offset} with strides [${t.stride}] reads past its storage of ${t.storage.numel}`);
  // Copy the storage bytes out aligned, then gather the view in row-major order.
  const aligned = new Uint8Array(t.storage.numel * width);
  aligned.set(raw.subarray(0, aligned.length));
  const Ctor = TYPED_ARRAY[dtype] as unknown as new (b: ArrayBuffer) => TypedArrayOf[DType];
  const src = new Ctor(aligned.buffer) as unknown as { [i: number]: number | bigint; length: number };
  const data = new (TYPED_ARRAY[dtype] as unknown as new (n: number) => TypedArrayOf[DType])(n) as unknown as { [i: number]: number | bigint };
  const idx = new Array<number>(t.size.length).fill(0);
  for (let i = 0; i < n; i++) {
    let pos = t.offset;
    for (let d = 0; d < idx.length; d++) pos += idx[d]! * t.stride[d]!;
    data[i] = src[pos]!;
    for (let d = idx.length - 1; d >= 0; d--) {
      if (++idx[d]! < t.size[d]!) break;
      idx[d] = 0;
    }
  }
  return { dtype, shape: [...t.size], data: data as unknown as TypedArrayOf[DType] };
}

/**
 * A torch.save file of `tensors` (an OrderedDict of contiguous CPU tensors, one storage each),
 * loadable by torch.load(weights_only=True). `archive` is the folder inside the zip (torch uses
 * the file's base name).
 */
export function writeTorchStateDict(tensors: ReadonlyMap<string, Tensor>, archive = "archive"): Uint8Array {
  const out: number[] = [];
  const enc = new TextEncoder();
  const byte = (...b: number[]) => out.push(...b);
  const text = (s: string) => out.push(...enc.encode(s));
  const i32 = (v: number) => {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setInt32(0, v, true);
    byte(0x4a, ...b);
  };
  const str = (s: string) => {
    const b = enc.encode(s);
    const n = new Uint8Array(4);
    new DataView(n.buffer).setUint32(0, b.length, true);
    byte(0x58, ...n, ...b);
  };
  const global = (module: string, name: string) => text(`c${module}\n${name}\n`);
  const orderedDict = () => (global("collections", "OrderedDict"), byte(0x29, 0x52));
  const storages: [string, Uint8Array][] = [];
  byte(0x80, 0x02);
  orderedDict();
  byte(0x28); // MARK for SETITEMS
  for (const [key, t] of tensors) {
    const cls = STORAGE_OF[t.dtype];
    if (!cls) throw new PickleError(`writeTorchStateDict: "${key}" has dtype ${t.dtype}, which has no torch storage here`);
    const n = numel(t.shape);
    if (n > 0x7fffffff) throw new PickleError(`writeTorchStateDict: "${key}" is too large`);
    const id = String(storages.length);
    const data = t.data as unknown as ArrayBufferView;
    storages.push([`${archive}/data/${id}`, new Uint8Array(data.buffer, data.byteOffset, n * BYTES_PER_ELEMENT[t.dtype]).slice()]);
    str(key);
    global("torch._utils", "_rebuild_tensor_v2");
    byte(0x28); // args
    byte(0x28), str("storage"), global("torch", cls), str(id), str("cpu"), i32(n), byte(0x74, 0x51); // persistent id
    i32(0); // storage offset
    byte(0x28), t.shape.forEach(i32), byte(0x74);
    const stride = t.shape.map((_, i) => t.shape.slice(i + 1).reduce((a, b) => a * b, 1));
    byte(0x28), stride.forEach(i32), byte(0x74);
    byte(0x89); // requires_grad False
    orderedDict(); // backward hooks
    byte(0x74, 0x52);
  }
  byte(0x75, 0x2e); // SETITEMS, STOP
  return writeStoredZip([[`${archive}/data.pkl`, Uint8Array.from(out)], ...storages, [`${archive}/version`, enc.encode("3\n")]]);
}
