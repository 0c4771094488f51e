// Prometheus metrics of one server (its own registry, so several servers in one process do not
// collide): requests and latency per endpoint and adapter, generated tokens, queue depth, batch
// sizes, loaded adapters and bytes, adapter cache hits / misses / evictions.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

export class ServeMetrics {
  readonly registry = new Registry();
  readonly requests = new Counter({ name: "peftjs_requests_total", help: "requests answered, by endpoint, adapter and status", labelNames: ["endpoint", "adapter", "status"] as const, registers: [this.registry] });
  readonly latency = new Histogram({ name: "peftjs_request_duration_seconds", help: "request latency, by endpoint and adapter", labelNames: ["endpoint", "adapter"] as const, buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30], registers: [this.registry] });
  readonly tokens = new Counter({ name: "peftjs_generated_tokens_total", help: "tokens generated (rate() gives tokens/s), by adapter", labelNames: ["adapter"] as const, registers: [this.registry] });
  readonly queueDepth = new Gauge({ name: "peftjs_queue_depth", help: "requests waiting, by queue", labelNames: ["queue"] as const, registers: [this.registry] });
  readonly batchRows = new Histogram({ name: "peftjs_batch_rows", help: "rows per run of the base model", labelNames: ["queue"] as const, buckets: [1, 2, 4, 8, 16, 32, 64, 128], registers: [this.registry] });
  readonly batchRequests = new Histogram({ name: "peftjs_batch_requests", help: "requests per run of the base model", labelNames: ["queue"] as const, buckets: [1, 2, 4, 8, 16, 32, 64, 128], registers: [this.registry] });
  readonly adaptersLoaded = new Gauge({ name: "peftjs_adapters_loaded", help: "adapters loaded now", registers: [this.registry] });
  readonly adapterBytes = new Gauge({ name: "peftjs_adapter_bytes_loaded", help: "bytes of adapter tensors loaded now", registers: [this.registry] });
  readonly cache = new Counter({ name: "peftjs_adapter_cache_total", help: "adapter cache events: hit, miss, eviction", labelNames: ["event"] as const, registers: [this.registry] });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: "peftjs_process_" });
    for (const event of ["hit", "miss", "eviction"]) this.cache.inc({ event }, 0);
  }
}
