import { and, asc, count, eq, inArray, isNotNull, isNull, lte, ne, sql } from "drizzle-orm";
import type { Db } from "../db/client";
import {
  agentKeys,
  backups,
  retentionPolicies,
  sources,
  trashRequests,
  type BackupRow,
  type RetentionPolicyRow,
  type TrashRequestRow,
} from "../db/schema";
import type { NotificationService } from "../alerts/notification.service";
import type { Logger } from "../logger";
import { notFound } from "../shared/errors";
import { newId } from "../shared/ids";
import type { BackupService } from "./backup.service";
import type { BackupLifecycleService } from "./backup-lifecycle.service";
import { backupsInUse } from "./backups-in-use";
import { ofUsers } from "./maintenance-scope";
import type { MaintenanceScope, TrashPurgeResult } from "../../workflows/contracts";

export const DEFAULT_DELETION_DELAY_MS = 72 * 3_600_000;
/** What "no policy" means: keep everything; the first policy is a shortening of this. */
export const KEEP_EVERYTHING = { keepWeeklyFull: 520, keepDaily: 3650 } as const;

export type TrashItemKind = "BACKUP" | "RETENTION_POLICY" | "SOURCE" | "AGENT_KEYS";
export interface TrashItem {
  id: string;
  kind: TrashItemKind;
  what: string;
  requestedAt: Date;
  requestedBy: string | null;
  effectiveAt: Date;
}

