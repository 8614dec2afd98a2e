import { bigint, double, index, int, mysqlEnum, mysqlTable, varchar } from "drizzle-orm/mysql-core";
import { idColumn, ref, timestamps, ts } from "../columns";
import { backups } from "./backups";
import { ownerId } from "./owner";

/**
 * ACTIVE: the agent is (or may be) sending. COMPLETED: the backup completed. FAILED: the agent said
 * why it could not go on (failureReason). ABANDONED: it stopped without a word (expiry) or its backup
 * was aborted or deleted while it was active. (ABANDONED was ABORTED before issue 16.)
 */
export const UPLOAD_STATUSES = ["ACTIVE", "COMPLETED", "FAILED", "ABANDONED"] as const;
export type UploadStatusValue = (typeof UPLOAD_STATUSES)[number];

/**
 * One agent's attempt to send a backup, and how far it got. A backup has one per attempt: a run that
 * resumes a backup whose last attempt FAILED is a new upload (the failed one keeps its reason).
 */
export const uploads = mysqlTable(
  "uploads",
  {
    id: idColumn(),
    /** Owner (same as the backup's). */
    userId: ownerId(),
    /** The backup being uploaded; its latest upload is the current attempt. */
    backupId: ref("backup_id")
      .notNull()
      .references(() => backups.id, { onDelete: "cascade" }),
    status: mysqlEnum("status", UPLOAD_STATUSES).notNull(),
    /** Bytes of chunk bodies this upload sent that the store holds (counted when the agent confirms them and the store has them). */
    bytesSent: bigint("bytes_sent", { mode: "number", unsigned: true }).notNull().default(0),
    /** Number of chunks sent and confirmed stored (not counting chunks that were already stored). */
    chunksSent: int("chunks_sent", { unsigned: true }).notNull().default(0),
    /** Chunks of the image (null on rows older than issue 16). */
    chunksTotal: int("chunks_total", { unsigned: true }),
    /** Bytes of the image (null on rows older than issue 16). */
    bytesTotal: bigint("bytes_total", { mode: "number", unsigned: true }),
    /** Bytes of the image the agent has dealt with: sent and stored, found already stored, all zeros or repeated. */
    bytesDone: bigint("bytes_done", { mode: "number", unsigned: true }).notNull().default(0),
    /** bytesDone per second, averaged over the last ~20 s (exponentially weighted). */
    rate: double("rate").notNull().default(0),
    /** When bytesDone and rate were last updated. */
    progressAt: ts("progress_at"),
    /** Why the agent gave up (FAILED), or why the upload was given up on (ABANDONED). */
    failureReason: varchar("failure_reason", { length: 1000 }),
    /** Bumped on every change: subscribers drop older snapshots that arrive late. */
    version: int("version", { unsigned: true }).notNull().default(0),
    startedAt: ts("started_at").notNull(),
    /** Last sign of the uploader: creation, each chunk-URL request, each confirmation, each completion attempt. Expiry of abandoned uploads is measured from it. */
    lastActivityAt: ts("last_activity_at"),
    completedAt: ts("completed_at"),
    ...timestamps,
  },
  (t) => [index("uploads_user_id_idx").on(t.userId, t.id), index("uploads_backup_idx").on(t.backupId, t.id), index("uploads_status_activity_idx").on(t.status, t.lastActivityAt)],
);

export type UploadRow = typeof uploads.$inferSelect;
