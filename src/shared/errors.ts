/**
 * The one error module. Every error a client sees carries a stable code from ErrorCode (its
 * `extensions.code` over GraphQL) and, where it helps, details (the other `extensions` keys);
 * anything else is reported as INTERNAL with a generic message (and logged).
 *
 * A plain Error, with no GraphQL in it: services, activities and adapters throw it, and
 * src/graphql/errors.ts is the one place that turns it into what a GraphQL client receives.
 */
export const ErrorCode = {
  UNAUTHENTICATED: "UNAUTHENTICATED",
  FORBIDDEN: "FORBIDDEN",
  NOT_FOUND: "NOT_FOUND",
  BAD_USER_INPUT: "BAD_USER_INPUT",
  CONFLICT: "CONFLICT",
  RATE_LIMITED: "RATE_LIMITED",
  QUOTA_EXCEEDED: "QUOTA_EXCEEDED",
  INTERNAL: "INTERNAL",
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** What a client may read beside the code and message (a field name, a limit, a reason…). */
export type ErrorDetails = Record<string, unknown>;

export class AppError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details: ErrorDetails = {},
  ) {
    super(message);
    this.name = "AppError";
  }
}

export const unauthenticated = (message = "Authentication required: send a valid token as `Authorization: Bearer <token>`") =>
  new AppError(ErrorCode.UNAUTHENTICATED, message);
export const forbidden = (message = "You are not allowed to do this") => new AppError(ErrorCode.FORBIDDEN, message);
/** Never says whether the object exists for someone else. */
export const notFound = (kind: string, id: string) => new AppError(ErrorCode.NOT_FOUND, `${kind} ${id} not found`, { kind, id });
export const badInput = (message: string, details: ErrorDetails = {}) => new AppError(ErrorCode.BAD_USER_INPUT, message, details);
export const conflict = (message: string, details: ErrorDetails = {}) => new AppError(ErrorCode.CONFLICT, message, details);
export const rateLimited = (retryAfterSeconds: number) =>
  new AppError(ErrorCode.RATE_LIMITED, `Too many attempts; try again in ${retryAfterSeconds} s`, { retryAfterSeconds });

/** Which fair-use limit a QUOTA_EXCEEDED error is about (`extensions.quota`). */
export type QuotaKind = "STORED_BYTES" | "MAX_IMAGE_BYTES" | "CONCURRENT_RECOVERIES" | "RUNNING_MACHINES" | "HOST_RUNNING_MACHINES";
/** A configured fair-use limit would be exceeded: `extensions.quota`, `limit`, `used` (and `requested` where it applies). */
export const quotaExceeded = (quota: QuotaKind, message: string, details: { limit: number; used: number; requested?: number } & ErrorDetails) =>
  new AppError(ErrorCode.QUOTA_EXCEEDED, message, { quota, ...details });
