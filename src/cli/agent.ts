import { setTimeout as sleep } from "node:timers/promises";
import type { ReCloClient } from "../client/graphql-client";
import { runBackup, type BackupKind, type BackupOptions } from "./backup";

/**
 * `reclo agent`: a foreground scheduler. Every day at `at` (local time) it runs a backup of the
 * image: FULL on `fullDay` (or when the source has no COMPLETED backup yet), INCREMENTAL
 * otherwise. A failed run is retried after `retryDelayMs` (at most `maxTries` tries), then the
 * agent waits for the next slot. Each step is a JSON line. SIGINT/SIGTERM stop it cleanly.
 */

export const DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"] as const;
export type Day = (typeof DAYS)[number];

/** "02:00" → [2, 0]; throws on anything that is not HH:MM (00:00–23:59). */
export function parseTime(at: string): [number, number] {
  const m = /^(\d{1,2}):(\d{2})$/.exec(at.trim());
  const h = m ? Number(m[1]) : NaN;
  const min = m ? Number(m[2]) : NaN;
  if (!m || h > 23 || min > 59) throw new Error(`Invalid time ${JSON.stringify(at)}: expected HH:MM (24-hour, local time), e.g. 02:00`);
  return [h, min];
}

/** "sun" / "Sunday" / "SUN" → 0 … 6 (Date#getDay numbering). */
export function parseDay(day: string): number {
  const d = DAYS.indexOf(day.trim().toLowerCase().slice(0, 3) as Day);
  if (d < 0 || day.trim().length < 3) throw new Error(`Invalid day ${JSON.stringify(day)}: expected one of ${DAYS.join(", ")}`);
  return d;
}

/**
 * The next slot strictly after `now`: today at `at` (local time) when that is still ahead, else
 * tomorrow's. Built from local calendar fields, so it stays at the wall-clock time across DST
 * changes (a time inside a spring-forward gap lands just after it).
 */
export function nextRun(now: Date, at: string, fullDay: string): { at: Date; kind: BackupKind } {
  const [h, m] = parseTime(at);
  const full = parseDay(fullDay);
  let slot = new Date(now.getFullYear(), now.getMonth(), now.getDate(), h, m, 0, 0);
  for (let add = 1; slot.getTime() <= now.getTime(); add++) slot = new Date(now.getFullYear(), now.getMonth(), now.getDate() + add, h, m, 0, 0);
  return { at: slot, kind: slot.getDay() === full ? "FULL" : "INCREMENTAL" };
}

export interface AgentOptions {
  client: ReCloClient;
  imagePath: string;
  sourceName: string;
  at: string;
  fullDay: string;
  concurrency?: number;
  configDir?: string;
  serverUrl?: string;
  /** Delay before retrying a failed run (default 15 minutes). */
  retryDelayMs?: number;
  /** Tries per slot (default 3). */
  maxTries?: number;
  signal: AbortSignal;
  /** One JSON object per call (default: a line on stdout). */
  log?: (entry: Record<string, unknown>) => void;
  now?: () => Date;
  /** Extra options for each backup (tests). */
  backupOptions?: Partial<BackupOptions>;
}

/** Sleeps until `when` (in slices, so clock jumps and suspends are noticed); false when aborted. */
async function sleepUntil(when: Date, signal: AbortSignal, now: () => Date): Promise<boolean> {
  for (;;) {
    if (signal.aborted) return false;
    const left = when.getTime() - now().getTime();
    if (left <= 0) return true;
    try {
      await sleep(Math.min(left, 60_000), undefined, { signal });
    } catch {
      return false;
    }
  }
}

/** Runs until `signal` aborts. */
export async function runAgent(opts: AgentOptions): Promise<void> {
  const log = opts.log ?? ((e) => process.stdout.write(`${JSON.stringify(e)}\n`));
  const now = opts.now ?? (() => new Date());
  const line = (event: string, fields: Record<string, unknown> = {}) => log({ time: now().toISOString(), event, ...fields });
  const retryDelayMs = opts.retryDelayMs ?? 15 * 60_000;
  const maxTries = Math.max(1, opts.maxTries ?? 3);
  nextRun(now(), opts.at, opts.fullDay); // validates at / fullDay before anything else
  line("agent-start", { image: opts.imagePath, source: opts.sourceName, at: opts.at, fullDay: opts.fullDay });

  while (!opts.signal.aborted) {
    const slot = nextRun(now(), opts.at, opts.fullDay);
    line("scheduled", { at: slot.at.toISOString(), kind: slot.kind });
    if (!(await sleepUntil(slot.at, opts.signal, now))) break;

    for (let attempt = 1; attempt <= maxTries && !opts.signal.aborted; attempt++) {
      line("run-start", { kind: slot.kind, attempt });
      try {
        const r = await runBackup({
          client: opts.client,
          imagePath: opts.imagePath,
          sourceName: opts.sourceName,
          kind: slot.kind,
          fallbackToFull: true,
          concurrency: opts.concurrency,
          configDir: opts.configDir,
          serverUrl: opts.serverUrl,
          signal: opts.signal,
          log: (message) => line("info", { message }),
          onEvent: (e) => {
            if (e.event !== "start") return;
            const { event: _event, ...start } = e;
            line("backup-start", start);
          },
          ...opts.backupOptions,
        });
        line("run-done", { ...r });
        break;
      } catch (err) {
        if (opts.signal.aborted) break;
        const e = err as { message?: string; code?: string };
        const retryAt = attempt < maxTries ? new Date(now().getTime() + retryDelayMs) : null;
        line("run-failed", { attempt, message: e.message ?? String(err), code: e.code ?? "ERROR", retryAt: retryAt?.toISOString() ?? null });
        if (!retryAt || !(await sleepUntil(retryAt, opts.signal, now))) break;
      }
    }
  }
  line("agent-stop");
}
