import { and, eq, inArray, lt, sql } from "drizzle-orm";
import type { Db, Prepared } from "../db/client";
import { recoveries, recoveryEvents, type BootCheckRecord, type RecoveryRow, type RecoveryResources, RECOVERY_EVENT_STATUSES, ACTIVE_RECOVERY_STATES, TERMINAL_RECOVERY_STATES } from "../db/schema";
import { newId } from "../shared/ids";
import type { EventBus } from "../events/event-bus";
import { Topic, type RecoverySnapshot } from "../events/topics";

export type RecoveryState = RecoveryRow["state"];
export type StepState = "PREPARING" | "IMPORTING" | "LAUNCHING" | "CHECKING";

/** Share of the whole recovery each step covers (PREPARING 0–30 %, IMPORTING 30–70 %, LAUNCHING 70–85 %, CHECKING 85–100 %). */
export const STEP_RANGE: Record<StepState, [number, number]> = {
  PREPARING: [0, 30],
  IMPORTING: [30, 70],
  LAUNCHING: [70, 85],
  CHECKING: [85, 100],
};

export function totalFor(state: StepState, stepPercent: number): number {
  const [from, to] = STEP_RANGE[state];
  return Math.floor(from + ((to - from) * Math.max(0, Math.min(100, stepPercent))) / 100);
}

export function snapshotOf(row: RecoveryRow): RecoverySnapshot {
  const iso = (d: Date | null) => (d ? d.toISOString() : null);
  return {
    id: row.id,
    userId: row.userId,
    backupId: row.backupId,
    target: row.target,
    state: row.state,
    stepProgress: row.stepProgress,
    totalProgress: row.totalProgress,
    message: row.message,
    failureReason: row.failureReason,
    startedAt: iso(row.startedAt),
    deadlineAt: iso(row.deadlineAt),
    completedAt: iso(row.completedAt),
    createdAt: row.createdAt.toISOString(),
    version: row.version,
    bootCheck: row.bootCheck ?? null,
    rtoSeconds: row.rtoSeconds ?? null,
  };
}

const TERMINAL = new Set<RecoveryState>(TERMINAL_RECOVERY_STATES);
export const isTerminal = (s: RecoveryState) => TERMINAL.has(s);

/**
 * Persists a recovery's progress and publishes it. State changes and terminal states publish at
 * once; progress within a step is coalesced to at most one event per `minIntervalMs` per recovery
 * (the latest value always goes out). Progress never goes backwards within a step (GREATEST in SQL,
 * so retried activities on other workers cannot regress it) and a terminal state is never left.
 */
export class RecoveryProgress {
  private readonly pending = new Map<string, { timer: NodeJS.Timeout }>();
  /** What was last published per recovery still running: when (the throttle) and which version (a row read twice goes out once). */
  private readonly lastSent = new Map<string, { at: number; version: number }>();
  /**
   * Rows as they are in the database at their version: read by publishNow, then carried forward by
   * this process's own progress writes (the UPDATE gives the new version through LAST_INSERT_ID;
   * when it is the next one, nothing else changed the row in between and the new values are known).
   * A progress event is then published without reading its row back. Any other write, or a version
   * that skipped, drops the entry and the next publish reads the row.
   */
  private readonly known = new Map<string, RecoveryRow>();
  /** The newest version this process's progress writes produced per recovery: a row read older than that is not used in their place. */
  private readonly written = new Map<string, number>();
  /** Told once when a recovery ends COMPLETED or FAILED (the notifications hook in here). */
  onFinished?: (row: RecoveryRow) => Promise<void>;

  constructor(
    private readonly db: Db,
    private readonly events: EventBus,
    private readonly opts: { minIntervalMs?: number; now?: () => Date } = {},
  ) {}

  private now(): Date {
    return this.opts.now?.() ?? new Date();
  }

  async begin(recoveryId: string, deadlineAt: Date): Promise<void> {
    const now = this.now();
    await this.db
      .update(recoveries)
      .set({ startedAt: sql`COALESCE(${recoveries.startedAt}, ${now})`, deadlineAt, updatedAt: now, version: sql`${recoveries.version} + 1` })
      .where(eq(recoveries.id, recoveryId));
    this.known.delete(recoveryId);
    await this.publishNow(recoveryId);
  }

