import { Client, Connection, defaultGrpcRetryOptions, makeGrpcRetryInterceptor } from "@temporalio/client";
import type { Config } from "../config";
import type { Availability } from "../shared/availability";
import { temporalConnectionOptions } from "./connection";
import type { WorkflowPort } from "./workflow-port";

export interface TemporalHandle {
  client: Client;
  connection: Connection;
  /** Throws unless the server answers. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

/** The longest any one call to Temporal may take from the API (the client's own retries included). */
export const TEMPORAL_CALL_DEADLINE_MS = 3000;

export async function connectTemporal(config: Config["temporal"]): Promise<TemporalHandle> {
  const connection = await Connection.connect({
    ...temporalConnectionOptions(config),
    connectTimeout: "5s",
    // After an outage the channel reconnects within a second of the server's return (gRPC's
    // default backoff grows to two minutes).
    channelArgs: { "grpc.initial_reconnect_backoff_ms": 200, "grpc.max_reconnect_backoff_ms": 1000 },
    // The client's own retries of an unreachable server end within about a second (the default,
    // ten attempts up to 5 s apart, outlives every call deadline and kept a request 15–19 s).
    interceptors: [makeGrpcRetryInterceptor(defaultGrpcRetryOptions({ maxAttempts: 4 }))],
  });
  const client = new Client({ connection, namespace: config.namespace });
  return {
    client,
    connection,
    async ping() {
      await connection.withDeadline(Date.now() + 2000, () => connection.workflowService.getSystemInfo({}));
    },
    close: () => connection.close(),
  };
}

/**
 * The workflow port behind Temporal's breaker: every call fails at once with UNAVAILABLE (TEMPORAL)
 * while Temporal is known down, has a deadline, and a call that cannot reach Temporal becomes
 * UNAVAILABLE. `assertAvailable` lets a service refuse before it records anything.
 */
export function guardedWorkflows(port: WorkflowPort, connection: Pick<Connection, "withDeadline">, availability: Availability): WorkflowPort {
  const guard =
    <A extends unknown[], R>(fn: (...args: A) => Promise<R>, deadlineMs = TEMPORAL_CALL_DEADLINE_MS) =>
    (...args: A): Promise<R> =>
      availability.guard("TEMPORAL", () => connection.withDeadline(Date.now() + deadlineMs, () => fn(...args)));
  return {
    assertAvailable: () => availability.assertUp("TEMPORAL"),
    startRecovery: guard(port.startRecovery),
    startVerification: guard(port.startVerification),
    startDrill: guard(port.startDrill),
    // A schedule is a few calls (describe, then create or update): a longer deadline for all of them.
    scheduleDrill: guard(port.scheduleDrill, 3 * TEMPORAL_CALL_DEADLINE_MS),
    removeSchedule: guard(port.removeSchedule, 3 * TEMPORAL_CALL_DEADLINE_MS),
    cancel: guard(port.cancel),
    status: guard(port.status),
    pendingWork: guard(port.pendingWork),
    // Runs a workflow through a worker: bounded by the workflow's own timeout, not by a call deadline.
    checkConnectivity: (message, workflowId) => availability.guard("TEMPORAL", () => port.checkConnectivity(message, workflowId)),
  };
}
