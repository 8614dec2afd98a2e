import { index, mysqlEnum, mysqlTable, uniqueIndex, varchar } from "drizzle-orm/mysql-core";
import { idColumn, ts } from "../columns";
import { ownerId } from "./owner";

export const TRASH_REQUEST_KINDS = ["SOURCE", "AGENT_KEYS"] as const;

/**
 * A pending deletion that is not a single row's own flag (issue 18): a whole source (its restore
 * points, agent keys and schedule) or the revocation of all of a user's agent keys. It waits
 * DELETION_DELAY; deleting the row (restoreFromTrash) undoes it, and the scheduled maintenance
 * carries it out once effectiveAt passes. Trashed restore points and retention shortenings keep
 * their own columns (backups.delete_after, retention_policies.pending_*).
 */
export const trashRequests = mysqlTable(
  "trash_requests",
  {
    id: idColumn(),
    /** Owner. */
    userId: ownerId(),
    kind: mysqlEnum("kind", TRASH_REQUEST_KINDS).notNull(),
    /** SOURCE: the source's name; AGENT_KEYS: "" (one pending revocation per user). */
    subject: varchar("subject", { length: 128 }).notNull(),
    requestedAt: ts("requested_at").notNull(),
    /** requestedAt + DELETION_DELAY: the first maintenance run after it carries the request out. */
    effectiveAt: ts("effective_at").notNull(),
    /** Who asked: the session's user and client address. */
    requestedBy: varchar("requested_by", { length: 255 }),
  },
  (t) => [uniqueIndex("trash_requests_user_kind_subject_uq").on(t.userId, t.kind, t.subject), index("trash_requests_effective_idx").on(t.effectiveAt)],
);

export type TrashRequestRow = typeof trashRequests.$inferSelect;
