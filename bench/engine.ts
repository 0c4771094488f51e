// `npm run bench -- engine`: times a LoRA training step of a BERT-base-sized encoder stack built
// with the IR and autodiff, against an independent PyTorch reference run in the same session.
// Prints one JSON line per case: {"case", "peftjs_ms", "torch_ms", "ratio", "gflops", ...}.
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parseArgs, promisify } from "node:util";

const run = promisify(execFile);
const here = fileURLToPath(new URL(".", import.meta.url));
const PYTHON = "/usr/bin/python3";

async function jsonLine(cmd: string, args: string[], env?: NodeJS.ProcessEnv): Promise<Record<string, unknown>> {
  const { stdout } = await run(cmd, args, { env: { ...process.env, ...env }, maxBuffer: 1 << 20, timeout: 900_000 });
  const line = stdout.trim().split("\n").pop()!;
  return JSON.parse(line) as Record<string, unknown>;
}

async function torchAvailable(): Promise<boolean> {
  if (!existsSync(PYTHON)) return false;
  try {
    await run(PYTHON, ["-c", "import torch"], { timeout: 60_000 });
    return true;
  } catch {
    return false;
  }
}

export async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      batch: { type: "string", default: "8" },
      seq: { type: "string", default: "128" },
      iters: { type: "string", default: "10" },
      threads: { type: "string", default: "2" },
      layers: { type: "string", default: "1,4" },
    },
  });
  const common = ["--batch", values.batch, "--seq", values.seq, "--iters", values.iters, "--threads", values.threads];
  const torch = await torchAvailable();
  if (!torch) console.error(`note: ${PYTHON} with torch not found; printing peftjs numbers only`);
  const layerCounts = values.layers.split(",").map(Number);
  for (const layers of layerCounts) {
    const cases: { name: string; extra: string[] }[] = [{ name: `lora_stack_L${layers}`, extra: [] }];
    if (layers === Math.max(...layerCounts)) cases.push({ name: `lora_stack_L${layers}_checkpointed`, extra: ["--checkpoint"] });
    const ref = torch
      ? await jsonLine(PYTHON, [`${here}reference/engine_torch.py`, "--layers", String(layers), ...common], { OMP_WAIT_POLICY: "PASSIVE" })
      : undefined;
    for (const c of cases) {
      const js = await jsonLine(process.execPath, ["--import", "tsx", `${here}engine-case.ts`, "--layers", String(layers), ...common, ...c.extra]);
      const ms = js.peftjs_ms as number;
      const torchMs = ref?.torch_ms as number | undefined;
      console.log(
        JSON.stringify({
          case: c.name,
          peftjs_ms: ms,
          torch_ms: torchMs ?? null,
          ratio: torchMs ? +(ms / torchMs).toFixed(3) : null,
          gflops: +((js.flops_per_step as number) / (ms / 1000) / 1e9).toFixed(1),
          ...js,
          torch_peak_rss_mb: ref?.torch_peak_rss_mb ?? null,
          torch_flops_per_step: ref?.flops_per_step ?? null,
        }),
      );
    }
  }
}
