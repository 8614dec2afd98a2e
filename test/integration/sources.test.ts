import { afterAll, beforeAll, describe, expect, it, inject } from "vitest";
import { and, eq } from "drizzle-orm";
import { startStack, signUp, uniqueName, type TestStack, type TestUser } from "../helpers/stack";
import { startWorker, type WorkerHandle } from "../../src/temporal/worker";
import { activitiesFor } from "../../src/worker-activities";
import { ensureSchedules, productSchedules } from "../../src/temporal/schedules";
import { backups, notifications, sources, type NotificationRow } from "../../src/db/schema";
import { BackupPlanDocument, SetBackupScheduleDocument, SourceDocument, SourcesDocument } from "../../src/client/generated/graphql";
import type { MissedBackupResult } from "../../workflows/contracts";

describe("sources: schedules on the server, the one backup plan, missed-backup detection", () => {
  let stack: TestStack;
  let worker: WorkerHandle;
  let alice: TestUser;
  let mallory: TestUser;
  const taskQueue = `test-sources-${process.pid}-${Date.now()}`;
  let n = 0;
  const run = <T>(workflowType: string, args: unknown[] = []) => stack.rt.temporal.client.workflow.execute(workflowType, { taskQueue, workflowId: `${taskQueue}-${++n}`, args }) as Promise<T>;
  const raised: NotificationRow[] = [];

  beforeAll(async () => {
    stack = await startStack({ TEMPORAL_TASK_QUEUE: taskQueue });
    worker = await startWorker({ config: stack.config.temporal, activities: activitiesFor(stack.rt), logger: stack.rt.logger, workflowBundle: { codePath: inject("workflowBundlePath") } });
    stack.rt.services.notifications.onRaised((row) => void raised.push(row));
    alice = await signUp(stack);
    mallory = await signUp(stack);
  });
  afterAll(async () => {
    await worker?.shutdown();
    await stack?.stop();
  });

  const completed = async (userId: string, sourceName: string, kind: "FULL" | "INCREMENTAL", parentBackupId?: string) => {
    const b = await stack.rt.services.backups.create(userId, { sourceName, imageSize: 1 << 20, kind: kind as never, parentBackupId });
    await stack.rt.database.db.update(backups).set({ status: "COMPLETED", completedAt: new Date() }).where(eq(backups.id, b.id));
    return b;
  };

  it("setBackupSchedule validates weekday, time, zone and grace with typed errors", async () => {
    const good = { sourceName: uniqueName("v"), fullEvery: "sun", incrementalAt: "02:00", timezone: "Europe/Berlin" };
    const cases: [Record<string, unknown>, string][] = [
      [{ fullEvery: "someday" }, "fullEvery"],
      [{ fullEvery: "su" }, "fullEvery"],
      [{ incrementalAt: "24:00" }, "incrementalAt"],
      [{ incrementalAt: "2pm" }, "incrementalAt"],
      [{ timezone: "Mars/Olympus_Mons" }, "timezone"],
      [{ timezone: "+01:00" }, "timezone"],
      [{ graceMinutes: 0 }, "graceMinutes"],
      [{ graceMinutes: 5000 }, "graceMinutes"],
      [{ sourceName: "" }, "sourceName"],
    ];
    for (const [change, field] of cases) {
      const res = await alice.client.execute(SetBackupScheduleDocument, { input: { ...good, ...change } as never });
      expect(res.body.errors?.[0]?.extensions, JSON.stringify(change)).toMatchObject({ code: "BAD_USER_INPUT", field });
    }
    // Nothing was created by the refused calls.
    expect((await alice.client.request(SourceDocument, { name: good.sourceName })).source).toBeNull();
    const { setBackupSchedule: s } = await alice.client.request(SetBackupScheduleDocument, { input: { ...good, fullEvery: "WEDNESDAY", incrementalAt: "3:05", timezone: "europe/berlin", graceMinutes: 90 } });
    expect(s.schedule).toMatchObject({ fullEvery: "WEDNESDAY", incrementalAt: "03:05", timezone: "Europe/Berlin", graceMinutes: 90 });
    expect(s).toMatchObject({ name: good.sourceName, lastSeenAt: null, lastBackup: null, missedSince: null, nextBackup: { kind: "FULL", reason: "NO_COMPLETED_BACKUP" } });
  });

  it("a source is the owner's alone: another user neither sees nor changes it", async () => {
    const name = uniqueName("office");
    await completed(alice.id, name, "FULL");
    // The first backup created the source with the default schedule.
    const { source } = await alice.client.request(SourceDocument, { name });
    expect(source).toMatchObject({ name, schedule: { fullEvery: "SUNDAY", incrementalAt: "02:00", timezone: "UTC", graceMinutes: 60 }, lastBackup: { kind: "FULL", status: "COMPLETED" } });
    expect((await mallory.client.request(SourceDocument, { name })).source).toBeNull();
    expect((await mallory.client.request(SourcesDocument, {})).sources.edges.map((e) => e.node.name)).not.toContain(name);
    expect((await alice.client.request(SourcesDocument, {})).sources.edges.map((e) => e.node.name)).toContain(name);
    // Mallory's call with the same name makes a source of hers; Alice's is untouched, and Mallory sees none of Alice's backups.
    const { setBackupSchedule: hers } = await mallory.client.request(SetBackupScheduleDocument, { input: { sourceName: name, fullEvery: "fri", incrementalAt: "23:00", timezone: "Asia/Tokyo" } });
    expect(hers).toMatchObject({ lastBackup: null, nextBackup: { kind: "FULL", reason: "NO_COMPLETED_BACKUP" } });
    expect((await alice.client.request(SourceDocument, { name })).source?.schedule).toMatchObject({ fullEvery: "SUNDAY", timezone: "UTC" });
    const rows = await stack.rt.database.db.select().from(sources).where(eq(sources.name, name));
    expect(rows.map((r) => r.userId).sort()).toEqual([alice.id, mallory.id].sort());
    // A source known only from backups taken before sources existed is listed (and recorded) on the next listing, for its owner only.
    await stack.rt.database.db.delete(sources).where(and(eq(sources.userId, alice.id), eq(sources.name, name)));
    expect((await mallory.client.request(SourcesDocument, {})).sources.edges.filter((e) => e.node.name === name)).toHaveLength(1);
    const listed = (await alice.client.request(SourcesDocument, {})).sources.edges.find((e) => e.node.name === name)?.node;
    expect(listed).toMatchObject({ schedule: { fullEvery: "SUNDAY", timezone: "UTC" }, lastBackup: { kind: "FULL" } });
  });

  it("backupPlan: FULL with nothing to build on, INCREMENTAL on the latest, FULL again when the chain breaks or a FULL slot passed", async () => {
    const name = uniqueName("plan");
    const plan = async (at?: Date) => (await alice.client.request(BackupPlanDocument, { sourceName: name, at: at?.toISOString() ?? null })).backupPlan;
    expect(await plan()).toMatchObject({ kind: "FULL", reason: "NO_COMPLETED_BACKUP", parentBackupId: null });
    const full = await completed(alice.id, name, "FULL");
    expect(await plan()).toMatchObject({ kind: "INCREMENTAL", parentBackupId: full.id });
    const i1 = await completed(alice.id, name, "INCREMENTAL", full.id);
    const i2 = await completed(alice.id, name, "INCREMENTAL", i1.id);
    expect(await plan()).toMatchObject({ kind: "INCREMENTAL", parentBackupId: i2.id });
    // A week on, the weekly FULL slot has passed with no FULL since.
    expect(await plan(new Date(Date.now() + 7 * 86_400_000))).toMatchObject({ kind: "FULL", reason: "NO_FULL_SINCE_FULL_SLOT" });
    // A link of the chain deleted: FULL.
    await stack.rt.database.db.update(backups).set({ status: "DELETED", deletedAt: new Date() }).where(eq(backups.id, i1.id));
    expect(await plan()).toMatchObject({ kind: "FULL", reason: "CHAIN_BROKEN" });
    // Source.nextBackup uses the same rule for its next slot.
    expect((await alice.client.request(SourceDocument, { name })).source?.nextBackup).toMatchObject({ kind: "FULL", reason: "CHAIN_BROKEN" });
  });

  it("a missed slot raises exactly one BACKUP_MISSED, however often (and however concurrently) the detector runs", async () => {
    const name = uniqueName("missed");
    const before = await completed(alice.id, name, "FULL");
    // Daily at 00:00 UTC, grace 1 min; the schedule and the last backup date from three days ago.
    await alice.client.request(SetBackupScheduleDocument, { input: { sourceName: name, fullEvery: "sun", incrementalAt: "00:00", timezone: "UTC", graceMinutes: 1 } });
    const threeDaysAgo = new Date(Date.now() - 3 * 86_400_000);
    await stack.rt.database.db.update(backups).set({ createdAt: threeDaysAgo }).where(eq(backups.id, before.id));
    const seen = new Date(Date.now() - 2 * 86_400_000);
    await stack.rt.database.db
      .update(sources)
      .set({ scheduleSetAt: threeDaysAgo, lastSeenAt: seen })
      .where(and(eq(sources.userId, alice.id), eq(sources.name, name)));
    // A brand-new source with the same schedule is not reported (no slot since it was first seen).
    const fresh = uniqueName("fresh");
    await alice.client.request(SetBackupScheduleDocument, { input: { sourceName: fresh, fullEvery: "sun", incrementalAt: "00:00", timezone: "UTC", graceMinutes: 1 } });

    const first = await run<MissedBackupResult>("detectMissedBackups");
    expect(first.raised).toBeGreaterThanOrEqual(1);
    await run<MissedBackupResult>("detectMissedBackups");
    await Promise.all([run<MissedBackupResult>("detectMissedBackups"), run<MissedBackupResult>("detectMissedBackups")]);

    const rows = await stack.rt.database.db
      .select()
      .from(notifications)
      .where(and(eq(notifications.userId, alice.id), eq(notifications.kind, "BACKUP_MISSED")));
    const mine = rows.filter((r) => r.subjectId === name);
    expect(mine).toHaveLength(1);
    expect(rows.filter((r) => r.subjectId === fresh)).toHaveLength(0);
    const today = new Date(Date.now() - 60_000);
    const slot = new Date(Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), today.getUTCDate()));
    expect(mine[0]).toMatchObject({ subjectType: "SOURCE", dedupeKey: `backup-missed:${name}:${slot.toISOString()}` });
    // What was observed: since the first slot after the last backup, and when the agent was last seen.
    const firstMissed = new Date(Date.UTC(threeDaysAgo.getUTCFullYear(), threeDaysAgo.getUTCMonth(), threeDaysAgo.getUTCDate() + 1));
    expect(mine[0]!.title).toMatch(new RegExp(`^No backup of ${name} started since \\w{3} ${firstMissed.toISOString().slice(0, 10)} 00:00 UTC$`));
    expect(mine[0]!.body).toContain(`the agent was last seen ${seen.toISOString().slice(0, 10)}`);
    // The listeners (delivery) heard of it once.
    expect(raised.filter((r) => r.subjectId === name)).toHaveLength(1);
    // The API says so too.
    expect((await alice.client.request(SourceDocument, { name })).source?.missedSince).toBe(firstMissed.toISOString());
    expect((await alice.client.request(SourceDocument, { name: fresh })).source?.missedSince).toBeNull();

    // A backup started now ends the run of misses: the next check raises nothing for it.
    await completed(alice.id, name, "FULL");
    expect((await alice.client.request(SourceDocument, { name })).source?.missedSince).toBeNull();
    await run<MissedBackupResult>("detectMissedBackups");
    expect(raised.filter((r) => r.subjectId === name)).toHaveLength(1);
  });

  it("the detector is one of the product's schedules, at MISSED_BACKUP_CHECK_INTERVAL", async () => {
    const prefix = `test-${process.pid}-${Date.now()}`;
    const specs = productSchedules({ prefix, maintenanceIntervalMs: 3_600_000, instanceStoppedTtlMs: 86_400_000, missedBackupCheckIntervalMs: 120_000 });
    await ensureSchedules(stack.rt.temporal.client, taskQueue, specs);
    try {
      const desc = await stack.rt.temporal.client.schedule.getHandle(`${prefix}-detect-missed-backups`).describe();
      expect(desc.action).toMatchObject({ type: "startWorkflow", workflowType: "detectMissedBackups", taskQueue });
      expect(desc.spec.intervals?.[0]?.every).toBe(120_000);
      expect(stack.config.backups.missedCheckIntervalMs).toBe(5 * 60_000);
    } finally {
      for (const s of specs) await stack.rt.temporal.client.schedule.getHandle(s.id).delete();
    }
  });
});
