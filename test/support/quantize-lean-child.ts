// Run with `node --expose-gc --import tsx`: loads a fixture quantized, takes weak references to
// the float32 checkpoint data, builds the graph (and keeps it), collects garbage, and prints
// JSON: which weak references still resolve (quantized Linear weights vs. ones kept float32).
import { join } from "node:path";
import { loadModel } from "../../src/models/pretrained.js";
import { type Task } from "../../src/models/task.js";

const [model, task, quantize] = process.argv.slice(2) as [string, Task, "int8" | "int4"];
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error("run with node --expose-gc");
const m = await loadModel(join(import.meta.dirname, "..", "fixtures", "models", model), { task, quantize, noTokenizer: true });
const refs = new Map<string, WeakRef<ArrayBufferLike>>();
for (const name of m.weights.names()) refs.set(name, new WeakRef(m.weights.get(name).data.buffer));
const built = m.build({ withLoss: true, training: true });
await new Promise((r) => setTimeout(r, 0));
gc();
const quantized = new Set([...m.quantizedWeights.keys(), ...m.quantized4Weights.keys()]);
const alive = (names: string[]) => names.filter((n) => refs.get(n)!.deref() !== undefined);
// Checkpoint keys of quantized parameters (graph names may carry the task model's prefix).
const isQuantized = (key: string) => [...quantized].some((q) => q === key || q.endsWith(`.${key}`) || key.endsWith(`.${q}`));
const q = [...refs.keys()].filter(isQuantized);
const rest = [...refs.keys()].filter((k) => !isQuantized(k));
console.log(JSON.stringify({ quantized: q.length, quantizedAlive: alive(q), kept: rest.length, keptAlive: alive(rest).length, params: built.graph.params.size }));
