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
  UNAVAILABLE: "UNAVAILABLE",
  INTERNAL: "INTERNAL",
  /** The account's e-mail address is not verified yet (REQUIRE_VERIFIED_EMAIL): follow the link in the verification mail. */
  EMAIL_NOT_VERIFIED: "EMAIL_NOT_VERIFIED",
  /** An e-mailed link's token (verification, password reset) that is unknown, expired or already used: which one is never said. */
  INVALID_TOKEN: "INVALID_TOKEN",
  /** Support acting for a customer (X-ReClo-Act-For) without a live grant of that customer (none, expired or revoked). */
  NO_SUPPORT_GRANT: "NO_SUPPORT_GRANT",
  /** A mutation while acting for a customer that the grant's scope does not allow (READ: none; READ_AND_RETRY: retry/cancel a recovery only). */
  SUPPORT_READ_ONLY: "SUPPORT_READ_ONLY",
  /** A field support may never read while acting for a customer (tokens, keys, configurations, presigned URLs): `extensions.fields`. */
  SENSITIVE_FIELD: "SENSITIVE_FIELD",
  /** Deleting or shortening retention needs the password re-entered on this session (reauthenticate) within FRESH_AUTH_WINDOW. */
  REAUTH_REQUIRED: "REAUTH_REQUIRED",
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** What a client may read beside the code and message (a field name, a limit, a reason…). */
export type ErrorDetails = Record<string, unknown>;

export class AppError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details: ErrorDetails = {},
    /** What caused it (for the log only: never sent to a client). */
    cause?: unknown,
  ) {
    super(message, cause === undefined ? undefined : { cause });
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
/**
 * The server is at capacity for expensive work (password hashing: logIn, signUp): RATE_LIMITED
 * with `extensions.reason` BUSY and `retryAfterSeconds`. Nothing was done and nothing was counted
 * against the caller's own limits; the same call can be made again after that many seconds.
 */
export const busy = (retryAfterSeconds: number) =>
  new AppError(ErrorCode.RATE_LIMITED, `The server is busy (too many logins at once); try again in ${retryAfterSeconds} s`, { reason: "BUSY", retryAfterSeconds });

export const isBusy = (err: unknown): err is AppError => err instanceof AppError && err.code === ErrorCode.RATE_LIMITED && err.details.reason === "BUSY";

export const emailNotVerified = () =>
  new AppError(ErrorCode.EMAIL_NOT_VERIFIED, "Verify your e-mail address first: follow the link in the mail we sent you (resendVerificationEmail sends a new one)");
/** One answer for an unknown, expired or used token (the link's state is not revealed). */
export const invalidToken = () => new AppError(ErrorCode.INVALID_TOKEN, "This link is invalid or has expired (or was already used): ask for a new one");

/** Which fair-use limit a QUOTA_EXCEEDED error is about (`extensions.quota`). */
export type QuotaKind = "STORED_BYTES" | "MAX_IMAGE_BYTES" | "CONCURRENT_RECOVERIES" | "RUNNING_MACHINES" | "HOST_RUNNING_MACHINES" | "ACCESS_KEYS" | "ACCESS_POINTS" | "WEBHOOKS";
/** A configured fair-use limit would be exceeded: `extensions.quota`, `limit`, `used` (and `requested` where it applies). */
export const quotaExceeded = (quota: QuotaKind, message: string, details: { limit: number; used: number; requested?: number } & ErrorDetails) =>
  new AppError(ErrorCode.QUOTA_EXCEEDED, message, { quota, ...details });

/** A dependency the product cannot answer without (`extensions.dependency` of UNAVAILABLE). */
export const Dependency = { DATABASE: "DATABASE", TEMPORAL: "TEMPORAL", OBJECT_STORE: "OBJECT_STORE", REDIS: "REDIS" } as const;
export type Dependency = (typeof Dependency)[keyof typeof Dependency];

const DEPENDENCY_WORDS: Record<Dependency, string> = {
  DATABASE: "the database",
  TEMPORAL: "the workflow engine (Temporal)",
  OBJECT_STORE: "the object store",
  REDIS: "the event and rate-limit store (Redis)",
};

/**
 * A dependency is down (or did not answer in time): nothing was done, the same call can be made
 * again after `extensions.retryAfter` seconds. `cause` is for the log (never sent to a client).
 */
export const unavailable = (dependency: Dependency, retryAfterSeconds: number, cause?: unknown) =>
  new AppError(
    ErrorCode.UNAVAILABLE,
    `${DEPENDENCY_WORDS[dependency].replace(/^t/, "T")} is unavailable right now; try again in ${retryAfterSeconds} s`,
    { dependency, retryAfter: retryAfterSeconds },
    cause,
  );

export const isUnavailable = (err: unknown): err is AppError => err instanceof AppError && err.code === ErrorCode.UNAVAILABLE;

/** Socket-level failures: the peer refused, reset, timed out or could not be found. */
const CONNECTION_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EPIPE",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ECONNABORTED",
  "UND_ERR_SOCKET",
  "UND_ERR_CONNECT_TIMEOUT",
  // mysql2
  "PROTOCOL_CONNECTION_LOST",
  "PROTOCOL_SEQUENCE_TIMEOUT",
  "PROTOCOL_ENQUEUE_AFTER_FATAL_ERROR",
  "ER_CON_COUNT_ERROR",
]);
/** Error names of connection failures (AWS SDK timeouts, ioredis). */
const CONNECTION_NAMES = new Set(["TimeoutError", "RequestTimeout", "MaxRetriesPerRequestError", "ConnectionTimeoutError"]);
/** gRPC status codes meaning "not reached" (UNAVAILABLE, DEADLINE_EXCEEDED). */
const GRPC_UNREACHED = new Set([14, 4]);

