import { callTarget } from "../compute/call";
import type { Logger } from "../logger";
import type { InstanceSyncActivities, InstanceSyncBatchResult } from "../../workflows/contracts";
import type { InstanceService } from "./instance.service";

/** syncInstanceStates' activity: one batch of machines read from their providers and stored. */
export function createInstanceSyncActivities(deps: { instances: Pick<InstanceService, "syncStates">; logger: Logger }): InstanceSyncActivities {
  return {
    /** Idempotent: reading a state and storing it again changes nothing. */
    async syncInstanceBatch(input: { afterId?: string; limit: number; userIds?: string[] }): Promise<InstanceSyncBatchResult> {
      const batch = await callTarget(() => deps.instances.syncStates(input));
      if (batch.changed.length) deps.logger.info({ changed: batch.changed, stopped: batch.stopped }, "instance states synced from the providers");
      return batch;
    },
  };
}
