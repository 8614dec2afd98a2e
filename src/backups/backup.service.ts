import { and, desc, eq } from "drizzle-orm";
import type { Db } from "../db/client";
import { backups, uploads, type BackupRow } from "../db/schema";
import { badInput } from "../shared/errors";
import { newId } from "../shared/ids";
import { OwnedPages, findOwned, findOwnedOrNull, type OwnedFilter } from "../db/ownership";
import type { Page, PageArgs, PageLimits } from "../shared/pagination";
import type { EventBus } from "../events/event-bus";
import { Topic } from "../events/topics";

import { MAX_CHUNKS, MAX_IMAGE_SIZE, type QuotaService } from "../quotas/quota.service";

export { MAX_CHUNKS, MAX_IMAGE_SIZE };
const MiB = 1024 * 1024;

/** Chunk size for a new lineage: at least 8 MiB and at least imageSize / 10,000, rounded up to a MiB. */
export function chunkSizeFor(imageSize: number): number {
  return Math.max(8 * MiB, Math.ceil(imageSize / MAX_CHUNKS / MiB) * MiB);
}

/** A backup about to be uploaded, as the Backup Manager describes it. */
export interface NewBackup {
  /** The protected machine or disk (e.g. its host name). */
  sourceName: string;
  /** Size of the disk image in bytes. */
  imageSize: number;
  kind: BackupRow["kind"];
  /** Required for INCREMENTAL: a COMPLETED backup of the same source. */
  parentBackupId?: string | null;
}

/** Filters of `list`, all optional, combined with AND. Without `status`, DELETED backups are left out. */
export interface BackupListFilter {
  kind?: BackupRow["kind"];
  status?: BackupRow["status"];
  sourceName?: string;
  /** Created at or after. */
  createdAfter?: Date;
  /** Created before. */
  createdBefore?: Date;
}

export class BackupService {
  private readonly pages: OwnedPages<BackupRow>;
  /** Told about each new upload session (the live upload feeds). */
  onUploadCreated?: (uploadId: string) => void;

  /** Told (and awaited) before a backup of a source is recorded: the source's record is created when new. */
  onSourceSeen?: (userId: string, sourceName: string) => Promise<void>;

  constructor(
    private readonly db: Db,
    private readonly events: EventBus,
    private readonly limits: PageLimits,
    private readonly quotas: QuotaService,
    private readonly now: () => Date = () => new Date(),
  ) {
    this.pages = new OwnedPages<BackupRow>(db, backups, limits);
  }

  get(userId: string, id: string): Promise<BackupRow> {
    return findOwned<BackupRow>(this.db, backups, "Backup", userId, id);
  }

  find(userId: string, id: string): Promise<BackupRow | null> {
    return findOwnedOrNull<BackupRow>(this.db, backups, userId, id);
  }

  list(userId: string, args: PageArgs, filter: BackupListFilter = {}): Promise<Page<BackupRow>> {
    const conds: (OwnedFilter | undefined)[] = [
      filter.kind ? { column: backups.kind, op: "eq", value: filter.kind } : undefined,
      filter.status ? { column: backups.status, op: "eq", value: filter.status } : { column: backups.status, op: "ne", value: "DELETED" },
      filter.sourceName ? { column: backups.sourceName, op: "eq", value: filter.sourceName } : undefined,
      filter.createdAfter ? { column: backups.createdAt, op: "gte", value: filter.createdAfter } : undefined,
      filter.createdBefore ? { column: backups.createdAt, op: "lt", value: filter.createdBefore } : undefined,
    ];
    return this.pages.list(userId, args, conds.filter((c) => c !== undefined));
  }

  /** Latest COMPLETED backup of a source (the default parent of an incremental). */
  async latestCompleted(userId: string, sourceName: string): Promise<BackupRow | null> {
    const [row] = await this.db
      .select()
      .from(backups)
      .where(and(eq(backups.userId, userId), eq(backups.sourceName, sourceName), eq(backups.status, "COMPLETED")))
      .orderBy(desc(backups.id))
      .limit(1);
    return row ?? null;
  }

