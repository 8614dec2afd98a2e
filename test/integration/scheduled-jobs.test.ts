import { afterAll, beforeAll, describe, expect, it, inject } from "vitest";
import { eq } from "drizzle-orm";
import { startStack, signUp, type TestStack, type TestUser } from "../helpers/stack";
import { startWorker, type WorkerHandle } from "../../src/temporal/worker";
import { activitiesFor } from "../../src/worker-activities";
import { backups, instances, recoveries, sessions } from "../../src/db/schema";
import { DescribeInstancesCommand, EC2Client, EC2ServiceException, TerminateInstancesCommand } from "@aws-sdk/client-ec2";
import { mockClient, type AwsClientStub } from "aws-sdk-client-mock";
import type { InstanceSyncResult, ReconcileResult } from "../../workflows/contracts";

describe("scheduled jobs (Temporal workflows the schedules start)", () => {
  let stack: TestStack;
  let worker: WorkerHandle;
  let user: TestUser;
  let backupId: string;
  /** EC2 (mocked at the SDK edge): instance id → state, as the console and AWS leave them. */
  let ec2: AwsClientStub<EC2Client>;
  const ec2States = new Map<string, string>();
  const taskQueue = `test-jobs-${process.pid}-${Date.now()}`;
  let n = 0;
  const run = <T>(workflowType: string, args: unknown[]) => stack.rt.temporal.client.workflow.execute(workflowType, { taskQueue, workflowId: `${taskQueue}-${++n}`, args }) as Promise<T>;
  const hourAgo = () => new Date(Date.now() - 3_600_000);

  beforeAll(async () => {
    ec2 = mockClient(EC2Client);
    ec2.on(DescribeInstancesCommand).callsFake((input: { InstanceIds?: string[]; Filters?: { Name: string; Values: string[] }[]; NextToken?: string }) => {
      const view = (id: string) => ({ InstanceId: id, State: { Name: ec2States.get(id) } });
      if (input.InstanceIds) {
        const missing = input.InstanceIds.find((id) => !ec2States.has(id));
        if (missing) throw Object.assign(new EC2ServiceException({ name: "InvalidInstanceID.NotFound", message: `The instance ID '${missing}' does not exist`, $fault: "client", $metadata: { httpStatusCode: 400 } }), { Code: "InvalidInstanceID.NotFound" });
        return { Reservations: [{ Instances: input.InstanceIds.map(view) }] };
      }
      const ids = (input.Filters ?? []).find((f) => f.Name === "instance-id")?.Values ?? [];
      // One instance per page: the sync must follow NextToken.
      const known = ids.filter((id) => ec2States.has(id));
      const at = Number(input.NextToken ?? 0);
      return { Reservations: known.slice(at, at + 1).map((id) => ({ Instances: [view(id)] })), ...(at + 1 < known.length ? { NextToken: String(at + 1) } : {}) };
    });
    ec2.on(TerminateInstancesCommand).callsFake((input: { InstanceIds: string[] }) => {
      for (const id of input.InstanceIds) ec2States.set(id, "terminated");
      return { TerminatingInstances: input.InstanceIds.map((InstanceId) => ({ InstanceId })) };
    });
    stack = await startStack({ TEMPORAL_TASK_QUEUE: taskQueue, AWS_RECOVERY_ENABLED: "true" });
    worker = await startWorker({ config: stack.config.temporal, activities: activitiesFor(stack.rt), logger: stack.rt.logger, workflowBundle: { codePath: inject("workflowBundlePath") } });
    user = await signUp(stack);
    const b = await stack.rt.services.backups.create(user.id, { sourceName: "jobs", imageSize: 1 << 20, kind: "FULL" as never });
    await stack.rt.database.db.update(backups).set({ status: "COMPLETED" }).where(eq(backups.id, b.id));
    backupId = b.id;
  });
  afterAll(async () => {
    await worker?.shutdown();
    await stack?.stop();
    ec2?.restore();
  });

  it("reconcileRecoveries marks active recoveries whose workflow is gone as FAILED, leaves running ones, and is idempotent", async () => {
    const lost = await stack.rt.services.recoveries.create(user.id, { backupId, target: "LOCAL" });
    const alive = await stack.rt.services.recoveries.create(user.id, { backupId, target: "LOCAL" });
    const fresh = await stack.rt.services.recoveries.create(user.id, { backupId, target: "LOCAL" });
    await stack.rt.database.db.update(recoveries).set({ state: "IMPORTING", updatedAt: hourAgo() }).where(eq(recoveries.id, lost.id));
    await stack.rt.database.db.update(recoveries).set({ state: "IMPORTING", updatedAt: hourAgo() }).where(eq(recoveries.id, alive.id));
    // A workflow that is running (no worker polls its queue) stands for a live recovery.
    const handle = await stack.rt.temporal.client.workflow.start("recoveryWorkflow", { taskQueue: `${taskQueue}-nobody`, workflowId: alive.workflowId, args: [{}] });
    try {
      const result = await run<ReconcileResult>("reconcileRecoveries", [60_000]);
      expect(result.markedLost).toBeGreaterThanOrEqual(1);
      const get = (id: string) => stack.rt.services.recoveries.get(user.id, id);
      expect(await get(lost.id)).toMatchObject({ state: "FAILED", failureReason: "WORKFLOW_LOST" });
      expect((await get(alive.id)).state).toBe("IMPORTING");
      expect((await get(fresh.id)).state).toBe("PENDING"); // recently updated: not a candidate yet
      const events = await stack.rt.services.recoveries.events(user.id, lost.id);
      expect(events.at(-1)).toMatchObject({ status: "FAILED", message: expect.stringContaining("no longer running") });
      // Idempotent for this recovery: a second run leaves it as it was. (The run's count is not
      // asserted: the reconciler sweeps the whole database, and another file's recovery may have
      // crossed the minute in between.)
      await run<ReconcileResult>("reconcileRecoveries", [60_000]);
      expect(await get(lost.id)).toMatchObject({ state: "FAILED", failureReason: "WORKFLOW_LOST" });
      expect(await stack.rt.services.recoveries.events(user.id, lost.id)).toHaveLength(events.length);
      expect((await get(alive.id)).state).toBe("IMPORTING");
    } finally {
      await handle.terminate();
    }
  });

  it("terminateStaleInstances terminates instances stopped longer than the limit, and only those", async () => {
    const old = await stack.rt.services.instances.record(user.id, { recoveryId: null, provider: "LOCAL", providerId: "vm-gone-long-ago", name: "old", state: "STOPPED" });
    const recent = await stack.rt.services.instances.record(user.id, { recoveryId: null, provider: "LOCAL", providerId: "vm-recent", name: "recent", state: "STOPPED" });
    await stack.rt.database.db.update(instances).set({ lastStoppedAt: new Date(Date.now() - 15 * 86_400_000) }).where(eq(instances.id, old.id));
    await stack.rt.database.db.update(instances).set({ lastStoppedAt: new Date(Date.now() - 86_400_000) }).where(eq(instances.id, recent.id));
    const terminated = await run<string[]>("terminateStaleInstances", [14 * 86_400_000]);
    expect(terminated).toContain(old.id);
    expect(terminated).not.toContain(recent.id);
    expect((await stack.rt.services.instances.get(user.id, old.id)).state).toBe("TERMINATED");
    expect((await stack.rt.services.instances.get(user.id, recent.id)).state).toBe("STOPPED");
    expect(await run<string[]>("terminateStaleInstances", [14 * 86_400_000])).not.toContain(old.id);
  });

  it("syncInstanceStates brings machines stopped or started at AWS into our records in batches, so the stopped-machine clean-up starts without anyone opening them", async () => {
    const u = await signUp(stack);
    const aws = (providerId: string, state: "RUNNING" | "STOPPED", name: string) => stack.rt.services.instances.record(u.id, { recoveryId: null, provider: "AWS", providerId, name, state });
    const stoppedAtConsole = await aws("i-0sync00000000001", "RUNNING", "stopped-from-the-console");
    const running = await aws("i-0sync00000000002", "RUNNING", "still-running");
    const startedAtConsole = await aws("i-0sync00000000003", "STOPPED", "started-from-the-console");
    const gone = await aws("i-0sync00000000004", "RUNNING", "gone");
    const stoppedByAws = await aws("i-0sync00000000005", "RUNNING", "stopped-by-aws");
    ec2States.set(stoppedAtConsole.providerId, "stopped");
    ec2States.set(running.providerId, "running");
    ec2States.set(startedAtConsole.providerId, "running");
    ec2States.set(stoppedByAws.providerId, "stopped");
    // i-0sync…4 is unknown to EC2 (terminated long ago): lost.
    const before = Date.now();

    const result = await run<InstanceSyncResult>("syncInstanceStates", [{ batchSize: 2, userIds: [u.id] }]);

    expect(result).toMatchObject({ checked: 5, changed: 4, skipped: 0 });
    expect(result.batches).toBeGreaterThanOrEqual(3); // 5 machines, 2 a batch
    expect([...result.stopped].sort()).toEqual([stoppedAtConsole.id, stoppedByAws.id].sort());
    const get = (id: string) => stack.rt.services.instances.get(u.id, id);
    const stopped = await get(stoppedAtConsole.id);
    expect(stopped.state).toBe("STOPPED");
    expect(stopped.lastStoppedAt!.getTime()).toBeGreaterThanOrEqual(before - 1000);
    expect((await get(stoppedByAws.id)).state).toBe("STOPPED");
    expect((await get(running.id)).state).toBe("RUNNING");
    expect((await get(startedAtConsole.id)).state).toBe("RUNNING");
    expect((await get(gone.id)).state).toBe("LOST");
    // Read in batches by filter (never by InstanceIds, which one unknown id would fail), following NextToken.
    const reads = ec2.commandCalls(DescribeInstancesCommand).map((c) => c.args[0].input);
    const syncReads = reads.filter((r) => r.Filters?.[0]?.Name === "instance-id");
    expect(syncReads.length).toBeGreaterThanOrEqual(3);
    expect(syncReads.every((r) => !r.InstanceIds && r.Filters![0]!.Values!.length <= 2)).toBe(true);
    expect(syncReads.some((r) => r.NextToken)).toBe(true);

    // A second run changes nothing: the stop time stays the first sync's.
    const again = await run<InstanceSyncResult>("syncInstanceStates", [{ batchSize: 2, userIds: [u.id] }]);
    expect(again.changed).toBe(0);
    expect((await get(stoppedAtConsole.id)).lastStoppedAt).toEqual(stopped.lastStoppedAt);

    // Fourteen days later, the clean-up terminates the machine the sync recorded as stopped — and
    // not one our records still call STOPPED that was started again at AWS since.
    const longAgo = new Date(Date.now() - 15 * 86_400_000);
    await stack.rt.database.db.update(instances).set({ lastStoppedAt: longAgo }).where(eq(instances.id, stoppedAtConsole.id));
    const restarted = await aws("i-0sync00000000006", "STOPPED", "restarted-after-the-last-sync");
    await stack.rt.database.db.update(instances).set({ lastStoppedAt: longAgo }).where(eq(instances.id, restarted.id));
    ec2States.set(restarted.providerId, "running");
    const terminated = await run<string[]>("terminateStaleInstances", [14 * 86_400_000]);
    expect(terminated).toContain(stoppedAtConsole.id);
    expect(terminated).not.toContain(restarted.id);
    expect(ec2States.get(stoppedAtConsole.providerId)).toBe("terminated");
    expect(ec2States.get(restarted.providerId)).toBe("running");
    expect((await get(stoppedAtConsole.id)).state).toBe("TERMINATED");
    expect((await get(restarted.id)).state).toBe("STOPPED");
  });

  it("purgeSessions deletes sessions expired or revoked more than a day ago", async () => {
    const u = await signUp(stack);
    const [row] = await stack.rt.database.db.select().from(sessions).where(eq(sessions.userId, u.id));
    await stack.rt.database.db.update(sessions).set({ expiresAt: new Date(Date.now() - 2 * 86_400_000) }).where(eq(sessions.id, row!.id));
    const live = await signUp(stack);
    const purged = await run<number>("purgeSessions", [86_400_000]);
    expect(purged).toBeGreaterThanOrEqual(1);
    expect(await stack.rt.database.db.select().from(sessions).where(eq(sessions.userId, u.id))).toEqual([]);
    expect(await stack.rt.database.db.select().from(sessions).where(eq(sessions.userId, live.id))).toHaveLength(1);
  });
});
