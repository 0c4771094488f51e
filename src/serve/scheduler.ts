// The request queue: bounded (full -> 429 with Retry-After), each request with a deadline and an
// abort signal (a disconnected client's request leaves the queue), run one batch at a time. A
// batch takes waiting requests in arrival order while they share the first one's group (all
// mixed-adapter requests share one group; an adapter that cannot share a batch is its own
// group) and their rows fit --max-batch: while one batch runs, the next one fills. A batch that is
// not full waits up to --batch-wait-ms for more while requests are on their way or it is smaller
// than the last one: a session run holds the event loop (onnxruntime-node runs on the main
// thread), so the clients the last batch answered send their next requests only after it, and
// taking the first few at once would split them into small batches. A lone request does not wait.
import { Cancelled, ServeError } from "./errors.js";

export interface Job<R> {
  /** Rows this request adds to a batch. */
  readonly rows: number;
  /** Requests of one group may share a batch. */
  readonly group: string;
  readonly signal: AbortSignal;
  /** Set by the scheduler. */
  resolve?: (r: R) => void;
  reject?: (e: Error) => void;
}

export interface SchedulerOptions<J> {
  maxQueue: number;
  maxBatch: number;
  deadlineMs: number;
  /** How long a batch that is not full waits for more requests (0: take what is queued now). */
  batchWaitMs?: number;
  /** Requests on their way to this queue (bodies arriving, being tokenized): worth waiting for. */
  incoming?: () => number;
  /** Run a batch: one result per job, in order. */
  run(jobs: J[]): Promise<unknown[]>;
  onQueueDepth?(depth: number): void;
  onBatch?(rows: number, jobs: number): void;
}

// any: each job resolves with its own result type (submit<R> fixes it per call).
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export class BatchScheduler<J extends Job<any>> {
  private readonly queue: J[] = [];
  private running = false;
  private idleWaiters: (() => void)[] = [];
  /** Rows of the last batch taken. */
  private lastRows = 0;

  constructor(private readonly opts: SchedulerOptions<J>) {}

  get depth(): number {
    return this.queue.length;
  }

  /** Queue `job`; resolves with its result. Rejects with 429 when the queue is full, 504 past the deadline. */
  submit<R>(job: J & Job<R>): Promise<R> {
    if (this.queue.length >= this.opts.maxQueue) {
      return Promise.reject(new ServeError(429, `the server is busy: ${this.queue.length} requests are waiting (--max-queue ${this.opts.maxQueue}); retry shortly`, "RateLimitError", { "retry-after": "1" }));
    }
    if (job.signal.aborted) return Promise.reject(new Cancelled());
    return new Promise<R>((resolve, reject) => {
      const leave = () => {
        const i = this.queue.indexOf(job);
        if (i >= 0) this.queue.splice(i, 1);
        this.opts.onQueueDepth?.(this.queue.length);
      };
      const timer = setTimeout(() => {
        leave();
        settle(() => reject(new ServeError(504, `the request did not finish within its deadline of ${this.opts.deadlineMs} ms`, "TimeoutError")));
      }, this.opts.deadlineMs);
      const onAbort = () => {
        leave();
        settle(() => reject(new Cancelled()));
      };
      let settled = false;
      const settle = (f: () => void) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        job.signal.removeEventListener("abort", onAbort);
        f();
      };
      job.signal.addEventListener("abort", onAbort, { once: true });
      job.resolve = (r) => settle(() => resolve(r as R));
      job.reject = (e) => settle(() => reject(e));
      this.queue.push(job);
      this.opts.onQueueDepth?.(this.queue.length);
      this.pump();
    });
  }

  /** Resolves when nothing is queued or running (drain on shutdown). */
  idle(): Promise<void> {
    if (!this.running && this.queue.length === 0) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  private pump(): void {
    if (this.running) return;
    this.running = true;
    const since = performance.now();
    const wait = this.opts.batchWaitMs ?? 0;
    const fill = () => {
      const rows = this.queue.reduce((n, j) => n + j.rows, 0);
      // More are coming when requests are on their way here, or when the last batch was bigger (its clients are replying).
      const coming = (this.opts.incoming?.() ?? 0) > 0 || rows < this.lastRows;
      if (this.queue.length > 0 && rows < this.opts.maxBatch && coming && performance.now() - since < wait) {
        setTimeout(fill, 1);
        return;
      }
      const batch = this.take();
      if (batch.length === 0) {
        this.running = false;
        for (const f of this.idleWaiters.splice(0)) f();
        return;
      }
      this.lastRows = batch.reduce((n, j) => n + j.rows, 0);
      this.opts.onBatch?.(this.lastRows, batch.length);
      void this.opts
        .run(batch)
        .then(
          (results) => batch.forEach((j, i) => j.resolve!(results[i])),
          (e: Error) => {
            for (const j of batch) j.reject!(e);
          },
        )
        .finally(() => {
          this.running = false;
          this.pump();
        });
    };
    // One macrotask first: requests arriving in the same tick join this batch.
    setImmediate(fill);
  }

  private take(): J[] {
    const first = this.queue[0];
    if (!first) return [];
    const batch: J[] = [];
    let rows = 0;
    for (let i = 0; i < this.queue.length; ) {
      const j = this.queue[i]!;
      if (j.group === first.group && (batch.length === 0 || rows + j.rows <= this.opts.maxBatch)) {
        batch.push(j);
        rows += j.rows;
        this.queue.splice(i, 1);
        if (rows >= this.opts.maxBatch) break;
      } else i++;
    }
    this.opts.onQueueDepth?.(this.queue.length);
    return batch;
  }
}
