import { and, desc, eq, inArray, isNotNull, isNull, lt, sql } from "drizzle-orm";
import type { Db } from "../db/client";
import { backups, retentionPolicies, uploadChunks, uploads, type BackupRow, type RetentionPolicyRow } from "../db/schema";
import { badInput } from "../shared/errors";
import type { ChunkStore } from "../storage/chunk-store";
import type { Logger } from "../logger";
import type { BackupService } from "./backup.service";
import type { GcResult, MaintenanceScope, RetentionResult } from "../../workflows/contracts";
import { ofUsers } from "./maintenance-scope";
import type { UploadService } from "../uploads/upload.service";
import { DEFAULT_ENCRYPTION_ALARM } from "./encryption-alarm";
import { backupsInUse } from "./backups-in-use";

const DAY = 86_400_000;

/** Rolls back an expiry whose upload showed activity between the scan and the update. */
class UploadRevived extends Error {}

/** The store disagrees with the database; collecting would risk live data, so GC stops for that user. */
export class GcIntegrityError extends Error {
  override name = "GcIntegrityError";
}

/**
 * Retention (soft-deletes restore points the policy no longer keeps) and chunk garbage collection
 * (deletes only chunks that no live manifest and no active upload references). Every manifest is a
 * complete list of its chunks, so deleting any backup — a FULL parent included — never breaks another.
 */
export class BackupMaintenanceService {
  constructor(
    private readonly db: Db,
    private readonly backups: BackupService,
    private readonly store: ChunkStore,
    private readonly opts: { gcGraceMs: number; uploadExpiryMs: number; logger?: Logger; uploads?: UploadService; keepClean?: number },
    private readonly now: () => Date = () => new Date(),
  ) {}

  /** Validates a policy (BAD_USER_INPUT); whether it shortens the current one decides if it goes through the trash. */
  static validatePolicy(input: { keepWeeklyFull: number; keepDaily: number }): void {
    if (!Number.isInteger(input.keepWeeklyFull) || input.keepWeeklyFull < 1 || input.keepWeeklyFull > 520)
      throw badInput("keepWeeklyFull must be between 1 and 520", { field: "keepWeeklyFull" });
    if (!Number.isInteger(input.keepDaily) || input.keepDaily < 0 || input.keepDaily > 3650) throw badInput("keepDaily must be between 0 and 3650", { field: "keepDaily" });
  }

  /** Sets the policy at once (a lengthening: callers send shortenings through the trash) and drops any pending shortening. */
  async setRetentionPolicy(userId: string, input: { keepWeeklyFull: number; keepDaily: number }): Promise<RetentionPolicyRow> {
    BackupMaintenanceService.validatePolicy(input);
    const row = { userId, keepWeeklyFull: input.keepWeeklyFull, keepDaily: input.keepDaily, updatedAt: this.now() };
    const cleared = { pendingKeepWeeklyFull: null, pendingKeepDaily: null, pendingRequestedAt: null, pendingEffectiveAt: null, pendingRequestedBy: null };
    await this.db
      .insert(retentionPolicies)
      .values({ ...row, ...cleared })
      .onDuplicateKeyUpdate({ set: { keepWeeklyFull: row.keepWeeklyFull, keepDaily: row.keepDaily, updatedAt: row.updatedAt, ...cleared } });
    return { ...row, ...cleared };
  }

  async retentionPolicy(userId: string): Promise<RetentionPolicyRow | null> {
    const [row] = await this.db.select().from(retentionPolicies).where(eq(retentionPolicies.userId, userId)).limit(1);
    return row ?? null;
  }

  /** Which COMPLETED backups of one user the policy no longer keeps (pure; newest first input). */
  static expired(completed: BackupRow[], policy: Pick<RetentionPolicyRow, "keepWeeklyFull" | "keepDaily">, now: Date, keepClean = DEFAULT_ENCRYPTION_ALARM.keepClean): BackupRow[] {
    const bySource = new Map<string, BackupRow[]>();
    for (const b of completed) bySource.set(b.sourceName, [...(bySource.get(b.sourceName) ?? []), b]);
    const out: BackupRow[] = [];
    for (const rows of bySource.values()) {
      rows.sort((a, b) => (a.id < b.id ? 1 : -1));
      const keep = new Set<string>([rows[0]!.id]); // the latest restore point always stays
      rows.filter((r) => r.kind === "FULL").slice(0, policy.keepWeeklyFull).forEach((r) => keep.add(r.id));
      const cutoff = now.getTime() - policy.keepDaily * DAY;
      rows.filter((r) => (r.completedAt ?? r.createdAt).getTime() >= cutoff).forEach((r) => keep.add(r.id));
      // The encryption alarm's hold, anchored on each suspect point not answered SAFE (unanswered, or
      // ENCRYPTED): that point and the keepClean newest clean restore points before it stay, whatever
      // the policy. Counted before it: the points after an encryption back up the encrypted disk
      // however little they change. Only SAFE lifts it; else a held point goes only when its owner
      // deletes it (through the trash) — deleting the anchor ends the hold on the points before it.
      rows.forEach((r, i) => {
        if (!r.suspect || r.suspectVerdict === "SAFE") return;
        keep.add(r.id);
        rows
          .slice(i + 1)
          .filter((c) => !c.suspect || c.suspectVerdict === "SAFE")
          .slice(0, keepClean)
          .forEach((c) => keep.add(c.id));
      });
      out.push(...rows.filter((r) => !keep.has(r.id)));
    }
    return out;
  }

