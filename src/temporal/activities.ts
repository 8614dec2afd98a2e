import type { Logger } from "../logger";
import type { Services } from "../services";
import { ApplicationFailure } from "@temporalio/common";
import { GcIntegrityError, type GcResult, type RetentionResult } from "../backups/backup-maintenance.service";

export interface ActivityDeps {
  logger: Logger;
  services: Pick<Services, "maintenance" | "auth">;
}

/**
 * Activities: plain async functions made by a factory that takes their dependencies
 * (temporalio/samples-typescript style). Workflows import only the type of this object.
 */
export function createActivities(deps: ActivityDeps) {
  return {
    /** Proves the worker picks up work: answers the workflow with the process that ran it. */
    async echo(message: string): Promise<string> {
      deps.logger.debug({ message }, "connectivity check activity");
      return `pong: ${message} (worker pid ${process.pid})`;
    },

    /** Soft-deletes the restore points each user's retention policy no longer keeps. */
    async applyRetention(): Promise<RetentionResult> {
      return deps.services.maintenance.applyRetention();
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