  /** Enters a step (from PENDING or an earlier step); a no-op when already there or terminal. */
  async enter(recoveryId: string, state: StepState, message: string): Promise<void> {
    const now = this.now();
    const earlier = ACTIVE_RECOVERY_STATES.slice(0, ACTIVE_RECOVERY_STATES.indexOf(state));
    const [res] = await this.db
      .update(recoveries)
      .set({ state, stepProgress: 0, totalProgress: sql`GREATEST(${recoveries.totalProgress}, ${STEP_RANGE[state][0]})`, message, updatedAt: now, version: sql`${recoveries.version} + 1` })
      .where(and(eq(recoveries.id, recoveryId), inArray(recoveries.state, earlier)));
    this.known.delete(recoveryId);
    if (res.affectedRows) await this.publishNow(recoveryId);
  }

  /** Progress within the current step (ignored unless the recovery is in `state`). */
  async progress(recoveryId: string, state: StepState, stepPercent: number, message?: string): Promise<void> {
    const p = Math.max(0, Math.min(100, Math.floor(stepPercent)));
    const total = totalFor(state, p);
    const now = this.now();
    const [res] = (await this.statements().progress.execute({
      id: recoveryId,
      state,
      p,
      total,
      // An empty message leaves the message as it was, but still counts as a report (as it always has).
      newMessage: message || null,
      message: message ?? null,
      now: recoveries.updatedAt.mapToDriverValue(now),
    })) as [{ affectedRows: number; insertId: number }];
    if (!res.affectedRows) return;
    const version = Number(res.insertId);
    if (version > (this.written.get(recoveryId) ?? -1)) this.wrote(recoveryId, version);
    const before = this.known.get(recoveryId);
    if (before && before.version === version - 1 && before.state === state) {
      // The same arithmetic as the UPDATE's, on the row as it was just before it.
      this.remember(recoveryId, {
        ...before,
        stepProgress: Math.max(before.stepProgress, p),
        totalProgress: Math.max(before.totalProgress, total),
        message: message || before.message,
        updatedAt: now,
        version,
      });
    } else this.known.delete(recoveryId);
    this.publishThrottled(recoveryId);
  }

  /**
   * The two statements of every progress event (the UPDATE above and publishNow's SELECT), built
   * once: a worker reporting 1,000 progress events a second spent most of its CPU in drizzle
   * building them again each time, and the event waited for that CPU.
   */
  private prepared?: { progress: Prepared; row: Prepared };
  private statements(): { progress: Prepared; row: Prepared } {
    const p = sql.placeholder("p");
    const message = sql.placeholder("message");
    this.prepared ??= {
      progress: this.db
        .update(recoveries)
        .set({
          stepProgress: sql`GREATEST(${recoveries.stepProgress}, ${p})`,
          totalProgress: sql`GREATEST(${recoveries.totalProgress}, ${sql.placeholder("total")})`,
          message: sql`COALESCE(${sql.placeholder("newMessage")}, ${recoveries.message})`,
          updatedAt: sql`${sql.placeholder("now")}`,
          // The new version comes back as the statement's insert id (the row is not read back to learn it).
          version: sql`LAST_INSERT_ID(${recoveries.version} + 1)`,
        })
        .where(and(eq(recoveries.id, sql.placeholder("id")), eq(recoveries.state, sql.placeholder("state")), sql`(${recoveries.stepProgress} < ${p} OR ${message} IS NOT NULL)`))
        .prepare() as unknown as Prepared,
      row: this.db.select().from(recoveries).where(eq(recoveries.id, sql.placeholder("id"))).limit(1).prepare() as unknown as Prepared,
    };
    return this.prepared;
  }

  /** Records the boot check as it stands (and, once known, the measured RTO) and publishes it. */
  async setBootCheck(recoveryId: string, bootCheck: BootCheckRecord, rtoSeconds?: number | null): Promise<void> {
    const now = this.now();
    await this.db
      .update(recoveries)
      .set({ bootCheck, ...(rtoSeconds !== undefined ? { rtoSeconds } : {}), updatedAt: now, version: sql`${recoveries.version} + 1` })
      .where(and(eq(recoveries.id, recoveryId), inArray(recoveries.state, [...ACTIVE_RECOVERY_STATES])));
    this.known.delete(recoveryId);
    this.publishThrottled(recoveryId);
  }

