// Sessions on a worker thread (SessionOptions.worker): the same outputs as on the calling thread,
// a calling thread that stays free while they compute (onnxruntime-node's own run blocks it), and
// failures that reach the caller instead of hanging.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Graph } from "../ir/graph.js";
import { cast, gather, matmul, mul, sumAll } from "../ir/ops/index.js";
import { float32, int64 } from "../ir/tensor.js";
import { compile, type CompiledGraph } from "../runtime/session.js";

/** A run long enough to notice (~40 GFLOP: 0.1 s at this CPU's peak, seconds under load). */
function longGraph() {
  const g = new Graph();
  const x = g.input("x", "float32", [512, 1024]);
  const w = g.param("w", { dtype: "float32", shape: [1024, 1024], data: new Float32Array(1024 * 1024).fill(1 / 1024) });
  let y = x;
  for (let i = 0; i < 40; i++) y = matmul(y, w);
  return { outputs: { y: sumAll(y) }, feeds: { x: float32([512, 1024], new Float32Array(512 * 1024).fill(1)) } };
}

/** Whether a 20 ms timer set when the run starts fires before the run's promise settles. */
async function timerFiresDuringRun(c: CompiledGraph, feeds: Parameters<CompiledGraph["run"]>[0]): Promise<boolean> {
  let fired = false;
  const timer = setTimeout(() => (fired = true), 20);
  await c.run(feeds);
  const during = fired;
  clearTimeout(timer);
  return during;
}

describe("SessionOptions.worker", () => {
  it("gives the outputs of a session on the calling thread (float, int64 and bool values both ways)", async () => {
    const g = new Graph();
    const x = g.input("x", "float32", ["n", 3]);
    const ids = g.input("ids", "int64", ["n"]);
    const w = g.param("w", { dtype: "float32", shape: [3, 2], data: new Float32Array([0.5, -1, 2, 0.25, -0.75, 1.5]) });
    const outputs = { y: matmul(x, w), asFloat: cast(ids, "float32"), twice: mul(ids, ids), positive: cast(ids, "bool") };
    const feeds = { x: float32([2, 3], [1, 2, 3, -1, 0.5, 4]), ids: int64([2], [0, 3]) };
    const here = await compile(outputs, { threads: 1 });
    const there = await compile(outputs, { threads: 1, worker: true });
    try {
      const [a, b] = [await here.run(feeds), await there.run(feeds)];
      for (const k of Object.keys(outputs)) {
        assert.equal(b[k]!.dtype, a[k]!.dtype, k);
        assert.deepEqual(b[k]!.shape, a[k]!.shape, k);
        assert.deepEqual(Array.from(b[k]!.data as ArrayLike<unknown>), Array.from(a[k]!.data as ArrayLike<unknown>), k);
      }
      assert.deepEqual([...(b.twice!.data as BigInt64Array)], [0n, 9n]);
    } finally {
      await here.release();
      await there.release();
    }
  });

  it("leaves the calling thread free while it runs (on the calling thread, a timer waits for the run)", async () => {
    const { outputs, feeds } = longGraph();
    const here = await compile(outputs, { threads: 1 });
    const there = await compile(outputs, { threads: 1, worker: true });
    try {
      await there.run(feeds); // warm both
      await here.run(feeds);
      assert.equal(await timerFiresDuringRun(here, feeds), false, "onnxruntime-node blocks its caller's thread (the check can fail)");
      assert.equal(await timerFiresDuringRun(there, feeds), true, "the timer waited for the worker's run");
    } finally {
      await here.release();
      await there.release();
    }
  });

  it("reports ONNX Runtime's errors, and a run after release fails instead of hanging", async () => {
    const g = new Graph();
    const ids = g.input("ids", "int64", ["n"]);
    const table = g.param("table", { dtype: "float32", shape: [4, 2], data: new Float32Array([1, 2, 3, 4, 5, 6, 7, 8]) });
    const c = await compile({ rows: gather(table, ids) }, { threads: 1, worker: true });
    // An index past the table: the kernel fails in the worker and the caller gets its message.
    await assert.rejects(c.run({ ids: int64([2], [1, 10]) }), /indices|out of|bounds/i);
    assert.deepEqual(Array.from((await c.run({ ids: int64([1], [2]) })).rows!.data as Float32Array), [5, 6], "still serves after an error");
    await c.release();
    await assert.rejects(c.run({ ids: int64([1], [0]) }), /released/);
  });
});

it("a program that never releases its worker session still ends, and one awaiting a run gets the result first", async () => {
  const { execFile } = await import("node:child_process");
  const { promisify } = await import("node:util");
  const script = `
    import { Graph } from "${new URL("../ir/graph.ts", import.meta.url).pathname}";
    import { relu } from "${new URL("../ir/ops/index.ts", import.meta.url).pathname}";
    import { float32 } from "${new URL("../ir/tensor.ts", import.meta.url).pathname}";
    import { compile } from "${new URL("../runtime/session.ts", import.meta.url).pathname}";
    const g = new Graph();
    const c = await compile({ y: relu(g.input("x", "float32", [2])) }, { threads: 1, worker: true });
    console.log(JSON.stringify(Array.from((await c.run({ x: float32([2], [-1, 2]) })).y.data)));
  `;
  const { stdout } = await promisify(execFile)(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], { timeout: 60_000 });
  assert.equal(stdout.trim(), "[0,2]");
});
