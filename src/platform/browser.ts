// The browser implementation of the platform boundary. One `/`-rooted file tree:
// - mounted folders: read-only, backed by File/Blob objects (a folder the user dropped or picked)
//   or by URLs (fetch; e.g. the shipped models served next to the page), see mountFiles/mountUrl;
// - everything else: the Origin Private File System (navigator.storage.getDirectory()), writable
//   and persistent: the hub cache, training output, checkpoints. Without OPFS (an insecure page,
//   or Node for tests) the same code runs on an in-memory tree.
// Errors carry Node's codes (ENOENT, EEXIST, ENOTDIR, EISDIR, ENOTEMPTY, EROFS), which the core
// tests for.
import { posixPath } from "./posix-path.js";
import { fsError, type FileHandle, type FileStats, type FileSystem, type Platform } from "./types.js";

// -- the part of the File System Access API used here (tsconfig has no DOM types) --------------

interface BlobLike {
  readonly size: number;
  arrayBuffer(): Promise<ArrayBuffer>;
  slice(start?: number, end?: number): BlobLike;
}
interface FileLike extends BlobLike {
  readonly lastModified: number;
}
interface WritableLike {
  write(data: Uint8Array | string): Promise<void>;
  seek(position: number): Promise<void>;
  close(): Promise<void>;
}
interface FileHandleLike {
  readonly kind: "file";
  getFile(): Promise<FileLike>;
  createWritable(opts?: { keepExistingData?: boolean }): Promise<WritableLike>;
}
interface DirHandleLike {
  readonly kind: "directory";
  getDirectoryHandle(name: string, opts?: { create?: boolean }): Promise<DirHandleLike>;
  getFileHandle(name: string, opts?: { create?: boolean }): Promise<FileHandleLike>;
  removeEntry(name: string, opts?: { recursive?: boolean }): Promise<void>;
  keys(): AsyncIterable<string>;
}

// -- an in-memory directory with the same interface (no OPFS) --------------------------------

class MemoryFile implements FileHandleLike {
  readonly kind = "file";
  bytes = new Uint8Array(0);
  lastModified = Date.now();
  async getFile(): Promise<FileLike> {
    return memoryBlob(this.bytes.slice(), this.lastModified);
  }
  async createWritable(opts?: { keepExistingData?: boolean }): Promise<WritableLike> {
    let data = opts?.keepExistingData ? this.bytes.slice() : new Uint8Array(0);
    let at = 0;
    return {
      write: async (chunk) => {
        const bytes = typeof chunk === "string" ? new TextEncoder().encode(chunk) : chunk;
        if (at + bytes.length > data.length) {
          const grown = new Uint8Array(Math.max(at + bytes.length, data.length * 2));
          grown.set(data);
          data = grown.subarray(0, at + bytes.length);
        }
        data.set(bytes, at);
        at += bytes.length;
      },
      seek: async (p) => {
        at = p;
      },
      close: async () => {
        this.bytes = data.slice();
        this.lastModified = Date.now();
      },
    };
  }
}

function memoryBlob(bytes: Uint8Array, lastModified: number): FileLike {
  return {
    size: bytes.length,
    lastModified,
    arrayBuffer: async () => bytes.slice().buffer as ArrayBuffer,
    slice: (start = 0, end = bytes.length) => memoryBlob(bytes.subarray(start, end), lastModified),
  };
}

function domError(name: string): Error {
  const e = new Error(name);
  e.name = name;
  return e;
}

class MemoryDir implements DirHandleLike {
  readonly kind = "directory";
  private readonly entries = new Map<string, MemoryDir | MemoryFile>();
  async getDirectoryHandle(name: string, opts?: { create?: boolean }): Promise<DirHandleLike> {
    return this.entry(name, MemoryDir, opts?.create);
  }
  async getFileHandle(name: string, opts?: { create?: boolean }): Promise<FileHandleLike> {
    return this.entry(name, MemoryFile, opts?.create);
  }
  /** The entry `name` of kind `Kind` (created when asked), with OPFS's errors otherwise. */
  private entry<T extends MemoryDir | MemoryFile>(name: string, Kind: new () => T, create?: boolean): T {
    const e = this.entries.get(name);
    if (e instanceof Kind) return e;
    if (e) throw domError("TypeMismatchError");
    if (!create) throw domError("NotFoundError");
    const made = new Kind();
    this.entries.set(name, made);
    return made;
  }
  async removeEntry(name: string, opts?: { recursive?: boolean }): Promise<void> {
    const e = this.entries.get(name);
    if (!e) throw domError("NotFoundError");
    if (e instanceof MemoryDir && e.entries.size && !opts?.recursive) throw domError("InvalidModificationError");
    this.entries.delete(name);
  }
  async *keys(): AsyncIterable<string> {
    yield* [...this.entries.keys()];
  }
}

