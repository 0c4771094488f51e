// Hub downloads through @huggingface/hub's cache: the same layout as Python's huggingface_hub
// (`<HF_HUB_CACHE>/models--owner--name/{blobs/<etag>, snapshots/<commit>/<file>, refs/<revision>}`),
// so a model downloaded by either is found by the other. Online, a revision is resolved to its
// commit on every load, so a moved branch is refreshed; offline, or when the hub cannot be
// reached, `refs/<revision>` names the cached commit. Everything a hub names (files in shard
// indexes, blob ids, commits) is validated before it becomes a path, and every file is confined
// to the cache. Local directories are used as they are.
import { HubApiError, listFiles, modelInfo, type ListFileEntry } from "@huggingface/hub";
import { downloadFileToCacheDir, getHFHubCachePath, getRepoFolderName } from "../platform/hub-cache.js";
import { dirname, host, isAbsolute, join, mkdir, readFile, realpath, rename, resolve, rm, sep, stat, writeFile } from "../platform/host.js";

export interface HubOptions {
  /** Base URL of the hub (default $HF_ENDPOINT or https://huggingface.co). */
  endpoint?: string;
  /** Branch, tag or commit (default "main"). */
  revision?: string;
  /** Cache root (default Python's: $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub). */
  cacheDir?: string;
  /** Access token for gated/private repos (default $HF_TOKEN). */
  token?: string;
  /** Never touch the network; use the cached commit of the revision (default: $HF_HUB_OFFLINE set to 1/true/yes/on). */
  offline?: boolean;
  /** Called with one line per file downloaded (e.g. to print progress on stderr). */
  log?: (line: string) => void;
}

export class HubError extends Error {}

/** A transfer that went wrong in a way a second attempt may fix. */
class RetryableError extends Error {}

const CONFIG = "config.json";
const WEIGHTS = "model.safetensors";
const INDEX = "model.safetensors.index.json";
const OPTIONAL = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json"];
/** Attempts per file: a dropped connection or a 5xx is retried, a 4xx is not. */
const ATTEMPTS = 3;
/** Shard indexes are a few hundred KB; anything this big is not one. */
const MAX_INDEX_BYTES = 64 * 2 ** 20;
const COMMIT = /^[0-9a-f]{40}$/;
/** Blob names: a git blob id (sha1, 40 hex) or an LFS/xet sha256 (64 hex), as the hub sends them. */
const BLOB_ID = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/;

const truthy = (v: string | undefined) => /^(1|true|yes|on)$/i.test(v ?? "");
const message = (e: unknown) => (e instanceof Error ? `${e.message}${e.cause instanceof Error ? ` (${e.cause.message})` : ""}` : String(e));

/** The cache root: `opts.cacheDir`, else the one Python uses. */
export function hubCacheDir(opts: HubOptions = {}): string {
  return opts.cacheDir ?? getHFHubCachePath();
}

/** The cache folder of a model repo (`models--owner--name`). */
export function repoCacheDir(repo: string, opts: HubOptions = {}): string {
  return join(hubCacheDir(opts), getRepoFolderName({ type: "model", name: repo }));
}

/** The snapshot folder of a repo at a commit. */
export function snapshotDir(repo: string, commit: string, opts: HubOptions = {}): string {
  return join(repoCacheDir(repo, opts), "snapshots", commit);
}

/**
 * A relative file name from a hub listing or shard index that is safe to join onto a snapshot
 * folder: no empty, "." or ".." segment, no absolute or drive path, no backslash or NUL.
 * `plain` also refuses sub-folders (shards sit beside their index).
 */
export function checkRepoFileName(name: unknown, what: string, plain = false): string {
  const bad = (why: string): never => {
    throw new HubError(`${what}: ${JSON.stringify(name)} is not a safe file name (${why})`);
  };
  if (typeof name !== "string" || name === "") return bad("expected a non-empty string");
  if (name.length > 1024) bad("longer than 1024 characters");
  if (/[\\\0]/.test(name)) bad("backslash or NUL");
  if (isAbsolute(name) || /^[a-zA-Z]:/.test(name)) bad("absolute path");
  const parts = name.split("/");
  if (parts.some((p) => p === "" || p === "." || p === "..")) bad('empty, "." or ".." path segment');
  if (plain && parts.length > 1) bad("a shard must sit beside its index, not in a sub-folder");
  return name;
}

