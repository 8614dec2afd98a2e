import { ApplicationFailure } from "@temporalio/common";
import { AppError, ErrorCode } from "../shared/errors";
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

/**
 * Runs a compute-target call for the API's services: a TargetError becomes a typed error with its
 * code as the reason (CONFLICT when retrying cannot fix it, INTERNAL otherwise); the provider's
 * message is the user's business.
 */
export async function callTargetForApi<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof TargetError) throw new AppError(err.retryable ? ErrorCode.INTERNAL : ErrorCode.CONFLICT, err.message, { reason: err.code ?? "TARGET_ERROR" });
    throw err;
  }
}
