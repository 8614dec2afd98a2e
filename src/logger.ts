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

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: "reclo" },
      redact: { paths: REDACT_PATHS, censor: "[redacted]" },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    destination,
  );
}
