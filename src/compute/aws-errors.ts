import { TargetError } from "./target";

/**
 * How EC2 failures become TargetErrors (shared by the AWS target and its access points): the EC2
 * error code, and whether retrying can help.
 */

export function hasCode(err: unknown, ...codes: string[]): boolean {
  const code = err instanceof TargetError ? err.code : errorCode(err);
  return code !== undefined && codes.includes(code);
}

const THROTTLING = new Set([
  "RequestLimitExceeded",
  "Throttling",
  "ThrottlingException",
  "ThrottledException",
  "TooManyRequestsException",
  "RequestThrottled",
  "RequestThrottledException",
  "SlowDown",
  "PriorRequestNotComplete",
  "BandwidthLimitExceeded",
  "EC2ThrottledException",
]);

const TRANSIENT = new Set([
  "TimeoutError",
  "RequestTimeout",
  "RequestTimeoutException",
  "InternalError",
  "InternalFailure",
  "ServiceUnavailable",
  "Unavailable",
  "InsufficientInstanceCapacity",
  "ECONNRESET",
  "ECONNREFUSED",
  "ECONNABORTED",
  "ETIMEDOUT",
  "EPIPE",
  "EAI_AGAIN",
  "ENOTFOUND",
  "ENETUNREACH",
  "EHOSTUNREACH",
  "NetworkingError",
]);

/** Failures raised by the SDK itself (not EC2) that retrying cannot fix. */
const LOCAL_PERMANENT = new Set(["CredentialsProviderError", "TokenProviderError", "ProviderError"]);

interface SdkErrorShape {
  name?: unknown;
  message?: unknown;
  code?: unknown;
  Code?: unknown;
  $fault?: unknown;
  $retryable?: unknown;
  $metadata?: { httpStatusCode?: unknown };
}

/**
 * The EC2 error code. The SDK (ec2Query protocol, no modelled errors) throws EC2ServiceException
 * with `name` = the `<Code>` of the error response and `$fault` "client"/"server" from the HTTP
 * status; Node network errors carry `code` (ECONNRESET …); the HTTP handler's timeouts are named
 * TimeoutError.
 */
function errorCode(err: unknown): string | undefined {
  if (!err || typeof err !== "object") return undefined;
  const e = err as SdkErrorShape;
  if (typeof e.Code === "string" && e.Code) return e.Code;
  if ((e.$fault !== undefined || e.$metadata !== undefined) && typeof e.name === "string" && e.name) return e.name;
  if (typeof e.code === "string" && e.code) return e.code;
  if (typeof e.name === "string" && e.name && e.name !== "Error") return e.name;
  return undefined;
}

/**
 * Maps an AWS SDK (or network) failure to a TargetError: throttling, timeouts, network errors,
 * HTTP 429/5xx and server faults are retryable; client faults (bad parameters, missing permissions,
 * unknown ids …) are not. The message is "<Code>: <message>".
 */
export function classifyAwsError(err: unknown): TargetError {
  if (err instanceof TargetError) return err;
  const e = (err && typeof err === "object" ? err : {}) as SdkErrorShape;
  const code = errorCode(err);
  const rawMessage = typeof e.message === "string" && e.message ? e.message : String(err);
  const message = code && !rawMessage.startsWith(`${code}:`) ? `${code}: ${rawMessage}` : rawMessage;
  const status = typeof e.$metadata?.httpStatusCode === "number" ? e.$metadata.httpStatusCode : undefined;

  let retryable: boolean;
  if (code && (THROTTLING.has(code) || TRANSIENT.has(code))) retryable = true;
  else if (e.$retryable) retryable = true;
  else if (status === 429 || (status !== undefined && status >= 500) || e.$fault === "server") retryable = true;
  else if (e.$fault === "client" || (status !== undefined && status >= 400)) retryable = false;
  else if (code && LOCAL_PERMANENT.has(code)) retryable = false;
  // Anything else (no AWS fault attached) is treated as transient, as the port specifies.
  else retryable = true;

  const out = new TargetError(message, retryable, code);
  out.cause = err;
  return out;
}

/** Runs one SDK call, turning any failure into a classified TargetError (code = EC2 error code). */
export async function ec2Call<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw classifyAwsError(err);
  }
}