  /** A new backup (UPLOADING) and its upload session, in one transaction. */
  async create(userId: string, input: NewBackup): Promise<BackupRow> {
    const sourceName = input.sourceName.trim();
    if (!/^[\w.@:-][\w .@:-]{0,127}$/.test(sourceName))
      throw badInput("sourceName must be 1–128 characters: letters, digits, spaces, '.', '_', '-', '@', ':'", { field: "sourceName" });
    if (!Number.isSafeInteger(input.imageSize) || input.imageSize <= 0)
      throw badInput("imageSize must be a whole number of bytes, at least 1", { field: "imageSize" });
    // What the chunk format can describe at all (10,000 chunks, each at most 2047 MiB), then this deployment's limit.
    if (input.imageSize > MAX_IMAGE_SIZE)
      throw badInput(`imageSize must be at most ${MAX_IMAGE_SIZE} bytes (${MAX_CHUNKS} chunks of at most 2047 MiB)`, { field: "imageSize", reason: "IMAGE_TOO_LARGE", max: MAX_IMAGE_SIZE });
    this.quotas.checkImageSize(input.imageSize);

    let chunkSize = chunkSizeFor(input.imageSize);
    let parentId: string | null = null;
    if (input.kind === "INCREMENTAL") {
      if (!input.parentBackupId) throw badInput("An INCREMENTAL backup needs parentBackupId", { field: "parentBackupId" });
      const parent = await this.get(userId, input.parentBackupId);
      if (parent.status !== "COMPLETED") throw badInput(`Parent backup ${parent.id} is ${parent.status}, not COMPLETED`, { field: "parentBackupId" });
      if (parent.sourceName !== sourceName) throw badInput("Parent backup is of another source", { field: "parentBackupId" });
      // The lineage keeps its chunk size, unless the image grew past what that size can compose.
      if (Math.ceil(input.imageSize / parent.chunkSize) <= MAX_CHUNKS) chunkSize = parent.chunkSize;
      parentId = parent.id;
    } else if (input.parentBackupId) {
      throw badInput("A FULL backup has no parent", { field: "parentBackupId" });
    }
    await this.quotas.checkCanStartBackup(userId);
    await this.onSourceSeen?.(userId, sourceName);

    const now = this.now();
    const row: BackupRow = {
      id: newId(),
      userId,
      sourceName,
      kind: input.kind,
      status: "UPLOADING",
      imageSize: input.imageSize,
      chunkSize,
      chunkCount: Math.ceil(input.imageSize / chunkSize),
      uploadedBytes: 0,
      parentId,
      sha256: null,
      manifestKey: null,
      changedChunks: null,
      agentEntropy: null,
      suspect: null,
      suspectVerdict: null,
      suspectResolvedAt: null,
      createdAt: now,
      updatedAt: now,
      completedAt: null,
      deletedAt: null,
      deletionRequestedAt: null,
      deleteAfter: null,
      deletionRequestedBy: null,
    };
    const uploadId = newId();
    await this.db.transaction(async (tx) => {
      await tx.insert(backups).values(row);
      await tx.insert(uploads).values({
        id: uploadId,
        userId,
        backupId: row.id,
        status: "ACTIVE",
        chunksTotal: row.chunkCount,
        bytesTotal: row.imageSize,
        startedAt: now,
        lastActivityAt: now,
        createdAt: now,
        updatedAt: now,
      });
    });
    this.changed(row);
    this.onUploadCreated?.(uploadId);
    return row;
  }

  /** Tells subscribers (this user's only) that a backup changed. */
  changed(row: Pick<BackupRow, "id" | "userId">): void {
    this.events.publish(Topic.BACKUP_CHANGED, row.userId, { backupId: row.id, userId: row.userId });
  }
}
