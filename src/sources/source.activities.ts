import type { MissedBackupActivities } from "../../workflows/contracts";
import type { SourceService } from "./source.service";

/** The missed-backup detector's activity. */
export function createMissedBackupActivities(deps: { sources: Pick<SourceService, "detectMissed"> }): MissedBackupActivities {
  return {
    detectMissedBackups: () => deps.sources.detectMissed(),
  };
}