function checkRepoId(repo: string): void {
  const parts = repo.split("/");
  if (!/^[\w.-]+(\/[\w.-]+)?$/.test(repo) || parts.some((p) => p === "." || p === ".." || p.includes("--"))) {
    throw new HubError(`${repo}: not a directory and not a hub repo id ("owner/name")`);
  }
}

function checkRevision(repo: string, revision: string): void {
  try {
    checkRepoFileName(revision, "revision");
  } catch (e) {
    throw new HubError(`${repo}: ${message(e)}`);
  }
}

/** What the guarded fetch checks; `fileBytes` is set while one file downloads. */
interface Guard {
  fileBytes?: { name: string; size: number };
}

/**
 * fetch, with what a hub says checked before @huggingface/hub acts on it: the blob ids of the
 * paths-info API (the package joins them onto `blobs/`, so a hostile hub could name `../../x`),
 * and, while a file downloads, the body size (at most the size the listing gave plus 1 MiB, so a
 * hub cannot fill the disk by sending more).
 */
function guardedFetch(base: typeof fetch, guard: Guard): typeof fetch {
  return async (input, init) => {
    const res = await base(input, init);
    const url = typeof input === "string" ? input : input instanceof URL ? input.href : input.url;
    const path = new URL(url).pathname;
    const expected = guard.fileBytes;
    if (res.ok && res.body && expected && !path.includes("/api/") && !/json/.test(res.headers.get("content-type") ?? "")) {
      // Slack for framing (xet chunk headers); the exact size is checked once the file is stored.
      const max = expected.size + 2 ** 20;
      let seen = 0;
      const limit = new TransformStream<Uint8Array, Uint8Array>({
        transform(chunk, controller) {
          seen += chunk.byteLength;
          if (seen > max) controller.error(new HubError(`${url}: sent more than the ${expected.size} bytes the listing gives for ${expected.name}`));
          else controller.enqueue(chunk);
        },
      });
      return new Response(res.body.pipeThrough(limit), { status: res.status, statusText: res.statusText, headers: res.headers });
    }
    if (!res.ok || !path.includes("/paths-info/")) return res;
    const text = await res.text();
    let items: unknown;
    try {
      items = JSON.parse(text);
    } catch {
      throw new HubError(`${url}: paths-info answer is not JSON`);
    }
    for (const item of Array.isArray(items) ? (items as Record<string, unknown>[]) : []) {
      const lfs = item?.lfs as Record<string, unknown> | undefined;
      for (const id of [lfs?.oid, item?.xetHash, item?.oid]) {
        if (id !== undefined && id !== null && !(typeof id === "string" && BLOB_ID.test(id))) {
          throw new HubError(`${url}: blob id ${JSON.stringify(id)} of ${JSON.stringify(item?.path)} is not a 40- or 64-digit hex hash`);
        }
      }
    }
    return new Response(text, { status: res.status, statusText: res.statusText, headers: { "content-type": "application/json" } });
  };
}

/** The package logs each download with console.debug (stdout); peftjs reports through `opts.log` instead. */
let quietDepth = 0;
let savedDebug: typeof console.debug = console.debug;
async function quietly<T>(f: () => Promise<T>): Promise<T> {
  if (quietDepth++ === 0) {
    savedDebug = console.debug;
    console.debug = (...args: unknown[]) => {
      if (!(typeof args[0] === "string" && args[0].startsWith("Downloading "))) savedDebug(...args);
    };
  }
  try {
    return await f();
  } finally {
    if (--quietDepth === 0) console.debug = savedDebug;
  }
}

/** Cannot reach the hub (as opposed to the hub answering no): connection errors and 5xx. */
function unreachable(e: unknown): boolean {
  if (e instanceof RetryableError) return true;
  if (e instanceof HubApiError) return e.statusCode >= 500;
  // undici's TypeErrors; the package passes some on as bare message strings.
  const text = e instanceof TypeError ? e.message : typeof e === "string" ? e : "";
  return /fetch failed|terminated|other side closed|socket|ECONNRE/i.test(text);
}

async function isFile(path: string): Promise<boolean> {
  return stat(path).then((s) => s.isFile(), () => false);
}

/** A path inside the cache, after following symlinks (snapshot files link to blobs). */
async function confine(path: string, root: string, what: string): Promise<void> {
  const [real, realRoot] = await Promise.all([realpath(path), realpath(root)]);
  if (!real.startsWith(realRoot + sep)) throw new HubError(`${what}: ${path} resolves to ${real}, outside the cache ${realRoot}`);
}

