import { proxyActivities } from "@temporalio/workflow";
import type { Activities } from "../src/worker-activities";

const acts = proxyActivities<Activities>({
  startToCloseTimeout: "30 minutes",
  retry: { initialInterval: "5 seconds", backoffCoefficient: 2, maximumInterval: "5 minutes", maximumAttempts: 5 },
});

export interface BackupMaintenanceInput {
  /** Only these users' chunks (default: every user with backups). */
  userIds?: string[];
}

export interface BackupMaintenanceResult {
  retentionDeleted: string[];
  /** UPLOADING backups aborted because their upload was abandoned (UPLOAD_EXPIRY). */
  expiredUploads: string[];
  users: number;
  deletedChunks: number;
  freedBytes: number;
  /** Users whose GC failed after retries (their chunks are left alone; others still run). */
  failedUsers: { userId: string; error: string }[];
}

/**
 * Scheduled: apply every retention policy and abort abandoned uploads, then reclaim chunks no live
 * manifest or active upload references. Both run first so what they release is reclaimed in the same run.
 */
export async function backupMaintenance(input: BackupMaintenanceInput = {}): Promise<BackupMaintenanceResult> {
  const retention = await acts.applyRetention();
  const expiredUploads = await acts.expireUploads();
  const users = input.userIds ?? (await acts.usersWithBackups());
  let deletedChunks = 0;
  let freedBytes = 0;
  const failedUsers: BackupMaintenanceResult["failedUsers"] = [];
  for (const userId of users) {
    try {
      const gc = await acts.collectGarbage(userId);
      deletedChunks += gc.deletedChunks;
      freedBytes += gc.freedBytes;
    } catch (err) {
      failedUsers.push({ userId, error: err instanceof Error ? (err.cause instanceof Error ? err.cause.message : err.message) : String(err) });
    }
  }
  return { retentionDeleted: retention.deleted, expiredUploads, users: users.length, deletedChunks, freedBytes, failedUsers };
}

/** Scheduled daily: drop sessions that expired or were revoked more than a day ago. */
export async function purgeSessions(olderThanMs = 86_400_000): Promise<number> {
  return acts.purgeSessions(olderThanMs);
}
