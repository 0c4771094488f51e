// The platform the core runs on, chosen when modules are resolved: this file in Node (tsx, tsc,
// dist); a browser build resolves it to ./host.browser.ts (see ./esbuild-plugin.ts and the
// "browser" field of package.json). Core modules import file, path and host functions from here,
// typed by the shared interface in ./types.ts, never from node:*.
import { nodePlatform } from "./node.js";
import { type Platform } from "./types.js";

export const platform: Platform = nodePlatform;
export const { readFile, writeFile, appendFile, stat, access, readdir, mkdir, rm, unlink, rename, copyFile, realpath, open } = platform.fs;
export const { sep, join, resolve, dirname, basename, extname, isAbsolute } = platform.path;
export const { host } = platform;
export type { FileHandle, FileStats } from "./types.js";