// -- mounts ------------------------------------------------------------------------------------

type Mount = { prefix: string; kind: "blobs"; files: Map<string, BlobLike> } | { prefix: string; kind: "url"; base: string; files?: Set<string> };

const mounts: Mount[] = [];

function normalizePrefix(prefix: string): string {
  const p = posixPath.resolve(prefix);
  if (p === "/") throw new Error(`mount point "${prefix}": mount a folder below "/", not the root (the root is the writable store)`);
  return p;
}

function replaceMount(m: Mount): void {
  unmount(m.prefix);
  mounts.push(m);
  mounts.sort((a, b) => b.prefix.length - a.prefix.length); // longest prefix wins
}

/**
 * Make `files` readable under the folder `prefix`: names are paths relative to it. A File's
 * `webkitRelativePath` (a picked folder) or `name` is used when `files` is a list.
 *
 * @example
 *   mountFiles("/models/mine", input.files); // <input type="file" webkitdirectory>
 *   const model = await loadModel("/models/mine");
 */
export function mountFiles(prefix: string, files: Iterable<BlobLike & { name?: string; webkitRelativePath?: string }> | Readonly<Record<string, BlobLike>>): void {
  const p = normalizePrefix(prefix);
  const map = new Map<string, BlobLike>();
  const entries: [string, BlobLike][] =
    Symbol.iterator in files
      ? [...(files as Iterable<BlobLike & { name?: string; webkitRelativePath?: string }>)].map((f) => {
          // A picked folder's files are "<folder>/<file>": drop the picked folder's own name.
          const rel = f.webkitRelativePath ? f.webkitRelativePath.split("/").slice(1).join("/") : f.name;
          if (!rel) throw new Error(`mountFiles("${prefix}"): a file has no name`);
          return [rel, f];
        })
      : Object.entries(files as Record<string, BlobLike>);
  for (const [rel, blob] of entries) map.set(posixPath.join("/", rel).slice(1), blob);
  replaceMount({ prefix: p, kind: "blobs", files: map });
}

/**
 * Make the folder at `baseUrl` readable under `prefix` (fetch; reads need the server to answer
 * GET and HEAD). `files` lists the folder's entries for readdir (URLs cannot be listed).
 *
 * @example
 *   mountUrl("/models/encoder-mini", new URL("models/encoder-mini/", location.href).href);
 */
export function mountUrl(prefix: string, baseUrl: string, files?: readonly string[]): void {
  replaceMount({ prefix: normalizePrefix(prefix), kind: "url", base: baseUrl.endsWith("/") ? baseUrl : `${baseUrl}/`, ...(files ? { files: new Set(files) } : {}) });
}

/** Remove the mount at `prefix` (if any). */
export function unmount(prefix: string): void {
  const p = posixPath.resolve(prefix);
  const i = mounts.findIndex((m) => m.prefix === p);
  if (i >= 0) mounts.splice(i, 1);
}

function mountOf(path: string): { mount: Mount; rel: string } | undefined {
  for (const mount of mounts) {
    if (path === mount.prefix) return { mount, rel: "" };
    if (path.startsWith(`${mount.prefix}/`)) return { mount, rel: path.slice(mount.prefix.length + 1) };
  }
  return undefined;
}

function childrenOf(names: Iterable<string>, rel: string): string[] {
  const out = new Set<string>();
  const lead = rel ? `${rel}/` : "";
  for (const n of names) if (n.startsWith(lead) && n.length > lead.length) out.add(n.slice(lead.length).split("/")[0]!);
  return [...out];
}

