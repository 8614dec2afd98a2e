import { and, eq, inArray, sql } from "drizzle-orm";
import type { Db } from "../db/client";
import { ACTIVE_RECOVERY_STATES, backups, recoveries, uploadChunks, uploads, type BackupRow } from "../db/schema";
import { badInput, conflict, AppError, ErrorCode } from "../shared/errors";
import { CorruptManifestError, type ChunkStore } from "../storage/chunk-store";
import { sha256Base64FromHex } from "../shared/bytes";
import type { BackupService } from "./backup.service";
import { QUOTA_TX, type QuotaService } from "../quotas/quota.service";
import type { UploadService } from "../uploads/upload.service";
import { EncryptionAlarm } from "./encryption-alarm";

export const MAX_CHUNKS_PER_REQUEST = 1000;
const SHA = /^[0-9a-f]{64}$/;

export interface UploadTicket {
  index: number;
  sha256: string;
  alreadyStored: boolean;
  url: string | null;
  headers: { name: string; value: string }[];
  expiresAt: Date | null;
}

/** One chunk of the image, as the agent hashed it. */
export interface ChunkToUpload {
  /** Position in the image (0-based). */
  index: number;
  /** Hex SHA-256 of the chunk body. */
  sha256: string;
  /** Body size: chunkSize, or less for the last chunk. */
  size: number;
}

/** The chunks the agent is about to send for one UPLOADING backup. */
export interface ChunkUploadRequest {
  backupId: string;
  chunks: ChunkToUpload[];
}

/** The manifest of a finished upload. */
export interface BackupCompletion {
  backupId: string;
  /** Hex SHA-256 of the whole image. */
  sha256: string;
  /** Hex SHA-256 of each chunk in order; null for an all-zero chunk (not uploaded). */
  chunks: (string | null)[];
  /** Mean sampled entropy (bits/byte, src/shared/entropy.ts) of the chunks this run uploaded, as the agent measured it. */
  entropy?: number | null;
}

/** Size of chunk `index` of a backup: chunkSize, or the remainder for the last one. */
export function expectedChunkSize(b: Pick<BackupRow, "imageSize" | "chunkSize" | "chunkCount">, index: number): number {
  return index === b.chunkCount - 1 ? b.imageSize - index * b.chunkSize : b.chunkSize;
}

/**
 * A backup's life after it was created (BackupService.create): the Backup Manager's upload
 * protocol (which chunks to send, as presigned PUTs straight to S3; completion, which verifies
 * every referenced chunk before the manifest is written; abort), deletion, and whether a
 * restore point can still be restored (every chunk of its manifest stored).
 */
export class BackupLifecycleService {
  /** Called after a backup completes (e.g. automatic boot verification). */
  onCompleted?: (row: BackupRow) => void;
  /** Called once when the encryption alarm marks a completed restore point suspect. */
  onSuspect?: (row: BackupRow) => Promise<void> | void;
  readonly alarm: EncryptionAlarm;

  constructor(
    private readonly db: Db,
    private readonly backups: BackupService,
    private readonly store: ChunkStore,
    private readonly quotas: QuotaService,
    private readonly uploads: UploadService,
    private readonly now: () => Date = () => new Date(),
  ) {
    this.alarm = new EncryptionAlarm(db, store);
  }