/** Shard file names of an index in the cache, validated. */
async function shardNames(indexPath: string): Promise<string[]> {
  const size = (await stat(indexPath)).size;
  if (size > MAX_INDEX_BYTES) throw new HubError(`${indexPath}: ${size} bytes is too big for a shard index`);
  let index: unknown;
  try {
    index = JSON.parse(await readFile(indexPath, "utf8"));
  } catch (e) {
    throw new HubError(`${indexPath}: not valid JSON (${message(e)})`);
  }
  const map = (index as { weight_map?: unknown } | null)?.weight_map;
  if (typeof map !== "object" || map === null || Array.isArray(map)) throw new HubError(`${indexPath}: needs a "weight_map" object {tensor: file}`);
  const names = new Set<string>();
  for (const [tensor, file] of Object.entries(map)) names.add(checkRepoFileName(file, `${indexPath}: weight_map[${JSON.stringify(tensor)}]`, true));
  return [...names];
}

/** Whether a snapshot holds a loadable checkpoint (config and every weight file). */
async function complete(dir: string): Promise<boolean> {
  if (!(await isFile(join(dir, CONFIG)))) return false;
  if (await isFile(join(dir, WEIGHTS))) return true;
  if (!(await isFile(join(dir, INDEX)))) return false;
  for (const shard of await shardNames(join(dir, INDEX))) if (!(await isFile(join(dir, shard)))) return false;
  return true;
}

interface Hub {
  repo: string;
  revision: string;
  hubUrl: string;
  cacheDir: string;
  storage: string;
  accessToken: string | undefined;
  fetch: typeof fetch;
  guard: Guard;
  log: (line: string) => void;
}

/** The commit a revision names now, from the hub. */
async function resolveCommit(hub: Hub): Promise<string> {
  if (COMMIT.test(hub.revision)) return hub.revision;
  const info = await quietly(() =>
    modelInfo({ name: hub.repo, revision: hub.revision, hubUrl: hub.hubUrl, additionalFields: ["sha"], fetch: hub.fetch, ...(hub.accessToken ? { accessToken: hub.accessToken } : {}) }),
  );
  const sha = (info as { sha?: unknown }).sha;
  if (typeof sha !== "string" || !COMMIT.test(sha)) throw new HubError(`${hub.repo}@${hub.revision}: the hub answered commit ${JSON.stringify(sha)}, not a 40-digit hex hash`);
  return sha;
}

/** Download the checkpoint files of one commit into its snapshot folder. */
async function downloadSnapshot(hub: Hub, commit: string, dir: string): Promise<void> {
  const listing = new Map<string, ListFileEntry>();
  await quietly(async () => {
    for await (const entry of listFiles({ repo: { type: "model", name: hub.repo }, revision: commit, hubUrl: hub.hubUrl, fetch: hub.fetch, ...(hub.accessToken ? { accessToken: hub.accessToken } : {}) })) {
      if (entry.type === "file" && typeof entry.path === "string") listing.set(entry.path, entry);
    }
  });
  const where = `${hub.repo}@${commit}`;
  const get = async (name: string, source: string): Promise<void> => {
    checkRepoFileName(name, source);
    const entry = listing.get(name);
    if (!entry) throw new HubError(`${source}: ${JSON.stringify(name)} is not in the repository's file listing`);
    const expected = entry.lfs?.size ?? entry.size;
    for (let attempt = 1; ; attempt++) {
      try {
        hub.log(`downloading ${hub.repo}/${name} (${expected} bytes)`);
        if (typeof expected === "number") hub.guard.fileBytes = { name, size: expected };
        const pointer = await quietly(() =>
          downloadFileToCacheDir({ repo: { type: "model", name: hub.repo }, path: name, revision: commit, hubUrl: hub.hubUrl, cacheDir: hub.cacheDir, fetch: hub.fetch, ...(hub.accessToken ? { accessToken: hub.accessToken } : {}) }),
        ).finally(() => (hub.guard.fileBytes = undefined));
        if (resolve(pointer) !== resolve(dir, name)) throw new HubError(`${where}: ${name} was stored at ${pointer}, not in ${dir}`);
        await confine(pointer, hub.storage, where);
        const size = (await stat(pointer)).size;
        if (typeof expected === "number" && size !== expected) {
          // A truncated transfer: drop the blob and its link so that the next attempt starts over.
          await rm(await realpath(pointer), { force: true });
          await rm(pointer, { force: true });
          throw new RetryableError(`${name} arrived with ${size} bytes, the listing says ${expected}`);
        }
        return;
      } catch (e) {
        if (e instanceof HubError) throw e;
        if (attempt >= ATTEMPTS || !unreachable(e)) throw new HubError(`${where}: downloading ${name} failed${attempt > 1 ? ` after ${attempt} attempts` : ""}: ${message(e)}`);
      }
    }
  };
  if (!listing.has(CONFIG)) throw new HubError(`${where}: the repository has no ${CONFIG}`);
  await get(CONFIG, where);
  if (listing.has(WEIGHTS)) await get(WEIGHTS, where);
  else if (listing.has(INDEX)) {
    await get(INDEX, where);
    for (const shard of await shardNames(join(dir, INDEX))) await get(shard, join(dir, INDEX));
  } else throw new HubError(`${where}: neither ${WEIGHTS} nor ${INDEX} found (only safetensors checkpoints are supported)`);
  for (const f of OPTIONAL) if (listing.has(f)) await get(f, where);
}

