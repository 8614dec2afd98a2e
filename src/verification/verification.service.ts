import { and, desc, eq, inArray, sql } from "drizzle-orm";
import type { Db } from "../db/client";
import { verifications, type VerificationRow } from "../db/schema";
import { newId } from "../shared/ids";
import { findOwned } from "../db/ownership";
import { badInput } from "../shared/errors";
import type { Config } from "../config";
import type { BackupService } from "../backups/backup.service";
import type { BackupLifecycleService } from "../backups/backup-lifecycle.service";
import type { EventBus } from "../events/event-bus";
import { Topic, type VerificationSnapshot } from "../events/topics";
import { eager, live } from "../events/live";
import type { VerificationWorkflowInput } from "../../workflows/contracts";
import type { WorkflowPort } from "../temporal/workflow-port";
import { claimOncePerBackup, startRecordedRun } from "../workflow-runs/start-once-per-backup";
import type { Evidence } from "../evidence/types";

export const isFinished = (s: VerificationRow["status"]) => s === "VERIFIED" || s === "FAILED" || s === "INCONCLUSIVE";

/** Ports whose banner/reply a verification reads when the request names none (SSH, RDP). */
export const DEFAULT_VERIFY_PORTS = [22, 3389];
const MAX_VERIFY_PORTS = 8;

export function verificationSnapshot(row: VerificationRow): VerificationSnapshot {
  const iso = (d: Date | null) => (d ? d.toISOString() : null);
  return {
    id: row.id,
    userId: row.userId,
    backupId: row.backupId,
    status: row.status,
    bootSeconds: row.bootSeconds,
    evidence: row.evidence ?? [],
    screenText: row.screenText,
    screenshotKey: row.screenshotKey,
    failureReason: row.failureReason,
    startedAt: iso(row.startedAt),
    checkedAt: iso(row.checkedAt),
    version: row.version,
  };
}

export interface VerificationServiceDeps {
  db: Db;
  backups: BackupService;
  /** Whether a restore point can still be restored. */
  lifecycle: Pick<BackupLifecycleService, "restorable">;
  events: EventBus;
  config: Pick<Config, "verification" | "recovery">;
  /** Starts verification workflows (absent in processes that cannot start workflows). */
  workflows?: Pick<WorkflowPort, "startVerification" | "assertAvailable">;
  now?: () => Date;
}

/** Datto-style boot verification: recover in isolation on the local target, watch it boot, destroy it. */
export class VerificationService {
  private readonly now: () => Date;

  /** Told once when a verification ends FAILED (the notifications hook in here: VERIFICATION_FAILED). */
  onFailed?: (row: VerificationRow) => Promise<void>;

  constructor(private readonly deps: VerificationServiceDeps) {
    this.now = deps.now ?? (() => new Date());
  }

  get(userId: string, id: string): Promise<VerificationRow> {
    return findOwned<VerificationRow>(this.deps.db, verifications, "Verification", userId, id);
  }

  /** The latest verification of a backup (owner-scoped), if any. */
  async latest(userId: string, backupId: string): Promise<VerificationRow | null> {
    const [row] = await this.deps.db
      .select()
      .from(verifications)
      .where(and(eq(verifications.backupId, backupId), eq(verifications.userId, userId)))
      .orderBy(desc(verifications.id))
      .limit(1);
    return row ?? null;
  }

  /** Starts a verification (or returns the one already running for that backup). */
  async start(userId: string, input: { backupId: string; bootMarker?: string | null; ports?: number[] | null }): Promise<VerificationRow> {
    const workflows = this.deps.workflows;
    if (!workflows) throw new Error("this process has no Temporal client");
    // Refused before anything is recorded while the workflow engine is known down.
    workflows.assertAvailable?.();
    const { row, created, args } = await this.prepare(userId, input);
    if (!created) return row;
    await startRecordedRun(() => workflows.startVerification(args, { workflowId: row.workflowId, executionTimeoutMs: this.executionTimeoutMs() }), {
      refused: () => this.deps.db.delete(verifications).where(and(eq(verifications.id, row.id), eq(verifications.userId, userId), eq(verifications.status, "PENDING"))),
      failed: (err) => this.update(row.id, { status: "FAILED", failureReason: `Could not start the verification workflow: ${err instanceof Error ? err.message : err}`, checkedAt: this.now() }),
    });
    return row;
  }

  /** The verification workflow's hard limit (its own boot timeout plus the recovery time limit). */
  executionTimeoutMs(): number {
    return this.deps.config.verification.bootTimeoutMs + this.deps.config.recovery.timeLimitMs;
  }