  async requestChunkUploads(userId: string, input: ChunkUploadRequest): Promise<{ backupId: string; tickets: UploadTicket[]; toUpload: number }> {
    const backup = await this.uploading(userId, input.backupId);
    if (input.chunks.length === 0 || input.chunks.length > MAX_CHUNKS_PER_REQUEST)
      throw badInput(`Send between 1 and ${MAX_CHUNKS_PER_REQUEST} chunks per request`, { field: "chunks" });
    for (const c of input.chunks) this.checkChunk(backup, c);

    const heads = await this.store.headChunks(userId, input.chunks.map((c) => c.sha256));
    // This run's attempt: a run resuming a backup whose last attempt failed is a new upload.
    const upload = await this.uploads.attemptFor(backup);
    const isStored = (c: ChunkToUpload) => heads.get(c.sha256)?.size === c.size;
    const missing: ChunkToUpload[] = [];
    const seen = new Set<string>();
    for (const c of input.chunks) {
      if (isStored(c) || seen.has(c.sha256)) continue;
      seen.add(c.sha256);
      missing.push(c);
    }
    // The storage quota is checked and the chunks recorded in one transaction under the user's lock:
    // over quota, no URL is handed out and nothing is recorded.
    const stored = missing.length && this.quotas.limits.storedBytes !== null ? await this.quotas.storedBytes(userId) : 0;
    const now = this.now();
    await this.db.transaction(async (tx) => {
      if (missing.length) {
        await this.quotas.lockUser(tx, userId);
        await this.quotas.checkNewChunks(tx, userId, stored, missing);
        await tx
          .insert(uploadChunks)
          .values(missing.map((c) => ({ uploadId: upload.id, sha256: c.sha256, size: c.size, chunkIndex: c.index, requestedAt: now })))
          .onDuplicateKeyUpdate({ set: { requestedAt: now } });
      }
      await tx.update(uploads).set({ lastActivityAt: now, updatedAt: now }).where(eq(uploads.id, upload.id));
    }, QUOTA_TX);

    const presigned = new Map(missing.map((c) => [c.sha256, this.store.presignChunkPut(userId, c.sha256, c.size)]));
    const tickets: UploadTicket[] = [];
    for (const c of input.chunks) {
      const p = isStored(c) ? undefined : await presigned.get(c.sha256);
      if (!p) {
        tickets.push({ index: c.index, sha256: c.sha256, alreadyStored: true, url: null, headers: [], expiresAt: null });
        continue;
      }
      tickets.push({
        index: c.index,
        sha256: c.sha256,
        alreadyStored: false,
        url: p.url,
        headers: Object.entries(p.headers).map(([name, value]) => ({ name, value })),
        expiresAt: p.expiresAt,
      });
    }
    return { backupId: backup.id, tickets, toUpload: missing.length };
  }

