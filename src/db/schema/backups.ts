import { bigint, char, double, index, int, json, mysqlEnum, mysqlTable, varchar, type AnyMySqlColumn } from "drizzle-orm/mysql-core";
import { idColumn, ref, timestamps, ts } from "../columns";
import { ownerId } from "./owner";

export const BACKUP_KINDS = ["FULL", "INCREMENTAL"] as const;
export const BACKUP_STATUSES = ["UPLOADING", "COMPLETED", "ABORTED", "DELETED"] as const;
/** The owner's answer to an encryption alarm: the change was legitimate, or the disk was encrypted. */
export const SUSPECT_VERDICTS = ["SAFE", "ENCRYPTED"] as const;

/** Why a restore point is suspected of holding a ransomware-encrypted disk (the encryption alarm). */
export interface BackupSuspicion {
  reason: string;
  /** Chunks that differ from the parent, as a percentage of the image's chunks. */
  changedPercent: number;
  /** The source's usual change rate: median of its recent incrementals (null: no history yet). */
  usualPercent: number | null;
  /** Mean bits/byte of the new chunks the server read back and measured itself. */
  entropy: number;
  /** What the agent reported for its new chunks (null: it reported nothing). */
  agentEntropy: number | null;
  /** How many new chunks the server read back. */
  sampledChunks: number;
}

/** A restore point: one backup of one source's disk image, stored as a manifest of chunks. */
export const backups = mysqlTable(
  "backups",
  {
    id: idColumn(),
    /** Owner. */
    userId: ownerId(),
    /** The protected machine or disk this backup is of (e.g. host name). */
    sourceName: varchar("source_name", { length: 128 }).notNull(),
    kind: mysqlEnum("kind", BACKUP_KINDS).notNull(),
    status: mysqlEnum("status", BACKUP_STATUSES).notNull(),
    /** Size of the disk image in bytes. */
    imageSize: bigint("image_size", { mode: "number", unsigned: true }).notNull(),
    /** Fixed chunk size of this image lineage, in bytes. */
    chunkSize: int("chunk_size", { unsigned: true }).notNull(),
    /** ceil(imageSize / chunkSize). */
    chunkCount: int("chunk_count", { unsigned: true }).notNull(),
    /** Bytes this backup actually sent (chunks already stored are not counted). */
    uploadedBytes: bigint("uploaded_bytes", { mode: "number", unsigned: true }).notNull().default(0),
    /** The backup an incremental was taken against (same owner, same source). */
    parentId: ref("parent_id").references((): AnyMySqlColumn => backups.id, { onDelete: "set null" }),
    /** Hex SHA-256 of the whole image, known once completed. */
    sha256: char("sha256", { length: 64 }),
    /** Object key of the manifest in the backups bucket, once completed. */
    manifestKey: varchar("manifest_key", { length: 255 }),
    /** Chunks of an incremental that differ from its parent's manifest (null for a FULL). */
    changedChunks: int("changed_chunks", { unsigned: true }),
    /** Mean sampled entropy (bits/byte) of the new chunks, as the agent reported it. */
    agentEntropy: double("agent_entropy"),
    /** Set when the encryption alarm went off for this restore point. */
    suspect: json("suspect").$type<BackupSuspicion>(),
    suspectVerdict: mysqlEnum("suspect_verdict", SUSPECT_VERDICTS),
    suspectResolvedAt: ts("suspect_resolved_at"),
    ...timestamps,
    completedAt: ts("completed_at"),
    deletedAt: ts("deleted_at"),
    /** In the trash (issue 18): when deletion was asked for; the backup stays COMPLETED and restorable until deleteAfter. */
    deletionRequestedAt: ts("deletion_requested_at"),
    /** When the scheduled maintenance carries the deletion out (deletionRequestedAt + DELETION_DELAY). */
    deleteAfter: ts("delete_after"),
    /** Who asked: the session's user and client address. */
    deletionRequestedBy: varchar("deletion_requested_by", { length: 255 }),
  },
  (t) => [
    index("backups_user_id_idx").on(t.userId, t.id),
    index("backups_user_source_idx").on(t.userId, t.sourceName, t.id),
    index("backups_user_status_idx").on(t.userId, t.status, t.id),
    index("backups_parent_idx").on(t.parentId),
  ],
);

export type BackupRow = typeof backups.$inferSelect;
