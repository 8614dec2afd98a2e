import { createHash } from "node:crypto";
import { and, desc, eq, isNotNull, max, ne, sql } from "drizzle-orm";
import type { Db } from "../db/client";
import { backups, drillPolicies, drills, verifications, type BackupRow, type DrillPolicyRow, type DrillRow, type VerificationRow } from "../db/schema";
import { newId } from "../shared/ids";
import { OwnedPages, findOwned } from "../db/ownership";
import type { Page, PageArgs, PageLimits } from "../shared/pagination";
import { AppError, badInput, notFound } from "../shared/errors";
import { parseDuration, type Config } from "../config";
import type { Logger } from "../logger";
import type { BackupService } from "../backups/backup.service";
import { DEFAULT_VERIFY_PORTS, type VerificationService } from "../verification/verification.service";
import { POSITIVE_KINDS, type Evidence } from "../evidence/types";
import type { WorkflowPort } from "../temporal/workflow-port";
import type { BeginDrillInput, BeginDrillResult, DrillInput, DrillTrigger, FinishDrillInput, FinishDrillResult, FinishedDrillStatus } from "../../workflows/contracts";

const MAX_PORTS = 8;
/** How many drills the RTO trend shows. */
export const RTO_TREND_POINTS = 30;

export interface SetDrillPolicy {
  sourceName: string;
  /** A duration ("7d", "12h"); null or absent: no scheduled drills. */
  every?: string | null;
  afterEveryBackup?: boolean | null;
  ports?: number[] | null;
}

export interface RtoPoint {
  at: Date;
  rtoSeconds: number | null;
  verdict: DrillRow["status"];
}

export interface SourceHealthRow {
  sourceName: string;
  policy: DrillPolicyRow | null;
  lastVerified: Date | null;
  lastDrill: DrillRow | null;
  rtoTrend: RtoPoint[];
}

/** "7d", "12h", "90m", "45s" or "1500ms": the largest unit that divides the interval. */
export function formatInterval(ms: number): string {
  for (const [unit, size] of [["d", 86_400_000], ["h", 3_600_000], ["m", 60_000], ["s", 1_000]] as const) if (ms % size === 0) return `${ms / size}${unit}`;
  return `${ms}ms`;
}

/** The Temporal Schedule of one source's drills (source names may hold spaces and ':', ids stay plain). */
export function drillScheduleId(userId: string, sourceName: string): string {
  return `drill-${userId}-${createHash("sha256").update(sourceName).digest("hex").slice(0, 16)}`;
}

/** RTO: from the drill's start to the first positive boot signal (SERVICE, SCREEN or MARKER), as observed. */
export function rtoFrom(startedAt: Date, evidence: Evidence[]): number | null {
  const firsts = evidence.filter((e) => e.ok && POSITIVE_KINDS.includes(e.kind)).map((e) => Date.parse(e.at));
  if (!firsts.length) return null;
  return Math.round((Math.min(...firsts) - startedAt.getTime()) / 10) / 100;
}

/** The decisive evidence in words: what proved the boot, or what failed. */
export function summarize(v: Pick<VerificationRow, "status" | "evidence" | "failureReason">): string | null {
  const ev = v.evidence ?? [];
  const picked = v.status === "VERIFIED" ? ev.filter((e) => e.ok && POSITIVE_KINDS.includes(e.kind)) : ev.filter((e) => e.failure);
  const text = picked.length ? picked.map((e) => `${e.kind}: ${e.detail}`).join("; ") : v.failureReason;
  return text ? (text.length > 1024 ? `${text.slice(0, 1023)}…` : text) : null;
}

export interface DrillServiceDeps {
  db: Db;
  backups: BackupService;
  verifications: VerificationService;
  limits: PageLimits;
  config: Pick<Config, "drills" | "recovery">;
  /** Starts, schedules and cancels drill workflows (absent in processes that cannot start workflows). */
  workflows?: Pick<WorkflowPort, "startDrill" | "scheduleDrill" | "removeSchedule" | "cancel" | "assertAvailable">;
  logger?: Logger;
  now?: () => Date;
}

/**
 * Drills: per source, a policy that runs the boot verification of its latest restore point on a
 * Temporal Schedule and/or after every backup, and the history of their verdicts and RTOs.
 */
export class DrillService {
  private readonly now: () => Date;

  private readonly pages: OwnedPages<DrillRow>;

