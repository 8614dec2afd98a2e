import type { Logger } from "./logger";
import { WorkflowNotFoundError, type Client } from "@temporalio/client";
import { createRecoveryActivities, type RecoveryActivityDeps } from "./recoveries/recovery.activities";
import type { Runtime } from "./runtime";
import { createVerificationActivities, type VerificationActivityDeps } from "./verification/verification.activities";
import type { Services } from "./services";
import { createDrillActivities } from "./drills/drill.activities";
import { ApplicationFailure } from "@temporalio/common";
import { GcIntegrityError, type GcResult, type RetentionResult } from "./backups/backup-maintenance.service";

export interface ActivityDeps {
  logger: Logger;
  services: Pick<Services, "maintenance" | "auth" | "drills">;
  recovery: RecoveryActivityDeps;
  verification: VerificationActivityDeps;
  /** For the reconciler: asks Temporal whether a workflow still runs. */
  temporal: Pick<Client, "workflow">;
}

/** The worker's activities built from a process runtime. */
export function activitiesFor(rt: Runtime) {
  return createActivities({
    logger: rt.logger,
    services: rt.services,
    temporal: rt.temporal.client,
    recovery: {
      db: rt.database.db,
      s3: rt.s3,
      store: rt.services.chunks,
      importsBucket: rt.config.s3.buckets.imports,
      artifactsBucket: rt.config.s3.buckets.artifacts,
      tesseract: rt.config.verification.tesseract,
      progress: rt.services.recoveryProgress,
      instances: rt.services.instances,
      targets: rt.targets,
      logger: rt.logger,
    },
    verification: {
      s3: rt.s3,
      store: rt.services.chunks,
      importsBucket: rt.config.s3.buckets.imports,
      artifactsBucket: rt.config.s3.buckets.artifacts,
      verifications: rt.services.verifications,
      tesseract: rt.config.verification.tesseract,
      local: rt.targets.LOCAL,
    },
  });
}

/**
 * Activities: plain async functions made by a factory that takes their dependencies
 * (temporalio/samples-typescript style). Workflows import only the type of this object.
 */
export function createActivities(deps: ActivityDeps) {
  return {
    ...createRecoveryActivities(deps.recovery),
    ...createVerificationActivities(deps.verification),
    ...createDrillActivities({ drills: deps.services.drills }),

    /** Temporal's view of a workflow: RUNNING, COMPLETED, FAILED, … or NOT_FOUND. */
    async workflowStatus(workflowId: string): Promise<string> {
      try {
        return (await deps.temporal.workflow.getHandle(workflowId).describe()).status.name;
      } catch (err) {
        if (err instanceof WorkflowNotFoundError) return "NOT_FOUND";
        throw err;
      }
    },

    /** Proves the worker picks up work: answers the workflow with the process that ran it. */
    async echo(message: string): Promise<string> {
      deps.logger.debug({ message }, "connectivity check activity");
      return `pong: ${message} (worker pid ${process.pid})`;
    },

    /** Soft-deletes the restore points each user's retention policy no longer keeps. */
    async applyRetention(): Promise<RetentionResult> {
      return deps.services.maintenance.applyRetention();
    },

    /** Aborts UPLOADING backups untouched for UPLOAD_EXPIRY (their chunks become collectable). */
    async expireUploads(): Promise<string[]> {
      return deps.services.maintenance.expireUploads();
    },

    async usersWithBackups(): Promise<string[]> {
      return deps.services.maintenance.usersWithBackups();
    },

    /** Deletes one user's chunks that no live manifest or active upload references. */
    async collectGarbage(userId: string): Promise<GcResult> {
      try {
        return await deps.services.maintenance.collectGarbage(userId);
      } catch (err) {
        // Retrying cannot fix a store/database mismatch: fail at once, loudly.
        if (err instanceof GcIntegrityError) throw ApplicationFailure.nonRetryable(err.message, err.name);
        throw err;
      }
    },

    /** Deletes sessions that expired or were revoked more than `olderThanMs` ago. */
    async purgeSessions(olderThanMs: number): Promise<number> {
      return deps.services.auth.purgeSessions(olderThanMs);
    },
  };
}

export type Activities = ReturnType<typeof createActivities>;
