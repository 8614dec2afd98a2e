import { bigint, boolean, double, index, json, mysqlEnum, mysqlTable, primaryKey, uniqueIndex, varchar } from "drizzle-orm/mysql-core";
import { idColumn, ref, timestamps, ts } from "../columns";
import { ownerId } from "./owner";

/**
 * A source's drill policy. Sources are identified by (userId, sourceName) like backups today; when a
 * Source table arrives, this table gains its id.
 */
export const drillPolicies = mysqlTable(
  "drill_policies",
  {
    /** Owner. */
    userId: ownerId(),
    sourceName: varchar("source_name", { length: 128 }).notNull(),
    /** Interval between scheduled drills (null: no schedule). */
    everyMs: bigint("every_ms", { mode: "number", unsigned: true }),
    /** A completed backup of the source starts a drill of it. */
    afterEveryBackup: boolean("after_every_backup").notNull().default(false),
    /** Guest TCP ports the drill's verification probes. */
    ports: json("ports").$type<number[]>().notNull(),
    /** Temporal Schedule id (null while no schedule is registered). */
    scheduleId: varchar("schedule_id", { length: 128 }),
    ...timestamps,
  },
  (t) => [primaryKey({ columns: [t.userId, t.sourceName] })],
);

export const DRILL_TRIGGERS = ["SCHEDULE", "AFTER_BACKUP", "MANUAL"] as const;
export const DRILL_STATUSES = ["RUNNING", "VERIFIED", "FAILED", "INCONCLUSIVE", "CANCELLED"] as const;

/** One drill: the source's latest restore point recovered in isolation, verified, measured, removed. */
export const drills = mysqlTable(
  "drills",
  {
    id: idColumn(),
    /** Owner. */
    userId: ownerId(),
    sourceName: varchar("source_name", { length: 128 }).notNull(),
    trigger: mysqlEnum("trigger", DRILL_TRIGGERS).notNull(),
    status: mysqlEnum("status", DRILL_STATUSES).notNull(),
    /** The restore point drilled (null when the source had none restorable). No FK: the drill outlives a purged backup. */
    backupId: ref("backup_id"),
    /** The boot verification the drill ran (its evidence, screenshot and verdict). */
    verificationId: ref("verification_id"),
    /** Seconds from the drill's start to the first positive boot evidence (VERIFIED only). */
    rtoSeconds: double("rto_seconds"),
    /** The decisive evidence in words. */
    evidenceSummary: varchar("evidence_summary", { length: 1024 }),
    failureReason: varchar("failure_reason", { length: 1024 }),
    /** Temporal workflow id (unique: a retried start records one drill). */
    workflowId: varchar("workflow_id", { length: 191 }).notNull(),
    startedAt: ts("started_at").notNull(),
    finishedAt: ts("finished_at"),
    ...timestamps,
  },
  (t) => [index("drills_user_source_idx").on(t.userId, t.sourceName, t.id), index("drills_user_id_idx").on(t.userId, t.id), uniqueIndex("drills_workflow_idx").on(t.workflowId)],
);

export type DrillPolicyRow = typeof drillPolicies.$inferSelect;
export type DrillRow = typeof drills.$inferSelect;
