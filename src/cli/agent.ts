import os from "node:os";
import { setTimeout as sleep } from "node:timers/promises";
import type { ReCloClient } from "../client/graphql-client";
import { AgentCheckInDocument, type SourceFieldsFragment } from "../client/generated/graphql";
import { runBackup, type BackupOptions } from "./backup";

/**
 * `reclo agent`: the Backup Manager's agent. It keeps no schedule of its own: the server holds each
 * source's schedule (`reclo schedule set`, the console) and decides what every backup is. The agent
 * checks in (`agentCheckIn`: the server records it as seen and answers the schedule and the next
 * slot), sleeps until that slot, then runs the backup the server plans for it
 * (`backupPlan(at: slot)`: FULL or INCREMENTAL and the parent). A failed run is retried after
 * `retryDelayMs` (at most `maxTries` tries). Each step is a JSON line; SIGINT/SIGTERM stop it.
 *
 * Following changes live: by polling, not a subscription. The agent must check in regularly anyway
 * (that is how the server knows it is alive, `lastSeenAt`), and the check-in's answer carries the
 * schedule, so one plain HTTPS request every `pollMs` (60 s by default) does both: it works through
 * any proxy, needs no reconnect logic, and a schedule change reaches the agent within one poll — a
 * daily schedule needs nothing faster. A failed check-in is retried with backoff (5 s doubling up to
 * `pollMs`); meanwhile the agent keeps the slot it knows.
 */

export interface AgentOptions {
  client: ReCloClient;
  imagePath: string;
  sourceName: string;
  concurrency?: number;
  configDir?: string;
  serverUrl?: string;
  /** Check-in (and schedule) poll interval (default 60 s). */
  pollMs?: number;
  /** Delay before retrying a failed run (default 15 minutes). */
  retryDelayMs?: number;
  /** Tries per slot (default 3). */
  maxTries?: number;
  signal: AbortSignal;
  /** One JSON object per call (default: a line on stdout). */
  log?: (entry: Record<string, unknown>) => void;
  now?: () => Date;
  /** What the agent reports at check-in (defaults: host name, version, the machine's time zone). */
  host?: string;
  version?: string;
  timezone?: string;
  /** Extra options for each backup (tests). */
  backupOptions?: Partial<BackupOptions>;
}

export const AGENT_VERSION = "0.1.0";

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
  const pollMs = Math.max(100, opts.pollMs ?? 60_000);
  const checkInInput = {
    sourceName: opts.sourceName,
    host: opts.host ?? os.hostname(),
    version: opts.version ?? AGENT_VERSION,
    timezone: opts.timezone ?? Intl.DateTimeFormat().resolvedOptions().timeZone,
  };
  line("agent-start", { image: opts.imagePath, source: opts.sourceName, pollSeconds: pollMs / 1000 });

  let source: SourceFieldsFragment | null = null;
  let failures = 0;
  let announced = "";
  /** The last slot a run was made for: never run one twice (the agent's clock may run ahead of the server's). */
  let lastRun = 0;
  /** The slot the last check-in named (see `passed` below). */
  let known: Date | null = null;

  while (!opts.signal.aborted) {
    // Check in: the server records us as seen and answers the schedule and the next slot.
    let nextPoll: Date;
    try {
      source = (await opts.client.request(AgentCheckInDocument, { input: checkInInput })).agentCheckIn;
      failures = 0;
      nextPoll = new Date(now().getTime() + pollMs);
    } catch (err) {
      failures++;
      const delay = Math.min(pollMs, 5_000 * 2 ** (failures - 1));
      const e = err as { message?: string; code?: string };
      line("check-in-failed", { message: e.message ?? String(err), code: e.code ?? "ERROR", retryInSeconds: delay / 1000 });
      nextPoll = new Date(now().getTime() + delay);
    }
    const slot = source?.nextBackup;
    const slotAt = slot ? new Date(slot.at) : null;
    if (source && slot) {
      const key = `${slot.at} ${slot.kind} ${JSON.stringify(source.schedule)}`;
      if (key !== announced) {
        announced = key;
        line("scheduled", { at: slot.at, kind: slot.kind, reason: slot.reason, schedule: { ...source.schedule } });
      }
    }
    // The server names the first slot after the moment it answers: a check-in sent just before a slot
    // and answered just after it names the next one, and the slot in between was skipped (seen in CI
    // under load). The slot the previous check-in named is still due when it has passed, was not run,
    // and is within the schedule's grace.
    const graceMs = (source?.schedule.graceMinutes ?? 0) * 60_000;
    const t = now().getTime();
    const passed = known && known.getTime() > lastRun && known.getTime() <= t && t - known.getTime() <= graceMs && (!slotAt || slotAt.getTime() > known.getTime()) ? known : null;
    if (slotAt) known = slotAt;
    const due = passed ?? (slotAt && slotAt.getTime() > lastRun && slotAt.getTime() <= nextPoll.getTime() ? slotAt : null);
    if (!(await sleepUntil(due ?? nextPoll, opts.signal, now))) break;
    if (!due) continue;

    lastRun = due.getTime();
    for (let attempt = 1; attempt <= maxTries && !opts.signal.aborted; attempt++) {
      line("run-start", { slot: due.toISOString(), attempt });
      try {
        const r = await runBackup({
          client: opts.client,
          imagePath: opts.imagePath,
          sourceName: opts.sourceName,
          // No kind: the server's plan for this slot decides (FULL or INCREMENTAL, and the parent).
          plannedAt: due,
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
