import type { InstanceFieldsFragment, RestorePointSummaryFragment } from "../client/generated/graphql";
import { formatDate } from "./format";
import { formatBytes, formatDuration } from "./progress";
import { TERMINAL_STATES, type ConnectionEvent, type RecoveryUpdate } from "./watch";

/**
 * How `reclo recover` shows a recovery: a redrawn block on a terminal, a plain line per change
 * elsewhere, or one JSON object per event (`--json`). All three see the same calls.
 */

export const STEPS = [
  { state: "PREPARING", label: "Preparing", what: "assembling the restore point" },
  { state: "IMPORTING", label: "Importing", what: "turning it into a machine image" },
  { state: "LAUNCHING", label: "Launching", what: "starting the machine" },
  { state: "CHECKING", label: "Checking it started", what: "looking at its screen and services" },
] as const;
const LABEL_WIDTH = Math.max(...STEPS.map((s) => s.label.length));

export interface RecoveryHeader {
  recoveryId: string;
  target: string;
  backup: RestorePointSummaryFragment | null;
}

export interface RecoveryView {
  header(h: RecoveryHeader, note?: string): void;
  update(r: RecoveryUpdate): void;
  connection(e: ConnectionEvent): void;
  /** The end: terminal state (with the instance when COMPLETED), or detached. */
  finish(r: RecoveryUpdate, instance: InstanceFieldsFragment | null): void;
  detached(recoveryId: string): void;
  error(message: string, code: string): void;
  close(): void;
}

export function describeBackup(b: RestorePointSummaryFragment | null): string {
  if (!b) return "restore point";
  return `${b.sourceName} (${b.kind} backup of ${formatDate(b.completedAt ?? b.createdAt)}, ${formatBytes(b.imageSize)})`;
}

function bar(percent: number, width: number): string {
  const filled = Math.round((Math.max(0, Math.min(100, percent)) / 100) * width);
  return `[${"#".repeat(filled)}${"-".repeat(width - filled)}]`;
}

function stepIndex(state: string): number {
  return STEPS.findIndex((s) => s.state === state);
}

/** Plain-language lines on how to reach a recovered machine. */
export function reachInstructions(i: InstanceFieldsFragment, allowed?: string): string[] {
  const lines = [`Machine ${i.name} is ${i.state}${i.provider === "LOCAL" ? " on this ReClo host" : ` in AWS ${i.zone ?? ""}`.trimEnd()} (instance ${i.id}).`];
  if (!i.address) {
    lines.push("It has no reachable address yet: run `reclo instances` in a minute to see it.");
  } else if (i.provider === "LOCAL") {
    lines.push(`Reach it with Remote Desktop (RDP) at ${i.address} (forwarded to the machine's port 3389).`);
  } else {
    lines.push(`Reach it at ${i.address}: Remote Desktop (RDP, port 3389) for Windows, SSH (port 22) for Linux${allowed ? `, from ${allowed}` : ""}.`);
  }
  if (i.privateAddress) lines.push(`Inside its network it is ${i.privateAddress}.`);
  if (i.privateAccess) {
    const p = i.privateAccess;
    lines.push(
      `Reach it privately over WireGuard (${p.endpoint}): \`reclo instance connect ${i.id}\` gives this device a configuration; then connect to ${p.tunnelAddress} on port${p.ports.length > 1 ? "s" : ""} ${p.ports.join(", ")}.`,
    );
  }
  lines.push(`Stop it with \`reclo instance stop ${i.id}\`; remove it with \`reclo instance terminate ${i.id}\`.`);
  return lines;
}

function elapsedOf(r: RecoveryUpdate, now = Date.now()): number {
  const from = Date.parse(r.startedAt ?? r.createdAt);
  const to = r.completedAt ? Date.parse(r.completedAt) : now;
  return Math.max(0, (to - from) / 1000);
}

const MARK = (e: { ok: boolean; failure: boolean }) => (e.ok ? "✔" : e.failure ? "✘" : "–");

/** The boot check in words: the verdict, then each piece of evidence with its mark. */
export function bootCheckLines(r: RecoveryUpdate): string[] {
  const b = r.bootCheck;
  if (!b) return [];
  const head =
    b.status === "VERIFIED"
      ? `Checked: it started${r.rtoSeconds != null ? ` (measured RTO ${formatDuration(r.rtoSeconds)} from the start of the recovery)` : ""}. Evidence:`
      : b.status === "FAILED"
        ? `Checked: it did NOT start — ${b.reason ?? "a failure was seen"}. The machine is kept so you can look at it. Evidence:`
        : b.status === "INCONCLUSIVE"
          ? `Checked: nothing showed that it started — ${b.reason ?? "no evidence"}. The machine is kept so you can look at it. Evidence:`
          : "Checking that it started…";
  return [head, ...b.evidence.map((e) => `  ${MARK(e)} ${e.kind.padEnd(8)} ${e.detail}`)];
}