const policyItemId = (userId: string) => `RetentionPolicy:${userId}`;
const sourceItemId = (name: string) => `Source:${name}`;
const agentKeysItemId = (userId: string) => `AgentKeys:${userId}`;
const requestItemId = (r: Pick<TrashRequestRow, "kind" | "subject" | "userId">) => (r.kind === "SOURCE" ? sourceItemId(r.subject) : agentKeysItemId(r.userId));

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
    private readonly opts: {
      deletionDelayMs: number;
      logger?: Logger;
      /** Told which agent keys the purge revoked, so their open WebSocket connections are closed at once (as revokeAgentKey does). */
      onAgentKeysRevoked?: (userId: string, keyIds: string[]) => void;
    },
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

  /** The source's name as stored (its row, or restore points that are not deleted); NOT_FOUND when the user has no such source. */
  async findSource(userId: string, name: string): Promise<string> {
    const n = name.trim();
    const [row] = await this.db.select({ name: sources.name }).from(sources).where(and(eq(sources.userId, userId), eq(sources.name, n))).limit(1);
    if (row) return row.name;
    const [b] = await this.db
      .select({ name: backups.sourceName })
      .from(backups)
      .where(and(eq(backups.userId, userId), eq(backups.sourceName, n), ne(backups.status, "DELETED")))
      .limit(1);
    if (b) return b.name;
    throw notFound("Source", n);
  }

  /**
   * A whole source goes to the trash as one item: when it is carried out, every restore point the
   * source then has is deleted, its agent keys are revoked and its schedule removed. Meanwhile
   * nothing changes (restore points restorable, chunks live, agent keys working, backups still
   * taken) except that the missed-backup detector no longer reports the source. Asking twice
   * answers the pending item (one e-mail).
   */
  async deleteSource(userId: string, name: string, requestedBy: string): Promise<TrashItem> {
    const sourceName = await this.findSource(userId, name);
    const { row, created } = await this.request(userId, "SOURCE", sourceName, requestedBy);
    const item = await this.describe(row);
    if (created) {
      const { points, keys } = await this.sourceContents(userId, sourceName);
      await this.notifications.raise(userId, {
        kind: "DELETION_REQUESTED",
        title: `Source ${sourceName} will be deleted on ${row.effectiveAt.toISOString()}`,
        body: `${row.requestedBy ?? "Someone"} asked at ${row.requestedAt.toISOString()} to delete the source ${sourceName}: its ${points} restore point(s), its ${keys} active agent key(s) and its schedule.\nNothing is deleted before ${row.effectiveAt.toISOString()}: until then every restore point stays restorable and its agent keeps backing up. If you did not ask for this, restore it now (restoreFromTrash ${item.id}, or the Trash page) and change your password.`,
        subjectType: "SOURCE",
        subjectId: sourceName,
        dedupeKey: `deletion-requested:source:${row.id}`,
      });
    }
    return item;
  }

  /**
   * Revoking every agent key waits in the trash too (a thief who revokes them all stops the backups
   * without a trace); revoking one key (revokeAgentKey) stays immediate, so a stolen key is stopped
   * at once. When carried out, every key still active then is revoked.
   */
  async revokeAllAgentKeys(userId: string, requestedBy: string): Promise<TrashItem> {
    const { row, created } = await this.request(userId, "AGENT_KEYS", "", requestedBy);
    const item = await this.describe(row);
    if (created) {
      const [active] = await this.db.select({ n: count() }).from(agentKeys).where(and(eq(agentKeys.userId, userId), isNull(agentKeys.revokedAt)));
      await this.notifications.raise(userId, {
        kind: "DELETION_REQUESTED",
        title: `All your agent keys will be revoked on ${row.effectiveAt.toISOString()}`,
        body: `${row.requestedBy ?? "Someone"} asked at ${row.requestedAt.toISOString()} to revoke all your agent keys (${active?.n ?? 0} active now); your agents would then stop backing up.\nNothing changes before ${row.effectiveAt.toISOString()}. If you did not ask for this, cancel it now (restoreFromTrash ${item.id}, or the Trash page) and change your password. To stop one stolen key at once, revoke that key (revokeAgentKey).`,
        subjectType: "AGENT_KEYS",
        subjectId: userId,
        dedupeKey: `deletion-requested:agent-keys:${row.id}`,
      });
    }
    return item;
  }

  /** Records a pending request, or finds the one already pending (created: false). */
  private async request(userId: string, kind: TrashRequestRow["kind"], subject: string, requestedBy: string): Promise<{ row: TrashRequestRow; created: boolean }> {
    const now = this.now();
    const id = newId();
    await this.db
      .insert(trashRequests)
      .values({ id, userId, kind, subject, requestedAt: now, effectiveAt: new Date(now.getTime() + this.opts.deletionDelayMs), requestedBy: requestedBy.slice(0, 255) })
      .onDuplicateKeyUpdate({ set: { id: sql`id` } });
    const [row] = await this.db
      .select()
      .from(trashRequests)
      .where(and(eq(trashRequests.userId, userId), eq(trashRequests.kind, kind), eq(trashRequests.subject, subject)))
      .limit(1);
    return { row: row!, created: row!.id === id };
  }

  private async sourceContents(userId: string, sourceName: string): Promise<{ points: number; keys: number }> {
    const [points] = await this.db
      .select({ n: count() })
      .from(backups)
      .where(and(eq(backups.userId, userId), eq(backups.sourceName, sourceName), eq(backups.status, "COMPLETED")));
    const [keys] = await this.db
      .select({ n: count() })
      .from(agentKeys)
      .where(and(eq(agentKeys.userId, userId), eq(agentKeys.sourceName, sourceName), isNull(agentKeys.revokedAt)));
    return { points: points?.n ?? 0, keys: keys?.n ?? 0 };
  }

  private async describe(r: TrashRequestRow): Promise<TrashItem> {
    let what: string;
    if (r.kind === "SOURCE") {
      const { points, keys } = await this.sourceContents(r.userId, r.subject);
      what = `Source ${r.subject}: its ${points} restore point(s), ${keys} active agent key(s) and schedule`;
    } else {
      const [active] = await this.db.select({ n: count() }).from(agentKeys).where(and(eq(agentKeys.userId, r.userId), isNull(agentKeys.revokedAt)));
      what = `Revocation of all your agent keys (${active?.n ?? 0} active now)`;
    }
    return { id: requestItemId(r), kind: r.kind, what, requestedAt: r.requestedAt, requestedBy: r.requestedBy, effectiveAt: r.effectiveAt };
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
    const requests = await this.db.select().from(trashRequests).where(eq(trashRequests.userId, userId));
    for (const r of requests) items.push(await this.describe(r));
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
    } else if (item.kind === "RETENTION_POLICY") {
      await this.clearPending(userId);
    } else {
      // Deleting the request is the undo; 0 rows: maintenance carried it out a moment ago.
      const subject = item.kind === "SOURCE" ? id.slice("Source:".length) : "";
      const [res] = await this.db.delete(trashRequests).where(and(eq(trashRequests.userId, userId), eq(trashRequests.kind, item.kind), eq(trashRequests.subject, subject)));
      if (res.affectedRows !== 1) throw notFound("TrashItem", id);
    }
    return item;
  }

  async clearPending(userId: string): Promise<void> {
    await this.db
      .update(retentionPolicies)
      .set({ pendingKeepWeeklyFull: null, pendingKeepDaily: null, pendingRequestedAt: null, pendingEffectiveAt: null, pendingRequestedBy: null })
      .where(eq(retentionPolicies.userId, userId));
  }

  /**
   * Carries out what is due: trashed backups become DELETED (their chunks then go to the GC),
   * pending policies take effect, trashed sources are deleted (restore points DELETED, unfinished
   * backups aborted, agent keys revoked, schedule removed) and pending "revoke all agent keys" are
   * carried out. A restore point an active recovery or verification reads (itself or as an ancestor
   * of the one it reads) is left, with its whole source, for a later run. Idempotent.
   */
  async purgeDue(scope: MaintenanceScope = {}): Promise<TrashPurgeResult> {
    const now = this.now();
    const held = await backupsInUse(this.db);
    const waiting = new Set<string>();
    const due = await this.db
      .select()
      .from(backups)
      .where(and(eq(backups.status, "COMPLETED"), isNotNull(backups.deleteAfter), lte(backups.deleteAfter, now), ofUsers(backups.userId, scope)));
    const deleted: string[] = [];
    for (const b of due) {
      if (held.has(b.id)) {
        waiting.add(b.id);
        continue;
      }
      const [res] = await this.db
        .update(backups)
        .set({ status: "DELETED", deletedAt: now, updatedAt: now })
        .where(and(eq(backups.id, b.id), eq(backups.status, "COMPLETED"), isNotNull(backups.deleteAfter), lte(backups.deleteAfter, now)));
      if (res.affectedRows === 1) {
        deleted.push(b.id);
        this.backups.changed(b);
      }
    }
    const sourcesDeleted: TrashPurgeResult["sourcesDeleted"] = [];
    const agentKeysRevoked: TrashPurgeResult["agentKeysRevoked"] = [];
    const requests = await this.db.select().from(trashRequests).where(and(lte(trashRequests.effectiveAt, now), ofUsers(trashRequests.userId, scope)));
    for (const r of requests) {
      if (r.kind === "SOURCE") {
        const done = await this.purgeSource(r, held, now);
        if (done && "waiting" in done) {
          done.waiting.forEach((id) => waiting.add(id));
          continue;
        }
        if (done) {
          sourcesDeleted.push({ userId: r.userId, sourceName: r.subject, backups: done.deleted, agentKeys: done.keyIds.length });
          if (done.keyIds.length) this.opts.onAgentKeysRevoked?.(r.userId, done.keyIds);
          deleted.push(...done.deleted);
          for (const id of done.deleted) this.backups.changed({ id, userId: r.userId });
          // An unfinished backup of the source is abandoned (its agent's key is revoked: it cannot finish it).
          // Not fatal to the purge (the upload expiry abandons it later), but never silent.
          for (const id of done.uploading)
            await this.lifecycle.abort(r.userId, id).catch((err: unknown) => this.opts.logger?.warn({ err, backupId: id, sourceName: r.subject }, "could not abort an unfinished backup of a purged source"));
        }
      } else {
        const keys = await this.db.transaction(async (tx) => {
          const [claimed] = await tx.delete(trashRequests).where(and(eq(trashRequests.id, r.id), lte(trashRequests.effectiveAt, now)));
          if (claimed.affectedRows !== 1) return null; // restored (cancelled) meanwhile
          const active = await tx.select({ id: agentKeys.id }).from(agentKeys).where(and(eq(agentKeys.userId, r.userId), isNull(agentKeys.revokedAt))).for("update");
          if (active.length) await tx.update(agentKeys).set({ revokedAt: now }).where(and(eq(agentKeys.userId, r.userId), inArray(agentKeys.id, active.map((k) => k.id)), isNull(agentKeys.revokedAt)));
          return active.map((k) => k.id);
        });
        if (keys !== null) {
          agentKeysRevoked.push({ userId: r.userId, keys: keys.length });
          if (keys.length) this.opts.onAgentKeysRevoked?.(r.userId, keys);
        }
      }
    }
    const policies = await this.db
      .select()
      .from(retentionPolicies)
      .where(and(isNotNull(retentionPolicies.pendingEffectiveAt), lte(retentionPolicies.pendingEffectiveAt, now), isNotNull(retentionPolicies.pendingKeepWeeklyFull), isNotNull(retentionPolicies.pendingKeepDaily), ofUsers(retentionPolicies.userId, scope)));
    const policiesApplied: string[] = [];
    for (const p of policies) {
      const [res] = await this.db
        .update(retentionPolicies)
        .set({ keepWeeklyFull: p.pendingKeepWeeklyFull!, keepDaily: p.pendingKeepDaily!, updatedAt: now, pendingKeepWeeklyFull: null, pendingKeepDaily: null, pendingRequestedAt: null, pendingEffectiveAt: null, pendingRequestedBy: null })
        .where(and(eq(retentionPolicies.userId, p.userId), lte(retentionPolicies.pendingEffectiveAt, now)));
      if (res.affectedRows === 1) policiesApplied.push(p.userId);
    }
    if (deleted.length || policiesApplied.length || sourcesDeleted.length || agentKeysRevoked.length || waiting.size)
      this.opts.logger?.info({ deleted: deleted.length, policies: policiesApplied.length, sources: sourcesDeleted.length, agentKeys: agentKeysRevoked.length, waiting: [...waiting] }, "trash purged");
    return { deleted, policiesApplied, sourcesDeleted, agentKeysRevoked, waiting: [...waiting] };
  }

  /**
   * One due source, in one transaction: claims the request (gone: restored meanwhile, null), revokes
   * the source's agent keys, marks its restore points DELETED and removes its schedule. Nothing
   * (`waiting`: those restore points) while an active recovery or verification reads one of them.
   */
  private async purgeSource(r: TrashRequestRow, held: Set<string>, now: Date): Promise<{ waiting: string[] } | null | { deleted: string[]; uploading: string[]; keyIds: string[] }> {
    const of = and(eq(backups.userId, r.userId), eq(backups.sourceName, r.subject));
    const live = await this.db
      .select({ id: backups.id, status: backups.status })
      .from(backups)
      .where(and(of, inArray(backups.status, ["COMPLETED", "UPLOADING"])));
    const reading = live.filter((b) => held.has(b.id)).map((b) => b.id);
    if (reading.length) return { waiting: reading };
    return this.db.transaction(async (tx) => {
      const [claimed] = await tx.delete(trashRequests).where(and(eq(trashRequests.id, r.id), lte(trashRequests.effectiveAt, now)));
      if (claimed.affectedRows !== 1) return null;
      const keyIds = (
        await tx
          .select({ id: agentKeys.id })
          .from(agentKeys)
          .where(and(eq(agentKeys.userId, r.userId), eq(agentKeys.sourceName, r.subject), isNull(agentKeys.revokedAt)))
          .for("update")
      ).map((k) => k.id);
      if (keyIds.length) await tx.update(agentKeys).set({ revokedAt: now }).where(and(eq(agentKeys.userId, r.userId), inArray(agentKeys.id, keyIds), isNull(agentKeys.revokedAt)));
      const completed = live.filter((b) => b.status === "COMPLETED").map((b) => b.id);
      const deleted: string[] = [];
      for (const id of completed) {
        const [res] = await tx.update(backups).set({ status: "DELETED", deletedAt: now, updatedAt: now }).where(and(eq(backups.id, id), eq(backups.status, "COMPLETED")));
        if (res.affectedRows === 1) deleted.push(id);
      }
      await tx.delete(sources).where(and(eq(sources.userId, r.userId), eq(sources.name, r.subject)));
      return { deleted, uploading: live.filter((b) => b.status === "UPLOADING").map((b) => b.id), keyIds };
    });
  }
}