  /** Applies every user's policy (or these users'); returns the ids it soft-deleted. Idempotent. */
  async applyRetention(scope: MaintenanceScope = {}): Promise<RetentionResult> {
    const policies = await this.db.select().from(retentionPolicies).where(ofUsers(retentionPolicies.userId, scope));
    const deleted: string[] = [];
    // What a recovery or verification is reading stays until a run after it ends.
    const inUse = await backupsInUse(this.db);
    const waiting: string[] = [];
    for (const policy of policies) {
      const completed = await this.db
        .select()
        .from(backups)
        // A backup in the trash is the trash's to delete (at its deleteAfter), never retention's.
        .where(and(eq(backups.userId, policy.userId), eq(backups.status, "COMPLETED"), isNull(backups.deleteAfter)))
        .orderBy(desc(backups.id));
      for (const b of BackupMaintenanceService.expired(completed, policy, this.now(), this.opts.keepClean)) {
        if (inUse.has(b.id)) {
          waiting.push(b.id);
          continue;
        }
        const now = this.now();
        const [res] = await this.db
          .update(backups)
          .set({ status: "DELETED", deletedAt: now, updatedAt: now })
          .where(and(eq(backups.id, b.id), eq(backups.status, "COMPLETED"), isNull(backups.deleteAfter)));
        if (res.affectedRows === 1) {
          deleted.push(b.id);
          this.backups.changed(b);
        }
      }
    }
    this.opts.logger?.info({ users: policies.length, deleted: deleted.length, waiting }, "retention applied");
    return { users: policies.length, deleted };
  }

  /**
   * Aborts UPLOADING backups whose upload showed no activity (creation, chunk-URL request,
   * confirmation, completion attempt, failure report) for UPLOAD_EXPIRY. An ACTIVE upload (the agent
   * stopped without a word) becomes ABANDONED with the reason, and the user is told (UPLOAD_ABANDONED,
   * once); a FAILED one keeps its reason (the user was told when it failed). Their chunks are no
   * longer pinned and the garbage collector reclaims them. Everyone's, or these users' only. Idempotent.
   */
  async expireUploads(scope: MaintenanceScope = {}): Promise<string[]> {
    const cutoff = new Date(this.now().getTime() - this.opts.uploadExpiryMs);
    const lastSign = sql`COALESCE(${uploads.lastActivityAt}, ${uploads.updatedAt})`;
    const stale = await this.db
      .select({ backupId: uploads.backupId, userId: uploads.userId, uploadId: uploads.id, status: uploads.status, lastActivityAt: uploads.lastActivityAt, updatedAt: uploads.updatedAt })
      .from(uploads)
      .innerJoin(backups, eq(backups.id, uploads.backupId))
      .where(
        and(
          inArray(uploads.status, ["ACTIVE", "FAILED"]),
          eq(backups.status, "UPLOADING"),
          lt(lastSign, cutoff),
          ofUsers(uploads.userId, scope),
          // Only a backup's latest attempt speaks for it.
          sql`NOT EXISTS (SELECT 1 FROM ${uploads} AS later WHERE later.backup_id = ${uploads.backupId} AND later.id > ${uploads.id})`,
        ),
      );
    const expired: string[] = [];
    const abandoned: string[] = [];
    for (const s of stale) {
      const now = this.now();
      const since = (s.lastActivityAt ?? s.updatedAt).toISOString();
      const done = await this.db.transaction(async (tx) => {
        const [res] = await tx
          .update(backups)
          .set({ status: "ABORTED", updatedAt: now })
          .where(and(eq(backups.id, s.backupId), eq(backups.status, "UPLOADING")));
        if (res.affectedRows !== 1) return false;
        if (s.status === "FAILED") return true;
        // Re-checked under the update: an upload that showed activity meanwhile is left alone.
        const [up] = await tx
          .update(uploads)
          .set({ status: "ABANDONED", failureReason: `No word from the agent since ${since}; the unfinished backup was discarded`, completedAt: now, updatedAt: now, version: sql`${uploads.version} + 1` })
          .where(and(eq(uploads.backupId, s.backupId), eq(uploads.status, "ACTIVE"), lt(lastSign, cutoff)));
        if (up.affectedRows !== 1) throw new UploadRevived();
        return true;
      }).catch((err: unknown) => {
        if (err instanceof UploadRevived) return false;
        throw err;
      });
      if (done) {
        expired.push(s.backupId);
        if (s.status === "ACTIVE") abandoned.push(s.uploadId);
        this.backups.changed({ id: s.backupId, userId: s.userId });
      }
    }
    // Told after the rows changed; a notification raised twice (a retried activity) is recorded once.
    for (const id of abandoned) await this.opts.uploads?.abandoned(id);
    if (expired.length) this.opts.logger?.info({ expired, abandoned: abandoned.length }, "abandoned uploads expired");
    return expired;
  }