function endLine(r: RecoveryUpdate): string {
  const took = formatDuration(elapsedOf(r));
  if (r.state === "COMPLETED" && r.bootCheck && r.bootCheck.status !== "VERIFIED") return `Recovery ${r.id} COMPLETED in ${took}, but the machine did not pass its boot check (${r.bootCheck.status}).`;
  if (r.state === "COMPLETED") return `Recovery ${r.id} COMPLETED in ${took}.`;
  if (r.state === "CANCELLED") return `Recovery ${r.id} CANCELLED after ${took}: everything it created has been removed.`;
  return `Recovery ${r.id} FAILED after ${took}: ${r.failureReason ?? r.message ?? "no reason given"}`;
}

function detachLines(id: string): string[] {
  return [`Detached. Recovery ${id} keeps running on the server.`, `Watch it again: reclo recover --attach ${id}`, `Cancel it:      reclo recover --cancel ${id}`];
}

/** One JSON object per line on stdout. */
export class JsonRecoveryView implements RecoveryView {
  private readonly started = Date.now();
  constructor(private readonly out: NodeJS.WritableStream) {}

  private emit(o: Record<string, unknown>): void {
    this.out.write(`${JSON.stringify(o)}\n`);
  }

  header(h: RecoveryHeader, note?: string): void {
    this.emit({ event: "recovery", recoveryId: h.recoveryId, target: h.target, backup: h.backup, ...(note ? { note } : {}) });
  }

  update(r: RecoveryUpdate): void {
    this.emit({
      event: "progress",
      recoveryId: r.id,
      state: r.state,
      stepProgress: r.stepProgress,
      totalProgress: r.totalProgress,
      message: r.message,
      failureReason: r.failureReason,
      version: r.version,
      waitingForWorker: r.waitingForWorker ?? null,
      elapsedSeconds: Math.round(elapsedOf(r) * 10) / 10,
    });
  }

  connection(e: ConnectionEvent): void {
    this.emit({ event: "connection", ...e });
  }

  finish(r: RecoveryUpdate, instance: InstanceFieldsFragment | null): void {
    this.emit({
      event: r.state.toLowerCase(),
      recoveryId: r.id,
      state: r.state,
      failureReason: r.failureReason,
      instance,
      seconds: Math.round(elapsedOf(r) * 10) / 10,
      rtoSeconds: r.rtoSeconds ?? null,
      bootCheck: r.bootCheck ?? null,
    });
  }

  detached(recoveryId: string): void {
    this.emit({ event: "detached", recoveryId, watchedSeconds: Math.round((Date.now() - this.started) / 100) / 10 });
  }

  error(message: string, code: string): void {
    this.emit({ event: "error", message, code });
  }

  close(): void {}
}

/** A line per change (logs, pipes): state changes always, progress at most every few seconds. */
export class PlainRecoveryView implements RecoveryView {
  private last: RecoveryUpdate | null = null;
  private lastLine = 0;
  constructor(
    private readonly out: NodeJS.WritableStream,
    private readonly err: NodeJS.WritableStream,
    private readonly minIntervalMs = 2000,
  ) {}

  header(h: RecoveryHeader, note?: string): void {
    this.out.write(`Recovering ${describeBackup(h.backup)} to ${h.target}: recovery ${h.recoveryId}\n`);
    if (note) this.out.write(`${note}\n`);
  }

  update(r: RecoveryUpdate): void {
    const stateChanged = this.last?.state !== r.state || Boolean(this.last?.waitingForWorker) !== Boolean(r.waitingForWorker);
    const now = Date.now();
    if (!stateChanged && now - this.lastLine < this.minIntervalMs) {
      this.last = r;
      return;
    }
    this.last = r;
    this.lastLine = now;
    if (TERMINAL_STATES.has(r.state)) return;
    const i = stepIndex(r.state);
    const step = i >= 0 ? `step ${i + 1}/${STEPS.length} ${STEPS[i]!.label} ${r.stepProgress}%` : r.state;
    this.out.write(`[${formatDuration(elapsedOf(r))}] ${step}, total ${r.totalProgress}%${r.message ? ` — ${r.message}` : ""}\n`);
    if (r.waitingForWorker) this.out.write(`${waitingLine(r.waitingForWorker)}\n`);
  }

  connection(e: ConnectionEvent): void {
    this.out.write(
      e.status === "lost" ? `Connection to the server lost (${e.reason}); reconnecting in ${(e.retryInMs / 1000).toFixed(1)} s…\n` : `Reconnected after ${(e.downMs / 1000).toFixed(1)} s.\n`,
    );
  }

  finish(r: RecoveryUpdate, instance: InstanceFieldsFragment | null): void {
    this.out.write(`${endLine(r)}\n`);
    for (const l of bootCheckLines(r)) this.out.write(`${l}\n`);
    if (instance) for (const l of reachInstructions(instance)) this.out.write(`${l}\n`);
  }

  detached(recoveryId: string): void {
    for (const l of detachLines(recoveryId)) this.out.write(`${l}\n`);
  }