  /** Verifies every referenced chunk is stored with the right size and checksum, writes the manifest, marks COMPLETED. */
  async complete(userId: string, input: BackupCompletion): Promise<BackupRow> {
    const backup = await this.uploading(userId, input.backupId);
    // A completion attempt is a sign of life, even when it finds chunks missing.
    await this.db
      .update(uploads)
      .set({ lastActivityAt: this.now() })
      .where(and(eq(uploads.backupId, backup.id), eq(uploads.status, "ACTIVE")));
    if (!SHA.test(input.sha256)) throw badInput("sha256 must be 64 lower-case hex characters", { field: "sha256" });
    if (input.chunks.length !== backup.chunkCount)
      throw badInput(`The manifest must list all ${backup.chunkCount} chunks (got ${input.chunks.length})`, { field: "chunks" });
    input.chunks.forEach((sha, index) => {
      if (sha !== null && !SHA.test(sha)) throw badInput(`Chunk ${index}: sha256 must be 64 lower-case hex characters or null`, { field: "chunks", index });
    });

    const shas = input.chunks.filter((s): s is string => s !== null);
    const heads = await this.store.headChunks(userId, shas);
    const missing: number[] = [];
    const corrupt: number[] = [];
    input.chunks.forEach((sha, index) => {
      if (sha === null) return;
      const head = heads.get(sha);
      if (!head) return missing.push(index);
      if (head.size !== expectedChunkSize(backup, index)) return corrupt.push(index);
      if (head.checksumSha256 && !head.checksumSha256.includes("-") && head.checksumSha256 !== sha256Base64FromHex(sha)) corrupt.push(index);
    });
    if (missing.length || corrupt.length) {
      const parts = [missing.length ? `${missing.length} missing` : "", corrupt.length ? `${corrupt.length} of the wrong size or checksum` : ""].filter(Boolean);
      throw new AppError(ErrorCode.BAD_USER_INPUT, `Backup ${backup.id} cannot complete: ${parts.join(" and ")} chunk(s) (first: ${[...missing, ...corrupt].slice(0, 5).join(", ")}). Upload them and complete again; the backup stays UPLOADING.`, {
        reason: "CHUNKS_MISSING",
        missingChunks: missing.slice(0, 100),
        corruptChunks: corrupt.slice(0, 100),
        missingCount: missing.length + corrupt.length,
      });
    }

    const manifestKey = await this.store.putManifest(userId, {
      version: 1,
      backupId: backup.id,
      imageSize: backup.imageSize,
      chunkSize: backup.chunkSize,
      chunks: input.chunks,
      sha256: input.sha256,
    });
    // Object Lock: the chunks this restore point shares with older ones are locked again from now.
    await this.store.extendChunkRetention(userId, shas);
    const upload = await this.uploads.attemptFor(backup);
    const referenced = new Set(shas);
    // What every attempt of this backup sent (the backup's uploadedBytes), and this attempt alone (its upload's).
    const allSent = await this.db
      .select({ uploadId: uploadChunks.uploadId, sha256: uploadChunks.sha256, size: uploadChunks.size })
      .from(uploadChunks)
      .innerJoin(uploads, eq(uploads.id, uploadChunks.uploadId))
      .where(eq(uploads.backupId, backup.id));
    const distinct = new Map(allSent.filter((c) => referenced.has(c.sha256)).map((c) => [c.sha256, c.size]));
    const uploadedBytes = [...distinct.values()].reduce((n, size) => n + size, 0);
    const sent = allSent.filter((c) => c.uploadId === upload.id && referenced.has(c.sha256));
    const bytesSent = sent.reduce((n, c) => n + c.size, 0);
    const agentEntropy = typeof input.entropy === "number" && Number.isFinite(input.entropy) ? Math.min(8, Math.max(0, input.entropy)) : null;
    const alarm = await this.alarm.evaluate(backup, input.chunks, agentEntropy);
    const now = this.now();
    const done = await this.db.transaction(async (tx) => {
      const [res] = await tx
        .update(backups)
        .set({ status: "COMPLETED", sha256: input.sha256, manifestKey, uploadedBytes, changedChunks: alarm.changedChunks, agentEntropy, suspect: alarm.suspect, completedAt: now, updatedAt: now })
        .where(and(eq(backups.id, backup.id), eq(backups.status, "UPLOADING")));
      if (res.affectedRows !== 1) return false;
      await tx
        .update(uploads)
        .set({
          status: "COMPLETED",
          bytesSent,
          chunksSent: sent.length,
          bytesDone: backup.imageSize,
          failureReason: null,
          completedAt: now,
          updatedAt: now,
          version: sql`${uploads.version} + 1`,
        })
        .where(eq(uploads.id, upload.id));
      return true;
    });
    if (!done) throw conflict(`Backup ${backup.id} is no longer UPLOADING`, { field: "backupId" });
    await this.uploads.changed(upload.id);
    const row = await this.backups.get(userId, backup.id);
    this.backups.changed(row);
    this.onCompleted?.(row);
    if (row.suspect) await this.onSuspect?.(row);
    return row;
  }

  /** The suspect restore point an answer is for: NOT_FOUND, then BAD_USER_INPUT (no verdict), then CONFLICT (not suspect). */
  async suspectToResolve(userId: string, id: string, verdict: "SAFE" | "ENCRYPTED" | null | undefined): Promise<BackupRow> {
    const backup = await this.backups.get(userId, id);
    if (verdict !== "SAFE" && verdict !== "ENCRYPTED") throw badInput("verdict must be SAFE or ENCRYPTED", { field: "verdict" });
    if (!backup.suspect) throw conflict(`Backup ${backup.id} is not suspected of encryption`, { field: "id" });
    return backup;
  }

  /**
   * The owner's answer to an encryption alarm. SAFE (the change was legitimate): the restore point
   * counts as clean again and retention's hold on the clean points before it is lifted — a protection
   * removed, so the resolver asks for a fresh authentication. ENCRYPTED: it stays marked and the
   * hold stays (those clean points are what the owner recovers from) until the owner deletes them.
   * Answering again changes the answer.
   */
  async resolveSuspect(userId: string, id: string, verdict: "SAFE" | "ENCRYPTED" | null | undefined): Promise<BackupRow> {
    const backup = await this.suspectToResolve(userId, id, verdict);
    const now = this.now();
    await this.db.update(backups).set({ suspectVerdict: verdict, suspectResolvedAt: now, updatedAt: now }).where(eq(backups.id, backup.id));
    const row = await this.backups.get(userId, id);
    this.backups.changed(row);
    return row;
  }

