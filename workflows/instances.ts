import { proxyActivities } from "@temporalio/workflow";
import type { InstanceSyncActivities, InstanceSyncInput, InstanceSyncResult } from "./contracts";
import { retryPolicy } from "./policies";

const acts = proxyActivities<InstanceSyncActivities>({ startToCloseTimeout: "10 minutes", retry: retryPolicy(5) });

/**
 * Scheduled: every recorded machine's state read from its provider, `batchSize` machines per
 * activity (AWS: one paged DescribeInstances per batch), and stored. A machine stopped at the
 * provider (by the customer from its console, by the provider) so reaches STOPPED with its
 * lastStoppedAt without anyone opening it here, and terminateStaleInstances' clock really starts;
 * one started again there is RUNNING again and is not cleaned up.
 */
export async function syncInstanceStates(input: InstanceSyncInput = {}): Promise<InstanceSyncResult> {
  const limit = input.batchSize ?? 100;
  const result: InstanceSyncResult = { batches: 0, checked: 0, changed: 0, stopped: [], skipped: 0 };
  let afterId: string | undefined;
  do {
    const batch = await acts.syncInstanceBatch({ afterId, limit, userIds: input.userIds });
    result.batches++;
    result.checked += batch.checked;
    result.changed += batch.changed.length;
    result.stopped.push(...batch.stopped);
    result.skipped += batch.skipped;
    afterId = batch.nextAfterId;
  } while (afterId);
  return result;
}