  async setResources(recoveryId: string, patch: RecoveryResources): Promise<void> {
    const [row] = await this.db.select({ resources: recoveries.resources }).from(recoveries).where(eq(recoveries.id, recoveryId));
    await this.db
      .update(recoveries)
      .set({ resources: { ...(row?.resources ?? {}), ...patch } })
      .where(eq(recoveries.id, recoveryId));
  }

  /** What the steps recorded as they created it (cleanup completes what the workflow knows with it). */
  async recordedResources(recoveryId: string): Promise<RecoveryResources | null> {
    const [row] = await this.db.select({ resources: recoveries.resources }).from(recoveries).where(eq(recoveries.id, recoveryId));
    return row?.resources ?? null;
  }

  async finish(recoveryId: string, state: "COMPLETED" | "FAILED" | "CANCELLED", opts: { message?: string; failureReason?: string } = {}): Promise<boolean> {
    const now = this.now();
    const [res] = await this.db
      .update(recoveries)
      .set({
        state,
        ...(state === "COMPLETED" ? { stepProgress: 100, totalProgress: 100 } : {}),
        message: opts.message ?? null,
        failureReason: opts.failureReason ?? null,
        completedAt: now,
        updatedAt: now,
        version: sql`${recoveries.version} + 1`,
      })
      .where(and(eq(recoveries.id, recoveryId), inArray(recoveries.state, [...ACTIVE_RECOVERY_STATES])));
    this.known.delete(recoveryId);
    if (res.affectedRows) await this.publishNow(recoveryId);
    if (res.affectedRows && state !== "CANCELLED" && this.onFinished) {
      const [row] = (await this.statements().row.execute({ id: recoveryId })) as RecoveryRow[];
      if (row) await this.onFinished(row);
    }
    return res.affectedRows === 1;
  }

  async event(recoveryId: string, step: RecoveryState, status: (typeof RECOVERY_EVENT_STATUSES)[number], message: string | null, attempt = 1): Promise<void> {
    const [row] = await this.db.select({ userId: recoveries.userId }).from(recoveries).where(eq(recoveries.id, recoveryId)).limit(1);
    if (!row) return;
    await this.db.insert(recoveryEvents).values({ id: newId(), userId: row.userId, recoveryId, step, status, message: message?.slice(0, 1024) ?? null, attempt, createdAt: this.now() });
  }

  /** When the recovery was requested (its RTO is measured from here); null when there is no such recovery. */
  async createdAt(recoveryId: string): Promise<Date | null> {
    const [row] = await this.db.select({ createdAt: recoveries.createdAt }).from(recoveries).where(eq(recoveries.id, recoveryId)).limit(1);
    return row?.createdAt ?? null;
  }

  /** Active recoveries not updated for `olderThanMs` (the reconciler's candidates). */
  async staleActive(olderThanMs: number): Promise<{ id: string; workflowId: string }[]> {
    return this.db
      .select({ id: recoveries.id, workflowId: recoveries.workflowId })
      .from(recoveries)
      .where(and(inArray(recoveries.state, [...ACTIVE_RECOVERY_STATES]), lt(recoveries.updatedAt, new Date(Date.now() - olderThanMs))));
  }

  /** Flushes any coalesced progress event (tests, shutdown). */
  async flush(): Promise<void> {
    const ids = [...this.pending.keys()];
    for (const id of ids) {
      clearTimeout(this.pending.get(id)!.timer);
      this.pending.delete(id);
      await this.publishNow(id);
    }
  }

  private publishThrottled(recoveryId: string): void {
    const minInterval = this.opts.minIntervalMs ?? 250;
    const since = Date.now() - (this.lastSent.get(recoveryId)?.at ?? 0);
    if (since >= minInterval && !this.pending.has(recoveryId)) {
      void this.publishNow(recoveryId).catch(() => {});
      return;
    }
    if (this.pending.has(recoveryId)) return;
    const timer = setTimeout(() => {
      this.pending.delete(recoveryId);
      void this.publishNow(recoveryId).catch(() => {});
    }, minInterval - Math.min(since, minInterval));
    timer.unref();
    this.pending.set(recoveryId, { timer });
  }