async function fetchOk(url: string, path: string, syscall: string, init?: RequestInit): Promise<Response> {
  let res: Response;
  try {
    res = await fetch(url, init);
  } catch (e) {
    throw fsError("EIO", syscall, path, `fetch ${url} failed (${(e as Error).message})`);
  }
  if (res.status === 404 || res.status === 410) throw fsError("ENOENT", syscall, path, `${url} answered ${res.status}`);
  if (!res.ok) throw fsError("EIO", syscall, path, `${url} answered ${res.status} ${res.statusText}`);
  return res;
}

// -- the writable store (OPFS or memory) --------------------------------------------------------

let rootPromise: Promise<DirHandleLike> | undefined;

/** The writable store's root: OPFS where the page has it, else an in-memory folder. */
function storeRoot(): Promise<DirHandleLike> {
  rootPromise ??= (async () => {
    const storage = (globalThis as unknown as { navigator?: { storage?: { getDirectory?: () => Promise<DirHandleLike> } } }).navigator?.storage;
    if (storage?.getDirectory) {
      try {
        return await storage.getDirectory();
      } catch {
        /* e.g. a private window without OPFS: fall back to memory */
      }
    }
    return new MemoryDir();
  })();
  return rootPromise;
}

/** Whether the writable store is the Origin Private File System (persistent) rather than memory. */
export async function usesOpfs(): Promise<boolean> {
  return !((await storeRoot()) instanceof MemoryDir);
}

function segments(path: string): string[] {
  return path.split("/").filter(Boolean);
}

function mapDomError(e: unknown, syscall: string, path: string): Error {
  const name = (e as Error)?.name;
  if (name === "NotFoundError") return fsError("ENOENT", syscall, path, "no such file or directory");
  if (name === "TypeMismatchError") return fsError("ENOTDIR", syscall, path, "a file where a folder was expected, or the reverse");
  if (name === "InvalidModificationError") return fsError("ENOTEMPTY", syscall, path, "folder not empty");
  return e instanceof Error ? e : new Error(String(e));
}

async function dirAt(path: string, syscall: string, create = false): Promise<DirHandleLike> {
  let d = await storeRoot();
  try {
    for (const s of segments(path)) d = await d.getDirectoryHandle(s, { create });
  } catch (e) {
    throw mapDomError(e, syscall, path);
  }
  return d;
}

async function entryAt(path: string, syscall: string): Promise<FileHandleLike | DirHandleLike> {
  const parts = segments(path);
  if (!parts.length) return storeRoot();
  const parent = await dirAt(posixPath.dirname(path), syscall);
  const name = parts[parts.length - 1]!;
  try {
    return await parent.getFileHandle(name);
  } catch (e) {
    if ((e as Error).name !== "TypeMismatchError") throw mapDomError(e, syscall, path);
  }
  try {
    return await parent.getDirectoryHandle(name);
  } catch (e) {
    throw mapDomError(e, syscall, path);
  }
}

async function fileAt(path: string, syscall: string, create = false): Promise<FileHandleLike> {
  const parent = await dirAt(posixPath.dirname(path), syscall);
  try {
    return await parent.getFileHandle(posixPath.basename(path), { create });
  } catch (e) {
    const err = mapDomError(e, syscall, path);
    if ((err as { code?: string }).code === "ENOTDIR") throw fsError("EISDIR", syscall, path, "is a folder");
    throw err;
  }
}

function readOnly(syscall: string, path: string): never {
  throw fsError("EROFS", syscall, path, "a mounted folder is read-only; write below another path (the Origin Private File System)");
}

// -- reading any path ---------------------------------------------------------------------------

async function blobAt(path: string, syscall: string): Promise<BlobLike> {
  const abs = posixPath.resolve(path);
  const m = mountOf(abs);
  if (!m) {
    const h = await entryAt(abs, syscall);
    if (h.kind !== "file") throw fsError("EISDIR", syscall, abs, "is a folder");
    return h.getFile();
  }
  if (m.mount.kind === "blobs") {
    const b = m.mount.files.get(m.rel);
    if (b) return b;
    throw fsError(childrenOf(m.mount.files.keys(), m.rel).length ? "EISDIR" : "ENOENT", syscall, abs);
  }
  const bytes = new Uint8Array(await (await fetchOk(m.mount.base + m.rel, abs, syscall)).arrayBuffer());
  return memoryBlob(bytes, 0);
}