  constructor(private readonly deps: DrillServiceDeps) {
    this.now = deps.now ?? (() => new Date());
    this.pages = new OwnedPages<DrillRow>(deps.db, drills, deps.limits);
  }

  private get workflows(): NonNullable<DrillServiceDeps["workflows"]> {
    if (!this.deps.workflows) throw new Error("this process has no Temporal client");
    return this.deps.workflows;
  }

  /** A source is the user's when they have a backup of it that is not deleted; otherwise NOT_FOUND. */
  private async ownSource(userId: string, sourceName: string): Promise<string> {
    const name = sourceName.trim();
    const [row] = await this.deps.db
      .select({ id: backups.id })
      .from(backups)
      .where(and(eq(backups.userId, userId), eq(backups.sourceName, name), ne(backups.status, "DELETED")))
      .limit(1);
    if (!row) throw notFound("Source", name);
    return name;
  }

  async policy(userId: string, sourceName: string): Promise<DrillPolicyRow | null> {
    const [row] = await this.deps.db
      .select()
      .from(drillPolicies)
      .where(and(eq(drillPolicies.userId, userId), eq(drillPolicies.sourceName, sourceName.trim())))
      .limit(1);
    return row ?? null;
  }

  private drillInput(userId: string, sourceName: string, trigger: DrillTrigger): DrillInput {
    return { userId, sourceName, trigger, timeLimitMs: this.deps.config.drills.timeLimitMs };
  }

  /** Hard limit of a drill run: its own limit plus the recovery backstop (for the child's cleanup). */
  private executionTimeoutMs(): number {
    return this.deps.config.drills.timeLimitMs + this.deps.config.recovery.backstopMs;
  }

  /**
   * Creates or replaces a source's drill policy and its Temporal Schedule (created or updated in
   * place; removed when the policy has no interval). Safe to repeat.
   */
  async setPolicy(userId: string, input: SetDrillPolicy): Promise<DrillPolicyRow> {
    const sourceName = await this.ownSource(userId, input.sourceName);
    let everyMs: number | null = null;
    if (input.every !== undefined && input.every !== null && input.every.trim() !== "") {
      const ms = parseDuration(input.every);
      const min = this.deps.config.drills.minIntervalMs;
      if (ms === undefined || !/[a-z]$/i.test(input.every.trim())) throw badInput(`every must be a duration like 7d, 12h or 90m, not "${input.every}"`, { field: "every" });
      if (ms < min) throw badInput(`every must be at least ${formatInterval(min)}: a drill boots a whole machine`, { field: "every", minimum: formatInterval(min) });
      if (ms > 366 * 86_400_000) throw badInput("every must be at most 366d", { field: "every" });
      everyMs = ms;
    }
    const ports = [...new Set(input.ports ?? DEFAULT_VERIFY_PORTS)];
    if (ports.length > MAX_PORTS || ports.some((p) => !Number.isInteger(p) || p < 1 || p > 65535))
      throw badInput(`ports must be at most ${MAX_PORTS} TCP ports (1–65535)`, { field: "ports" });
    const afterEveryBackup = input.afterEveryBackup ?? false;
    const scheduleId = drillScheduleId(userId, sourceName);
    const now = this.now();

    // The schedule first: a policy row never claims a schedule that was not registered.
    if (everyMs !== null) {
      await this.workflows.scheduleDrill(scheduleId, everyMs, this.drillInput(userId, sourceName, "SCHEDULE"), this.executionTimeoutMs());
    } else {
      await this.workflows.removeSchedule(scheduleId);
    }
    const values = { everyMs, afterEveryBackup, ports, scheduleId: everyMs !== null ? scheduleId : null, updatedAt: now };
    await this.deps.db
      .insert(drillPolicies)
      .values({ userId, sourceName, ...values, createdAt: now })
      .onDuplicateKeyUpdate({ set: values });
    return (await this.policy(userId, sourceName))!;
  }

  /** Removes the policy and its schedule. True when there was one. Drill history stays. */
  async deletePolicy(userId: string, sourceName: string): Promise<boolean> {
    const name = sourceName.trim();
    const existing = await this.policy(userId, name);
    await this.workflows.removeSchedule(drillScheduleId(userId, name));
    if (!existing) return false;
    await this.deps.db.delete(drillPolicies).where(and(eq(drillPolicies.userId, userId), eq(drillPolicies.sourceName, name)));
    return true;
  }

  /** Starts a drill of the source now. */
  async startNow(userId: string, sourceName: string): Promise<DrillRow> {
    const name = await this.ownSource(userId, sourceName);
    return this.startWorkflow(userId, name, "MANUAL", `drill-manual-${newId()}`);
  }