/** Record which commit a branch or tag names (`refs/<revision>`), atomically. */
async function writeRef(storage: string, revision: string, commit: string): Promise<void> {
  const path = join(storage, "refs", revision);
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${host.pid}`;
  await writeFile(tmp, commit);
  await rename(tmp, path);
}

async function readRef(storage: string, revision: string): Promise<string | undefined> {
  const text = await readFile(join(storage, "refs", revision), "utf8").catch(() => undefined);
  return text !== undefined && COMMIT.test(text.trim()) ? text.trim() : undefined;
}

/**
 * Make sure a checkpoint is on disk and return its directory. A path to an existing directory
 * is returned as is; otherwise `repoOrDir` is a hub repo id ("owner/name"): its revision is
 * resolved to a commit and that commit's config, safetensors weights (single or sharded) and
 * tokenizer files are downloaded into the cache, unless already there.
 *
 * @example
 *   const dir = await resolveCheckpoint("prajjwal1/bert-tiny", { revision: "main" });
 *   // ~/.cache/huggingface/hub/models--prajjwal1--bert-tiny/snapshots/<commit>
 */
export async function resolveCheckpoint(repoOrDir: string, opts: HubOptions = {}): Promise<string> {
  const local = await stat(repoOrDir).catch(() => undefined);
  if (local?.isDirectory()) return repoOrDir;
  if (local) throw new HubError(`${repoOrDir}: is a file; expected a checkpoint directory (config.json, model.safetensors) or a hub repo id`);
  checkRepoId(repoOrDir);
  const revision = opts.revision ?? "main";
  checkRevision(repoOrDir, revision);
  const cacheDir = hubCacheDir(opts);
  const guard: Guard = {};
  const hub: Hub = {
    repo: repoOrDir,
    revision,
    hubUrl: (opts.endpoint ?? host.env("HF_ENDPOINT") ?? "https://huggingface.co").replace(/\/+$/, ""),
    cacheDir,
    storage: repoCacheDir(repoOrDir, opts),
    accessToken: opts.token ?? (host.env("HF_TOKEN") || undefined),
    fetch: guardedFetch(globalThis.fetch, guard),
    guard,
    log: opts.log ?? (() => {}),
  };

  let commit: string | undefined;
  let why = "offline mode is on";
  if (!(opts.offline ?? truthy(host.env("HF_HUB_OFFLINE")))) {
    try {
      commit = await resolveCommit(hub);
    } catch (e) {
      if (e instanceof HubError || !unreachable(e)) throw e instanceof HubError ? e : new HubError(`${repoOrDir}@${revision}: ${message(e)}`);
      why = `the hub at ${hub.hubUrl} cannot be reached (${message(e)})`;
    }
  }
  if (commit === undefined) {
    // Offline: the commit the revision named when it was last downloaded (Python does the same).
    const cached = COMMIT.test(revision) ? revision : await readRef(hub.storage, revision);
    const dir = cached && snapshotDir(repoOrDir, cached, opts);
    if (!dir || !(await complete(dir))) throw new HubError(`${repoOrDir}@${revision}: ${CONFIG} and weights are not in the cache (${hub.storage}) and ${why}`);
    return dir;
  }
  const dir = snapshotDir(repoOrDir, commit, opts);
  if (!(await complete(dir))) await downloadSnapshot(hub, commit, dir);
  if (revision !== commit) await writeRef(hub.storage, revision, commit);
  return dir;
}