  /**
   * Checks the request and records a PENDING verification without starting its workflow (start()
   * starts it; a drill runs it as a child workflow). With `joinActive` (the default) a verification
   * already running for the backup is returned instead (created: false).
   */
  async prepare(
    userId: string,
    input: { backupId: string; bootMarker?: string | null; ports?: number[] | null },
    opts: { joinActive?: boolean } = {},
  ): Promise<{ row: VerificationRow; created: boolean; args: VerificationWorkflowInput }> {
    const backup = await this.deps.backups.get(userId, input.backupId);
    if (backup.status !== "COMPLETED") throw badInput(`Backup ${backup.id} is ${backup.status}; only a COMPLETED backup can be verified`, { field: "backupId" });
    if (!(await this.deps.lifecycle.restorable(userId, backup))) throw badInput(`Backup ${backup.id} is not restorable: some of its chunks are missing`, { field: "backupId" });
    if (input.bootMarker !== undefined && input.bootMarker !== null && (input.bootMarker.length === 0 || input.bootMarker.length > 255))
      throw badInput("bootMarker must be 1–255 characters", { field: "bootMarker" });
    const ports = input.ports ?? DEFAULT_VERIFY_PORTS;
    if (ports.length > MAX_VERIFY_PORTS || ports.some((p) => !Number.isInteger(p) || p < 1 || p > 65535))
      throw badInput(`ports must be at most ${MAX_VERIFY_PORTS} TCP ports (1–65535)`, { field: "ports" });
    const marker = input.bootMarker ?? this.deps.config.verification.bootMarker ?? null;

    const { row, created } = await claimOncePerBackup(this.deps.db, {
      backupId: backup.id,
      findActive: async (tx) => {
        if (opts.joinActive === false) return undefined;
        const [active] = await tx
          .select()
          .from(verifications)
          .where(and(eq(verifications.backupId, backup.id), inArray(verifications.status, ["PENDING", "RUNNING"])))
          .limit(1);
        return active;
      },
      create: async (tx) => {
        const now = this.now();
        const id = newId();
        const fresh: VerificationRow = {
          id,
          userId,
          backupId: backup.id,
          status: "PENDING",
          bootMarker: marker,
          bootSeconds: null,
          evidence: [],
          screenText: null,
          screenshotKey: null,
          failureReason: null,
          workflowId: `verify-${id}`,
          version: 0,
          startedAt: null,
          checkedAt: null,
          createdAt: now,
          updatedAt: now,
        };
        await tx.insert(verifications).values(fresh);
        return fresh;
      },
    });
    if (created) this.publish(row);
    return { row, created, args: this.workflowArgs(row, ports) };
  }

  /** The verification workflow's arguments for a recorded verification. */
  workflowArgs(row: VerificationRow, ports: number[] = DEFAULT_VERIFY_PORTS): VerificationWorkflowInput {
    const v = this.deps.config.verification;
    return {
      verificationId: row.id,
      userId: row.userId,
      backupId: row.backupId,
      bootMarker: row.bootMarker ?? undefined,
      ports: [...new Set(ports)],
      graceMs: v.evidenceGraceMs,
      bootTimeoutMs: v.bootTimeoutMs,
      pollIntervalMs: Math.min(1000, this.deps.config.recovery.pollIntervalMs),
      heartbeatTimeoutMs: this.deps.config.recovery.heartbeatTimeoutMs,
    };
  }

  /** Used by the workflow's activities: persists and publishes a change (never leaves a finished state). */
  async update(
    id: string,
    patch: Partial<Pick<VerificationRow, "status" | "bootSeconds" | "evidence" | "screenText" | "screenshotKey" | "failureReason" | "startedAt" | "checkedAt">>,
  ): Promise<VerificationRow | null> {
    const [res] = await this.deps.db
      .update(verifications)
      .set({ ...patch, updatedAt: this.now(), version: sql`${verifications.version} + 1` })
      .where(and(eq(verifications.id, id), inArray(verifications.status, ["PENDING", "RUNNING"])));
    const [row] = await this.deps.db.select().from(verifications).where(eq(verifications.id, id)).limit(1);
    if (row) this.publish(row);
    // This update is the one that ended it FAILED (a retried activity finds it finished: affects nothing).
    if (row && res.affectedRows && patch.status === "FAILED" && row.status === "FAILED") await this.onFailed?.(row);
    return row ?? null;
  }

  /** Appends one piece of boot evidence (in the order seen) and publishes the change. */
  async addEvidence(id: string, item: Evidence): Promise<void> {
    const [row] = await this.deps.db.select({ evidence: verifications.evidence }).from(verifications).where(eq(verifications.id, id)).limit(1);
    if (!row) return;
    // One activity per verification writes evidence, sequentially: read-modify-write is safe.
    await this.update(id, { evidence: [...(row.evidence ?? []), item] });
  }

  /** Current state of the backup's latest verification at once, then each change until it finishes. */
  async watch(userId: string, backupId: string): Promise<AsyncIterableIterator<VerificationSnapshot>> {
    const events = eager(this.deps.events.subscribe(Topic.VERIFICATION_CHANGED, backupId));
    let current: VerificationRow | null;
    try {
      const backup = await this.deps.backups.get(userId, backupId);
      current = await this.latest(userId, backup.id);
    } catch (err) {
      await events.return?.();
      throw err;
    }
    return live(events, {
      initial: current ? verificationSnapshot(current) : null,
      // A newer verification of the same backup replaces the one being watched.
      accept: (ev, last) => ev.userId === userId && (!last || ev.id > last.id || (ev.id === last.id && ev.version > last.version)),
      isFinal: (ev) => isFinished(ev.status),
    });
  }

  private publish(row: VerificationRow): void {
    this.deps.events.publish(Topic.VERIFICATION_CHANGED, row.backupId, verificationSnapshot(row));
  }
}
