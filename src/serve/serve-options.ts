// The server's options, declared once: `peftjs serve` flags, --config files and `createServer(opts)`
// all validate through this table (the CLI's option helpers and zod schema), so a limit has one
// name, one default and one range everywhere.
import { choice, flag, integer, list, text, type Options } from "../cli/options.js";
import { QUANTIZE_KINDS } from "../ir/quantize.js";
import { TASKS } from "../models/task.js";

export const SERVE_OPTIONS = {
  model: text({ required: true }, "base checkpoint directory or hub repo id; its own name (the folder's) in `model` means no adapter", "<dir|repo>"),
  task: choice(TASKS, {}, "the base model's head (default: the first adapter's task_type, else config.json's architectures)", "<task>"),
  quantize: choice(QUANTIZE_KINDS, {}, "store the base's frozen linear weights in int8 (per output channel, activations quantized at run time) or int4 (blocks of 32, ONNX Runtime's MatMulNBits); adapters stay unmerged and float32", "<kind>"),
  adapters: text({}, "adapter root: each subfolder is an adapter named after it, loaded on first use; load_lora_adapter paths must lie under it", "<dir>"),
  adapter: list({ variadic: true }, "a named adapter, name=path (repeatable)", "<name=path>"),
  host: text({ default: "127.0.0.1" }, "address to listen on (loopback by default)", "<host>"),
  port: integer({ min: 0, max: 65535, default: 8080 }, "port to listen on (0: any free port)", "<port>"),
  maxLoaded: integer({ min: 1, default: 16 }, "adapters kept loaded at once (least recently used is unloaded first)"),
  maxLoadedMb: integer({ min: 1, default: 2048 }, "megabytes of adapter tensors kept loaded at once", "<mb>"),
  maxBatch: integer({ min: 1, default: 32 }, "rows in one run of the base model (across adapters); for generation, rows in the running batch"),
  batchWaitMs: integer({ min: 0, max: 10_000, default: 100 }, "an encoder batch smaller than the last one waits up to this many milliseconds for requests on their way (0: run what is queued)", "<ms>"),
  maxQueue: integer({ min: 1, default: 256 }, "requests waiting at once; beyond it requests get 429 with Retry-After"),
  deadlineMs: integer({ min: 1, default: 60_000 }, "a request not finished after this many milliseconds gets 504", "<ms>"),
  bodyLimitKb: integer({ min: 1, default: 1024 }, "largest request body in KiB (beyond it: 413)", "<kb>"),
  maxLength: integer({ min: 1 }, "encoder inputs are truncated to this many tokens (default: the model's positions, at most 512)"),
  apiKey: text({}, "require `Authorization: Bearer <key>` on /v1 endpoints", "<key>"),
  threads: integer({ min: 1 }, "CPU threads per run (default: all cores)"),
  logLevel: choice(["fatal", "error", "warn", "info", "debug", "silent"], { default: "info" }, "JSON log level (pino)", "<level>"),
  quiet: flag("same as --log-level silent"),
  config: text({}, "options from a JSON or YAML file (keys as the flags, e.g. `max-batch: 16`); flags given here win", "<file>"),
};

export type ServeOptions = Options<typeof SERVE_OPTIONS>;
