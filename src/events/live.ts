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

/**
 * `source`, with `probe()` asked after every `everyMs` without an event: what it returns (not null)
 * is sent as an event. For state that changes without anyone publishing it (a worker that died
 * publishes nothing). `return()` ends it at once.
 */
export function withProbe<T>(source: AsyncIterableIterator<T>, everyMs: number, probe: () => Promise<T | null>): AsyncIterableIterator<T> {
  let pending: Promise<IteratorResult<T>> | undefined;
  let closed = false;
  let onClose: () => void = () => {};
  const closedSignal = new Promise<"closed">((resolve) => (onClose = () => resolve("closed")));
  const self: AsyncIterableIterator<T> = {
    async next() {
      for (;;) {
        if (closed) return { done: true, value: undefined };
        pending ??= source.next();
        let timer: NodeJS.Timeout | undefined;
        const tick = new Promise<"tick">((resolve) => (timer = setTimeout(() => resolve("tick"), everyMs)));
        const r = await Promise.race([pending, tick, closedSignal]);
        clearTimeout(timer);
        if (r === "closed") return { done: true, value: undefined };
        if (r === "tick") {
          const value = await probe();
          if (value !== null && !closed) return { done: false, value };
          continue;
        }
        pending = undefined;
        return r;
      }
    },
    async return() {
      closed = true;
      onClose();
      await source.return?.();
      return { done: true, value: undefined };
    },
    [Symbol.asyncIterator]() {
      return self;
    },
  };
  return self;
}
