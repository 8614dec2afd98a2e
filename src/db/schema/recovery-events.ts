import { index, int, mysqlEnum, mysqlTable, varchar } from "drizzle-orm/mysql-core";
import { idColumn, ref, ts } from "../columns";
import { recoveries, RECOVERY_STATES } from "./recoveries";
import { ownerId } from "./owner";

export const RECOVERY_EVENT_STATUSES = ["STARTED", "SUCCEEDED", "FAILED", "RETRYING", "CANCELLED", "CLEANUP", "OBSERVED"] as const;

/** The timeline of a recovery: each step's start, retries, end and the cleanup actions. */
export const recoveryEvents = mysqlTable(
  "recovery_events",
  {
    id: idColumn(),
    /** Owner (same as the recovery's). */
    userId: ownerId(),
    recoveryId: ref("recovery_id")
      .notNull()
      .references(() => recoveries.id, { onDelete: "cascade" }),
    /** The step (recovery state) the event belongs to. */
    step: mysqlEnum("step", RECOVERY_STATES).notNull(),
    status: mysqlEnum("status", RECOVERY_EVENT_STATUSES).notNull(),
    message: varchar("message", { length: 1024 }),
    /** Temporal activity attempt (1 = first try). */
    attempt: int("attempt", { unsigned: true }).notNull().default(1),
    createdAt: ts("created_at").notNull(),
  },
  (t) => [index("recovery_events_recovery_idx").on(t.recoveryId, t.id)],
);

export type RecoveryEventRow = typeof recoveryEvents.$inferSelect;
