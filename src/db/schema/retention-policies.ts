import { int, mysqlTable, varchar } from "drizzle-orm/mysql-core";
import { ref, ts } from "../columns";
import { users } from "./users";

/** A user's retention policy, applied by the scheduled backup-maintenance workflow. */
export const retentionPolicies = mysqlTable("retention_policies", {
  /** Owner (one policy per user). */
  userId: ref("user_id")
    .primaryKey()
    .references(() => users.id, { onDelete: "cascade" }),
  /** Keep this many newest FULL backups per source (the weekly fulls). */
  keepWeeklyFull: int("keep_weekly_full", { unsigned: true }).notNull(),
  /** Keep every backup of the last this-many days per source (the daily restore points). */
  keepDaily: int("keep_daily", { unsigned: true }).notNull(),
  updatedAt: ts("updated_at").notNull(),
  /** A shortening waiting in the trash (issue 18): applied by maintenance once pendingEffectiveAt passes. */
  pendingKeepWeeklyFull: int("pending_keep_weekly_full", { unsigned: true }),
  pendingKeepDaily: int("pending_keep_daily", { unsigned: true }),
  pendingRequestedAt: ts("pending_requested_at"),
  pendingEffectiveAt: ts("pending_effective_at"),
  pendingRequestedBy: varchar("pending_requested_by", { length: 255 }),
});

export type RetentionPolicyRow = typeof retentionPolicies.$inferSelect;