  /**
   * Reads the recovery's row as it is now and publishes it. The reads of recoveries whose events
   * come together are one SELECT: while a read is in flight, the recoveries asking are gathered
   * and read together when it returns (a worker reporting 1,000 progress events a second made
   * 1,000 SELECT round trips, each waiting in the pool's queue behind the UPDATEs issued after
   * its own). Alone, a recovery is read at once, as before.
   */
  private publishNow(recoveryId: string): Promise<void> {
    const p = this.pending.get(recoveryId);
    if (p) {
      clearTimeout(p.timer);
      this.pending.delete(recoveryId);
    }
    // Known as it is after this process's latest write: published as is.
    const known = this.known.get(recoveryId);
    if (known && known.version >= (this.written.get(recoveryId) ?? -1)) {
      this.publishRow(known);
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      const waiting = this.toRead.get(recoveryId);
      if (waiting) waiting.push({ resolve, reject });
      else this.toRead.set(recoveryId, [{ resolve, reject }]);
      this.readNext();
    });
  }

  /** Recoveries to read and publish in the next read, with who waits for each. */
  private readonly toRead = new Map<string, Waiter[]>();
  private reading = false;

  private readNext(): void {
    if (this.reading || this.toRead.size === 0) return;
    const batch: [string, Waiter[]][] = [];
    for (const entry of this.toRead) {
      if (batch.length === READ_BATCH) break;
      batch.push(entry);
    }
    for (const [id] of batch) this.toRead.delete(id);
    this.reading = true;
    void this.readRows(batch.map(([id]) => id)).then(
      (rows) => {
        const byId = new Map(rows.map((row) => [row.id, row]));
        for (const [id, waiting] of batch) {
          const row = byId.get(id);
          if (row) {
            if (!isTerminal(row.state) && row.version >= (this.known.get(id)?.version ?? -1)) this.remember(id, row);
            this.publishRow(row);
          }
          for (const w of waiting) w.resolve();
        }
      },
      (err: unknown) => {
        for (const [, waiting] of batch) for (const w of waiting) w.reject(err);
      },
    ).finally(() => {
      this.reading = false;
      this.readNext();
    });
  }

  private async readRows(ids: string[]): Promise<RecoveryRow[]> {
    if (ids.length === 1) return (await this.statements().row.execute({ id: ids[0] })) as RecoveryRow[];
    return this.db.select().from(recoveries).where(inArray(recoveries.id, ids));
  }

  /** Keeps a row as known; the oldest go first past KNOWN_MAX (recoveries that ended in another process). */
  private remember(id: string, row: RecoveryRow): void {
    this.known.delete(id);
    this.known.set(id, row);
    if (this.known.size > KNOWN_MAX) this.known.delete(this.known.keys().next().value!);
  }

  /** Records this process's newest write; the oldest go first past KNOWN_MAX, with their known row (it can no longer be checked against the write). */
  private wrote(id: string, version: number): void {
    this.written.set(id, version);
    if (this.written.size > KNOWN_MAX) {
      const oldest = this.written.keys().next().value!;
      this.written.delete(oldest);
      this.known.delete(oldest);
    }
  }

  private publishRow(row: RecoveryRow): void {
    // Asked for again while a read that already saw the change was in flight: sent once.
    if (row.version <= (this.lastSent.get(row.id)?.version ?? -1)) return;
    if (isTerminal(row.state)) {
      this.lastSent.delete(row.id);
      this.known.delete(row.id);
      this.written.delete(row.id);
    } else this.lastSent.set(row.id, { at: Date.now(), version: row.version });
    this.events.publish(Topic.RECOVERY_CHANGED, row.id, snapshotOf(row));
  }
}

/** At most this many rows kept as known, and newest writes (each is a recovery this process reports progress for). */
const KNOWN_MAX = 10_000;

/** At most this many recoveries per gathered read. */
const READ_BATCH = 500;

/** A publishNow call waiting for its recovery's read. */
interface Waiter {
  resolve: () => void;
  reject: (err: unknown) => void;
}
