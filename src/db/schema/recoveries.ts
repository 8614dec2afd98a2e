import { double, index, int, json, mysqlEnum, mysqlTable, tinyint, varchar } from "drizzle-orm/mysql-core";
import { idColumn, ref, timestamps, ts } from "../columns";
import { backups } from "./backups";
import { ownerId } from "./owner";

export const RECOVERY_STATES = ["PENDING", "PREPARING", "IMPORTING", "LAUNCHING", "CHECKING", "COMPLETED", "FAILED", "CANCELLED"] as const;
export const RECOVERY_TARGETS = ["AWS", "LOCAL"] as const;
export const TERMINAL_RECOVERY_STATES = ["COMPLETED", "FAILED", "CANCELLED"] as const;
export const ACTIVE_RECOVERY_STATES = ["PENDING", "PREPARING", "IMPORTING", "LAUNCHING", "CHECKING"] as const;

export interface RecoveryResources {
  composedKey?: string;
  importTaskId?: string;
  imageId?: string;
  snapshotIds?: string[];
  instanceId?: string;
  securityGroupId?: string;
  /** The boot check's screenshot in the artifacts bucket (removed when the recovery fails). */
  checkScreenshotKey?: string;
}

export const BOOT_CHECK_STATUSES = ["CHECKING", "VERIFIED", "FAILED", "INCONCLUSIVE"] as const;

/** One piece of evidence the boot check saw (same shape as the evidence collector's). */
export interface BootCheckEvidence {
  kind: string;
  ok: boolean;
  /** A failure signature (this alone fails the check). */
  failure?: boolean;
  detail: string;
  /** ISO 8601. */
  at: string;
}

/** "Checking it started": what the recovered machine showed after launch. */
export interface BootCheckRecord {
  status: (typeof BOOT_CHECK_STATUSES)[number];
  evidence: BootCheckEvidence[];
  /** Why it is FAILED or INCONCLUSIVE, in words. */
  reason?: string;
  screenText?: string;
  /** Object key of the last screenshot in the artifacts bucket. */
  screenshotKey?: string;
  screenshotContentType?: string;
  /** When the verdict was reached (ISO 8601). */
  checkedAt?: string;
}

/** One recovery of a restore point into a new virtual machine, driven by a Temporal workflow. */
export const recoveries = mysqlTable(
  "recoveries",
  {
    id: idColumn(),
    /** Owner. */
    userId: ownerId(),
    /** The restore point being recovered. */
    backupId: ref("backup_id")
      .notNull()
      .references(() => backups.id, { onDelete: "restrict" }),
    target: mysqlEnum("target", RECOVERY_TARGETS).notNull(),
    state: mysqlEnum("state", RECOVERY_STATES).notNull(),
    /** 0–100 within the current step; never goes backwards within a step. */
    stepProgress: tinyint("step_progress", { unsigned: true }).notNull().default(0),
    /** 0–100 over the whole recovery. */
    totalProgress: tinyint("total_progress", { unsigned: true }).notNull().default(0),
    /** Latest human-readable status line. */
    message: varchar("message", { length: 1024 }),
    /** Why it failed (e.g. TIMED_OUT, or the provider's message). */
    failureReason: varchar("failure_reason", { length: 1024 }),
    /** Incremented on every change; subscribers drop stale events with it. */
    version: int("version", { unsigned: true }).notNull().default(0),
    /** CIDR admitted to the recovered machine (AWS security group). */
    allowedCidr: varchar("allowed_cidr", { length: 64 }),
    /**
     * What the recovery was asked for beyond backup, target and CIDR (isolated, allowInternet,
     * ports), so `retryRecovery` starts the same thing again; null on rows older than issue 17
     * (retried with the defaults).
     */
    launchOptions: json("launch_options").$type<RecoveryLaunchOptions>(),
    /** Provider resources created so far (import task, image, snapshots, instance, security group, composed object), for cleanup and support. */
    resources: json("resources").$type<RecoveryResources>(),
    /** Temporal workflow id (derived from the recovery id). */
    workflowId: varchar("workflow_id", { length: 128 }).notNull(),
    startedAt: ts("started_at"),
    /** Start + the recovery time limit (24 h by default). */
    deadlineAt: ts("deadline_at"),
    completedAt: ts("completed_at"),
    /** The boot check after launch: verdict, evidence, screen (null until it starts). */
    bootCheck: json("boot_check").$type<BootCheckRecord>(),
    /** Measured RTO: seconds from startRecovery (created_at) to the first positive boot signal. */
    rtoSeconds: double("rto_seconds"),
    ...timestamps,
  },
  (t) => [index("recoveries_user_id_idx").on(t.userId, t.id), index("recoveries_backup_state_idx").on(t.backupId, t.state), index("recoveries_state_idx").on(t.state)],
);

export interface RecoveryLaunchOptions {
  isolated?: boolean;
  allowInternet: boolean;
  ports: number[];
  /** The recovery this one retries (retryRecovery). */
  retryOf?: string;
}

export type RecoveryRow = typeof recoveries.$inferSelect;
