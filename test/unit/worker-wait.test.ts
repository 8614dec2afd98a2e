import { describe, expect, it } from "vitest";
import { workerWait } from "../../src/recoveries/worker-wait";
import type { PendingActivity } from "../../src/temporal/workflow-port";

/** "Waiting for a worker" from what Temporal says a running workflow waits on. */
describe("workerWait", () => {
  const now = new Date("2026-11-30T12:00:00Z");
  const ago = (ms: number) => new Date(now.getTime() - ms);
  const act = (a: Partial<PendingActivity>): PendingActivity => ({ activityType: "startImport", state: "STARTED", attempt: 1, ...a });

  it("a step heartbeating within the last seconds, a timer or nothing pending: a worker is on it", () => {
    expect(workerWait(null, now)).toBeNull();
    expect(workerWait({ activities: [] }, now)).toBeNull();
    expect(workerWait({ activities: [act({ lastHeartbeatAt: ago(1500), lastStartedAt: ago(60_000) })] }, now)).toBeNull();
    // A retry in its backoff (due in the future) is not waiting for a worker yet.
    expect(workerWait({ activities: [act({ state: "SCHEDULED", attempt: 2, scheduledAt: new Date(now.getTime() + 5000) })] }, now)).toBeNull();
  });

  it("heartbeats that stopped: waiting since the last one, saying which step and attempt", () => {
    const w = workerWait({ activities: [act({ lastHeartbeatAt: ago(6000), lastStartedAt: ago(60_000), attempt: 2 })] }, now);
    expect(w).toEqual({ since: ago(6000), observed: "no heartbeat from startImport (attempt 2) for 6 s" });
  });

  it("a step or a workflow task no worker takes; the earliest sign counts", () => {
    const w = workerWait({ activities: [act({ state: "SCHEDULED", attempt: 3, scheduledAt: ago(5000), lastFailure: "activity Heartbeat timeout" })], workflowTaskScheduledAt: ago(9000) }, now);
    expect(w).toEqual({ since: ago(9000), observed: "the recovery's next decision not taken by any worker for 9 s" });
    expect(workerWait({ activities: [act({ state: "SCHEDULED", attempt: 3, scheduledAt: ago(5000), lastFailure: "activity Heartbeat timeout" })] }, now)?.observed).toBe(
      "startImport (attempt 3) not taken by any worker for 5 s (last attempt: activity Heartbeat timeout)",
    );
  });

  it("a due retry nobody takes is waiting since the last heartbeat of the attempt before", () => {
    const w = workerWait({ activities: [act({ state: "SCHEDULED", attempt: 2, scheduledAt: ago(1500), lastHeartbeatAt: ago(5000), lastFailure: "activity Heartbeat timeout" })] }, now);
    expect(w).toEqual({ since: ago(5000), observed: "startImport (attempt 2) not taken by any worker for 2 s (last attempt: activity Heartbeat timeout)" });
    expect(workerWait({ activities: [act({ state: "SCHEDULED", attempt: 2, scheduledAt: ago(500), lastHeartbeatAt: ago(4000) })] }, now)).toBeNull();
  });

  it("a step that never heartbeats is given longer before its silence counts", () => {
    expect(workerWait({ activities: [act({ activityType: "beginRecovery", lastStartedAt: ago(6000) })] }, now)).toBeNull();
    expect(workerWait({ activities: [act({ activityType: "beginRecovery", lastStartedAt: ago(12_000) })] }, now)?.observed).toBe("beginRecovery (attempt 1) started 12 s ago and has not answered");
  });
});
