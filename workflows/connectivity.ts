import { proxyActivities } from "@temporalio/workflow";
import type { Activities } from "../src/worker-activities";

const { echo } = proxyActivities<Activities>({
  startToCloseTimeout: "30 seconds",
  retry: { maximumAttempts: 3 },
});

/** A trivial workflow that proves the client, server and worker are connected. */
export async function connectivityCheck(message: string): Promise<string> {
  return echo(message);
}
