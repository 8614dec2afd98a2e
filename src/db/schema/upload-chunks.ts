import { char, int, mysqlTable, primaryKey, bigint, index } from "drizzle-orm/mysql-core";
import { ref, ts } from "../columns";
import { uploads } from "./uploads";

/**
 * Chunks an upload session was handed a presigned URL for (the chunks the store did not have).
 * What a backup "actually sent" is computed from these, and the garbage collector never reclaims
 * a chunk an active upload may still be writing.
 */
export const uploadChunks = mysqlTable(
  "upload_chunks",
  {
    uploadId: ref("upload_id")
      .notNull()
      .references(() => uploads.id, { onDelete: "cascade" }),
    /** Hex SHA-256 of the chunk body (its key in the store). */
    sha256: char("sha256", { length: 64 }).notNull(),
    /** Body size in bytes. */
    size: bigint("size", { mode: "number", unsigned: true }).notNull(),
    /** First chunk index that had this content (for error messages). */
    chunkIndex: int("chunk_index", { unsigned: true }).notNull(),
    requestedAt: ts("requested_at").notNull(),
    /** When the agent confirmed it sent the chunk and the store had it (counted in the upload's bytesSent once). */
    storedAt: ts("stored_at"),
  },
  (t) => [primaryKey({ columns: [t.uploadId, t.sha256] }), index("upload_chunks_sha_idx").on(t.sha256)],
);

export type UploadChunkRow = typeof uploadChunks.$inferSelect;
