import { CancelledFailure, Context } from "@temporalio/activity";

/** How often a running step heartbeats, whatever its progress (the worker sends them at most a second apart). */
export const HEARTBEAT_EVERY_MS = 1000;

/**
 * Runs `fn` heartbeating every HEARTBEAT_EVERY_MS (with `details()`), progress or not: the heartbeat
 * is how the server notices a dead worker (and the API shows "waiting for a worker"), and its answer
 * is how a cancel reaches this step. A step that waits on a slow download, qemu-img or a provider
 * call still hears a cancel within about a second; `fn` reacts to it through the activity's
 * cancellation signal.
 */
export async function heartbeating<T>(fn: () => Promise<T>, details: () => unknown = () => undefined): Promise<T> {
  const ctx = Context.current();
  ctx.heartbeat(details());
  const timer = setInterval(() => ctx.heartbeat(details()), HEARTBEAT_EVERY_MS);
  try {
    return await fn();
  } finally {
    clearInterval(timer);
  }
}

/** A step stopped by its cancellation reports it as a cancellation, whatever the aborted call threw. */
export async function cancellable<T>(what: string, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const signal = Context.current().cancellationSignal;
  try {
    const result = await fn(signal);
    if (signal.aborted) throw new CancelledFailure(`${what} cancelled`);
    return result;
  } catch (err) {
    if (signal.aborted && !(err instanceof CancelledFailure)) throw new CancelledFailure(`${what} cancelled`);
    throw err;
  }
}
