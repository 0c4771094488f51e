// The studio's page and worker are not in the project's tsconfig (it has no DOM types): they
// typecheck here, with DOM types, against the browser entry (studio/tsconfig.json).
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { describe, it } from "node:test";

describe("studio sources", () => {
  it("the page and the worker typecheck with DOM types against the browser entry (studio/tsconfig.json; the project's tsconfig has no DOM)", { timeout: 180_000 }, () => {
    const tsc = join(import.meta.dirname, "..", "node_modules", "typescript", "bin", "tsc");
    const r = (() => {
      try {
        return { code: 0, out: execFileSync(process.execPath, [tsc, "-p", join(import.meta.dirname, "..", "studio", "tsconfig.json")], { encoding: "utf8" }) };
      } catch (e) {
        return { code: (e as { status: number }).status, out: String((e as { stdout: string }).stdout) };
      }
    })();
    assert.equal(r.out.trim(), "");
    assert.equal(r.code, 0);
  });
});
