import { proxyActivities } from "@temporalio/workflow";
import type { ConnectivityActivities } from "./contracts";
import { retryPolicy } from "./policies";

const { echo } = proxyActivities<ConnectivityActivities>({
  startToCloseTimeout: "30 seconds",
  retry: retryPolicy(3),
});

/** A trivial workflow that proves the client, server and worker are connected. */
export async function connectivityCheck(message: string): Promise<string> {
  return echo(message);
}
