// Hub downloads: fetch a repo's checkpoint files (`<endpoint>/<repo>/resolve/<revision>/<file>`)
// into a local cache, resuming interrupted downloads and checking sizes, so that the second
// load needs no network. Local directories are used as they are.
import { mkdir, open, readFile, rename, stat, unlink, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

export interface HubOptions {
  /** Base URL of the hub (default $HF_ENDPOINT or https://huggingface.co). */
  endpoint?: string;
  /** Branch, tag or commit (default "main"). */
  revision?: string;
  /** Cache root (default $PEFTJS_CACHE or ~/.cache/peftjs/hub). */
  cacheDir?: string;
  /** Access token for gated/private repos (default $HF_TOKEN). */
  token?: string;
  /** Never touch the network; fail if a file is not cached. */
  offline?: boolean;
}

export class HubError extends Error {}

const REQUIRED = ["config.json"];
const COMPLETE = ".peftjs-complete";
const OPTIONAL = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json"];

function cacheRoot(opts: HubOptions): string {
  return opts.cacheDir ?? process.env.PEFTJS_CACHE ?? join(homedir(), ".cache", "peftjs", "hub");
}

/** The cache directory of a repo revision. */
export function snapshotDir(repo: string, opts: HubOptions = {}): string {
  return join(cacheRoot(opts), `models--${repo.replaceAll("/", "--")}`, "snapshots", opts.revision ?? "main");
}

async function fileSize(path: string): Promise<number | undefined> {
  try {
    return (await stat(path)).size;
  } catch {
    return undefined;
  }
}

/**
 * Download one file with resume: bytes go to `<file>.incomplete`; an interrupted download
 * continues with a Range request; the file is renamed into place only when its size matches
 * what the server announced. Returns false when the server says 404 (optional files).
 */
async function download(url: string, dest: string, opts: HubOptions, required: boolean): Promise<boolean> {
  const partial = `${dest}.incomplete`;
  await mkdir(dirname(dest), { recursive: true });
  for (let attempt = 0; attempt < 5; attempt++) {
    const have = (await fileSize(partial)) ?? 0;
    const headers: Record<string, string> = {};
    if (have > 0) headers.Range = `bytes=${have}-`;
    const token = opts.token ?? process.env.HF_TOKEN;
    if (token) headers.Authorization = `Bearer ${token}`;
    let res: Response;
    try {
      res = await fetch(url, { headers, redirect: "follow" });
    } catch (e) {
      await sleep(100 * (attempt + 1));
      if (attempt === 4) throw new HubError(`${url}: ${(e as Error).message}${(e as Error).cause ? ` (${((e as Error).cause as Error).message})` : ""}`);
      continue;
    }
    if (res.status === 404 && !required) return false;
    if (res.status === 416) {
      await unlink(partial).catch(() => {}); // our partial file is longer than the resource
      continue;
    }
    if (!res.ok) throw new HubError(`${url}: HTTP ${res.status} ${res.statusText}`);
    const resumed = res.status === 206;
    const total = resumed ? Number(/\/(\d+)$/.exec(res.headers.get("content-range") ?? "")?.[1]) : Number(res.headers.get("x-linked-size") ?? res.headers.get("content-length"));
    if (!res.body) throw new HubError(`${url}: empty response`);
    // Chunks are appended as they arrive, so a dropped connection keeps what was received.
    const fh = await open(partial, resumed ? "a" : "w");
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) await fh.write(chunk);
    } catch {
      await sleep(100 * (attempt + 1));
      continue; // connection dropped: resume from what we have
    } finally {
      await fh.close();
    }
    const size = (await fileSize(partial)) ?? 0;
    if (Number.isFinite(total) && total > 0 && size !== total) {
      if (size > total) await unlink(partial).catch(() => {});
      continue;
    }
    await rename(partial, dest);
    return true;
  }
  throw new HubError(`${url}: download did not complete after 5 attempts`);
}

/**
 * Make sure a checkpoint is on disk and return its directory. A path to an existing directory
 * is returned as is; otherwise `repoOrDir` is a hub repo id ("owner/name") downloaded into the
 * cache (only missing files are fetched).
 */
export async function resolveCheckpoint(repoOrDir: string, opts: HubOptions = {}): Promise<string> {
  const local = await stat(repoOrDir).catch(() => undefined);
  if (local?.isDirectory()) return repoOrDir;
  if (!/^[\w.-]+(\/[\w.-]+)?$/.test(repoOrDir)) throw new HubError(`${repoOrDir}: not a directory and not a hub repo id ("owner/name")`);
  const dir = snapshotDir(repoOrDir, opts);
  // A finished snapshot records itself, so later loads (even of absent optional files) need
  // no network at all.
  const marker = join(dir, COMPLETE);
  if ((await fileSize(marker)) !== undefined) return dir;
  const endpoint = (opts.endpoint ?? process.env.HF_ENDPOINT ?? "https://huggingface.co").replace(/\/$/, "");
  const revision = opts.revision ?? "main";
  const fetchFile = async (file: string, required: boolean): Promise<boolean> => {
    const dest = join(dir, file);
    if ((await fileSize(dest)) !== undefined) return true;
    if (opts.offline) {
      if (required) throw new HubError(`${repoOrDir}: ${file} is not in the cache (${dir}) and offline mode is on`);
      return false;
    }
    return download(`${endpoint}/${repoOrDir}/resolve/${encodeURIComponent(revision)}/${file}`, dest, opts, required);
  };
  for (const f of REQUIRED) await fetchFile(f, true);
  if (!(await fetchFile("model.safetensors", false))) {
    if (!(await fetchFile("model.safetensors.index.json", false))) {
      throw new HubError(`${repoOrDir}: neither model.safetensors nor model.safetensors.index.json found (only safetensors checkpoints are supported)`);
    }
    const index = JSON.parse(await readFile(join(dir, "model.safetensors.index.json"), "utf8")) as { weight_map?: Record<string, string> };
    for (const shard of new Set(Object.values(index.weight_map ?? {}))) await fetchFile(shard, true);
  }
  const present: string[] = [];
  for (const f of OPTIONAL) if (await fetchFile(f, false)) present.push(f);
  await writeFile(marker, JSON.stringify({ repo: repoOrDir, revision, optional: present }));
  return dir;
}
