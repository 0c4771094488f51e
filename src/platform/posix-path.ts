// POSIX path arithmetic for hosts without node:path (the browser platform): the same results as
// node:path/posix for the functions the core uses, with "/" as the working directory.
import { type PathApi } from "./types.js";

function normalize(path: string): string {
  const absolute = path.startsWith("/");
  const out: string[] = [];
  for (const part of path.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") {
      if (out.length && out[out.length - 1] !== "..") out.pop();
      else if (!absolute) out.push("..");
    } else out.push(part);
  }
  const body = out.join("/");
  return absolute ? `/${body}` : body || ".";
}

function basename(path: string, suffix?: string): string {
  const trimmed = path.replace(/\/+$/, "");
  const base = trimmed.slice(trimmed.lastIndexOf("/") + 1);
  return suffix && base !== suffix && base.endsWith(suffix) ? base.slice(0, -suffix.length) : base;
}

export const posixPath: PathApi = {
  sep: "/",
  join: (...parts) => normalize(parts.filter((p) => p !== "").join("/") || "."),
  resolve: (...parts) => {
    let path = "";
    for (let i = parts.length - 1; i >= 0 && !path.startsWith("/"); i--) if (parts[i]) path = path ? `${parts[i]}/${path}` : parts[i]!;
    const n = normalize(path.startsWith("/") ? path : `/${path}`);
    return n.length > 1 ? n.replace(/\/$/, "") : n;
  },
  dirname: (path) => {
    const trimmed = path.length > 1 ? path.replace(/\/+$/, "") : path;
    const i = trimmed.lastIndexOf("/");
    if (i < 0) return ".";
    return i === 0 ? "/" : trimmed.slice(0, i);
  },
  basename,
  extname: (path) => {
    const base = basename(path);
    const i = base.lastIndexOf(".");
    return i <= 0 ? "" : base.slice(i);
  },
  isAbsolute: (path) => path.startsWith("/"),
};
