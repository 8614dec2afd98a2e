import { callTarget } from "../compute/call";
import type { Logger } from "../logger";
import type { InstanceSyncActivities, InstanceSyncBatchResult } from "../../workflows/contracts";
import type { InstanceService } from "./instance.service";
import type { AccessService } from "../access/access.service";

/** syncInstanceStates' activity: one batch of machines read from their providers and stored. */
export function createInstanceSyncActivities(deps: {
  instances: Pick<InstanceService, "syncStates">;
  /** Expired access keys leave their access points' peers, and access points found down open again, on each sync run (its first batch). */
  access?: Pick<AccessService, "dropExpired" | "reopenDown">;
  logger: Logger;
}): InstanceSyncActivities {
  return {
    /** Idempotent: reading a state and storing it again changes nothing. */
    async syncInstanceBatch(input: { afterId?: string; limit: number; userIds?: string[] }): Promise<InstanceSyncBatchResult> {
      const batch = await callTarget(() => deps.instances.syncStates(input));
      if (batch.changed.length) deps.logger.info({ changed: batch.changed, stopped: batch.stopped }, "instance states synced from the providers");
      if (!input.afterId && deps.access) {
        const dropped = await deps.access.dropExpired({ userIds: input.userIds });
        if (dropped.updated) deps.logger.info({ accessPoints: dropped.updated }, "expired access keys dropped from their access points");
        if (dropped.failed.length) deps.logger.warn({ failed: dropped.failed }, "expired access keys could not be dropped from some access points (tried again on the next sync)");
        const reopened = await deps.access.reopenDown({ userIds: input.userIds });
        if (reopened.reopened.length) deps.logger.warn({ accessPoints: reopened.reopened }, "access points found down at their target were opened again");
        if (reopened.failed.length) deps.logger.warn({ failed: reopened.failed }, "access points found down could not be opened again (tried again on the next sync)");
      }
      return batch;
    },
  };
}