  /** Called when a backup completes: starts a drill when the source's policy asks for one after every backup. */
  async afterBackup(backup: Pick<BackupRow, "id" | "userId" | "sourceName">): Promise<DrillRow | null> {
    const policy = await this.policy(backup.userId, backup.sourceName);
    if (!policy?.afterEveryBackup) return null;
    return this.startWorkflow(backup.userId, backup.sourceName, "AFTER_BACKUP", `drill-after-${backup.id}`);
  }

  /** Starts the drill workflow and returns its row once the workflow has recorded it. */
  private async startWorkflow(userId: string, sourceName: string, trigger: DrillTrigger, workflowId: string): Promise<DrillRow> {
    // Already started (the same manual request or backup again): that run records the drill.
    await this.workflows.startDrill(this.drillInput(userId, sourceName, trigger), { workflowId, executionTimeoutMs: this.executionTimeoutMs() });
    // The workflow's first activity records the drill; the caller gets it (bounded wait).
    const deadline = Date.now() + 30_000;
    for (;;) {
      const [row] = await this.deps.db.select().from(drills).where(eq(drills.workflowId, workflowId)).limit(1);
      if (row) return row;
      if (Date.now() > deadline) throw new Error(`drill workflow ${workflowId} did not record its drill within 30 s (is a worker running?)`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** Cancels a running drill: its verification is cancelled and removes everything it created. */
  async cancel(userId: string, id: string): Promise<DrillRow> {
    const drill = await this.get(userId, id);
    if (drill.status === "RUNNING" && (await this.workflows.cancel(drill.workflowId)) === "NOT_FOUND") throw new Error(`drill ${drill.id}'s workflow ${drill.workflowId} was not found`);
    return drill;
  }

  get(userId: string, id: string): Promise<DrillRow> {
    return findOwned<DrillRow>(this.deps.db, drills, "Drill", userId, id);
  }

  /** Newest first; only the user's drills (another user's source name simply matches nothing). */
  list(userId: string, args: PageArgs, sourceName?: string | null): Promise<Page<DrillRow>> {
    return this.pages.list(userId, args, sourceName ? [{ column: drills.sourceName, op: "eq", value: sourceName.trim() }] : []);
  }

  /** What a source's drills and verifications say about it. NOT_FOUND for a source that is not the user's. */
  async health(userId: string, sourceName: string): Promise<SourceHealthRow> {
    const name = await this.ownSource(userId, sourceName);
    const db = this.deps.db;
    const [verified] = await db
      .select({ at: max(verifications.checkedAt) })
      .from(verifications)
      .innerJoin(backups, eq(backups.id, verifications.backupId))
      .where(and(eq(verifications.userId, userId), eq(backups.userId, userId), eq(backups.sourceName, name), eq(verifications.status, "VERIFIED")));
    const [lastDrill] = await db
      .select()
      .from(drills)
      .where(and(eq(drills.userId, userId), eq(drills.sourceName, name)))
      .orderBy(desc(drills.id))
      .limit(1);
    const trend = await db
      .select({ at: drills.startedAt, rtoSeconds: drills.rtoSeconds, verdict: drills.status })
      .from(drills)
      .where(and(eq(drills.userId, userId), eq(drills.sourceName, name), isNotNull(drills.finishedAt), ne(drills.status, "CANCELLED")))
      .orderBy(desc(drills.id))
      .limit(RTO_TREND_POINTS);
    return {
      sourceName: name,
      policy: await this.policy(userId, name),
      lastVerified: verified?.at ? new Date(verified.at) : null,
      lastDrill: lastDrill ?? null,
      rtoTrend: trend.reverse(),
    };
  }

  // ---- used by the drill workflow's activities ----

  /**
   * Records the drill (once per workflow id: a retried activity finds its row) and prepares the
   * verification of the source's latest COMPLETED restore point. A latest restore point that is not
   * restorable is the drill's finding, not a reason to quietly drill an older one.
   */
  async begin(input: BeginDrillInput): Promise<BeginDrillResult> {
    const db = this.deps.db;
    const policy = await this.policy(input.userId, input.sourceName);
    const ports = policy?.ports ?? DEFAULT_VERIFY_PORTS;
    let [row] = await db.select().from(drills).where(eq(drills.workflowId, input.workflowId)).limit(1);
    if (!row) {
      if (input.trigger === "SCHEDULE" && !policy?.everyMs) return { drillId: "", skipped: "The drill policy was removed" };
      const now = this.now();
      const fresh: DrillRow = {
        id: newId(),
        userId: input.userId,
        sourceName: input.sourceName,
        trigger: input.trigger,
        status: "RUNNING",
        backupId: null,
        verificationId: null,
        rtoSeconds: null,
        evidenceSummary: null,
        failureReason: null,
        workflowId: input.workflowId,
        startedAt: new Date(input.startedAtMs),
        finishedAt: null,
        createdAt: now,
        updatedAt: now,
      };
      await db.insert(drills).values(fresh).onDuplicateKeyUpdate({ set: { updatedAt: sql`${drills.updatedAt}` } });
      [row] = await db.select().from(drills).where(eq(drills.workflowId, input.workflowId)).limit(1);
    }
    const drill = row!;
    const timeout = this.deps.verifications.executionTimeoutMs();
    if (drill.verificationId) {
      const v = await this.deps.verifications.get(drill.userId, drill.verificationId);
      return { drillId: drill.id, verification: { id: v.id, workflowId: v.workflowId, args: this.deps.verifications.workflowArgs(v, ports), executionTimeoutMs: timeout } };
    }
    const latest = await this.deps.backups.latestCompleted(drill.userId, drill.sourceName);
    if (!latest) return { drillId: drill.id, failure: `Source "${drill.sourceName}" has no completed restore point to drill` };
    await db.update(drills).set({ backupId: latest.id, updatedAt: this.now() }).where(eq(drills.id, drill.id));
    let prepared: Awaited<ReturnType<VerificationService["prepare"]>>;
    try {
      prepared = await this.deps.verifications.prepare(drill.userId, { backupId: latest.id, ports }, { joinActive: false });
    } catch (err) {
      // e.g. "not restorable: some of its chunks are missing" — the drill's finding.
      if (err instanceof AppError && err.code === "BAD_USER_INPUT") return { drillId: drill.id, failure: `The latest restore point cannot be drilled: ${err.message}` };
      throw err;
    }
    const { row: v, args } = prepared;
    await db.update(drills).set({ verificationId: v.id, updatedAt: this.now() }).where(eq(drills.id, drill.id));
    return { drillId: drill.id, verification: { id: v.id, workflowId: v.workflowId, args, executionTimeoutMs: timeout } };
  }

  /** Records the verdict, the evidence summary and the RTO from the verification's evidence. */
  async finish(input: FinishDrillInput): Promise<FinishDrillResult> {
    const db = this.deps.db;
    const [drill] = await db.select().from(drills).where(eq(drills.id, input.drillId)).limit(1);
    if (!drill) throw new Error(`drill ${input.drillId} is not recorded`);
    if (drill.status !== "RUNNING") return { status: drill.status, rtoSeconds: drill.rtoSeconds ?? undefined, reason: drill.failureReason ?? undefined };
    let status: FinishedDrillStatus = input.status;
    let rtoSeconds: number | null = null;
    let summary: string | null = null;
    let reason = input.reason ?? null;
    if (drill.verificationId) {
      const [v] = await db.select().from(verifications).where(eq(verifications.id, drill.verificationId)).limit(1);
      if (v) {
        // The verification's own record decides the verdict (unless the drill was stopped).
        if (status !== "CANCELLED" && input.reason === undefined && (v.status === "VERIFIED" || v.status === "FAILED" || v.status === "INCONCLUSIVE")) status = v.status;
        summary = summarize(v);
        if (status === "VERIFIED") rtoSeconds = rtoFrom(drill.startedAt, v.evidence ?? []);
        if (status === "VERIFIED" && rtoSeconds === null) {
          status = "INCONCLUSIVE";
          reason = "The verification passed but recorded no positive evidence with a time";
        }
        reason ??= v.failureReason;
      }
    }
    if (status === "VERIFIED") reason = null;
    const now = this.now();
    await db
      .update(drills)
      .set({ status, rtoSeconds, evidenceSummary: summary, failureReason: reason ? reason.slice(0, 1024) : null, finishedAt: now, updatedAt: now })
      .where(and(eq(drills.id, drill.id), eq(drills.status, "RUNNING")));
    this.deps.logger?.info({ drillId: drill.id, sourceName: drill.sourceName, status, rtoSeconds }, "drill finished");
    return { status, rtoSeconds: rtoSeconds ?? undefined, reason: reason ?? undefined };
  }
}
