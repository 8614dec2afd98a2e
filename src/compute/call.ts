import { ApplicationFailure } from "@temporalio/common";
import { TargetError } from "./target";

/**
 * Runs a compute-target call inside an activity: a TargetError that retrying cannot fix becomes a
 * non-retryable ApplicationFailure (with its code as the type); anything else is left for
 * Temporal's retry policy.
 */
export async function callTarget<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof TargetError && !err.retryable) throw ApplicationFailure.nonRetryable(err.message, err.code ?? "TargetError");
    throw err;
  }
}
