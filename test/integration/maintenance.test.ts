import { afterAll, beforeAll, describe, expect, it, inject } from "vitest";
import { createHash } from "node:crypto";
import { eq } from "drizzle-orm";
import { startStack, signUp, PASSWORD, type TestStack, type TestUser } from "../helpers/stack";
import { backupImage, makeImage, restoreImage, MiB } from "../helpers/backup";
import { startWorker, type WorkerHandle } from "../../src/temporal/worker";
import { activitiesFor } from "../../src/worker-activities";
import { ensureSchedules, productSchedules } from "../../src/temporal/schedules";
import { BackupMaintenanceService } from "../../src/backups/backup-maintenance.service";
import { backups, recoveries, retentionPolicies, uploads, verifications, type BackupRow } from "../../src/db/schema";
import { newId } from "../../src/shared/ids";
import { sha256Hex } from "../../src/shared/bytes";
import { DeleteBackupDocument, ReauthenticateDocument, RequestChunkUploadsDocument, RetentionPolicyDocument, SetRetentionPolicyDocument } from "../../src/client/generated/graphql";
import type { BackupMaintenanceResult } from "../../workflows/contracts";

const CHUNK = 8 * MiB;
const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

describe("backup maintenance: garbage collection and retention as a Temporal workflow", () => {
  let stack: TestStack;
  let worker: WorkerHandle;
  let alice: TestUser;
  const taskQueue = `test-maintenance-${process.pid}-${Date.now()}`;
  let runs = 0;

  const runMaintenance = (userIds: string[]) =>
    stack.rt.temporal.client.workflow.execute("backupMaintenance", { taskQueue, workflowId: `${taskQueue}-${++runs}`, args: [{ userIds }] }) as Promise<BackupMaintenanceResult>;
  const stored = async (userId: string) => {
    const out = new Set<string>();
    for await (const c of stack.rt.services.chunks.listChunks(userId)) out.add(c.sha256);
    return out;
  };

  beforeAll(async () => {
    stack = await startStack({ GC_GRACE: "0ms" });
    worker = await startWorker({
      config: stack.config.temporal,
      taskQueue,
      activities: activitiesFor(stack.rt),
      logger: stack.rt.logger,
      workflowBundle: { codePath: inject("workflowBundlePath") },
    });
    alice = await signUp(stack);
  });
  afterAll(async () => {
    await worker.shutdown();
    await stack.stop();
  });

  it("deletes only chunks no live manifest references; deleting the FULL parent never breaks the incremental", async () => {
    const v1 = makeImage(4 * CHUNK + 3 * MiB, CHUNK, [2]);
    const full = await backupImage(stack, alice.id, v1, { sourceName: "db01" });
    const v2 = Buffer.from(v1);
    v2[5] = v2[5]! ^ 0xff; // chunk 0 changes
    v2[4 * CHUNK + 10] = v2[4 * CHUNK + 10]! ^ 0xff; // chunk 4 (short last chunk) changes
    const incr = await backupImage(stack, alice.id, v2, { sourceName: "db01", kind: "INCREMENTAL", parentBackupId: full.backup.id });
    expect(incr.putBytes).toBe(CHUNK + 3 * MiB);
    expect(incr.backup.uploadedBytes).toBe(CHUNK + 3 * MiB);

    // An orphan chunk (uploaded, then its backup aborted) and a chunk an active upload was handed a URL for.
    const orphanBody = Buffer.alloc(1024, 7);
    const abandoned = await stack.rt.services.backups.create(alice.id, { sourceName: "tmp", imageSize: 1024, kind: "FULL" as never });
    const [t] = (await stack.rt.services.backupLifecycle.requestChunkUploads(alice.id, { backupId: abandoned.id, chunks: [{ index: 0, sha256: sha256Hex(orphanBody), size: 1024 }] })).tickets;
    const put = await fetch(t!.url!, { method: "PUT", headers: Object.fromEntries(t!.headers.map((h) => [h.name, h.value])), body: orphanBody });
    await put.arrayBuffer();
    await stack.rt.services.backupLifecycle.abort(alice.id, abandoned.id);
    const pendingBody = Buffer.alloc(2048, 9);
    const pending = await stack.rt.services.backups.create(alice.id, { sourceName: "tmp2", imageSize: 2048, kind: "FULL" as never });
    const [p] = (await stack.rt.services.backupLifecycle.requestChunkUploads(alice.id, { backupId: pending.id, chunks: [{ index: 0, sha256: sha256Hex(pendingBody), size: 2048 }] })).tickets;
    const put2 = await fetch(p!.url!, { method: "PUT", headers: Object.fromEntries(p!.headers.map((h) => [h.name, h.value])), body: pendingBody });
    await put2.arrayBuffer();

    const before = await stored(alice.id);
    expect(before.has(sha256Hex(orphanBody))).toBe(true);

    // Nothing referenced is collected: only the orphan goes.
    const first = await runMaintenance([alice.id]);
    expect(first.failedUsers).toEqual([]);
    expect(first.deletedChunks).toBe(1);
    const afterFirst = await stored(alice.id);
    expect(afterFirst.has(sha256Hex(orphanBody))).toBe(false);
    expect(afterFirst.has(sha256Hex(pendingBody))).toBe(true);

    // Delete the FULL through GraphQL (with a fresh authentication): it goes to the trash, and while
    // it is there its chunks stay — the GC keys on live manifests, and a trashed backup is one.
    await alice.client.request(ReauthenticateDocument, { password: PASSWORD });
    const { deleteBackup: trashed } = await alice.client.request(DeleteBackupDocument, { id: full.backup.id });
    expect(trashed.status).toBe("COMPLETED");
    expect(trashed.deleteAfter).toBeTruthy();
    const whileTrashed = await runMaintenance([alice.id]);
    expect(whileTrashed.deletedChunks).toBe(0);
    expect(whileTrashed.trashDeleted).toEqual([]);
    for (const c of full.chunks) if (c) expect((await stored(alice.id)).has(c)).toBe(true);

    // Past its delay, maintenance deletes it and collects in the same run: its two unique chunks go, the shared ones stay.
    await stack.rt.database.db.update(backups).set({ deleteAfter: new Date(Date.now() - 1000) }).where(eq(backups.id, full.backup.id));
    const second = await runMaintenance([alice.id]);
    expect(second.trashDeleted).toEqual([full.backup.id]);
    expect(second.deletedChunks).toBe(2);
    expect(second.freedBytes).toBe(CHUNK + 3 * MiB);
    const afterSecond = await stored(alice.id);
    for (const c of incr.chunks) if (c) expect(afterSecond.has(c)).toBe(true);
    expect(afterSecond.has(full.chunks[0]!)).toBe(false);
    expect(sha(await restoreImage(stack, alice.id, incr.backup.id))).toBe(sha(v2));
    expect(await stack.rt.services.chunks.getManifest(alice.id, full.backup.id)).toBeNull();

    // Idempotent: a third run finds nothing more to delete.
    const third = await runMaintenance([alice.id]);
    expect(third.deletedChunks).toBe(0);
  });

  it("applies each user's retention policy, keeping the latest restore point, the newest fulls and the recent days", async () => {
    const u = await signUp(stack);
    // A first policy shortens "keep everything": it needs a fresh authentication and waits in the trash (issue 18).
    await u.client.request(ReauthenticateDocument, { password: PASSWORD });
    const policy = await u.client.request(SetRetentionPolicyDocument, { input: { keepWeeklyFull: 1, keepDaily: 3 } });
    expect(policy.setRetentionPolicy).toMatchObject({ pendingKeepWeeklyFull: 1, pendingKeepDaily: 3 });
    const bad = await u.client.execute(SetRetentionPolicyDocument, { input: { keepWeeklyFull: 0, keepDaily: 3 } });
    expect(bad.body.errors![0]!.extensions).toMatchObject({ code: "BAD_USER_INPUT", field: "keepWeeklyFull" });
    // The test skips the delay: the shortening is due now.
    await stack.rt.database.db.update(retentionPolicies).set({ pendingEffectiveAt: new Date(Date.now() - 1000) }).where(eq(retentionPolicies.userId, u.id));

    const img = makeImage(1 * MiB, CHUNK);
    const made: BackupRow[] = [];
    // Two weeks of history, oldest first: FULL 14 days ago, INCR 13, FULL 7 days ago, INCR 6, INCR 1, INCR today.
    const ages = [
      [14, "FULL"],
      [13, "INCREMENTAL"],
      [7, "FULL"],
      [6, "INCREMENTAL"],
      [1, "INCREMENTAL"],
      [0, "INCREMENTAL"],
    ] as const;
    for (const [days, kind] of ages) {
      img[0] = days; // distinct content per restore point
      const b = await backupImage(stack, u.id, img, { sourceName: "web", kind, parentBackupId: kind === "INCREMENTAL" ? made.at(-1)!.id : undefined });
      const when = new Date(Date.now() - days * 86_400_000 - 60_000);
      await stack.rt.database.db.update(backups).set({ createdAt: when, completedAt: when }).where(eq(backups.id, b.backup.id));
      made.push({ ...b.backup, createdAt: when, completedAt: when });
    }
    const result = await runMaintenance([u.id]);
    expect((await u.client.request(RetentionPolicyDocument)).retentionPolicy).toMatchObject({ keepWeeklyFull: 1, keepDaily: 3, pendingKeepWeeklyFull: null });

    // Kept: the newest FULL (7 days), and everything of the last 3 days (1 and 0 days). Deleted: 14, 13, 6.
    expect([...result.retentionDeleted].sort()).toEqual([made[0]!.id, made[1]!.id, made[3]!.id].sort());
    const rows = await stack.rt.database.db.select().from(backups).where(eq(backups.userId, u.id));
    const status = Object.fromEntries(rows.map((r) => [r.id, r.status]));
    expect(made.map((m) => status[m.id])).toEqual(["DELETED", "DELETED", "COMPLETED", "DELETED", "COMPLETED", "COMPLETED"]);
    // Every kept restore point still restores bit-for-bit after GC of the expired ones.
    for (const i of [2, 4, 5]) {
      img[0] = ages[i]![0];
      expect(sha(await restoreImage(stack, u.id, made[i]!.id))).toBe(sha(img));
    }
    // Applying again deletes nothing more.
    const again = await runMaintenance([u.id]);
    expect(again.retentionDeleted).toEqual([]);
  });

  it("retention leaves a restore point a recovery or a verification is reading (and its chain) until a run after it ends", async () => {
    const u = await signUp(stack);
    await stack.rt.database.db.insert(retentionPolicies).values({ userId: u.id, keepWeeklyFull: 1, keepDaily: 3, updatedAt: new Date() });
    const img = makeImage(1 * MiB, CHUNK);
    const made: BackupRow[] = [];
    // FULL 14 days ago with its INCREMENTAL 13 days ago (both expired), FULL 7 days ago, INCREMENTAL today.
    for (const [days, kind] of [[14, "FULL"], [13, "INCREMENTAL"], [7, "FULL"], [0, "INCREMENTAL"]] as const) {
      img[0] = days;
      const b = await backupImage(stack, u.id, img, { sourceName: "db", kind, parentBackupId: kind === "INCREMENTAL" ? made.at(-1)!.id : undefined });
      const when = new Date(Date.now() - days * 86_400_000 - 60_000);
      await stack.rt.database.db.update(backups).set({ createdAt: when, completedAt: when }).where(eq(backups.id, b.backup.id));
      made.push({ ...b.backup, createdAt: when, completedAt: when });
    }
    const statusOf = async (b: BackupRow) => (await stack.rt.services.backups.get(u.id, b.id)).status;
    // A recovery of the old INCREMENTAL is importing: it and its FULL stay.
    const now = new Date();
    const recoveryId = newId();
    await stack.rt.database.db.insert(recoveries).values({ id: recoveryId, userId: u.id, backupId: made[1]!.id, target: "LOCAL", state: "IMPORTING", workflowId: `test-${recoveryId}`, createdAt: now, updatedAt: now });
    await runMaintenance([u.id]);
    expect(await Promise.all(made.map(statusOf))).toEqual(["COMPLETED", "COMPLETED", "COMPLETED", "COMPLETED"]);
    img[0] = 13;
    expect(sha(await restoreImage(stack, u.id, made[1]!.id))).toBe(sha(img));
    // It ends; a verification of the old FULL runs: the INCREMENTAL goes, the FULL stays.
    await stack.rt.database.db.update(recoveries).set({ state: "COMPLETED" }).where(eq(recoveries.id, recoveryId));
    const verificationId = newId();
    await stack.rt.database.db.insert(verifications).values({ id: verificationId, userId: u.id, backupId: made[0]!.id, status: "RUNNING", workflowId: `test-${verificationId}`, createdAt: now, updatedAt: now });
    await runMaintenance([u.id]);
    expect(await Promise.all(made.map(statusOf))).toEqual(["COMPLETED", "DELETED", "COMPLETED", "COMPLETED"]);
    // It ends: the FULL goes too.
    await stack.rt.database.db.update(verifications).set({ status: "VERIFIED" }).where(eq(verifications.id, verificationId));
    await runMaintenance([u.id]);
    expect(await Promise.all(made.map(statusOf))).toEqual(["DELETED", "DELETED", "COMPLETED", "COMPLETED"]);
  });

  it("retention keeps the latest restore point of every source even when it is old", () => {
    const now = new Date();
    const old = (id: string, kind: "FULL" | "INCREMENTAL", days: number, source = "s") =>
      ({ id, kind, sourceName: source, createdAt: new Date(now.getTime() - days * 86_400_000), completedAt: new Date(now.getTime() - days * 86_400_000) }) as BackupRow;
    const expired = BackupMaintenanceService.expired([old("03", "INCREMENTAL", 40), old("02", "FULL", 41), old("01", "FULL", 50), old("04", "FULL", 60, "other")], { keepWeeklyFull: 1, keepDaily: 7 }, now);
    expect(expired.map((b) => b.id)).toEqual(["01"]);
  });

  it("aborts UPLOADING backups untouched for UPLOAD_EXPIRY and collects their chunks; active uploads stay", async () => {
    const u = await signUp(stack);
    const s = stack.rt.services;
    const db = stack.rt.database.db;
    const putChunk = async (backupId: string, body: Buffer) => {
      const [t] = (await s.backupLifecycle.requestChunkUploads(u.id, { backupId, chunks: [{ index: 0, sha256: sha256Hex(body), size: body.length }] })).tickets;
      const res = await fetch(t!.url!, { method: "PUT", headers: Object.fromEntries(t!.headers.map((h) => [h.name, h.value])), body });
      await res.arrayBuffer();
      expect(res.ok).toBe(true);
    };
    const lastActivity = async (backupId: string) => (await db.select().from(uploads).where(eq(uploads.backupId, backupId)))[0]!.lastActivityAt!;
    const dayAndAHourAgo = new Date(Date.now() - 25 * 3_600_000);

    // Abandoned: a chunk was uploaded, then nothing for more than a day.
    const abandonedBody = Buffer.alloc(4096, 3);
    const abandoned = await s.backups.create(u.id, { sourceName: "gone", imageSize: 4096, kind: "FULL" as never });
    await putChunk(abandoned.id, abandonedBody);
    await db.update(uploads).set({ lastActivityAt: dayAndAHourAgo, updatedAt: dayAndAHourAgo }).where(eq(uploads.backupId, abandoned.id));
    await db.update(backups).set({ updatedAt: dayAndAHourAgo, createdAt: dayAndAHourAgo }).where(eq(backups.id, abandoned.id));

    // Old but alive: created more than a day ago, it asked for a chunk URL just now (a real sign of activity).
    const aliveBody = Buffer.alloc(4096, 5);
    const alive = await s.backups.create(u.id, { sourceName: "slow", imageSize: 4096, kind: "FULL" as never });
    await db.update(uploads).set({ lastActivityAt: dayAndAHourAgo, startedAt: dayAndAHourAgo, createdAt: dayAndAHourAgo }).where(eq(uploads.backupId, alive.id));
    await putChunk(alive.id, aliveBody);
    expect((await lastActivity(alive.id)).getTime()).toBeGreaterThan(Date.now() - 60_000);

    // Old with no activity at all since its creation (no chunk ever requested).
    const silent = await s.backups.create(u.id, { sourceName: "silent", imageSize: 4096, kind: "FULL" as never });
    await db.update(uploads).set({ lastActivityAt: dayAndAHourAgo }).where(eq(uploads.backupId, silent.id));

    // Another account's upload, abandoned as long: a run for this account leaves it to a run of its own.
    const other = await signUp(stack);
    const elsewhere = await s.backups.create(other.id, { sourceName: "gone", imageSize: 4096, kind: "FULL" as never });
    await db.update(uploads).set({ lastActivityAt: dayAndAHourAgo }).where(eq(uploads.backupId, elsewhere.id));

    expect((await stored(u.id)).has(sha256Hex(abandonedBody))).toBe(true);
    const result = await runMaintenance([u.id]);
    expect(result.failedUsers).toEqual([]);
    expect([...result.expiredUploads].sort()).toEqual([abandoned.id, silent.id].sort());

    const status = async (id: string) => {
      const [b] = await db.select().from(backups).where(eq(backups.id, id));
      const [up] = await db.select().from(uploads).where(eq(uploads.backupId, id));
      return [b!.status, up!.status];
    };
    expect(await status(abandoned.id)).toEqual(["ABORTED", "ABANDONED"]);
    expect(await status(silent.id)).toEqual(["ABORTED", "ABANDONED"]);
    expect(await status(alive.id)).toEqual(["UPLOADING", "ACTIVE"]);
    expect(await status(elsewhere.id)).toEqual(["UPLOADING", "ACTIVE"]);
    // The abandoned upload's chunk no longer pins storage; the active one's stays.
    const after = await stored(u.id);
    expect(after.has(sha256Hex(abandonedBody))).toBe(false);
    expect(after.has(sha256Hex(aliveBody))).toBe(true);
    // An expired backup cannot be resumed: the uploader is told, with a typed error.
    const late = await u.client.execute(RequestChunkUploadsDocument, { input: { backupId: abandoned.id, chunks: [{ index: 0, sha256: sha256Hex(abandonedBody), size: 4096 }] } });
    expect(late.body.errors![0]!.extensions).toMatchObject({ code: "CONFLICT", status: "ABORTED" });

    // Idempotent: nothing more to expire.
    const again = await runMaintenance([u.id]);
    expect(again.expiredUploads).toEqual([]);
    // Its own run (or the scheduled one, for everyone) expires the other account's.
    expect((await runMaintenance([other.id])).expiredUploads).toEqual([elsewhere.id]);
    expect(await status(elsewhere.id)).toEqual(["ABORTED", "ABANDONED"]);
  }, 120_000);

  it("a GC failure for one user does not stop the others", async () => {
    const broken = await signUp(stack);
    const b = await stack.rt.services.backups.create(broken.id, { sourceName: "x", imageSize: 1024, kind: "FULL" as never });
    await stack.rt.database.db.update(backups).set({ status: "COMPLETED" }).where(eq(backups.id, b.id)); // completed but no manifest
    const result = await runMaintenance([broken.id, alice.id]);
    expect(result.failedUsers).toHaveLength(1);
    expect(result.failedUsers[0]).toMatchObject({ userId: broken.id, error: expect.stringContaining("has no manifest") });
    expect(result.users).toBe(2);
  }, 120_000);

  it("registers the schedules idempotently", async () => {
    const prefix = `test-${process.pid}-${Date.now()}`;
    const specs = productSchedules({ prefix, maintenanceIntervalMs: 3_600_000, instanceStoppedTtlMs: 86_400_000 });
    await ensureSchedules(stack.rt.temporal.client, taskQueue, specs);
    await ensureSchedules(stack.rt.temporal.client, taskQueue, productSchedules({ prefix, maintenanceIntervalMs: 7_200_000, instanceStoppedTtlMs: 86_400_000 }));
    const handle = stack.rt.temporal.client.schedule.getHandle(`${prefix}-backup-maintenance`);
    const desc = await handle.describe();
    expect(desc.action).toMatchObject({ type: "startWorkflow", workflowType: "backupMaintenance", taskQueue });
    expect(desc.spec.intervals?.[0]?.every).toBe(7_200_000);
    const purge = await stack.rt.temporal.client.schedule.getHandle(`${prefix}-purge-sessions`).describe();
    expect(purge.action).toMatchObject({ workflowType: "purgeSessions" });
    for (const s of specs) await stack.rt.temporal.client.schedule.getHandle(s.id).delete();
  });
});
