import readline from "node:readline";
import { GraphQLRequestError, ReCloClient } from "../client/graphql-client";
import { BackupError } from "./backup";
import type { Settings } from "./config-file";
import { WatchError } from "./watch";

/** What every `reclo` command shares: errors, the parsed command line, clients, prompts. */

const USER_AGENT = "reclo-cli/0.1";

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

export interface CliIo {
  stdin: NodeJS.ReadStream;
  stdout: NodeJS.WriteStream;
  stderr: NodeJS.WriteStream;
  env: NodeJS.ProcessEnv;
}

export interface CommandContext {
  io: CliIo;
  values: Record<string, string | boolean | undefined>;
  positionals: string[];
  dir: string;
  settings: Settings;
}

/** One readable line for any failure. */
export function describeError(err: unknown, settings: Pick<Settings, "url" | "tokenSource">): string {
  if (err instanceof GraphQLRequestError) {
    if (err.code === "UNAUTHENTICATED")
      return settings.tokenSource === "RECLO_TOKEN" ? "Not logged in: RECLO_TOKEN is not a valid session (expired or revoked)" : "Not logged in: run `reclo login`";
    if (err.code === "RATE_LIMITED") return `Rate limited: ${err.message}`;
    if (err.code === undefined && err.status >= 300) return `The server at ${settings.url} answered ${err.message}`;
    return `${err.message}${err.code ? ` (${err.code})` : ""}`;
  }
  if (err instanceof BackupError || err instanceof CliError || err instanceof WatchError) return err.message;
  const e = err as { name?: string; message?: string; cause?: { code?: string; message?: string } } | null;
  if (e?.name === "TypeError" && /fetch failed/i.test(e.message ?? "")) return `Cannot reach the ReClo server at ${settings.url}: ${e.cause?.code ?? e.cause?.message ?? "network error"}`;
  return e?.message ?? String(err);
}

export function errorCode(err: unknown): string {
  if (err instanceof GraphQLRequestError) return err.code ?? "HTTP_ERROR";
  if (err instanceof BackupError || err instanceof CliError || err instanceof WatchError) return err.code;
  const e = err as { name?: string; message?: string } | null;
  if (e?.name === "TypeError" && /fetch failed/i.test(e.message ?? "")) return "NETWORK_ERROR";
  return "ERROR";
}

export function anonymousClient(settings: Settings): ReCloClient {
  return new ReCloClient({ url: settings.url, headers: { "user-agent": USER_AGENT } });
}

export function authedClient(settings: Settings): ReCloClient {
  if (!settings.token) throw new CliError("Not logged in: run `reclo login`", "UNAUTHENTICATED");
  return new ReCloClient({ url: settings.url, token: settings.token, headers: { "user-agent": USER_AGENT } });
}

export function positiveInt(raw: string | boolean | undefined, flag: string, fallback: number, max: number): number {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (typeof raw !== "string" || !/^\d+$/.test(raw) || n < 1 || n > max) throw new UsageError(`--${flag} must be a whole number from 1 to ${max}`);
  return n;
}

export function str(v: string | boolean | undefined): string | undefined {
  return typeof v === "string" ? v : undefined;
}

/** "2026-11-26 08:30:46 UTC"; "-" for none. */
export function formatDate(iso: string | null | undefined): string {
  if (!iso) return "-";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
}

/** Up to `limit` nodes of a connection, page after page (at most 100 per request). */
export async function fetchPages<N>(
  limit: number,
  fetchPage: (first: number, after: string | null) => Promise<{ edges: { node: N }[]; pageInfo: { hasNextPage: boolean; endCursor: string | null } }>,
): Promise<N[]> {
  const rows: N[] = [];
  let after: string | null = null;
  while (rows.length < limit) {
    const page = await fetchPage(Math.min(100, limit - rows.length), after);
    rows.push(...page.edges.map((e) => e.node));
    if (!page.pageInfo.hasNextPage || !page.pageInfo.endCursor) break;
    after = page.pageInfo.endCursor;
  }
  return rows;
}

// ---------------------------------------------------------------------------------------------
// Terminal input

/** The first line of a non-terminal stdin (without the line break). */
export async function readFirstLine(input: NodeJS.ReadStream): Promise<string> {
  const rl = readline.createInterface({ input, crlfDelay: Infinity, terminal: false });
  try {
    for await (const line of rl) return line;
    return "";
  } finally {
    rl.close();
    input.pause();
    (input as NodeJS.ReadStream & { unref?: () => void }).unref?.();
  }
}

/** Reads a line from the terminal without echoing it. */
export async function promptHidden(io: CliIo, question: string): Promise<string> {
  const { stdin, stderr } = io;
  stderr.write(question);
  (stdin as NodeJS.ReadStream & { ref?: () => void }).ref?.(); // an earlier prompt unref'd it
  stdin.setRawMode(true);
  stdin.setEncoding("utf8");
  stdin.resume();
  try {
    return await new Promise<string>((resolve, reject) => {
      let value = "";
      const onData = (chunk: string) => {
        for (const ch of chunk) {
          if (ch === "\r" || ch === "\n" || ch === "\u0004") {
            stdin.off("data", onData);
            resolve(value);
            return;
          }
          if (ch === "\u0003") {
            stdin.off("data", onData);
            reject(new CliError("Cancelled", "CANCELLED"));
            return;
          }
          if (ch === "\u007f" || ch === "\b") value = value.slice(0, -1);
          else if (ch >= " ") value += ch;
        }
      };
      stdin.on("data", onData);
    });
  } finally {
    stdin.setRawMode(false);
    stdin.pause();
    stderr.write("\n");
  }
}

/**
 * One line from stdin, terminal or pipe (so scripts can answer prompts too); null at end of
 * input. The prompt goes to stderr, keeping stdout for results.
 */
export async function ask(io: CliIo, question: string): Promise<string | null> {
  (io.stdin as NodeJS.ReadStream & { ref?: () => void }).ref?.(); // an earlier prompt unref'd it
  const rl = readline.createInterface({ input: io.stdin, output: io.stdin.isTTY ? io.stderr : undefined, terminal: Boolean(io.stdin.isTTY) });
  if (!io.stdin.isTTY) io.stderr.write(question);
  try {
    return await new Promise<string | null>((resolve) => {
      rl.once("close", () => resolve(null));
      rl.once("SIGINT", () => {
        io.stderr.write("\n");
        rl.close();
      });
      if (io.stdin.isTTY) rl.question(question, resolve);
      else rl.once("line", resolve);
    });
  } finally {
    rl.close();
    io.stdin.pause();
    (io.stdin as NodeJS.ReadStream & { unref?: () => void }).unref?.();
  }
}

/** A left-aligned table (columns in `right` right-aligned), two spaces between columns. */
export function printTable(out: NodeJS.WritableStream, header: string[], rows: string[][], opts: { right?: number[] } = {}): void {
  const all = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((row) => (row[i] ?? "").length)));
  const right = new Set(opts.right ?? []);
  for (const row of all) out.write(`${row.map((cell, i) => (right.has(i) ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!))).join("  ").trimEnd()}\n`);
}
