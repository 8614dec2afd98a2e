import { InterceptingCall, Metadata, status, type Interceptor } from "@grpc/grpc-js";
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

/**
 * The last gRPC interceptor (next to the channel): once the connection is closed, a call is ended
 * here as CANCELLED instead of reaching the closed channel. The client's retry interceptor
 * schedules its retries with timers that `Connection.close()` does not clear; a retry that fired
 * after the close made grpc-js throw "Channel has been shut down" from that timer, an uncaught
 * exception (seen at the end of the outages test, whose Temporal calls were retrying when the API
 * stopped). CANCELLED is not retried: the caller's promise rejects and nothing else happens.
 */
export function closedConnectionGuard(): { interceptor: Interceptor; close(): void } {
  let closed = false;
  const inert = {
    cancelWithStatus() {},
    getPeer: () => "closed",
    start() {},
    sendMessageWithContext() {},
    sendMessage() {},
    startRead() {},
    halfClose() {},
    getAuthContext: () => null,
  } as unknown as ConstructorParameters<typeof InterceptingCall>[0];
  const interceptor: Interceptor = (options, nextCall) => {
    if (!closed) return nextCall(options) as InterceptingCall;
    return new InterceptingCall(inert, {
      start(_metadata, listener) {
        setImmediate(() => listener.onReceiveStatus({ code: status.CANCELLED, details: "The Temporal connection is closed", metadata: new Metadata() }));
      },
      sendMessage() {},
      halfClose() {},
      cancel() {},
    });
  };
  return {
    interceptor,
    close: () => {
      closed = true;
    },
  };
}

export async function connectTemporal(config: Config["temporal"]): Promise<TemporalHandle> {
  const guard = closedConnectionGuard();
  const connection = await Connection.connect({
    ...temporalConnectionOptions(config),
    connectTimeout: "5s",
    // After an outage the channel reconnects within a second of the server's return (gRPC's
    // default backoff grows to two minutes).
    channelArgs: { "grpc.initial_reconnect_backoff_ms": 200, "grpc.max_reconnect_backoff_ms": 1000 },
    // The client's own retries of an unreachable server end within about a second (the default,
    // ten attempts up to 5 s apart, outlives every call deadline and kept a request 15–19 s).
    interceptors: [makeGrpcRetryInterceptor(defaultGrpcRetryOptions({ maxAttempts: 4 })), guard.interceptor],
  });
  const client = new Client({ connection, namespace: config.namespace });
  return {
    client,
    connection,
    async ping() {
      await connection.withDeadline(Date.now() + 2000, () => connection.workflowService.getSystemInfo({}));
    },
    close: () => {
      guard.close();
      return connection.close();
    },
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
    startNotificationDelivery: guard(port.startNotificationDelivery),
    // A schedule is a few calls (describe, then create or update): a longer deadline for all of them.
    scheduleDrill: guard(port.scheduleDrill, 3 * TEMPORAL_CALL_DEADLINE_MS),
    removeSchedule: guard(port.removeSchedule, 3 * TEMPORAL_CALL_DEADLINE_MS),
    cancel: guard(port.cancel),
    status: guard(port.status),
    pendingWork: guard(port.pendingWork),
    ...(port.runOf ? { runOf: guard(port.runOf.bind(port)) } : {}),
    // Runs a workflow through a worker: bounded by the workflow's own timeout, not by a call deadline.
    checkConnectivity: (message, workflowId) => availability.guard("TEMPORAL", () => port.checkConnectivity(message, workflowId)),
  };
}