  /** Users that have any backup (and so may have chunks). */
  async usersWithBackups(): Promise<string[]> {
    const rows = await this.db.selectDistinct({ userId: backups.userId }).from(backups);
    return rows.map((r) => r.userId);
  }

  /**
   * Deletes a user's chunks that no live manifest references. Live: COMPLETED backups (those in the
   * trash included: they stay COMPLETED until their deleteAfter passes), the parents
   * of UPLOADING backups, and every chunk an upload of an UPLOADING backup was handed a URL for. Chunks younger than
   * the grace period are left alone (an upload may have a URL it has not reported yet).
   */
  async collectGarbage(userId: string): Promise<GcResult> {
    const rows = await this.db.select().from(backups).where(eq(backups.userId, userId));
    const uploadingParents = new Set(rows.filter((r) => r.status === "UPLOADING" && r.parentId).map((r) => r.parentId!));
    const live = rows.filter((r) => r.status === "COMPLETED" || uploadingParents.has(r.id));
    const referenced = new Set<string>();
    for (const b of live) {
      const manifest = await this.store.getManifest(userId, b.id);
      if (!manifest) {
        if (b.status === "COMPLETED") throw new GcIntegrityError(`GC aborted for user ${userId}: completed backup ${b.id} has no manifest`);
        continue;
      }
      for (const sha of manifest.chunks) if (sha) referenced.add(sha);
    }
    // Every attempt of a backup still UPLOADING (a FAILED one's chunks too: the next run resumes from them).
    const activeUploads = await this.db
      .select({ sha256: uploadChunks.sha256 })
      .from(uploadChunks)
      .innerJoin(uploads, eq(uploads.id, uploadChunks.uploadId))
      .innerJoin(backups, eq(backups.id, uploads.backupId))
      .where(and(eq(uploads.userId, userId), eq(backups.status, "UPLOADING")));
    for (const c of activeUploads) referenced.add(c.sha256);

    const graceCutoff = this.now().getTime() - this.opts.gcGraceMs;
    let scanned = 0;
    let freedBytes = 0;
    const doomed: string[] = [];
    const doomedSize = new Map<string, number>();
    const listed = new Set<string>();
    for await (const chunk of this.store.listChunks(userId)) {
      scanned++;
      if (referenced.has(chunk.sha256)) {
        listed.add(chunk.sha256);
        continue;
      }
      if (chunk.lastModified && chunk.lastModified.getTime() > graceCutoff) continue;
      doomed.push(chunk.sha256);
      doomedSize.set(chunk.sha256, chunk.size);
      freedBytes += chunk.size;
    }
    // With Object Lock, a referenced chunk someone hid behind a delete marker is brought back from its
    // locked version (no-op without a lock).
    const restored = await this.store.restoreChunks(userId, [...referenced].filter((sha) => !listed.has(sha)));
    if (restored.length) this.opts.logger?.warn({ userId, restored: restored.length, first: restored.slice(0, 5) }, "referenced chunks were hidden (deleted without their locked version); restored");

    // With Object Lock, a chunk whose retention has not passed is skipped (S3 refuses the delete), not
    // an error: it is counted as locked and goes in a later run, once its retain-until date is behind.
    const deletion = doomed.length ? await this.store.deleteUnlockedChunks(userId, doomed) : { deleted: 0, locked: [] };
    const deletedChunks = deletion.deleted;
    for (const sha of deletion.locked) freedBytes -= doomedSize.get(sha) ?? 0;

    // Manifests of deleted and aborted backups are no longer needed either (a locked one stays, its key kept, until a later run).
    const candidates = rows.filter((r) => (r.status === "DELETED" || r.status === "ABORTED") && r.manifestKey && !uploadingParents.has(r.id));
    const gone: typeof candidates = [];
    for (const b of candidates) if (await this.store.deleteUnlockedManifest(userId, b.id)) gone.push(b);
    if (gone.length) {
      await this.db
        .update(backups)
        .set({ manifestKey: null, updatedAt: this.now() })
        .where(and(inArray(backups.id, gone.map((b) => b.id)), isNotNull(backups.manifestKey)));
    }
    const result = {
      userId,
      scanned,
      referenced: referenced.size,
      deletedChunks,
      freedBytes,
      deletedManifests: gone.length,
      lockedChunks: deletion.locked.length,
      lockedManifests: candidates.length - gone.length,
      restoredChunks: restored.length,
    };
    this.opts.logger?.info(result, "chunk garbage collected");
    return result;
  }
}

