import { GraphQLError, type GraphQLFormattedError } from "graphql";
import { AppError, ErrorCode } from "../shared/errors";

/**
 * The one place where an AppError (src/shared/errors.ts: a plain Error with a stable code) becomes
 * what a GraphQL client sees: `extensions.code` and the details beside it, over HTTP (Apollo's
 * formatError, and the HTTP status of errors that abort a request before execution) and over
 * WebSocket (graphql-ws). Anything that is not an AppError or a request error is INTERNAL.
 */

/** The HTTP status used when an error aborts the whole request (before execution). */
const HTTP_STATUS: Record<ErrorCode, number> = {
  UNAUTHENTICATED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 200,
  BAD_USER_INPUT: 400,
  CONFLICT: 200,
  RATE_LIMITED: 429,
  QUOTA_EXCEEDED: 200,
  UNAVAILABLE: 503,
  INTERNAL: 500,
  EMAIL_NOT_VERIFIED: 403,
  REAUTH_REQUIRED: 403,
  INVALID_TOKEN: 400,
  NO_SUPPORT_GRANT: 403,
  SUPPORT_READ_ONLY: 403,
  SENSITIVE_FIELD: 403,
};

export const httpStatusOf = (err: AppError): number => HTTP_STATUS[err.code];

/** `extensions` of an AppError: its code, then its details. */
export const extensionsOf = (err: AppError): Record<string, unknown> => ({ code: err.code, ...err.details });

/** An AppError in GraphQL's error shape (`{ message, extensions }`), for answers written by hand. */
export const formattedAppError = (err: AppError): GraphQLFormattedError => ({ message: err.message, extensions: extensionsOf(err) });

/**
 * The AppError behind an error, if any: graphql-js wraps what a resolver throws in a located
 * GraphQLError and Apollo wraps what a plugin throws, both keeping it as `originalError`; drizzle
 * wraps what the pool throws (an UNAVAILABLE of the database's breaker) as the `cause` of a
 * DrizzleQueryError.
 */
export function appErrorOf(err: unknown): AppError | undefined {
  for (let e = err, depth = 0; e && depth < 6; depth++) {
    if (e instanceof AppError) return e;
    const next = e as { originalError?: unknown; cause?: unknown };
    e = next.originalError ?? next.cause;
  }
  return undefined;
}

/** The code a client will see for a raw GraphQLError (before formatting); undefined for an unexpected error. */
export function errorCodeOf(err: GraphQLError): unknown {
  return appErrorOf(err)?.code ?? err.extensions?.code;
}

/** An AppError as a GraphQLError, for graphql-ws (which sends GraphQLErrors) and Apollo plugins. */
export function toGraphQLError(err: AppError, extra: Record<string, unknown> = {}): GraphQLError {
  return new GraphQLError(err.message, { originalError: err, extensions: { ...extensionsOf(err), ...extra } });
}

/** `Retry-After` (seconds) of an error that says when to try again (UNAVAILABLE, RATE_LIMITED). */
export function retryAfterOf(err: AppError): number | undefined {
  const seconds = Number(err.details.retryAfter ?? err.details.retryAfterSeconds);
  return err.code === ErrorCode.UNAVAILABLE || err.code === ErrorCode.RATE_LIMITED ? (Number.isFinite(seconds) && seconds > 0 ? Math.ceil(seconds) : undefined) : undefined;
}

/** The same error, marked so that Apollo answers with its HTTP status (and Retry-After) (used before execution starts). */
export function withHttpStatus(err: AppError): GraphQLError {
  const retryAfter = retryAfterOf(err);
  const headers = retryAfter === undefined ? undefined : new Map([["retry-after", String(retryAfter)]]);
  return toGraphQLError(err, { http: { status: httpStatusOf(err), ...(headers ? { headers } : {}) } });
}

const KNOWN_CODES = new Set<string>(Object.values(ErrorCode));
/** Codes that graphql-js / Apollo attach to malformed requests; they are client errors, passed on as BAD_USER_INPUT. */
const REQUEST_ERROR_CODES = new Set(["GRAPHQL_PARSE_FAILED", "GRAPHQL_VALIDATION_FAILED", "BAD_REQUEST", "PERSISTED_QUERY_NOT_FOUND", "PERSISTED_QUERY_NOT_SUPPORTED", "OPERATION_RESOLUTION_FAILURE"]);
/**
 * graphql-js stops coercing variables after 50 errors and adds this error, without a code or a
 * location (Apollo cannot tell it from a server fault): it is the client's input, like the 50 before.
 */
const REQUEST_ERROR_MESSAGES = new Map([["Too many errors processing variables, error limit reached. Execution aborted.", "TOO_MANY_VARIABLE_ERRORS"]]);

/**
 * Apollo `formatError` (and the WebSocket results'): the code and details of an AppError, known
 * codes kept, request errors mapped to BAD_USER_INPUT (keeping the original code in
 * `extensions.reason`), everything else hidden behind INTERNAL. Stack traces are only kept when
 * `exposeStack` (development).
 */
export function formatError(formatted: GraphQLFormattedError, error: unknown, exposeStack: boolean, onInternal?: (err: unknown) => void): GraphQLFormattedError {
  const { stacktrace, ...ext } = formatted.extensions ?? {};
  const keepStack = exposeStack && stacktrace ? { stacktrace } : {};
  const appError = appErrorOf(error);
  // An AppError's own code and details; `ext` may only hold Apollo's INTERNAL_SERVER_ERROR default.
  const extensions = appError ? extensionsOf(appError) : ext;
  const code = String(extensions.code ?? "");
  if (KNOWN_CODES.has(code) && code !== ErrorCode.INTERNAL) {
    return { ...formatted, extensions: { ...extensions, ...keepStack } };
  }
  if (REQUEST_ERROR_CODES.has(code)) {
    return { ...formatted, extensions: { ...extensions, code: ErrorCode.BAD_USER_INPUT, reason: code, ...keepStack } };
  }
  const requestError = REQUEST_ERROR_MESSAGES.get(formatted.message);
  if (requestError && !formatted.path) {
    return { message: formatted.message, extensions: { code: ErrorCode.BAD_USER_INPUT, reason: requestError, ...keepStack } };
  }
  onInternal?.(error);
  return {
    message: exposeStack ? formatted.message : "Internal server error",
    locations: formatted.locations,
    path: formatted.path,
    extensions: { code: ErrorCode.INTERNAL, ...keepStack },
  };
}

/** A parse or validation error of a WebSocket operation, formatted like Apollo's for HTTP (BAD_USER_INPUT with the reason). */
export function requestErrorAsGraphQL(err: GraphQLError, exposeStack: boolean, code = "GRAPHQL_PARSE_FAILED"): GraphQLError {
  const formatted = formatError({ ...err.toJSON(), extensions: { ...err.extensions, code } }, err, exposeStack);
  return new GraphQLError(formatted.message, { extensions: formatted.extensions });
}

/**
 * graphql-ws `onError`: an error that ends a subscription stream reaches the client as sent
 * (graphql-ws wraps what the stream threw, keeping it as `originalError`); an AppError among them
 * keeps its code and details.
 */
export function wsErrors(errors: readonly GraphQLError[]): GraphQLFormattedError[] {
  return errors.map((e) => {
    const appError = appErrorOf(e);
    return appError ? { ...e.toJSON(), extensions: extensionsOf(appError) } : e.toJSON();
  });
}
