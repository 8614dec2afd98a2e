import type { Settings } from "./config-file";
import { UsageError } from "./errors";

/** What every `reclo` command is run with, and the helpers that read its option values. */

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

export function positiveInt(raw: string | boolean | undefined, flag: string, fallback: number, max: number): number {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (typeof raw !== "string" || !/^\d+$/.test(raw) || n < 1 || n > max) throw new UsageError(`--${flag} must be a whole number from 1 to ${max}`);
  return n;
}

export function str(v: string | boolean | undefined): string | undefined {
  return typeof v === "string" ? v : undefined;
}
