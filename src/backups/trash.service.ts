import { and, asc, eq, isNotNull, lte } from "drizzle-orm";
import type { Db } from "../db/client";
import { backups, retentionPolicies, type BackupRow, type RetentionPolicyRow } from "../db/schema";
import type { NotificationService } from "../alerts/notification.service";
import type { Logger } from "../logger";
import { notFound } from "../shared/errors";
import type { BackupService } from "./backup.service";
import type { BackupLifecycleService } from "./backup-lifecycle.service";
import type { TrashPurgeResult } from "../../workflows/contracts";

export const DEFAULT_DELETION_DELAY_MS = 72 * 3_600_000;
/** What "no policy" means: keep everything; the first policy is a shortening of this. */
export const KEEP_EVERYTHING = { keepWeeklyFull: 520, keepDaily: 3650 } as const;

export type TrashItemKind = "BACKUP" | "RETENTION_POLICY";
export interface TrashItem {
  id: string;
  kind: TrashItemKind;
  what: string;
  requestedAt: Date;
  requestedBy: string | null;
  effectiveAt: Date;
}

const policyItemId = (userId: string) => `RetentionPolicy:${userId}`;

/**
 * Deletion defense (issue 18): deleting a restore point or shortening retention puts it in a trash
 * for DELETION_DELAY. Until then the backup stays COMPLETED (restorable, recoverable, and every chunk
 * it references stays live for the GC), the owner is e-mailed at once, and one mutation undoes it.
 * The scheduled maintenance carries out what is due (purgeDue).
 */
export class TrashService {
  constructor(
    private readonly db: Db,
    private readonly backups: BackupService,
    private readonly lifecycle: BackupLifecycleService,
    private readonly notifications: NotificationService,
    private readonly opts: { deletionDelayMs: number; logger?: Logger },
    private readonly now: () => Date = () => new Date(),
  ) {}

  /** A COMPLETED backup goes to the trash; one that never completed (nothing to restore) is deleted at once as before. */
  async deleteBackup(userId: string, id: string, requestedBy: string): Promise<BackupRow> {
    const backup = await this.backups.get(userId, id);
    if (backup.status !== "COMPLETED") return this.lifecycle.delete(userId, id);
    if (backup.deleteAfter) return backup;
    const now = this.now();
    const deleteAfter = new Date(now.getTime() + this.opts.deletionDelayMs);
    await this.db
      .update(backups)
      .set({ deletionRequestedAt: now, deleteAfter, deletionRequestedBy: requestedBy.slice(0, 255), updatedAt: now })
      .where(and(eq(backups.id, backup.id), eq(backups.status, "COMPLETED")));
    const row = await this.backups.get(userId, id);
    this.backups.changed(row);
    await this.notifications.raise(userId, {
      kind: "DELETION_REQUESTED",
      title: `Restore point of ${backup.sourceName} will be deleted on ${deleteAfter.toISOString()}`,
      body: `The ${backup.kind} backup ${backup.id} of ${backup.sourceName} (completed ${(backup.completedAt ?? backup.createdAt).toISOString()}) was put in the trash by ${requestedBy} at ${now.toISOString()}.\nIt stays restorable until ${deleteAfter.toISOString()}. If you did not ask for this, restore it now (restoreFromTrash ${backup.id}, or the Trash page) and change your password.`,
      subjectType: "BACKUP",
      subjectId: backup.id,
      dedupeKey: `deletion-requested:backup:${backup.id}:${now.toISOString()}`,
    });
    return row;
  }

  /** A shortening of the policy waits in the trash; the current policy stays in force meanwhile. */
  async shortenRetention(userId: string, input: { keepWeeklyFull: number; keepDaily: number }, current: RetentionPolicyRow | null, requestedBy: string): Promise<RetentionPolicyRow> {
    const now = this.now();
    const effectiveAt = new Date(now.getTime() + this.opts.deletionDelayMs);
    const pending = { pendingKeepWeeklyFull: input.keepWeeklyFull, pendingKeepDaily: input.keepDaily, pendingRequestedAt: now, pendingEffectiveAt: effectiveAt, pendingRequestedBy: requestedBy.slice(0, 255) };
    await this.db
      .insert(retentionPolicies)
      .values({ userId, keepWeeklyFull: current?.keepWeeklyFull ?? KEEP_EVERYTHING.keepWeeklyFull, keepDaily: current?.keepDaily ?? KEEP_EVERYTHING.keepDaily, updatedAt: now, ...pending })
      .onDuplicateKeyUpdate({ set: pending });
    const [row] = await this.db.select().from(retentionPolicies).where(eq(retentionPolicies.userId, userId)).limit(1);
    const from = current ? `${current.keepWeeklyFull} weekly fulls and ${current.keepDaily} days` : "keeping everything";
    await this.notifications.raise(userId, {
      kind: "DELETION_REQUESTED",
      title: `Retention will be shortened on ${effectiveAt.toISOString()}`,
      body: `${requestedBy} asked at ${now.toISOString()} to change your retention from ${from} to ${input.keepWeeklyFull} weekly fulls and ${input.keepDaily} days; older restore points would then be deleted.\nNothing changes before ${effectiveAt.toISOString()}. If you did not ask for this, cancel it now (restoreFromTrash ${policyItemId(userId)}, or the Trash page) and change your password.`,
      subjectType: "RETENTION_POLICY",
      subjectId: userId,
      dedupeKey: `deletion-requested:retention:${userId}:${now.toISOString()}`,
    });
    return row!;
  }

