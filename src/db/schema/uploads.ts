import { bigint, index, int, mysqlEnum, mysqlTable, uniqueIndex } from "drizzle-orm/mysql-core";
import { idColumn, ref, timestamps, ts } from "../columns";
import { backups } from "./backups";
import { ownerId } from "./owner";

export const UPLOAD_STATUSES = ["ACTIVE", "COMPLETED", "ABORTED"] as const;

/** The upload session of a backup: what the Backup Manager has sent so far. */
export const uploads = mysqlTable(
  "uploads",
  {
    id: idColumn(),
    /** Owner (same as the backup's). */
    userId: ownerId(),
    /** The backup being uploaded; one upload session per backup. */
    backupId: ref("backup_id")
      .notNull()
      .references(() => backups.id, { onDelete: "cascade" }),
    status: mysqlEnum("status", UPLOAD_STATUSES).notNull(),
    /** Bytes of chunk bodies sent through presigned URLs and confirmed stored. */
    bytesSent: bigint("bytes_sent", { mode: "number", unsigned: true }).notNull().default(0),
    /** Number of chunks sent (not counting chunks that were already stored). */
    chunksSent: int("chunks_sent", { unsigned: true }).notNull().default(0),
    startedAt: ts("started_at").notNull(),
    /** Last sign of the uploader: creation, each chunk-URL request, each completion attempt. Expiry of abandoned uploads is measured from it. */
    lastActivityAt: ts("last_activity_at"),
    completedAt: ts("completed_at"),
    ...timestamps,
  },
  (t) => [index("uploads_user_id_idx").on(t.userId, t.id), uniqueIndex("uploads_backup_uq").on(t.backupId), index("uploads_status_activity_idx").on(t.status, t.lastActivityAt)],
);

export type UploadRow = typeof uploads.$inferSelect;
