import { ScheduleAlreadyRunning, ScheduleNotFoundError, ScheduleOverlapPolicy, type Client, type ScheduleOptions, type Workflow } from "@temporalio/client";
import { backupMaintenance, detectMissedBackups, purgeSessions, reconcileRecoveries, sweepNotificationDeliveries, syncInstanceStates, terminateStaleInstances, warnTerminatingInstances } from "../../workflows";
import type { Logger } from "../logger";

export interface ScheduleSpec<W extends Workflow = Workflow> {
  /** Schedule id; also the prefix of the workflow ids it starts. */
  id: string;
  /** The workflow it starts, by reference (its name is the workflow type). */
  workflow: W;
  everyMs: number;
  args?: Parameters<W>;
  /** Each run's workflowExecutionTimeout (default 6 hours). */
  executionTimeoutMs?: number;
}

/** A schedule whose arguments are checked against its workflow's signature. */
export function schedule<W extends Workflow>(spec: ScheduleSpec<W>): ScheduleSpec {
  return spec;
}

/** The product's recurring jobs (Temporal Schedules replace the seed's crons). */
export function productSchedules(opts: { prefix?: string; maintenanceIntervalMs: number; instanceStoppedTtlMs: number; missedBackupCheckIntervalMs?: number }): ScheduleSpec[] {
  const p = opts.prefix ?? "reclo";
  return [
    schedule({ id: `${p}-backup-maintenance`, workflow: backupMaintenance, everyMs: opts.maintenanceIntervalMs }),
    schedule({ id: `${p}-purge-sessions`, workflow: purgeSessions, everyMs: 86_400_000, args: [86_400_000] }),
    schedule({ id: `${p}-terminate-stale-instances`, workflow: terminateStaleInstances, everyMs: 86_400_000, args: [opts.instanceStoppedTtlMs] }),
    // Hourly, so a machine stopped at any hour is warned about 2 days (± 1 hour) before the clean-up above terminates it.
    // Notifications raised while Temporal was unreachable (their delivery could not start then).
    schedule({ id: `${p}-sweep-notification-deliveries`, workflow: sweepNotificationDeliveries, everyMs: 5 * 60_000, args: [60_000] }),
    schedule({ id: `${p}-warn-terminating-instances`, workflow: warnTerminatingInstances, everyMs: 3_600_000, args: [opts.instanceStoppedTtlMs, 2 * 86_400_000] }),
    // Machines stopped (or started) at the provider reach our records within this interval, so the
    // daily clean-up above sees every machine that has really been stopped for its whole TTL.
    schedule({ id: `${p}-sync-instance-states`, workflow: syncInstanceStates, everyMs: 15 * 60_000, args: [{ batchSize: 100 }] }),
    schedule({ id: `${p}-reconcile-recoveries`, workflow: reconcileRecoveries, everyMs: 15 * 60_000, args: [10 * 60_000] }),
    // Every source's latest slot plus its grace: a slot nobody backed up raises BACKUP_MISSED once.
    schedule({ id: `${p}-detect-missed-backups`, workflow: detectMissedBackups, everyMs: opts.missedBackupCheckIntervalMs ?? 5 * 60_000, executionTimeoutMs: 30 * 60_000 }),
  ];
}

/**
 * Creates each schedule, or updates it in place when it exists (idempotent: safe at every worker
 * start and from several workers). Overlapping runs are skipped, never queued.
 */
export async function ensureSchedules(client: Client, taskQueue: string, specs: ScheduleSpec[], logger?: Logger): Promise<void> {
  for (const s of specs) {
    const options: ScheduleOptions = {
      scheduleId: s.id,
      spec: { intervals: [{ every: s.everyMs }] },
      action: { type: "startWorkflow", workflowType: s.workflow, taskQueue, workflowId: s.id, args: s.args ?? [], workflowExecutionTimeout: s.executionTimeoutMs ?? "6 hours" },
      policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: "1 hour" },
    };
    try {
      await client.schedule.create(options);
      logger?.info({ schedule: s.id, everyMs: s.everyMs }, "schedule created");
    } catch (err) {
      if (!(err instanceof ScheduleAlreadyRunning)) throw err;
      await client.schedule.getHandle(s.id).update((prev) => ({ ...prev, spec: options.spec, action: options.action, policies: { ...prev.policies, ...options.policies } }));
      logger?.debug({ schedule: s.id }, "schedule updated");
    }
  }
}

/** Deletes a schedule; true when it existed (idempotent: a missing schedule is not an error). */
export async function removeSchedule(client: Client, id: string, logger?: Logger): Promise<boolean> {
  try {
    await client.schedule.getHandle(id).delete();
    logger?.info({ schedule: id }, "schedule deleted");
    return true;
  } catch (err) {
    if (err instanceof ScheduleNotFoundError) return false;
    throw err;
  }
}
