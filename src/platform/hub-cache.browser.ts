// Browser build of ./hub-cache.ts: the hub cache in the writable store (OPFS) at
// /huggingface/hub/<models--org--name>/snapshots/<commit>/<file>, files fetched from the hub's
// resolve URL. OPFS has no symlinks, so snapshot files hold the bytes themselves (no blobs/).
import { join, rename, stat, writeFile } from "./host.browser.js";

export function getHFHubCachePath(): string {
  return "/huggingface/hub";
}

export function getRepoFolderName({ name, type }: { name: string; type: string }): string {
  return [`${type}s`, ...name.split("/")].join("--");
}

export async function downloadFileToCacheDir(params: {
  repo: { type: string; name: string };
  path: string;
  revision: string;
  hubUrl?: string;
  cacheDir?: string;
  fetch?: typeof fetch;
  accessToken?: string;
}): Promise<string> {
  const target = join(params.cacheDir ?? getHFHubCachePath(), getRepoFolderName(params.repo), "snapshots", params.revision, params.path);
  if (await stat(target).then(() => true, () => false)) return target;
  const url = `${params.hubUrl ?? "https://huggingface.co"}/${params.repo.name}/resolve/${encodeURIComponent(params.revision)}/${params.path.split("/").map(encodeURIComponent).join("/")}`;
  const res = await (params.fetch ?? fetch)(url, params.accessToken ? { headers: { Authorization: `Bearer ${params.accessToken}` } } : {});
  if (!res.ok) throw new Error(`${url}: ${res.status} ${res.statusText}`);
  const tmp = `${target}.incomplete`;
  await writeFile(tmp, new Uint8Array(await res.arrayBuffer()));
  await rename(tmp, target);
  return target;
}
