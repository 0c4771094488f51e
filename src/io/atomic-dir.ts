// Write a folder of files as one set: stage everything in a sibling temp folder, then swap it in
// with renames, so a reader (or a run killed at any moment) sees the old set or the new one,
// never a mix. Leftovers of killed writers are found by their names and cleaned or restored.
import { basename, dirname, host, join, mkdir, open, readdir, rename, rm, stat } from "../platform/host.js";

const STAGING = ".tmp-";
const RETIRED = ".old-";

/**
 * Fill a fresh temp folder beside `dir`, then put it in place of `dir` (replacing an existing
 * one). Between the two renames `dir` is briefly absent; {@link recoverDir} restores the
 * retired copy if a kill lands exactly there.
 *
 * @example
 *   await writeDirAtomic("out/adapter", async (tmp) => { await model.save(tmp); });
 */
export async function writeDirAtomic(dir: string, fill: (staging: string) => Promise<void>): Promise<void> {
  await mkdir(dirname(dir), { recursive: true });
  await recoverDir(dir);
  const tag = `${host.pid}-${host.randomHex(4)}`;
  const staging = `${dir}${STAGING}${tag}`;
  const retired = `${dir}${RETIRED}${tag}`;
  await mkdir(staging);
  try {
    await fill(staging);
  } catch (e) {
    await rm(staging, { recursive: true, force: true });
    throw e;
  }
  let hadOld = true;
  try {
    await rename(dir, retired);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
    hadOld = false;
  }
  await rename(staging, dir);
  await syncDir(dirname(dir));
  if (hadOld) await rm(retired, { recursive: true, force: true });
}

/**
 * Clean up after writers of `dir` that were killed: staging folders are removed; when `dir`
 * itself is missing but a retired copy exists (a kill between the two renames), it is restored.
 * Returns the paths removed or restored (for a log line).
 */
export async function recoverDir(dir: string): Promise<string[]> {
  const parent = dirname(dir);
  const name = basename(dir);
  let entries: string[];
  try {
    entries = await readdir(parent);
  } catch {
    return [];
  }
  const done: string[] = [];
  const exists = await stat(dir).then(() => true, () => false);
  const retired = entries.filter((e) => e.startsWith(`${name}${RETIRED}`));
  if (!exists && retired.length > 0) {
    // Newest retired copy wins (there is at most one unless writers were killed repeatedly).
    const times = await Promise.all(retired.map(async (r) => (await stat(join(parent, r))).mtimeMs));
    const newest = retired[times.indexOf(Math.max(...times))]!;
    await rename(join(parent, newest), dir);
    done.push(`restored ${join(parent, newest)}`);
  }
  for (const e of entries) {
    if (!(e.startsWith(`${name}${STAGING}`) || e.startsWith(`${name}${RETIRED}`))) continue;
    const p = join(parent, e);
    if (!(await stat(p).then(() => true, () => false))) continue; // just restored
    await rm(p, { recursive: true, force: true });
    done.push(`removed ${p}`);
  }
  return done;
}

/** Make renames in `dir` durable (best effort: not every platform can fsync a folder). */
async function syncDir(dir: string): Promise<void> {
  try {
    const d = await open(dir, "r");
    await d.sync().finally(() => d.close());
  } catch {
    /* ignore */
  }
}
