import { index, mysqlTable, smallint, tinyint, uniqueIndex, varchar } from "drizzle-orm/mysql-core";
import { idColumn, timestamps, ts } from "../columns";
import { ownerId } from "./owner";

/**
 * A protected machine (issue 16): what backups and drill policies call `sourceName`, with the
 * backup schedule its agent follows and the server checks (a missed slot raises BACKUP_MISSED).
 * Created with the default schedule when first seen (first backup, check-in or setBackupSchedule).
 */
export const sources = mysqlTable(
  "sources",
  {
    id: idColumn(),
    /** Owner. */
    userId: ownerId(),
    /** As backups name it (host name by default). */
    name: varchar("name", { length: 128 }).notNull(),
    /** Weekday of the weekly FULL, in `timezone`: 0 Sunday … 6 Saturday. */
    fullEvery: tinyint("full_every", { unsigned: true }).notNull(),
    /** Daily slot, "HH:MM" wall-clock time in `timezone` (the FULL on fullEvery, INCREMENTAL otherwise). */
    incrementalAt: varchar("incremental_at", { length: 5 }).notNull(),
    /** IANA time zone of the slots. */
    timezone: varchar("timezone", { length: 64 }).notNull(),
    /** Minutes after a slot before it counts as missed. */
    graceMinutes: smallint("grace_minutes", { unsigned: true }).notNull(),
    /** When this schedule took effect: slots before it are never reported as missed. */
    scheduleSetAt: ts("schedule_set_at").notNull(),
    /** The agent's last check-in. */
    lastSeenAt: ts("last_seen_at"),
    /** What the agent reported at its last check-in. */
    agentHost: varchar("agent_host", { length: 255 }),
    agentVersion: varchar("agent_version", { length: 64 }),
    ...timestamps,
  },
  (t) => [uniqueIndex("sources_user_name_uq").on(t.userId, t.name), index("sources_user_id_idx").on(t.userId, t.id)],
);

export type SourceRow = typeof sources.$inferSelect;
