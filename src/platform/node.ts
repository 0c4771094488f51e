// The Node implementation of the platform boundary: node:fs/promises, node:path, node:crypto.
import { constants as bufferConstants } from "node:buffer";
import { randomBytes } from "node:crypto";
import * as fsp from "node:fs/promises";
import { tmpdir } from "node:os";
import * as nodePath from "node:path";
import { type FileSystem, type Platform } from "./types.js";

const fs: FileSystem = {
  readFile: fsp.readFile as FileSystem["readFile"],
  writeFile: (path, data) => fsp.writeFile(path, data),
  appendFile: (path, data) => fsp.appendFile(path, data),
  stat: (path) => fsp.stat(path),
  access: (path) => fsp.access(path),
  readdir: (path) => fsp.readdir(path),
  mkdir: (path, opts) => fsp.mkdir(path, opts),
  rm: (path, opts) => fsp.rm(path, opts),
  unlink: (path) => fsp.unlink(path),
  rename: (from, to) => fsp.rename(from, to),
  copyFile: (from, to) => fsp.copyFile(from, to),
  realpath: (path) => fsp.realpath(path),
  open: (path, flags) => fsp.open(path, flags),
};

export const nodePlatform: Platform = {
  name: "node",
  fs,
  path: nodePath,
  host: {
    randomHex: (n) => randomBytes(n).toString("hex"),
    env: (name) => process.env[name],
    tempDir: tmpdir,
    pid: process.pid,
    get stdoutIsTTY() {
      return Boolean(process.stdout.isTTY);
    },
    allocBytes: (size) => {
      const b = Buffer.allocUnsafeSlow(size); // unpooled and not zeroed: the caller overwrites it
      return new Uint8Array(b.buffer, b.byteOffset, size);
    },
    maxBufferBytes: bufferConstants.MAX_LENGTH,
  },
};
