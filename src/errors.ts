import { GraphQLError, type GraphQLFormattedError } from "graphql";

/**
 * The one error module. Every error a client sees carries a stable `extensions.code` from
 * ErrorCode; anything else is reported as INTERNAL with a generic message (and logged).
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

const HTTP_STATUS: Record<ErrorCode, number> = {
  UNAUTHENTICATED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 200,
  BAD_USER_INPUT: 400,
  CONFLICT: 200,
  RATE_LIMITED: 429,
  QUOTA_EXCEEDED: 200,
  INTERNAL: 500,
};

export class AppError extends GraphQLError {
  constructor(
    readonly code: ErrorCode,
    message: string,
    details: Record<string, unknown> = {},
  ) {
    super(message, { extensions: { code, ...details } });
    this.name = "AppError";
  }

  /** The HTTP status used when this error aborts the whole request (before execution). */
  get httpStatus(): number {
    return HTTP_STATUS[this.code];
  }
}

export const unauthenticated = (message = "Authentication required: send a valid token as `Authorization: Bearer <token>`") =>
  new AppError(ErrorCode.UNAUTHENTICATED, message);
export const forbidden = (message = "You are not allowed to do this") => new AppError(ErrorCode.FORBIDDEN, message);
/** Never says whether the object exists for someone else. */
export const notFound = (kind: string, id: string) => new AppError(ErrorCode.NOT_FOUND, `${kind} ${id} not found`, { kind, id });
export const badInput = (message: string, details: Record<string, unknown> = {}) => new AppError(ErrorCode.BAD_USER_INPUT, message, details);
export const conflict = (message: string, details: Record<string, unknown> = {}) => new AppError(ErrorCode.CONFLICT, message, details);
export const rateLimited = (retryAfterSeconds: number) =>
  new AppError(ErrorCode.RATE_LIMITED, `Too many attempts; try again in ${retryAfterSeconds} s`, { retryAfterSeconds });

/** Which fair-use limit a QUOTA_EXCEEDED error is about (`extensions.quota`). */
export type QuotaKind = "STORED_BYTES" | "MAX_IMAGE_BYTES" | "CONCURRENT_RECOVERIES" | "RUNNING_MACHINES" | "HOST_RUNNING_MACHINES";
/** A configured fair-use limit would be exceeded: `extensions.quota`, `limit`, `used` (and `requested` where it applies). */
export const quotaExceeded = (quota: QuotaKind, message: string, details: { limit: number; used: number; requested?: number } & Record<string, unknown>) =>
  new AppError(ErrorCode.QUOTA_EXCEEDED, message, { quota, ...details });

const KNOWN_CODES = new Set<string>(Object.values(ErrorCode));
/** Codes that graphql-js / Apollo attach to malformed requests; they are client errors, passed on as BAD_USER_INPUT. */
const REQUEST_ERROR_CODES = new Set(["GRAPHQL_PARSE_FAILED", "GRAPHQL_VALIDATION_FAILED", "BAD_REQUEST", "PERSISTED_QUERY_NOT_FOUND", "PERSISTED_QUERY_NOT_SUPPORTED", "OPERATION_RESOLUTION_FAILURE"]);

/**
 * Apollo `formatError`: keeps known codes, maps request errors to BAD_USER_INPUT (keeping the
 * original code in `extensions.reason`), hides everything else behind INTERNAL. Stack traces are
 * only kept when `exposeStack` (development).
 */
export function formatError(formatted: GraphQLFormattedError, error: unknown, exposeStack: boolean, onInternal?: (err: unknown) => void): GraphQLFormattedError {
  const code = String(formatted.extensions?.code ?? "");
  const { stacktrace, ...ext } = formatted.extensions ?? {};
  const keepStack = exposeStack && stacktrace ? { stacktrace } : {};
  if (KNOWN_CODES.has(code) && code !== ErrorCode.INTERNAL) {
    return { ...formatted, extensions: { ...ext, ...keepStack } };
  }
  if (REQUEST_ERROR_CODES.has(code)) {
    return { ...formatted, extensions: { ...ext, code: ErrorCode.BAD_USER_INPUT, reason: code, ...keepStack } };
  }
  onInternal?.(error);
  return {
    message: exposeStack ? formatted.message : "Internal server error",
    locations: formatted.locations,
    path: formatted.path,
    extensions: { code: ErrorCode.INTERNAL, ...keepStack },
  };
}

/** The same error, marked so that Apollo answers with its HTTP status (used before execution starts). */
export function withHttpStatus(err: AppError): AppError {
  const { code, ...rest } = err.extensions as Record<string, unknown>;
  return new AppError(code as ErrorCode, err.message, { ...rest, http: { status: err.httpStatus } });
}
