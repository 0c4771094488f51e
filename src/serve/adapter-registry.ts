// The server's adapters: which names exist (the adapter root's subfolders, --adapter name=path,
// load_lora_adapter), which are loaded (lazily, on first use), and an LRU bound on how many and how
// many bytes stay loaded. A request holds a lease on the adapter version it started with; unloading
// or evicting waits until no lease is held, so a request never finishes on another version.
import { realpath, stat } from "node:fs/promises";
import { isAbsolute, join, relative, resolve } from "node:path";
import { validateAdapterName, ADAPTER_CONFIG } from "../peft/peft-model.js";
import { ServeError } from "./errors.js";

/** How an engine loads an adapter folder (into its own structures) and frees it. */
export interface AdapterLoader<T> {
  load(path: string, internalName: string): Promise<{ value: T; bytes: number }>;
  unload(value: T, internalName: string): Promise<void>;
}

export interface LoadedAdapter<T> {
  readonly name: string;
  /** Increases with every load in this process: a reload under the same name is a new version. */
  readonly version: number;
  readonly path: string;
  /** Unique per version (`name@version`): the adapter's name inside the engine's PeftModel. */
  readonly internalName: string;
  readonly bytes: number;
  readonly value: T;
  users: number;
  lastUsed: number;
  private_idle: (() => void)[];
}

/** A request's hold on one adapter version; `release()` once the request is done with it. */
export interface Lease<T> {
  readonly adapter: LoadedAdapter<T>;
  release(): void;
}

export interface RegistryEvents {
  hit(): void;
  miss(): void;
  eviction(): void;
  changed(loaded: number, bytes: number): void;
}

export interface RegistryOptions {
  root?: string;
  /** name -> path, from --adapter. */
  named?: Readonly<Record<string, string>>;
  maxLoaded: number;
  maxBytes: number;
  /** Names that may not be adapters (the base model's own name). */
  reserved?: readonly string[];
  events?: Partial<RegistryEvents>;
  log?: (msg: string, fields?: object) => void;
}

export class AdapterRegistry<T> {
  private readonly paths = new Map<string, string>();
  private readonly loaded = new Map<string, LoadedAdapter<T>>();
  private readonly loading = new Map<string, Promise<LoadedAdapter<T>>>();
  private version = 0;
  private realRoot: string | undefined;

  constructor(
    private readonly loader: AdapterLoader<T>,
    private readonly opts: RegistryOptions,
  ) {
    for (const [name, path] of Object.entries(opts.named ?? {})) {
      this.checkName(name);
      this.paths.set(name, resolve(path));
    }
  }

  /** Names known now: --adapter names, runtime-loaded ones and the root's subfolders holding an adapter_config.json. */
  async names(): Promise<string[]> {
    const out = new Set([...this.paths.keys(), ...this.loaded.keys()]);
    if (this.opts.root) {
      const { readdir } = await import("node:fs/promises");
      for (const d of await readdir(this.opts.root, { withFileTypes: true }).catch(() => [])) {
        if ((d.isDirectory() || d.isSymbolicLink()) && (await exists(join(this.opts.root, d.name, ADAPTER_CONFIG)))) out.add(d.name);
      }
    }
    return [...out].sort();
  }

  get loadedAdapters(): readonly LoadedAdapter<T>[] {
    return [...this.loaded.values()];
  }

  get loadedBytes(): number {
    let n = 0;
    for (const a of this.loaded.values()) n += a.bytes;
    return n;
  }

  /** Hold `name` (loading it on first use) until `release()`. */
  async acquire(name: string): Promise<Lease<T>> {
    let entry = this.loaded.get(name);
    if (entry) this.opts.events?.hit?.();
    else {
      let pending = this.loading.get(name);
      if (!pending) {
        this.opts.events?.miss?.();
        pending = this.loadAt(name, this.pathOf(name));
      }
      entry = await pending;
    }
    return this.lease(entry);
  }

  /** POST /v1/load_lora_adapter: a new adapter (or a new version of one not loaded now) from a path under the root. */
  async load(name: string, loraPath: string): Promise<LoadedAdapter<T>> {
    this.checkName(name);
    // A first use of the name may be looking for it right now (and failing): let it finish.
    await this.loading.get(name)?.catch(() => undefined);
    if (this.loaded.has(name) || this.loading.has(name)) throw new ServeError(400, `the adapter "${name}" is already loaded; unload it first`);
    const entry = await this.loadAt(name, this.confine(loraPath));
    this.paths.set(name, entry.path);
    return entry;
  }

  /** POST /v1/unload_lora_adapter: forget `name`; waits for the requests holding it, then frees it. */
  async unload(name: string): Promise<void> {
    const pending = this.loading.get(name);
    if (pending) await pending.catch(() => undefined);
    const entry = this.loaded.get(name);
    const known = this.paths.delete(name);
    if (!entry && !known) throw new ServeError(404, `the adapter "${name}" is not loaded; loaded: ${[...this.loaded.keys()].join(", ") || "none"}`);
    if (entry) await this.drop(entry);
  }

