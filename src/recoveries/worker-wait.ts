import type { PendingWork } from "../temporal/workflow-port";

/** A recovery no worker is working on right now: since when, and what was seen. */
export interface WorkerWait {
  since: Date;
  observed: string;
}

/**
 * Running steps heartbeat every second and the worker sends each heartbeat within a second
 * (src/temporal/heartbeat.ts, worker.ts): a heartbeat older than this means the worker stopped.
 */
export const HEARTBEAT_SILENCE_MS = 4000;
/** A step that does not heartbeat (a database write) runs for well under this. */
export const QUICK_STEP_SILENCE_MS = 10_000;
/** A due retry of a step left this long untaken (workers poll all the time: none is there). */
export const RETRY_UNCLAIMED_MS = 1000;
/** Work (an activity or a workflow task) left this long for a worker to take means none is taking it. */
export const UNCLAIMED_MS = 4000;

const seconds = (ms: number) => `${Math.round(ms / 1000)} s`;

/**
 * Whether a running workflow is waiting for a worker, from what Temporal says it waits on: a
 * started step whose heartbeats stopped (its worker died or hangs), or a step or workflow task no
 * worker has taken. Null when a worker is on it (or the workflow waits on a timer only).
 */
export function workerWait(work: PendingWork | null, now = new Date()): WorkerWait | null {
  if (!work) return null;
  const seen: WorkerWait[] = [];
  const t = now.getTime();
  for (const a of work.activities) {
    const step = `${a.activityType} (attempt ${a.attempt})`;
    if (a.state === "STARTED" || a.state === "CANCEL_REQUESTED") {
      const last = a.lastHeartbeatAt ?? a.lastStartedAt;
      if (!last) continue;
      const limit = a.lastHeartbeatAt ? HEARTBEAT_SILENCE_MS : QUICK_STEP_SILENCE_MS;
      if (t - last.getTime() > limit) {
        const what = a.lastHeartbeatAt ? `no heartbeat from ${step} for ${seconds(t - last.getTime())}` : `${step} started ${seconds(t - last.getTime())} ago and has not answered`;
        seen.push({ since: last, observed: a.state === "CANCEL_REQUESTED" ? `${what}; a cancel is waiting for it` : what });
      }
    } else if (a.state === "SCHEDULED" && a.scheduledAt) {
      // A running worker takes a due step within milliseconds. A retry (its worker died: the
      // heartbeat timed out) that is due and not taken is waiting since the last sign of the
      // worker; a first attempt gets a little longer (the worker may be starting up).
      const retry = a.attempt > 1 || Boolean(a.lastHeartbeatAt ?? a.lastStartedAt);
      const overdue = t - a.scheduledAt.getTime();
      if (overdue > (retry ? RETRY_UNCLAIMED_MS : UNCLAIMED_MS)) {
        const last = a.lastHeartbeatAt ?? a.lastStartedAt;
        seen.push({
          since: last && last < a.scheduledAt ? last : a.scheduledAt,
          observed: `${step} not taken by any worker for ${seconds(overdue)}${a.lastFailure ? ` (last attempt: ${a.lastFailure.slice(0, 200)})` : ""}`,
        });
      }
    }
  }
  if (work.workflowTaskScheduledAt && t - work.workflowTaskScheduledAt.getTime() > UNCLAIMED_MS) {
    seen.push({ since: work.workflowTaskScheduledAt, observed: `the recovery's next decision not taken by any worker for ${seconds(t - work.workflowTaskScheduledAt.getTime())}` });
  }
  if (!seen.length) return null;
  return seen.reduce((a, b) => (b.since < a.since ? b : a));
}
