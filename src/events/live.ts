/**
 * Live subscriptions ("current state at once, then every change, until final") built on the
 * event bus without async generators: a generator suspended in `for await` cannot be returned until
 * the next event arrives, so a closed browser tab would stay in memory until its recovery changed
 * again. These iterators end at once on `return()`.
 */

/**
 * Starts pulling from `source` immediately and buffers: the event bus's lazy iterators only listen
 * from their first `next()`, and events published before that would be lost (a lost terminal
 * event would leave the subscription hanging).
 */
export function eager<T>(source: AsyncIterator<T>): AsyncIterableIterator<T> {
  const buffer: IteratorResult<T>[] = [];
  let waiting: ((r: IteratorResult<T>) => void) | undefined;
  let failed: unknown;
  let closed = false;
  const deliver = (r: IteratorResult<T>) => {
    if (waiting) {
      const w = waiting;
      waiting = undefined;
      w(r);
    } else buffer.push(r);
  };
  const pump = () => {
    source.next().then(
      (r) => {
        if (closed) return;
        deliver(r);
        if (!r.done) pump();
      },
      (err: unknown) => {
        failed = err;
        deliver({ done: true, value: undefined });
      },
    );
  };
  pump();
  const self: AsyncIterableIterator<T> = {
    async next() {
      if (buffer.length) return buffer.shift()!;
      if (failed) throw failed;
      if (closed) return { done: true, value: undefined };
      return new Promise<IteratorResult<T>>((resolve) => (waiting = resolve));
    },
    async return() {
      closed = true;
      buffer.length = 0;
      deliver({ done: true, value: undefined });
      await source.return?.();
      return { done: true, value: undefined };
    },
    [Symbol.asyncIterator]() {
      return self;
    },
  };
  return self;
}

export interface LiveOptions<T> {
  /** The state right now (null: nothing yet, wait for the first event). */
  initial: T | null;
  /** Whether an event should be sent, given what was sent last (drop stale or foreign events). */
  accept(event: T, last: T | null): boolean;
  /** After sending a final event the subscription completes. */
  isFinal(event: T): boolean;
}

/** Current state first, then accepted events, completing after a final one; `return()` ends it at once. */
export function live<T>(events: AsyncIterableIterator<T>, opts: LiveOptions<T>): AsyncIterableIterator<T> {
  let last: T | null = null;
  let first = opts.initial;
  let finished = false;
  const self: AsyncIterableIterator<T> = {
    async next() {
      if (first !== null) {
        const value = first;
        first = null;
        last = value;
        if (opts.isFinal(value)) finished = true;
        return { done: false, value };
      }
      if (finished) {
        await events.return?.();
        return { done: true, value: undefined };
      }
      for (;;) {
        const r = await events.next();
        if (r.done) return r;
        if (!opts.accept(r.value, last)) continue;
        last = r.value;
        if (opts.isFinal(r.value)) finished = true;
        return { done: false, value: r.value };
      }
    },
    async return() {
      finished = true;
      await events.return?.();
      return { done: true, value: undefined };
    },
    [Symbol.asyncIterator]() {
      return self;
    },
  };
  return self;
}

/** What a listener of a shared feed is told. */
export interface FeedListener<T> {
  event(value: T): void;
  /** The feed ended: its source completed (no error) or failed. Not called after the listener left. */
  end(error?: unknown): void;
}

export interface SharedFeedsOptions<T> {
  /** The events of one key (e.g. the event bus's topic routed by a recovery id). */
  source(key: string): AsyncIterator<T>;
  /**
   * Asked after every `everyMs` without an event while someone listens: what it returns (not null)
   * is sent as an event. For state that changes without anyone publishing it. A rejection ends the
   * feed with that error.
   */
  probe?: {
    everyMs: number;
    /** The first look after an event from the source waits this long instead (default `everyMs`). */
    afterEventMs?: number;
    look(key: string): Promise<T | null>;
    /**
     * At most this many looks start per second over all keys (default: no limit). Due looks wait
     * their turn first come first served, so with more silent keys than this each key is looked at
     * less often (keys / maxPerSecond seconds apart) instead of the looks taking the whole process.
     */
    maxPerSecond?: number;
    /** At most this many looks at once over all keys (default: no limit). */
    concurrency?: number;
  };
}

/**
 * One source (and one probe timer) per key however many listen: N tabs on one recovery are one
 * event-bus listener and one probe, not N. Listening starts at once (nothing published after
 * `listen` returns is missed); the source is returned and the timer cleared when the last
 * listener leaves.
 */
export class SharedFeeds<T> {
  private readonly feeds = new Map<string, Feed<T>>();
  private readonly looks: LookQueue;

