import { patched, proxyActivities } from "@temporalio/workflow";
import type { BackupMaintenanceInput, BackupMaintenanceResult, MaintenanceActivities, MissedBackupActivities, MissedBackupResult, SessionPurgeActivities } from "./contracts";
import { reasonOf, retryPolicy } from "./policies";

const maintenance = proxyActivities<MaintenanceActivities>({ startToCloseTimeout: "30 minutes", retry: retryPolicy(7) });
const sessions = proxyActivities<SessionPurgeActivities>({ startToCloseTimeout: "30 minutes", retry: retryPolicy(7) });
const missed = proxyActivities<MissedBackupActivities>({ startToCloseTimeout: "10 minutes", retry: retryPolicy(5) });

/**
 * Scheduled: apply every retention policy and abort abandoned uploads, then reclaim chunks no live
 * manifest or active upload references. Both run first so what they release is reclaimed in the same run.
 */
export async function backupMaintenance(input: BackupMaintenanceInput = {}): Promise<BackupMaintenanceResult> {
  // Due deletions and shortenings first, so retention applies the policy now in force and the GC reclaims what they released.
  // patched: runs recorded before the trash (issue 18) replay without this activity.
  // Given users, every step keeps to them: a run for one account never touches another's.
  const trash = patched("purge-trash") ? await maintenance.purgeTrash(input) : { deleted: [] as string[] };
  const retention = await maintenance.applyRetention(input);
  const expiredUploads = await maintenance.expireUploads(input);
  const users = input.userIds ?? (await maintenance.usersWithBackups());
  let deletedChunks = 0;
  let freedBytes = 0;
  const failedUsers: BackupMaintenanceResult["failedUsers"] = [];
  for (const userId of users) {
    try {
      const gc = await maintenance.collectGarbage(userId);
      deletedChunks += gc.deletedChunks;
      freedBytes += gc.freedBytes;
    } catch (err) {
      failedUsers.push({ userId, error: reasonOf(err) });
    }
  }
  return { retentionDeleted: retention.deleted, trashDeleted: trash.deleted, expiredUploads, users: users.length, deletedChunks, freedBytes, failedUsers };
}

/** Scheduled daily: drop sessions that expired or were revoked more than a day ago. */
export async function purgeSessions(olderThanMs = 86_400_000): Promise<number> {
  return sessions.purgeSessions(olderThanMs);
}

/**
 * Scheduled (MISSED_BACKUP_CHECK_INTERVAL): reports every source whose latest backup slot plus
 * its grace passed with no backup started since. Each slot is raised once (its dedupe key), so
 * overlapping or retried runs tell the user once.
 */
export async function detectMissedBackups(): Promise<MissedBackupResult> {
  return missed.detectMissedBackups();
}