/**
 * The connection failure behind an error (its code, e.g. ECONNREFUSED), looking through `cause`
 * chains (drizzle's DrizzleQueryError, Temporal's ServiceError, fetch's TypeError); undefined when
 * the error is not about reaching a dependency.
 */
export function connectionFailure(err: unknown): string | undefined {
  for (let e = err as Record<string, unknown> | undefined, depth = 0; e && typeof e === "object" && depth < 6; e = (e.cause ?? e.originalError) as Record<string, unknown> | undefined, depth++) {
    const code = typeof e.code === "string" ? e.code : undefined;
    if (code && CONNECTION_CODES.has(code)) return code;
    if (typeof e.errno === "string" && CONNECTION_CODES.has(e.errno)) return e.errno;
    if (typeof e.code === "number" && GRPC_UNREACHED.has(e.code) && "details" in e) return e.code === 14 ? "GRPC_UNAVAILABLE" : "GRPC_DEADLINE_EXCEEDED";
    const name = typeof e.name === "string" ? e.name : "";
    if (CONNECTION_NAMES.has(name)) return name;
    const message = typeof e.message === "string" ? e.message : "";
    if (/^Connection is closed\.?$|Stream isn't writeable|connect ECONNREFUSED|Connection lost: The server closed the connection|Can't add new command when connection is in closed state/.test(message)) return name || "CONNECTION_CLOSED";
    if (Array.isArray(e.errors) && e.errors.length) {
      const inner = connectionFailure(e.errors[0]);
      if (inner) return inner;
    }
  }
  return undefined;
}

/** Support asked to act for a customer who has no live grant (none, expired or revoked: which is not said). */
export const noSupportGrant = () =>
  new AppError(ErrorCode.NO_SUPPORT_GRANT, "This customer has not granted support access (or the grant expired or was revoked): ask them to grant it (grantSupportAccess)");
/** A mutation the acting grant's scope does not allow. */
export const supportReadOnly = (scope: string, fields: string[]) =>
  new AppError(ErrorCode.SUPPORT_READ_ONLY, scope === "READ_AND_RETRY" ? "A READ_AND_RETRY grant allows only retryRecovery and cancelRecovery" : "A READ grant is read-only: no mutation while acting for a customer", { scope, fields });
/** Fields support never reads while acting for a customer. */
export const sensitiveField = (fields: string[]) =>
  new AppError(ErrorCode.SENSITIVE_FIELD, `Support cannot read ${fields.join(", ")} of a customer (secrets and presigned URLs stay with the customer)`, { fields });

export const reauthRequired = (windowSeconds: number) =>
  new AppError(ErrorCode.REAUTH_REQUIRED, `Enter your password again first (reauthenticate): this needs a password entered in the last ${Math.round(windowSeconds / 60)} minute(s) on this session`, { windowSeconds });