  constructor(private readonly opts: SharedFeedsOptions<T>) {
    this.looks = new LookQueue(opts.probe?.concurrency ?? Infinity, opts.probe?.maxPerSecond ?? Infinity);
  }

  /** Keys with at least one listener (tests: nothing left behind). */
  get size(): number {
    return this.feeds.size;
  }

  /** Listens to `key`'s events from now on; call the returned function to leave (idempotent). */
  listen(key: string, listener: FeedListener<T>): () => void {
    let feed = this.feeds.get(key);
    if (!feed) {
      const created: Feed<T> = new Feed(key, this.opts, this.looks, () => {
        if (this.feeds.get(key) === created) this.feeds.delete(key);
      });
      this.feeds.set(key, created);
      feed = created;
    }
    const joined = feed;
    joined.listeners.add(listener);
    return () => joined.leave(listener);
  }
}

class Feed<T> {
  readonly listeners = new Set<FeedListener<T>>();
  private readonly source: AsyncIterator<T>;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  /** In the look queue (an entry there runs the look only while `lookDue`). */
  private queued = false;
  /** The wait ran out and no event has come since: the queued look is still wanted. */
  private lookDue = false;

  constructor(
    private readonly key: string,
    private readonly opts: SharedFeedsOptions<T>,
    private readonly looks: LookQueue,
    private readonly gone: () => void,
  ) {
    this.source = opts.source(key);
    this.pump();
    this.arm();
  }

  leave(listener: FeedListener<T>): void {
    if (!this.listeners.delete(listener) || this.listeners.size || this.closed) return;
    this.close();
    void this.source.return?.();
  }

  private close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.gone();
  }

  private end(error?: unknown): void {
    if (this.closed) return;
    this.close();
    const listeners = [...this.listeners];
    this.listeners.clear();
    for (const l of listeners) l.end(error);
  }

  private dispatch(value: T): void {
    for (const l of this.listeners) l.event(value);
  }

  private pump(): void {
    this.source.next().then(
      (r) => {
        if (this.closed) return;
        if (r.done) return this.end();
        this.dispatch(r.value);
        // The source spoke: a look still waiting in the queue is not needed any more.
        this.lookDue = false;
        this.arm(this.opts.probe?.afterEventMs);
        this.pump();
      },
      (err: unknown) => this.end(err),
    );
  }

  /** (Re)starts the probe's wait: `everyMs` (or `ms`) from now, i.e. from the last event or look. */
  private arm(ms?: number): void {
    const probe = this.opts.probe;
    if (!probe || this.closed) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.lookDue = true;
      if (this.queued) return;
      this.queued = true;
      this.looks.add(this);
    }, ms ?? probe.everyMs);
  }

  /** Called by the look queue in this feed's turn: the look, or undefined when it is no longer wanted. */
  look(): Promise<void> | undefined {
    this.queued = false;
    const probe = this.opts.probe;
    if (!probe || this.closed || !this.lookDue) return undefined;
    this.lookDue = false;
    return probe.look(this.key).then(
      (value) => {
        if (this.closed) return;
        if (value !== null) this.dispatch(value);
        // An event that arrived while looking has already re-armed the wait.
        if (!this.timer) this.arm();
      },
      (err: unknown) => this.end(err),
    );
  }
}

/**
 * The due looks of all feeds, started first come first served: at most `concurrency` at once and
 * at most `perSecond` per second (evenly spaced; a look due when the queue is idle starts at once).
 */
class LookQueue {
  private readonly due: { look(): Promise<void> | undefined }[] = [];
  private running = 0;
  private readonly spacingMs: number;
  private nextStartAt = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly concurrency: number,
    perSecond: number,
  ) {
    this.spacingMs = perSecond > 0 && Number.isFinite(perSecond) ? 1000 / perSecond : 0;
  }

  add(feed: { look(): Promise<void> | undefined }): void {
    this.due.push(feed);
    this.drain();
  }

  private drain(): void {
    while (this.due.length && this.running < this.concurrency && !this.timer) {
      const now = performance.now();
      if (now < this.nextStartAt) {
        this.timer = setTimeout(() => {
          this.timer = undefined;
          this.drain();
        }, this.nextStartAt - now);
        // Not what keeps the process alive: the connections of those listening do.
        this.timer.unref();
        return;
      }
      const feed = this.due.shift()!;
      // A feed that closed or heard from its source since it was queued gives its turn away.
      const running = feed.look();
      if (!running) continue;
      this.nextStartAt = Math.max(now, this.nextStartAt) + this.spacingMs;
      this.running++;
      void running.finally(() => {
        this.running--;
        this.drain();
      });
    }
  }
}
