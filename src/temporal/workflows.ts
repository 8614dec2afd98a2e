import { WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError, type Client } from "@temporalio/client";
import { connectivityCheck, deliverNotification, drillWorkflow, recoveryWorkflow, verifyBackupWorkflow } from "../../workflows";
import type { Logger } from "../logger";
import { ensureSchedules, removeSchedule, schedule } from "./schedules";
import type { PendingActivity, RunOptions, StartOutcome, WorkflowPort } from "./workflow-port";

/**
 * The Temporal adapter of the workflow port: every workflow is started by reference
 * (`client.workflow.start(recoveryWorkflow, …)`), so its arguments are checked against the
 * workflow function's own signature, on one task queue.
 */
export function temporalWorkflows(client: Client, taskQueue: string, logger?: Logger): WorkflowPort {
  const on = (run: RunOptions) => ({ taskQueue, workflowId: run.workflowId, workflowExecutionTimeout: run.executionTimeoutMs });
  return {
    startRecovery: (input, run) => started(client.workflow.start(recoveryWorkflow, { ...on(run), args: [input] })),
    startVerification: (input, run) => started(client.workflow.start(verifyBackupWorkflow, { ...on(run), args: [input] })),
    startDrill: (input, run) => started(client.workflow.start(drillWorkflow, { ...on(run), args: [input] })),
    startNotificationDelivery: (input, run) => started(client.workflow.start(deliverNotification, { ...on(run), args: [input] })),
    scheduleDrill: (scheduleId, everyMs, input, executionTimeoutMs) =>
      ensureSchedules(client, taskQueue, [schedule({ id: scheduleId, workflow: drillWorkflow, everyMs, args: [input], executionTimeoutMs })], logger),
    removeSchedule: (scheduleId) => removeSchedule(client, scheduleId, logger),
    async cancel(workflowId) {
      try {
        await client.workflow.getHandle(workflowId).cancel();
        return "CANCEL_REQUESTED";
      } catch (err) {
        if (err instanceof WorkflowNotFoundError) return "NOT_FOUND";
        throw err;
      }
    },
    async status(workflowId) {
      try {
        return (await client.workflow.getHandle(workflowId).describe()).status.name;
      } catch (err) {
        if (err instanceof WorkflowNotFoundError) return "NOT_FOUND";
        throw err;
      }
    },
    async runOf(workflowId) {
      try {
        return { runId: (await client.workflow.getHandle(workflowId).describe()).runId };
      } catch (err) {
        if (err instanceof WorkflowNotFoundError) return null;
        throw err;
      }
    },
    async pendingWork(workflowId) {
      let d;
      try {
        d = await client.workflow.getHandle(workflowId).describe();
      } catch (err) {
        if (err instanceof WorkflowNotFoundError) return null;
        throw err;
      }
      if (d.status.name !== "RUNNING") return null;
      const raw = d.raw;
      return {
        activities: (raw.pendingActivities ?? []).map((a) => ({
          activityType: a.activityType?.name ?? "",
          state: activityState(a.state),
          attempt: a.attempt ?? 1,
          lastHeartbeatAt: when(a.lastHeartbeatTime),
          lastStartedAt: when(a.lastStartedTime),
          scheduledAt: when(a.scheduledTime),
          lastFailure: a.lastFailure?.message ?? undefined,
        })),
        workflowTaskScheduledAt: raw.pendingWorkflowTask && Number(raw.pendingWorkflowTask.state) === 1 ? when(raw.pendingWorkflowTask.scheduledTime) : undefined,
      };
    },
    checkConnectivity: (message, workflowId) => client.workflow.execute(connectivityCheck, { taskQueue, workflowId, args: [message], workflowExecutionTimeout: "1 minute" }),
  };
}

/** A protobuf timestamp as a Date. */
function when(t: { seconds?: { toNumber(): number } | number | null; nanos?: number | null } | null | undefined): Date | undefined {
  if (!t?.seconds) return undefined;
  const seconds = typeof t.seconds === "number" ? t.seconds : t.seconds.toNumber();
  return new Date(seconds * 1000 + Math.floor((t.nanos ?? 0) / 1e6));
}

/** Temporal's PendingActivityState (1 scheduled, 2 started, 3 cancel requested, 4 paused …). */
function activityState(s: unknown): PendingActivity["state"] {
  switch (Number(s)) {
    case 1:
      return "SCHEDULED";
    case 2:
      return "STARTED";
    case 3:
      return "CANCEL_REQUESTED";
    case 4:
    case 5:
      return "PAUSED";
    default:
      return "UNKNOWN";
  }
}

/** A start that finds its workflow id already started is not an error: the run exists. */
async function started(start: Promise<unknown>): Promise<StartOutcome> {
  try {
    await start;
    return "STARTED";
  } catch (err) {
    if (err instanceof WorkflowExecutionAlreadyStartedError) return "ALREADY_STARTED";
    throw err;
  }
}
