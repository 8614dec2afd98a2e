import { index, mysqlEnum, mysqlTable, text, uniqueIndex, varchar } from "drizzle-orm/mysql-core";
import { idColumn, ts } from "../columns";
import { ownerId } from "./owner";

/** What a notification is about (issue 16): each is raised by the part of the product that observed it. */
export const NOTIFICATION_KINDS = [
  "BACKUP_MISSED",
  "UPLOAD_FAILED",
  "UPLOAD_ABANDONED",
  "VERIFICATION_FAILED",
  "RECOVERY_FAILED",
  "RECOVERY_COMPLETED",
  "INSTANCE_TERMINATING",
  "ENCRYPTION_SUSPECTED",
  "DELETION_REQUESTED",
] as const;
export type NotificationKind = (typeof NOTIFICATION_KINDS)[number];

/**
 * Something a user should hear about, raised once: `dedupeKey` names the occurrence (e.g. the missed
 * slot "backup-missed:<source>:<slot ISO>"), so a detector that runs again, or twice at once, raises
 * it only once. Delivery (e-mail, webhooks) is recorded elsewhere; this row is what the user reads.
 */
export const notifications = mysqlTable(
  "notifications",
  {
    id: idColumn(),
    userId: ownerId(),
    kind: mysqlEnum("kind", NOTIFICATION_KINDS).notNull(),
    /** One line, e.g. "No backup of office-server since Monday 02:00". */
    title: varchar("title", { length: 200 }).notNull(),
    /** What was observed and what to do, in plain text. */
    body: text("body").notNull(),
    /** What it is about: a source name, a backup, upload, verification, recovery or instance id. */
    subjectType: varchar("subject_type", { length: 32 }),
    subjectId: varchar("subject_id", { length: 128 }),
    /** The occurrence; unique per user. */
    dedupeKey: varchar("dedupe_key", { length: 191 }).notNull(),
    createdAt: ts("created_at").notNull(),
    readAt: ts("read_at"),
    /** When its delivery workflow was started (null: not yet — Temporal was down; the sweep starts it). */
    deliveryStartedAt: ts("delivery_started_at"),
  },
  (t) => [
    uniqueIndex("notifications_user_dedupe_uq").on(t.userId, t.dedupeKey),
    index("notifications_user_id_idx").on(t.userId, t.id),
    index("notifications_undelivered_idx").on(t.deliveryStartedAt, t.createdAt),
  ],
);

export type NotificationRow = typeof notifications.$inferSelect;
