import type { ErrorCode } from "../shared/errors";

/**
 * What the `reclo` CLI and the web console tell a person about a failed call: one place for the
 * words each client shows for a code (the server's `extensions.code`, see src/shared/errors.ts,
 * or a code the client gives a failure of its own). Browser-safe: no Node and no graphql import,
 * so the console's bundle (esbuild, from src/console/client) takes it as it is.
 */

/** A failed call as a client sees it: the (first) error's code, the message, its extensions. */
export interface ApiFailure {
  code?: ErrorCode | (string & {});
  message: string;
  extensions?: Readonly<Record<string, unknown>>;
}

// ---------------------------------------------------------------------------------------------
// The CLI: one line, after `reclo: `; what to run next where there is something to run.

/** Where the CLI's settings came from, as far as its messages go. */
export interface CliSettingsView {
  url: string;
  tokenSource?: string;
}

export const CLI_NOT_LOGGED_IN = "Not logged in: run `reclo login`";

/** What an UNAVAILABLE answer's `extensions.dependency` names, in words. */
const DEPENDENCY_WORDS: Record<string, string> = {
  DATABASE: "database",
  TEMPORAL: "workflow engine (Temporal)",
  OBJECT_STORE: "object store",
  REDIS: "event and rate-limit store (Redis)",
};

/** "the server's object store" for an UNAVAILABLE answer's extensions. */
export function unavailableWhat(extensions?: Readonly<Record<string, unknown>>): string {
  const words = DEPENDENCY_WORDS[String(extensions?.dependency ?? "")];
  return words ? `the server's ${words}` : "a service the server depends on";
}

/** Seconds to wait from a RATE_LIMITED (or UNAVAILABLE) answer's extensions, if it says. */
function retryAfterOf(extensions?: Readonly<Record<string, unknown>>): number | undefined {
  const retry = Number(extensions?.retryAfterSeconds ?? extensions?.retryAfter);
  return Number.isFinite(retry) && retry > 0 ? Math.ceil(retry) : undefined;
}

/** RATE_LIMITED with `extensions.reason` BUSY: the server's password hashing is at capacity (nothing was counted). */
const isBusyAnswer = (failure: ApiFailure) => failure.code === "RATE_LIMITED" && failure.extensions?.reason === "BUSY";

const retriedFor = (ms?: number) => (ms === undefined ? "" : ` (retried for ${Math.max(1, Math.round(ms / 1000))} s)`);
const RESUME = "run the same command again once it is back: it resumes where it stopped";

/** The CLI's line for an error answer of the API (`status`: the HTTP status; `retriedForMs`: how long the CLI retried it). */
export function cliMessage(failure: ApiFailure & { status: number; retriedForMs?: number }, settings: CliSettingsView): string {
  if (failure.code === "UNAVAILABLE") {
    const what = unavailableWhat(failure.extensions);
    return `${what.charAt(0).toUpperCase()}${what.slice(1)} is unavailable right now${retriedFor(failure.retriedForMs)}; ${RESUME}`;
  }
  if (failure.code === "UNAUTHENTICATED" && (settings.tokenSource === "RECLO_AGENT_KEY" || settings.tokenSource === "agent key"))
    return `The agent key (${settings.tokenSource === "RECLO_AGENT_KEY" ? "RECLO_AGENT_KEY" : "in the configuration"}) is not valid: ${failure.message} (UNAUTHENTICATED)`;
  if (failure.code === "UNAUTHENTICATED") return settings.tokenSource === "RECLO_TOKEN" ? "Not logged in: RECLO_TOKEN is not a valid session (expired or revoked)" : CLI_NOT_LOGGED_IN;
  if (isBusyAnswer(failure)) {
    const retry = retryAfterOf(failure.extensions);
    return `The server is busy (too many logins at once), retry in ${retry ?? "a few"} s`;
  }
  if (failure.code === "RATE_LIMITED") return `Rate limited: ${failure.message}`;
  if (failure.code === undefined && failure.status >= 300) return `The server at ${settings.url} answered ${failure.message}`;
  return `${failure.message}${failure.code ? ` (${failure.code})` : ""}`;
}

/** The CLI's line when the server cannot be reached at all (`cause`: the socket error's code; `retriedForMs`: how long the CLI retried). */
export const cliUnreachable = (url: string, cause: string, retriedForMs?: number): string =>
  `Cannot reach the ReClo server at ${url}: ${cause}${retriedForMs === undefined ? "" : `${retriedFor(retriedForMs)}; ${RESUME}`}`;

// ---------------------------------------------------------------------------------------------
// The web console: whole sentences for a person at a browser.

export const CONSOLE_MESSAGES = {
  /** NETWORK: no answer at all (or not one the browser could read). */
  network: "ReClo can't be reached right now. Check the network connection, then try again.",
  /** INTERNAL: the server answered 5xx without a GraphQL body. */
  serverUnreadable: "ReClo had a problem answering. Please try again in a moment.",
  /** INTERNAL: a response with neither data nor errors. */
  emptyAnswer: "ReClo sent an empty answer. Please try again.",
  /** UNAUTHENTICATED: the session's token is gone (logged out, expired, revoked). */
  sessionEnded: "Your session has ended, please log in again.",
  /** UNAUTHENTICATED on the login form. */
  loginMismatch: "That e-mail address and password don't match. Please check them and try again.",
  /** Not an API error: the console's own code failed. */
  consoleFault: "Something went wrong in the console. Please reload the page.",
  /** Not an API error, on the login form. */
  loginFault: "Something went wrong. Please try again.",
} as const;

/** The console's sentence for an API failure. */
export function consoleMessage(failure: ApiFailure): string {
  switch (failure.code) {
    case "RATE_LIMITED": {
      if (isBusyAnswer(failure)) {
        const busyFor = retryAfterOf(failure.extensions);
        return `ReClo is busy right now (many people are logging in). Please try again ${busyFor ? `in ${busyFor} second${busyFor === 1 ? "" : "s"}` : "in a moment"}.`;
      }
      const retry = Number(failure.extensions?.retryAfterSeconds ?? failure.extensions?.retryAfter);
      return Number.isFinite(retry) && retry > 0
        ? `Too many attempts. Please wait ${Math.ceil(retry / 60)} minute(s) and try again.`
        : "Too many attempts. Please wait a few minutes and try again.";
    }
    case "UNAVAILABLE": {
      const retry = Number(failure.extensions?.retryAfter);
      const words = DEPENDENCY_WORDS[String(failure.extensions?.dependency ?? "")];
      return `ReClo can't reach ${words ? `its ${words}` : "a service it depends on"} right now. Please try again ${Number.isFinite(retry) && retry > 0 ? `in ${Math.ceil(retry)} seconds` : "in a moment"}.`;
    }
    case "INTERNAL":
      return "ReClo had a problem on its side. Please try again in a moment.";
    case "INVALID_TOKEN":
      return "This link is invalid or has expired, or it was already used. Please ask for a new one.";
    case "REAUTH_REQUIRED":
      return "This needs your password again (entered in the last few minutes), so nothing was changed. Please try again and enter your password when asked.";
    case "EMAIL_NOT_VERIFIED":
      return "Please verify your e-mail address first: open the link in the mail we sent you (the banner at the top can send it again).";
    default:
      return failure.message;
  }
}
