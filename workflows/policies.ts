import { ActivityFailure, ApplicationFailure, ChildWorkflowFailure, type RetryPolicy } from "@temporalio/workflow";

/**
 * The one retry policy of every workflow's activities: exponential backoff from 1 s, doubling,
 * capped at 1 minute between attempts. Each call site says only how many attempts its step is worth
 * (a quick database write may be retried longer than a step that boots a machine).
 */
export function retryPolicy(maximumAttempts: number): RetryPolicy {
  return { initialInterval: "1 second", backoffCoefficient: 2, maximumInterval: "1 minute", maximumAttempts };
}

/**
 * Why a step failed, in words: the root cause's message behind any activity or child-workflow
 * failure, led by its code when it has one (e.g. "INSUFFICIENT_CAPACITY: …").
 */
export function reasonOf(err: unknown): string {
  let e: unknown = err;
  while ((e instanceof ActivityFailure || e instanceof ChildWorkflowFailure) && e.cause) e = e.cause;
  const message = e instanceof Error ? e.message : String(e);
  const code = e instanceof ApplicationFailure ? e.type : undefined;
  return code && /^[A-Z][A-Z0-9_]{2,63}$/.test(code) && !message.startsWith(code) ? `${code}: ${message}` : message;
}