  /** What is in a user's trash, soonest effective first. */
  async list(userId: string): Promise<TrashItem[]> {
    const rows = await this.db
      .select()
      .from(backups)
      .where(and(eq(backups.userId, userId), eq(backups.status, "COMPLETED"), isNotNull(backups.deleteAfter)))
      .orderBy(asc(backups.deleteAfter));
    const items: TrashItem[] = rows.map((b) => ({
      id: b.id,
      kind: "BACKUP",
      what: `${b.kind} backup of ${b.sourceName} completed ${(b.completedAt ?? b.createdAt).toISOString()}`,
      requestedAt: b.deletionRequestedAt!,
      requestedBy: b.deletionRequestedBy,
      effectiveAt: b.deleteAfter!,
    }));
    const [policy] = await this.db.select().from(retentionPolicies).where(and(eq(retentionPolicies.userId, userId), isNotNull(retentionPolicies.pendingEffectiveAt))).limit(1);
    if (policy)
      items.push({
        id: policyItemId(userId),
        kind: "RETENTION_POLICY",
        what: `Retention shortened from ${policy.keepWeeklyFull} weekly fulls / ${policy.keepDaily} days to ${policy.pendingKeepWeeklyFull} / ${policy.pendingKeepDaily}`,
        requestedAt: policy.pendingRequestedAt!,
        requestedBy: policy.pendingRequestedBy,
        effectiveAt: policy.pendingEffectiveAt!,
      });
    return items.sort((a, b) => a.effectiveAt.getTime() - b.effectiveAt.getTime());
  }

  /** Takes an item out of the trash (the deletion or shortening will not happen); NOT_FOUND unless it is the user's and still pending. */
  async restore(userId: string, id: string): Promise<TrashItem> {
    const item = (await this.list(userId)).find((i) => i.id === id);
    if (!item) throw notFound("TrashItem", id);
    const now = this.now();
    if (item.kind === "BACKUP") {
      await this.db
        .update(backups)
        .set({ deletionRequestedAt: null, deleteAfter: null, deletionRequestedBy: null, updatedAt: now })
        .where(and(eq(backups.id, id), eq(backups.userId, userId), eq(backups.status, "COMPLETED")));
      this.backups.changed({ id, userId });
    } else {
      await this.clearPending(userId);
    }
    return item;
  }

  async clearPending(userId: string): Promise<void> {
    await this.db
      .update(retentionPolicies)
      .set({ pendingKeepWeeklyFull: null, pendingKeepDaily: null, pendingRequestedAt: null, pendingEffectiveAt: null, pendingRequestedBy: null })
      .where(eq(retentionPolicies.userId, userId));
  }

  /** Carries out what is due: trashed backups become DELETED (their chunks then go to the GC), pending policies take effect. Idempotent. */
  async purgeDue(): Promise<TrashPurgeResult> {
    const now = this.now();
    const due = await this.db
      .select()
      .from(backups)
      .where(and(eq(backups.status, "COMPLETED"), isNotNull(backups.deleteAfter), lte(backups.deleteAfter, now)));
    const deleted: string[] = [];
    for (const b of due) {
      const [res] = await this.db
        .update(backups)
        .set({ status: "DELETED", deletedAt: now, updatedAt: now })
        .where(and(eq(backups.id, b.id), eq(backups.status, "COMPLETED"), isNotNull(backups.deleteAfter), lte(backups.deleteAfter, now)));
      if (res.affectedRows === 1) {
        deleted.push(b.id);
        this.backups.changed(b);
      }
    }
    const policies = await this.db.select().from(retentionPolicies).where(and(isNotNull(retentionPolicies.pendingEffectiveAt), lte(retentionPolicies.pendingEffectiveAt, now), isNotNull(retentionPolicies.pendingKeepWeeklyFull), isNotNull(retentionPolicies.pendingKeepDaily)));
    const policiesApplied: string[] = [];
    for (const p of policies) {
      const [res] = await this.db
        .update(retentionPolicies)
        .set({ keepWeeklyFull: p.pendingKeepWeeklyFull!, keepDaily: p.pendingKeepDaily!, updatedAt: now, pendingKeepWeeklyFull: null, pendingKeepDaily: null, pendingRequestedAt: null, pendingEffectiveAt: null, pendingRequestedBy: null })
        .where(and(eq(retentionPolicies.userId, p.userId), lte(retentionPolicies.pendingEffectiveAt, now)));
      if (res.affectedRows === 1) policiesApplied.push(p.userId);
    }
    if (deleted.length || policiesApplied.length) this.opts.logger?.info({ deleted: deleted.length, policies: policiesApplied.length }, "trash purged");
    return { deleted, policiesApplied };
  }
}
