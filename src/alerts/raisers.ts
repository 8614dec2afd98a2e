import type { BackupRow, RecoveryRow, VerificationRow } from "../db/schema";
import type { BackupService } from "../backups/backup.service";
import type { Logger } from "../logger";
import type { NotificationService } from "./notification.service";

/**
 * What the product observes and tells the user about (besides the detectors of other features):
 * a verification that ended FAILED, a recovery that ended FAILED or COMPLETED. Each is raised once
 * per occurrence (its dedupe key names the verification or recovery); a failure to raise is logged
 * and never fails the step that observed it.
 */
export function createRaisers(deps: { notifications: Pick<NotificationService, "raise">; backups: Pick<BackupService, "find">; logger?: Logger }) {
  const sourceOf = async (userId: string, backupId: string) => (await deps.backups.find(userId, backupId).catch(() => null))?.sourceName ?? "a source";
  const safely = async (what: string, fn: () => Promise<unknown>) => {
    try {
      await fn();
    } catch (err) {
      deps.logger?.error({ err }, `could not raise the ${what} notification`);
    }
  };
  return {
    encryptionSuspected: (row: BackupRow) =>
      safely("ENCRYPTION_SUSPECTED", async () => {
        const s = row.suspect!;
        await deps.notifications.raise(row.userId, {
          kind: "ENCRYPTION_SUSPECTED",
          title: `Possible ransomware encryption on ${row.sourceName}`,
          body:
            `The backup ${row.id} of ${row.sourceName} looks like a disk being encrypted: ${s.reason}. ` +
            `Its restore point is marked SUSPECT; the older clean restore points are kept out of retention's reach until you decide. ` +
            `Check the machine now. If the change was legitimate (e.g. a new encrypted volume or a large compressed archive), mark the restore point safe ` +
            `(reclo backups resolve ${row.id} --safe); otherwise mark it encrypted and recover from the last clean restore point.`,
          subjectType: "BACKUP",
          subjectId: row.id,
          dedupeKey: `encryption-suspected:${row.id}`,
        });
      }),
    verificationFailed: (row: VerificationRow) =>
      safely("VERIFICATION_FAILED", async () => {
        const source = await sourceOf(row.userId, row.backupId);
        await deps.notifications.raise(row.userId, {
          kind: "VERIFICATION_FAILED",
          title: `A restore point of ${source} failed its boot verification`,
          body: `The restore point ${row.backupId} of ${source} did not boot when ReClo recovered it in isolation${row.failureReason ? `: ${row.failureReason}` : ""}. It may not be usable in a disaster: check the source machine and take a new backup, then verify it again.`,
          subjectType: "VERIFICATION",
          subjectId: row.id,
          dedupeKey: `verification-failed:${row.id}`,
        });
      }),
    recoveryFinished: (row: RecoveryRow) =>
      safely(`RECOVERY_${row.state}`, async () => {
        const source = await sourceOf(row.userId, row.backupId);
        if (row.state === "FAILED")
          await deps.notifications.raise(row.userId, {
            kind: "RECOVERY_FAILED",
            title: `The recovery of ${source} failed`,
            body: `The recovery ${row.id} of ${source} (restore point ${row.backupId}, target ${row.target}) failed${row.failureReason ? ` (${row.failureReason})` : ""}${row.message ? `: ${row.message}` : ""}. What it created was removed; you can start it again or choose another restore point.`,
            subjectType: "RECOVERY",
            subjectId: row.id,
            dedupeKey: `recovery-failed:${row.id}`,
          });
        else if (row.state === "COMPLETED")
          await deps.notifications.raise(row.userId, {
            kind: "RECOVERY_COMPLETED",
            title: `${source} is recovered and running`,
            body: `The recovery ${row.id} of ${source} (restore point ${row.backupId}, target ${row.target}) completed${row.rtoSeconds !== null ? ` in ${Math.round(row.rtoSeconds)} s` : ""}${row.message ? `: ${row.message}` : ""}.`,
            subjectType: "RECOVERY",
            subjectId: row.id,
            dedupeKey: `recovery-completed:${row.id}`,
          });
      }),
  };
}
