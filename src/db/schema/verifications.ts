import { double, index, int, json, mysqlEnum, mysqlTable, text, varchar } from "drizzle-orm/mysql-core";
import type { Evidence } from "../../evidence/types";
import { idColumn, ref, timestamps, ts } from "../columns";
import { backups } from "./backups";
import { ownerId } from "./owner";

/** INCONCLUSIVE: nothing showed that the machine started or failed before the time limit. */
export const VERIFICATION_STATUSES = ["PENDING", "RUNNING", "VERIFIED", "FAILED", "INCONCLUSIVE"] as const;

/** A boot verification of a restore point: recovered in isolation, watched for boot evidence, destroyed. */
export const verifications = mysqlTable(
  "verifications",
  {
    id: idColumn(),
    /** Owner. */
    userId: ownerId(),
    backupId: ref("backup_id")
      .notNull()
      .references(() => backups.id, { onDelete: "cascade" }),
    status: mysqlEnum("status", VERIFICATION_STATUSES).notNull(),
    /** Serial-console text that proves the boot (null: screenshot evidence only). */
    bootMarker: varchar("boot_marker", { length: 255 }),
    /** What the boot check saw, in order (firmware log, screen, services, marker), each with when. */
    evidence: json("evidence").$type<Evidence[]>(),
    /** Text OCR'd from the last screenshot. */
    screenText: text("screen_text"),
    /** Seconds from the machine's start to the first positive boot evidence. */
    bootSeconds: double("boot_seconds"),
    /** Object key of the PNG screenshot in the artifacts bucket. */
    screenshotKey: varchar("screenshot_key", { length: 255 }),
    failureReason: varchar("failure_reason", { length: 1024 }),
    /** Temporal workflow id. */
    workflowId: varchar("workflow_id", { length: 128 }).notNull(),
    /** Incremented on every change (subscribers drop stale events). */
    version: int("version", { unsigned: true }).notNull().default(0),
    startedAt: ts("started_at"),
    checkedAt: ts("checked_at"),
    ...timestamps,
  },
  (t) => [index("verifications_user_id_idx").on(t.userId, t.id), index("verifications_backup_idx").on(t.backupId, t.id)],
);

export type VerificationRow = typeof verifications.$inferSelect;