async function statOf(path: string): Promise<FileStats> {
  const abs = posixPath.resolve(path);
  const file = (size: number, mtimeMs: number): FileStats => ({ size, mtimeMs, isFile: () => true, isDirectory: () => false });
  const dir: FileStats = { size: 0, mtimeMs: 0, isFile: () => false, isDirectory: () => true };
  const m = mountOf(abs);
  if (!m) {
    const h = await entryAt(abs, "stat");
    if (h.kind === "directory") return dir;
    const f = await h.getFile();
    return file(f.size, f.lastModified);
  }
  const { mount, rel } = m;
  if (rel === "") return dir;
  if (mount.kind === "blobs" || mount.files) {
    const names = mount.kind === "blobs" ? [...mount.files.keys()] : [...mount.files!];
    const blob = mount.kind === "blobs" ? mount.files.get(rel) : undefined;
    if (names.includes(rel)) return mount.kind === "blobs" ? file(blob!.size, (blob as Partial<FileLike>).lastModified ?? 0) : file(await urlSize(mount.base + rel, abs), 0);
    if (childrenOf(names, rel).length) return dir;
    throw fsError("ENOENT", "stat", abs);
  }
  return file(await urlSize(mount.base + rel, abs), 0);
}

async function urlSize(url: string, path: string): Promise<number> {
  const res = await fetchOk(url, path, "stat", { method: "HEAD" });
  const n = Number(res.headers.get("content-length"));
  return Number.isFinite(n) ? n : (await (await fetchOk(url, path, "stat")).arrayBuffer()).byteLength;
}

// -- the FileSystem ---------------------------------------------------------------------------

const utf8 = new TextDecoder();

async function copyTree(from: string, to: string): Promise<void> {
  const s = await statOf(from);
  if (s.isFile()) {
    await fs.writeFile(to, new Uint8Array(await (await blobAt(from, "copyfile")).arrayBuffer()));
    return;
  }
  await fs.mkdir(to, { recursive: true });
  for (const name of await fs.readdir(from)) await copyTree(posixPath.join(from, name), posixPath.join(to, name));
}