  error(message: string): void {
    this.err.write(`reclo: ${message}\n`);
  }

  close(): void {}
}

/**
 * A redrawn block on a terminal: the steps with marks, a bar for the current step and one for
 * the whole recovery, elapsed time, the current message; messages of finished steps stay above.
 */
export class TtyRecoveryView implements RecoveryView {
  private r: RecoveryUpdate | null = null;
  private drawnLines = 0;
  private status: string | null = null;
  private readonly stepDone = new Map<string, number>();
  private readonly ticker: NodeJS.Timeout;
  /** After the end the block stays as drawn last; only plain lines follow. */
  private ended = false;

  constructor(private readonly out: NodeJS.WriteStream) {
    this.ticker = setInterval(() => this.draw(), 1000);
    this.ticker.unref();
  }

  header(h: RecoveryHeader, note?: string): void {
    this.print([`Recovering ${describeBackup(h.backup)} to ${h.target}`, `Recovery ${h.recoveryId}. Ctrl-C detaches; the recovery keeps running.`, ...(note ? [note] : []), ""]);
  }

  update(r: RecoveryUpdate): void {
    const prev = this.r;
    if (prev && prev.state !== r.state && stepIndex(prev.state) >= 0) this.stepDone.set(prev.state, elapsedOf(prev));
    this.r = r;
    this.status = null;
    this.draw();
  }

  connection(e: ConnectionEvent): void {
    this.status = e.status === "lost" ? `Connection lost (${e.reason}); reconnecting in ${(e.retryInMs / 1000).toFixed(0)} s…` : null;
    this.draw();
  }

  finish(r: RecoveryUpdate, instance: InstanceFieldsFragment | null): void {
    this.r = r;
    this.draw();
    this.end();
    this.print(["", endLine(r), ...bootCheckLines(r), ...(instance ? reachInstructions(instance) : [])]);
  }

  detached(recoveryId: string): void {
    this.end();
    this.print(["", ...detachLines(recoveryId)]);
  }

  error(message: string): void {
    this.end();
    this.print([`reclo: ${message}`]);
  }

  close(): void {
    clearInterval(this.ticker);
  }

  private end(): void {
    clearInterval(this.ticker);
    this.ended = true;
    this.drawnLines = 0; // the last block stays on screen
  }

  private print(lines: string[]): void {
    this.clear();
    for (const l of lines) this.out.write(`${l}\n`);
    this.draw();
  }

  private clear(): void {
    if (this.drawnLines) this.out.write(`\x1b[${this.drawnLines}F\x1b[J`);
    this.drawnLines = 0;
  }

  private draw(): void {
    const r = this.r;
    if (!r || this.ended) return;
    const cols = Math.max(40, this.out.columns || 80);
    const current = stepIndex(r.state);
    const finished = r.state === "COMPLETED";
    const lines: string[] = [];
    STEPS.forEach((s, i) => {
      const done = finished || (current >= 0 && i < current) || (current < 0 && this.stepDone.has(s.state));
      if (done) {
        const t = this.stepDone.get(s.state);
        lines.push(`  ✔ ${s.label.padEnd(LABEL_WIDTH)} done${t !== undefined ? ` (at ${formatDuration(t)})` : ""}`);
      } else if (i === current && !TERMINAL_STATES.has(r.state)) {
        lines.push(`  ▶ ${s.label.padEnd(LABEL_WIDTH)} ${bar(r.stepProgress, 20)} ${String(r.stepProgress).padStart(3)}%  ${r.message ?? s.what}`);
      } else {
        lines.push(`  · ${s.label.padEnd(LABEL_WIDTH)} ${r.state === "FAILED" || r.state === "CANCELLED" ? "not reached" : "waiting"}`);
      }
    });
    const stateWord = r.state === "PENDING" ? "waiting for a worker" : r.state;
    lines.push(`  ${"Total".padEnd(LABEL_WIDTH)} ${bar(r.totalProgress, 20)} ${String(r.totalProgress).padStart(3)}%  elapsed ${formatDuration(elapsedOf(r))}  ${stateWord}`);
    if (this.status) lines.push(`  ${this.status}`);
    if (r.waitingForWorker && !TERMINAL_STATES.has(r.state)) lines.push(`  ${waitingLine(r.waitingForWorker)}`);
    this.clear();
    for (const l of lines) this.out.write(`${l.length > cols - 1 ? `${l.slice(0, cols - 2)}…` : l}\n`);
    this.drawnLines = lines.length;
  }
}

/** "Waiting for a worker": the recovery's worker stopped (or none runs); it goes on when one is back. */
export function waitingLine(w: { since: unknown; observed: string }): string {
  const since = new Date(String(w.since));
  const secs = Math.max(0, Math.round((Date.now() - since.getTime()) / 1000));
  return `⚠ waiting for a worker for ${secs} s (${w.observed}); the recovery goes on when one is back`;
}
