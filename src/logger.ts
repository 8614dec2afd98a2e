import pino, { type Logger } from "pino";

export type { Logger };

/** Structured JSON logs. Secrets never reach them: these paths are redacted wherever they appear. */
export const REDACT_PATHS = [
  "password",
  "token",
  "*.password",
  "*.token",
  "*.*.password",
  "*.*.token",
  "authorization",
  "*.authorization",
  "*.headers.authorization",
  "req.headers.authorization",
  "variables.input.password",
  "variables.password",
  "connectionParams.authorization",
  "secretAccessKey",
  "*.secretAccessKey",
];

/** Properties of an error that say what failed (kept when they are plain values). */
const ERROR_FACTS = ["code", "errno", "syscall", "address", "port", "sqlState", "fatal", "details", "commandName"];

/**
 * Errors as they are logged: the type, a message without data, the facts that say what failed
 * (ECONNREFUSED, errno, the address…) and the cause chain. Never the values of a query: drizzle's
 * DrizzleQueryError keeps its SQL (placeholders only) but not its `params` (session token hashes,
 * e-mail addresses…), which its message and stack would repeat; a database error's message has its
 * quoted values masked (a duplicate-key message names the value); `sql`, `values` and `params` of
 * any error are dropped.
 */
export function serializeError(err: unknown, depth = 0): Record<string, unknown> {
  if (typeof err !== "object" || err === null) return { message: String(err) };
  const e = err as Error & Record<string, unknown>;
  const message = safeMessage(e);
  const out: Record<string, unknown> = { type: e.constructor?.name ?? e.name, message };
  for (const key of ERROR_FACTS) {
    const v = e[key];
    if (v !== undefined && v !== null && typeof v !== "object" && typeof v !== "function") out[key] = v;
  }
  if (e.name === "AppError" && typeof e.details === "object" && e.details) out.details = e.details;
  if (typeof e.query === "string" && "params" in e) out.query = e.query;
  if (typeof e.stack === "string") out.stack = typeof e.message === "string" && e.message && e.message !== message ? e.stack.replace(e.message, message) : e.stack;
  if (depth < 5 && e.cause !== undefined) out.cause = serializeError(e.cause, depth + 1);
  if (depth < 5 && Array.isArray(e.errors) && e.errors.length) out.errors = e.errors.slice(0, 3).map((x: unknown) => serializeError(x, depth + 1));
  return out;
}

function safeMessage(e: Error & Record<string, unknown>): string {
  const message = typeof e.message === "string" ? e.message : String(e.message);
  // DrizzleQueryError: "Failed query: <sql>\nparams: <values>".
  if (typeof e.query === "string" && "params" in e) return `Failed query: ${e.query}`;
  if (typeof e.sqlState === "string" || (typeof e.code === "string" && e.code.startsWith("ER_"))) return message.replace(/'(?:[^'\\]|\\.)*'/g, "'?'");
  return message;
}

/**
 * Without a destination: stdout, written asynchronously — lines logged while a write is under way
 * go out together in the next one (one write per burst instead of one blocking write per line, which
 * cost a busy API ~3 % of its CPU in access-log lines alone); whatever is still buffered is flushed
 * synchronously when the process exits.
 */
export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: "reclo" },
      serializers: { err: serializeError },
      redact: { paths: REDACT_PATHS, censor: "[redacted]" },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    destination ?? pino.destination({ dest: 1, sync: false }),
  );
}