const fs: FileSystem = {
  readFile: (async (path: string, encoding?: "utf8") => {
    const bytes = new Uint8Array(await (await blobAt(path, "open")).arrayBuffer());
    return encoding ? utf8.decode(bytes) : bytes;
  }) as FileSystem["readFile"],

  async writeFile(path, data) {
    const abs = posixPath.resolve(path);
    if (mountOf(abs)) readOnly("open", abs);
    const w = await (await fileAt(abs, "open", true)).createWritable();
    await w.write(data);
    await w.close();
  },

  async appendFile(path, data) {
    const abs = posixPath.resolve(path);
    if (mountOf(abs)) readOnly("open", abs);
    const h = await fileAt(abs, "open", true);
    const size = (await h.getFile()).size;
    const w = await h.createWritable({ keepExistingData: true });
    await w.seek(size);
    await w.write(data);
    await w.close();
  },

  stat: statOf,

  async access(path) {
    await statOf(path);
  },

  async readdir(path) {
    const abs = posixPath.resolve(path);
    const m = mountOf(abs);
    if (m) {
      if (m.mount.kind === "url" && !m.mount.files) throw fsError("ENOTSUP", "scandir", abs, `cannot list ${m.mount.base}${m.rel} (pass the file names to mountUrl)`);
      const names = m.mount.kind === "blobs" ? m.mount.files.keys() : m.mount.files!;
      const kids = childrenOf(names, m.rel);
      if (!kids.length && (await statOf(abs)).isFile()) throw fsError("ENOTDIR", "scandir", abs);
      return kids.sort();
    }
    const h = await entryAt(abs, "scandir");
    if (h.kind !== "directory") throw fsError("ENOTDIR", "scandir", abs);
    const out: string[] = [];
    for await (const k of h.keys()) out.push(k);
    return out.sort();
  },

  async mkdir(path, opts) {
    const abs = posixPath.resolve(path);
    if (mountOf(abs)) readOnly("mkdir", abs);
    const exists = await statOf(abs).then((s) => s, () => undefined);
    if (exists) {
      if (opts?.recursive && exists.isDirectory()) return undefined;
      throw fsError(exists.isDirectory() ? "EEXIST" : "ENOTDIR", "mkdir", abs);
    }
    if (!opts?.recursive) await dirAt(posixPath.dirname(abs), "mkdir");
    await dirAt(abs, "mkdir", true);
    return opts?.recursive ? abs : undefined;
  },

  async rm(path, opts) {
    const abs = posixPath.resolve(path);
    if (mountOf(abs)) readOnly("rm", abs);
    if (abs === "/") throw fsError("EPERM", "rm", abs, "will not remove the store's root");
    try {
      const s = await statOf(abs);
      if (s.isDirectory() && !opts?.recursive) throw fsError("EISDIR", "rm", abs, "is a folder (pass recursive)");
      await (await dirAt(posixPath.dirname(abs), "rm")).removeEntry(posixPath.basename(abs), { recursive: true });
    } catch (e) {
      if (opts?.force && (e as { code?: string }).code === "ENOENT") return;
      throw mapDomError(e, "rm", abs);
    }
  },

  async unlink(path) {
    const abs = posixPath.resolve(path);
    if (mountOf(abs)) readOnly("unlink", abs);
    if ((await statOf(abs)).isDirectory()) throw fsError("EISDIR", "unlink", abs);
    await (await dirAt(posixPath.dirname(abs), "unlink")).removeEntry(posixPath.basename(abs)).catch((e) => {
      throw mapDomError(e, "unlink", abs);
    });
  },

  // OPFS has no atomic rename of folders: copy, then remove the source. A crash in between
  // leaves both (the core's recovery keeps the complete one); good enough for checkpoints.
  async rename(from, to) {
    const [a, b] = [posixPath.resolve(from), posixPath.resolve(to)];
    if (mountOf(a)) readOnly("rename", a);
    if (mountOf(b)) readOnly("rename", b);
    if (a === b) return;
    const source = await statOf(a);
    const target = await statOf(b).then((s) => s, () => undefined);
    if (target) {
      if (source.isDirectory() !== target.isDirectory()) throw fsError(target.isDirectory() ? "EISDIR" : "ENOTDIR", "rename", b);
      if (target.isDirectory() && (await fs.readdir(b)).length) throw fsError("ENOTEMPTY", "rename", b);
      await fs.rm(b, { recursive: true });
    }
    await copyTree(a, b);
    await fs.rm(a, { recursive: true });
  },

  async copyFile(from, to) {
    await fs.writeFile(to, await fs.readFile(from));
  },

  async realpath(path) {
    await statOf(path);
    return posixPath.resolve(path);
  },

  async open(path, flags) {
    const abs = posixPath.resolve(path);
    if (flags === "r") {
      const s = await statOf(abs);
      const blob = s.isFile() ? await blobAt(abs, "open") : undefined;
      return {
        stat: async () => ({ size: blob?.size ?? 0 }),
        read: async (buffer, offset, length, position) => {
          if (!blob) throw fsError("EISDIR", "read", abs);
          const bytes = new Uint8Array(await blob.slice(position, position + length).arrayBuffer());
          buffer.set(bytes, offset);
          return { bytesRead: bytes.length };
        },
        write: async () => readOnly("write", abs),
        sync: async () => {},
        close: async () => {},
      } satisfies FileHandle;
    }
    if (mountOf(abs)) readOnly("open", abs);
    if (await statOf(abs).then(() => true, () => false)) throw fsError("EEXIST", "open", abs);
    const w = await (await fileAt(abs, "open", true)).createWritable();
    let written = 0;
    return {
      stat: async () => ({ size: written }),
      read: async () => {
        throw fsError("EBADF", "read", abs, "opened for writing");
      },
      write: async (buffer, offset = 0, length = buffer.byteLength - offset) => {
        await w.write(buffer.subarray(offset, offset + length));
        written += length;
        return { bytesWritten: length };
      },
      sync: async () => {},
      close: () => w.close(),
    } satisfies FileHandle;
  },
};

function randomHex(n: number): string {
  const bytes = new Uint8Array(n);
  globalThis.crypto.getRandomValues(bytes);
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

export const browserPlatform: Platform = {
  name: "browser",
  fs,
  path: posixPath,
  host: {
    randomHex,
    env: () => undefined,
    tempDir: () => "/tmp",
    pid: 0,
    stdoutIsTTY: false,
    allocBytes: (size) => new Uint8Array(size),
    maxBufferBytes: 2 ** 31 - 1, // wasm32 engines and ArrayBuffers in browsers top out near 2 GiB
  },
};
