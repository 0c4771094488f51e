// Browser build of ./host.ts (substituted when modules are resolved; see ./esbuild-plugin.ts):
// the same exports, implemented with fetch, File/Blob and the Origin Private File System.
import { browserPlatform } from "./browser.js";
import { type Platform } from "./types.js";

export const platform: Platform = browserPlatform;
export const { readFile, writeFile, appendFile, stat, access, readdir, mkdir, rm, unlink, rename, copyFile, realpath, open } = platform.fs;
export const { sep, join, resolve, dirname, basename, extname, isAbsolute } = platform.path;
export const { host } = platform;
export type { FileHandle, FileStats } from "./types.js";
