import type { WorkerActivities } from "../workflows/contracts";
import type { Runtime } from "./runtime";
import { createConnectivityActivities } from "./temporal/connectivity.activities";
import { createReconcileActivities, createRecoveryActivities, createStaleInstanceActivities } from "./recoveries/recovery.activities";
import { createInstanceSyncActivities } from "./instances/instance.activities";
import { createVerificationActivities } from "./verification/verification.activities";
import { createDrillActivities } from "./drills/drill.activities";
import { createMaintenanceActivities } from "./backups/backup-maintenance.activities";
import { createSessionPurgeActivities } from "./auth/auth.activities";
import { createMissedBackupActivities } from "./sources/source.activities";
import { createAlertActivities } from "./alerts/alerts.activities";

/**
 * The worker's activities, assembled from a process runtime: each feature's factory gets the
 * narrow services it calls (temporalio/samples-typescript style). The result is every workflow's
 * activity interface at once (workflows/contracts.ts), so a missing or mistyped activity does not compile.
 */
export function activitiesFor(rt: Runtime): WorkerActivities {
  const { services, config } = rt;
  return {
    ...createConnectivityActivities({ logger: rt.logger }),
    ...createRecoveryActivities({
      images: rt.storage.images,
      artifacts: rt.storage.artifacts,
      tesseract: config.verification.tesseract,
      progress: services.recoveryProgress,
      instances: services.instances,
      targets: rt.targets,
      access: services.access,
    }),
    ...createReconcileActivities({ progress: services.recoveryProgress, workflows: rt.workflows }),
    ...createStaleInstanceActivities({ instances: services.instances, targets: rt.targets, logger: rt.logger }),
    ...createInstanceSyncActivities({ instances: services.instances, access: services.access, logger: rt.logger }),
    ...createVerificationActivities({
      images: rt.storage.images,
      artifacts: rt.storage.artifacts,
      verifications: services.verifications,
      tesseract: config.verification.tesseract,
      local: rt.targets.LOCAL,
    }),
    ...createDrillActivities({ drills: services.drills }),
    ...createMaintenanceActivities({ maintenance: services.maintenance, trash: services.trash }),
    ...createSessionPurgeActivities({ auth: services.auth }),
    ...createMissedBackupActivities({ sources: services.sources }),
    ...createAlertActivities({ notifications: services.notifications, webhooks: services.webhooks, delivery: services.delivery, mailer: rt.mailer, instances: services.instances, linkBase: config.mail.linkBase, logger: rt.logger }),
  };
}
