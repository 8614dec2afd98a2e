import { afterAll, beforeAll, describe, expect, it, inject } from "vitest";
import { eq } from "drizzle-orm";
import { startStack, signUp, type TestStack, type TestUser } from "../helpers/stack";
import { startWorker, type WorkerHandle } from "../../src/temporal/worker";
import { activitiesFor } from "../../src/worker-activities";
import { backups, instances, recoveries, sessions } from "../../src/db/schema";
import type { ReconcileResult } from "../../workflows/contracts";

describe("scheduled jobs (Temporal workflows the schedules start)", () => {
  let stack: TestStack;
  let worker: WorkerHandle;
  let user: TestUser;
  let backupId: string;
  const taskQueue = `test-jobs-${process.pid}-${Date.now()}`;
  let n = 0;
  const run = <T>(workflowType: string, args: unknown[]) => stack.rt.temporal.client.workflow.execute(workflowType, { taskQueue, workflowId: `${taskQueue}-${++n}`, args }) as Promise<T>;
  const hourAgo = () => new Date(Date.now() - 3_600_000);

  beforeAll(async () => {
    stack = await startStack({ TEMPORAL_TASK_QUEUE: taskQueue });
    worker = await startWorker({ config: stack.config.temporal, activities: activitiesFor(stack.rt), logger: stack.rt.logger, workflowBundle: { codePath: inject("workflowBundlePath") } });
    user = await signUp(stack);
    const b = await stack.rt.services.backups.create(user.id, { sourceName: "jobs", imageSize: 1 << 20, kind: "FULL" as never });
    await stack.rt.database.db.update(backups).set({ status: "COMPLETED" }).where(eq(backups.id, b.id));
    backupId = b.id;
  });
  afterAll(async () => {
    await worker.shutdown();
    await stack.stop();
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
      const again = await run<ReconcileResult>("reconcileRecoveries", [60_000]);
      expect((await get(lost.id)).state).toBe("FAILED");
      expect(again.markedLost).toBe(0);
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