  async abort(userId: string, id: string): Promise<BackupRow> {
    const backup = await this.uploading(userId, id);
    const now = this.now();
    await this.db.transaction(async (tx) => {
      await tx.update(backups).set({ status: "ABORTED", updatedAt: now }).where(and(eq(backups.id, backup.id), eq(backups.status, "UPLOADING")));
      // A FAILED upload keeps its reason; an active one is given up on.
      await tx
        .update(uploads)
        .set({ status: "ABANDONED", failureReason: "The backup was aborted before it finished", completedAt: now, updatedAt: now, version: sql`${uploads.version} + 1` })
        .where(and(eq(uploads.backupId, backup.id), eq(uploads.status, "ACTIVE")));
    });
    await this.uploads.changedForBackup(backup);
    const row = await this.backups.get(userId, id);
    this.backups.changed(row);
    return row;
  }

  /** Soft delete: the row stays (DELETED); the garbage collector reclaims chunks no live manifest uses. */
  async delete(userId: string, id: string): Promise<BackupRow> {
    const backup = await this.backups.get(userId, id);
    if (backup.status === "DELETED") return backup;
    const [active] = await this.db
      .select({ id: recoveries.id })
      .from(recoveries)
      .where(and(eq(recoveries.backupId, backup.id), inArray(recoveries.state, [...ACTIVE_RECOVERY_STATES])))
      .limit(1);
    if (active) throw conflict(`Backup ${backup.id} is being recovered (recovery ${active.id}); cancel it first`, { recoveryId: active.id });
    const now = this.now();
    await this.db.transaction(async (tx) => {
      await tx.update(backups).set({ status: "DELETED", deletedAt: now, updatedAt: now }).where(eq(backups.id, backup.id));
      await tx
        .update(uploads)
        .set({ status: "ABANDONED", failureReason: "The backup was deleted before it finished", completedAt: now, updatedAt: now, version: sql`${uploads.version} + 1` })
        .where(and(eq(uploads.backupId, backup.id), eq(uploads.status, "ACTIVE")));
    });
    await this.uploads.changedForBackup(backup);
    const row = await this.backups.get(userId, id);
    this.backups.changed(row);
    return row;
  }

  /** COMPLETED, and every chunk its manifest references is in the store with the right size. */
  async restorable(userId: string, backup: BackupRow): Promise<boolean> {
    if (backup.status !== "COMPLETED") return false;
    // A missing or corrupt manifest means "not restorable"; a store that cannot be asked is not an
    // answer (its error, UNAVAILABLE when the store is down, goes to the client).
    const manifest = await this.store.getManifest(userId, backup.id).catch((err: unknown) => {
      if (err instanceof CorruptManifestError) return null;
      throw err;
    });
    if (!manifest) return false;
    const shas = manifest.chunks.filter((s): s is string => s !== null);
    const heads = await this.store.headChunks(userId, shas);
    return manifest.chunks.every((sha, i) => sha === null || heads.get(sha)?.size === expectedChunkSize(backup, i));
  }

  private async uploading(userId: string, id: string): Promise<BackupRow> {
    const backup = await this.backups.get(userId, id);
    if (backup.status !== "UPLOADING") throw conflict(`Backup ${backup.id} is ${backup.status}, not UPLOADING`, { field: "backupId", status: backup.status });
    return backup;
  }

  private checkChunk(backup: BackupRow, c: ChunkToUpload): void {
    if (!Number.isInteger(c.index) || c.index < 0 || c.index >= backup.chunkCount)
      throw badInput(`Chunk index ${c.index} is outside 0..${backup.chunkCount - 1}`, { field: "chunks", index: c.index });
    if (!SHA.test(c.sha256)) throw badInput(`Chunk ${c.index}: sha256 must be 64 lower-case hex characters`, { field: "chunks", index: c.index });
    const expected = expectedChunkSize(backup, c.index);
    if (c.size !== expected) throw badInput(`Chunk ${c.index} must be ${expected} bytes, not ${c.size}`, { field: "chunks", index: c.index });
  }
}