  /** Unload everything (server shutdown); waits for leases. */
  async close(): Promise<void> {
    await Promise.all([...this.loading.values()].map((p) => p.catch(() => undefined)));
    await Promise.all([...this.loaded.values()].map((e) => this.drop(e)));
  }

  private lease(entry: LoadedAdapter<T>): Lease<T> {
    entry.users++;
    entry.lastUsed = performance.now();
    let released = false;
    return {
      adapter: entry,
      release: () => {
        if (released) return;
        released = true;
        entry.users--;
        if (entry.users === 0) for (const f of entry.private_idle.splice(0)) f();
      },
    };
  }

  private async drop(entry: LoadedAdapter<T>): Promise<void> {
    if (this.loaded.get(entry.name) === entry) this.loaded.delete(entry.name);
    this.changed();
    if (entry.users > 0) await new Promise<void>((r) => entry.private_idle.push(r));
    await this.loader.unload(entry.value, entry.internalName);
  }

  /** Load `name` from `where`; registered in `loading` at once, so concurrent first uses share one load. */
  private loadAt(name: string, where: string | Promise<string>): Promise<LoadedAdapter<T>> {
    const version = ++this.version;
    const internalName = `${name}@${version}`;
    const p = (async () => {
      const path = await where;
      let loaded: { value: T; bytes: number };
      try {
        loaded = await this.loader.load(path, internalName);
      } catch (e) {
        if (e instanceof ServeError) throw e;
        this.opts.log?.("adapter load failed", { adapter: name, path, error: (e as Error).message });
        throw new ServeError(400, `the adapter "${name}" at ${path} could not be loaded: ${(e as Error).message}`);
      }
      const entry: LoadedAdapter<T> = { name, version, path, internalName, bytes: loaded.bytes, value: loaded.value, users: 0, lastUsed: performance.now(), private_idle: [] };
      this.loaded.set(name, entry);
      this.evict(entry);
      this.changed();
      return entry;
    })();
    this.loading.set(name, p);
    void p.finally(() => this.loading.get(name) === p && this.loading.delete(name)).catch(() => undefined);
    return p;
  }

  /** Unload least recently used idle adapters while over the count or byte bound (never `keep`). */
  private evict(keep: LoadedAdapter<T>): void {
    const over = () => this.loaded.size > this.opts.maxLoaded || this.loadedBytes > this.opts.maxBytes;
    while (over()) {
      const idle = [...this.loaded.values()].filter((e) => e !== keep && e.users === 0).sort((a, b) => a.lastUsed - b.lastUsed);
      const victim = idle[0];
      if (!victim) return; // every other adapter is in use: stay over the bound until they are released
      this.opts.events?.eviction?.();
      this.opts.log?.("adapter evicted", { adapter: victim.name, version: victim.version });
      void this.drop(victim);
    }
  }

  private changed(): void {
    this.opts.events?.changed?.(this.loaded.size, this.loadedBytes);
  }

  private checkName(name: string): void {
    try {
      validateAdapterName(name);
    } catch (e) {
      throw new ServeError(400, (e as Error).message);
    }
    if (name.includes("..") || /[\u0000-\u001f]/.test(name)) throw new ServeError(400, `invalid adapter name ${JSON.stringify(name)}: no ".." or control characters`);
    if (this.opts.reserved?.includes(name)) throw new ServeError(400, `"${name}" is the base model's name; choose another adapter name`);
  }

  /** Where `name` lives: its registered path, else `<root>/<name>` when that holds an adapter. */
  private async pathOf(name: string): Promise<string> {
    const known = this.paths.get(name);
    if (known) return known;
    const available = async () => (await this.names()).join(", ") || "none";
    if (this.opts.root) {
      let valid = true;
      try {
        this.checkName(name);
      } catch {
        valid = false;
      }
      if (valid && (await exists(join(this.opts.root, name, ADAPTER_CONFIG)))) return this.confine(name);
    }
    throw new ServeError(404, `the model "${name}" does not exist; available: ${await available()}`);
  }

  /** `path` (relative to the root, or absolute) resolved through symlinks; refused unless it lies under the root. */
  private async confine(path: string): Promise<string> {
    if (!this.opts.root) throw new ServeError(400, "loading adapters at runtime needs an adapter root (--adapters DIR); none was configured");
    this.realRoot ??= await realpath(this.opts.root);
    const abs = isAbsolute(path) ? path : join(this.opts.root, path);
    let real: string;
    try {
      real = await realpath(abs);
    } catch {
      // Say nothing about what exists outside the root.
      const rel = relative(resolve(this.opts.root), resolve(abs));
      if (rel.startsWith("..") || isAbsolute(rel)) throw new ServeError(400, `lora_path ${JSON.stringify(path)} lies outside the adapter root`);
      throw new ServeError(404, `lora_path ${JSON.stringify(path)} does not exist under the adapter root`);
    }
    const rel = relative(this.realRoot, real);
    if (rel === "" || rel.startsWith("..") || isAbsolute(rel)) throw new ServeError(400, `lora_path ${JSON.stringify(path)} lies outside the adapter root`);
    return real;
  }
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}
