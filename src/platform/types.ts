// The Node/browser boundary: the few file, path and host facilities the core (ir … train, io)
// uses, as one interface. Node implements it with node:fs/promises and node:path
// (./node.ts); a browser with fetch, File/Blob and the Origin Private File System
// (./browser.ts). The core imports them from ./host.js, which a browser build resolves to
// ./host.browser.ts (see ./esbuild-plugin.ts): the switch happens when modules are resolved,
// never by probing `typeof window` at run time.
//
// Signatures are the subset of node:fs/promises the core calls, so Node's functions satisfy it
// unchanged. Errors carry Node's `code` ("ENOENT", "EEXIST", "ENOTDIR", ...) on every platform.

/** What `stat` reports. */
export interface FileStats {
  size: number;
  /** Modification time, ms since the epoch (0 where unknown). */
  mtimeMs: number;
  isFile(): boolean;
  isDirectory(): boolean;
}

/** An open file: positioned reads for readers, appending writes for writers. */
export interface FileHandle {
  stat(): Promise<{ size: number }>;
  read(buffer: Uint8Array, offset: number, length: number, position: number): Promise<{ bytesRead: number }>;
  write(buffer: Uint8Array, offset?: number, length?: number): Promise<{ bytesWritten: number }>;
  /** Flush to durable storage (a no-op where writes are durable on close). */
  sync(): Promise<void>;
  close(): Promise<void>;
}

/** Files and folders under `/`-separated (Node: native) paths. */
export interface FileSystem {
  readFile(path: string): Promise<Uint8Array>;
  readFile(path: string, encoding: "utf8"): Promise<string>;
  writeFile(path: string, data: Uint8Array | string): Promise<void>;
  appendFile(path: string, data: string): Promise<void>;
  stat(path: string): Promise<FileStats>;
  access(path: string): Promise<void>;
  /** Names (not paths) of the entries of a folder. */
  readdir(path: string): Promise<string[]>;
  mkdir(path: string, opts?: { recursive?: boolean }): Promise<string | undefined>;
  rm(path: string, opts?: { recursive?: boolean; force?: boolean }): Promise<void>;
  unlink(path: string): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  copyFile(from: string, to: string): Promise<void>;
  /** The canonical path (symlinks resolved where the platform has them). */
  realpath(path: string): Promise<string>;
  /** "r": read an existing file (or a folder, for `sync`); "wx": create a new file to write. */
  open(path: string, flags: "r" | "wx"): Promise<FileHandle>;
}

/** Path arithmetic (Node: node:path; browser: POSIX rules). */
export interface PathApi {
  readonly sep: string;
  join(...parts: string[]): string;
  resolve(...parts: string[]): string;
  dirname(path: string): string;
  basename(path: string, suffix?: string): string;
  extname(path: string): string;
  isAbsolute(path: string): boolean;
}

/** Host facilities besides files. */
export interface HostApi {
  /** `n` cryptographically random bytes as 2n hex digits (temp-file names). */
  randomHex(n: number): string;
  /** An environment variable (undefined in a browser). */
  env(name: string): string | undefined;
  /** A folder for scratch files (the OS temp folder; "/tmp" of the browser's store). */
  tempDir(): string;
  /** A process id for temp-file names (0 in a browser). */
  readonly pid: number;
  /** Whether standard output is an interactive terminal (false in a browser). */
  readonly stdoutIsTTY: boolean;
  /** `size` bytes, possibly uninitialized, as a plain Uint8Array at byte offset 0 of its own buffer. */
  allocBytes(size: number): Uint8Array;
  /** The largest single byte buffer the host allocates. */
  readonly maxBufferBytes: number;
}

export interface Platform {
  readonly name: "node" | "browser";
  readonly fs: FileSystem;
  readonly path: PathApi;
  readonly host: HostApi;
}

/** An Error with Node's `code` property, thrown by non-Node implementations. */
export function fsError(code: string, syscall: string, path: string, detail?: string): Error & { code: string; path: string } {
  const e = new Error(`${code}: ${detail ?? code}, ${syscall} '${path}'`) as Error & { code: string; path: string; syscall: string };
  e.code = code;
  e.path = path;
  e.syscall = syscall;
  return e;
}
