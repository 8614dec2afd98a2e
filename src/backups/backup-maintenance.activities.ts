import { ApplicationFailure } from "@temporalio/activity";
import type { GcResult, MaintenanceActivities } from "../../workflows/contracts";
import { GcIntegrityError, type BackupMaintenanceService } from "./backup-maintenance.service";
import type { TrashService } from "./trash.service";

/** The backup maintenance workflow's activities: retention, abandoned uploads and chunk GC. */
export function createMaintenanceActivities(deps: { maintenance: Pick<BackupMaintenanceService, "applyRetention" | "expireUploads" | "usersWithBackups" | "collectGarbage">; trash: Pick<TrashService, "purgeDue"> }): MaintenanceActivities {
  return {
    purgeTrash: (scope = {}) => deps.trash.purgeDue(scope),
    applyRetention: (scope = {}) => deps.maintenance.applyRetention(scope),
    expireUploads: (scope = {}) => deps.maintenance.expireUploads(scope),
    usersWithBackups: () => deps.maintenance.usersWithBackups(),
    async collectGarbage(userId: string): Promise<GcResult> {
      try {
        return await deps.maintenance.collectGarbage(userId);
      } catch (err) {
        // Retrying cannot fix a store/database mismatch: fail at once, loudly.
        if (err instanceof GcIntegrityError) throw ApplicationFailure.nonRetryable(err.message, err.name);
        throw err;
      }
    },
  };
}
