/**
 * A bounded queue for expensive work (password hashing): at most `concurrency` calls run at once,
 * at most `maxWaiting` more wait for a slot, first come first served, and the next one is refused
 * at once with `refuse(retryAfterSeconds)` instead of growing the queue (and everyone's wait).
 *
 * A caller can take its place before it knows what to run (`reserve()`), so that it is refused
 * before spending anything else (a rate-limit attempt, a query); a reserved place counts as
 * waiting until it runs or is released.
 */
export interface BoundedQueueOptions {
  concurrency: number;
  maxWaiting: number;
  refuse: (retryAfterSeconds: number) => Error;
  /** Assumed duration of one call until one has been measured. */
  initialEstimateMs?: number;
}

export interface QueueStats {
  concurrency: number;
  maxWaiting: number;
  running: number;
  /** Waiting for a slot, plus places reserved and not yet used. */
  waiting: number;
  /** Recent mean duration of one call (exponentially weighted). */
  meanMs: number;
}

/** A place in the queue: `run` once (it waits for a slot), or `release` it unused. */
export interface QueuePlace {
  run<T>(fn: () => Promise<T>): Promise<T>;
  /** Gives the place back if it was not used (no-op after `run`). */
  release(): void;
}

export class BoundedQueue {
  private running = 0;
  private reserved = 0;
  private readonly waiters: (() => void)[] = [];
  private meanMs: number;

  constructor(private readonly opts: BoundedQueueOptions) {
    if (!(opts.concurrency >= 1) || !(opts.maxWaiting >= 0)) throw new Error("BoundedQueue: concurrency must be ≥ 1 and maxWaiting ≥ 0");
    this.meanMs = opts.initialEstimateMs ?? 100;
  }

  /** Takes a place (running or waiting) or throws `refuse(…)` when K are running and Q wait. */
  reserve(): QueuePlace {
    if (this.running + this.waiters.length + this.reserved >= this.opts.concurrency + this.opts.maxWaiting) throw this.opts.refuse(this.retryAfterSeconds());
    this.reserved++;
    let state: "reserved" | "used" | "released" = "reserved";
    return {
      run: <T>(fn: () => Promise<T>): Promise<T> => {
        if (state !== "reserved") return Promise.reject(new Error(`BoundedQueue: this place was already ${state}`));
        state = "used";
        this.reserved--;
        return this.start(fn);
      },
      release: () => {
        if (state !== "reserved") return;
        state = "released";
        this.reserved--;
      },
    };
  }

  /** `reserve().run(fn)`; a refusal is a rejected promise. */
  async run<T>(fn: () => Promise<T>): Promise<T> {
    return this.reserve().run(fn);
  }

  stats(): QueueStats {
    return { concurrency: this.opts.concurrency, maxWaiting: this.opts.maxWaiting, running: this.running, waiting: this.waiters.length + this.reserved, meanMs: this.meanMs };
  }

  private async start<T>(fn: () => Promise<T>): Promise<T> {
    if (this.running < this.opts.concurrency && this.waiters.length === 0) this.running++;
    // The slot is handed over by the call that frees it (running stays counted), so no newcomer
    // can overtake a waiter.
    else await new Promise<void>((resolve) => this.waiters.push(resolve));
    const t0 = performance.now();
    try {
      return await fn();
    } finally {
      this.meanMs = 0.8 * this.meanMs + 0.2 * (performance.now() - t0);
      const next = this.waiters.shift();
      if (next) next();
      else this.running--;
    }
  }

  /** About when the work admitted now will have drained: everyone in the queue, K at a time. */
  private retryAfterSeconds(): number {
    const queued = this.running + this.waiters.length + this.reserved;
    return Math.max(1, Math.ceil(((queued / this.opts.concurrency) * this.meanMs) / 1000));
  }
}
