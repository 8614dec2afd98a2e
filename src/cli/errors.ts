import { GraphQLRequestError } from "../client/graphql-client";
import { CLI_NOT_LOGGED_IN, cliMessage, cliUnreachable } from "../client/errors";
import { BackupError } from "./backup";
import type { Settings } from "./config-file";
import { WatchError } from "./watch";

/** The CLI's failures and how they are told: one readable line, and a code for `--json` output. */

/** A wrong command line: the command's usage follows the message (exit code 2). */
export class UsageError extends Error {
  constructor(
    message: string,
    readonly command = "main",
  ) {
    super(message);
    this.name = "UsageError";
  }
}

/** A failure with a one-line message for the user. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly code = "ERROR",
  ) {
    super(message);
    this.name = "CliError";
  }
}

/** The CLI's own "log in first", before any request is sent. */
export const notLoggedIn = (): CliError => new CliError(CLI_NOT_LOGGED_IN, "UNAUTHENTICATED");

/** One readable line for any failure (the words for API codes are in src/client/errors.ts). */
export function describeError(err: unknown, settings: Pick<Settings, "url" | "tokenSource">): string {
  if (err instanceof GraphQLRequestError) return cliMessage({ code: err.code, message: err.message, status: err.status, extensions: err.extensions, retriedForMs: err.retriedForMs }, settings);
  if (err instanceof BackupError || err instanceof CliError || err instanceof WatchError) return err.message;
  const e = err as { name?: string; message?: string; cause?: { code?: string; message?: string }; retriedForMs?: number } | null;
  if (e?.name === "TypeError" && /fetch failed/i.test(e.message ?? "")) return cliUnreachable(settings.url, e.cause?.code ?? e.cause?.message ?? "network error", e.retriedForMs);
  return e?.message ?? String(err);
}

/** The code of a failure in `--json` output: the API's, or the CLI's own. */
export function errorCode(err: unknown): string {
  if (err instanceof GraphQLRequestError) return err.code ?? "HTTP_ERROR";
  if (err instanceof BackupError || err instanceof CliError || err instanceof WatchError) return err.code;
  const e = err as { name?: string; message?: string } | null;
  if (e?.name === "TypeError" && /fetch failed/i.test(e.message ?? "")) return "NETWORK_ERROR";
  return "ERROR";
}
