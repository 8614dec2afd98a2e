import { afterAll, beforeAll, describe, expect, it, inject } from "vitest";
import { createHash } from "node:crypto";
import { eq } from "drizzle-orm";
import { startStack, signUp, errorOf, PASSWORD, type TestStack, type TestUser } from "../helpers/stack";
import { backupImage, makeImage, restoreImage, MiB } from "../helpers/backup";
import { clearMailsTo, waitForMail } from "../helpers/mailpit";
import { startWorker, type WorkerHandle } from "../../src/temporal/worker";
import { activitiesFor } from "../../src/worker-activities";
import { auditEvents, backups, retentionPolicies, sessions } from "../../src/db/schema";
import {
  BackupDocument,
  BackupRestorableDocument,
  DeleteBackupDocument,
  ReauthenticateDocument,
  RestoreFromTrashDocument,
  RetentionPolicyDocument,
  SetNotificationPreferencesDocument,
  SetRetentionPolicyDocument,
  TrashDocument,
} from "../../src/client/generated/graphql";
import type { BackupMaintenanceResult } from "../../workflows/contracts";

const CHUNK = 8 * MiB;
const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");
const HOUR = 3_600_000;

describe("deletion defense (issue 18): fresh authentication and the trash", () => {
  let stack: TestStack;
  let worker: WorkerHandle;
  let alice: TestUser;
  let mallory: TestUser;
  const taskQueue = `test-trash-${process.pid}-${Date.now()}`;
  let runs = 0;

  const runMaintenance = (userIds: string[]) =>
    stack.rt.temporal.client.workflow.execute("backupMaintenance", { taskQueue, workflowId: `${taskQueue}-${++runs}`, args: [{ userIds }] }) as Promise<BackupMaintenanceResult>;
  const stored = async (userId: string) => {
    const out = new Set<string>();
    for await (const c of stack.rt.services.chunks.listChunks(userId)) out.add(c.sha256);
    return out;
  };
  const sessionOf = async (user: TestUser) => (await stack.rt.database.db.select().from(sessions).where(eq(sessions.userId, user.id)))[0]!;

  beforeAll(async () => {
    stack = await startStack({ TEMPORAL_TASK_QUEUE: taskQueue, GC_GRACE: "0ms" });
    worker = await startWorker({ config: stack.config.temporal, taskQueue, activities: activitiesFor(stack.rt), logger: stack.rt.logger, workflowBundle: { codePath: inject("workflowBundlePath") } });
    [alice, mallory] = await Promise.all([signUp(stack), signUp(stack)]);
  });
  afterAll(async () => {
    await worker?.shutdown();
    await stack?.stop();
  });

  it("deleting with a stale session is REAUTH_REQUIRED; a wrong password is refused; a fresh one puts the backup in the trash, e-mails the owner at once, and restoreFromTrash brings it back intact", async () => {
    const img = makeImage(2 * CHUNK + MiB, CHUNK);
    const made = await backupImage(stack, alice.id, img, { sourceName: "accounts" });
    const id = made.backup.id;

    // No reauthentication on this session yet.
    expect((await errorOf(alice.client.request(DeleteBackupDocument, { id }))).code).toBe("REAUTH_REQUIRED");
    // A wrong password records nothing.
    expect((await errorOf(alice.client.request(ReauthenticateDocument, { password: "not my password" }))).code).toBe("UNAUTHENTICATED");
    expect((await sessionOf(alice)).reauthenticatedAt).toBeNull();
    // A reauthentication older than the window (5 minutes) is stale.
    await alice.client.request(ReauthenticateDocument, { password: PASSWORD });
    const session = await sessionOf(alice);
    expect(session.reauthenticatedAt).toBeTruthy();
    await stack.rt.database.db.update(sessions).set({ reauthenticatedAt: new Date(Date.now() - 6 * 60_000) }).where(eq(sessions.id, session.id));
    expect((await errorOf(alice.client.request(DeleteBackupDocument, { id }))).code).toBe("REAUTH_REQUIRED");
    expect((await alice.client.request(BackupDocument, { id })).backup.deleteAfter).toBeNull();

    // Fresh: into the trash, still COMPLETED and restorable, deletion pending for DELETION_DELAY.
    await clearMailsTo(alice.email);
    await alice.client.request(ReauthenticateDocument, { password: PASSWORD });
    const before = Date.now();
    const { deleteBackup } = await alice.client.request(DeleteBackupDocument, { id });
    expect(deleteBackup.status).toBe("COMPLETED");
    const deleteAfter = new Date(deleteBackup.deleteAfter as string).getTime();
    expect(deleteAfter).toBeGreaterThanOrEqual(before + 72 * HOUR - 1000);
    expect(deleteAfter).toBeLessThanOrEqual(Date.now() + 72 * HOUR + 1000);
    const { trash } = await alice.client.request(TrashDocument);
    expect(trash).toEqual([expect.objectContaining({ id, kind: "BACKUP", requestedBy: expect.stringContaining(alice.username) })]);
    expect(trash[0]!.what).toContain("accounts");

    // The owner hears of it at once, with the way back.
    const mail = await waitForMail(alice.email, /will be deleted on/);
    expect(mail.Text).toContain(id);
    expect(mail.Text).toContain("restoreFromTrash");

    // Audited: the reauthentication and the deletion request.
    const audit = await stack.rt.database.db.select().from(auditEvents).where(eq(auditEvents.userId, alice.id));
    expect(audit.map((e) => e.action)).toEqual(expect.arrayContaining(["auth.reauthenticated", "backup.delete"]));

    // Maintenance before the delay leaves it (and its chunks) alone.
    const early = await runMaintenance([alice.id]);
    expect(early.trashDeleted).toEqual([]);
    expect(early.retentionDeleted).toEqual([]);
    for (const c of made.chunks) if (c) expect((await stored(alice.id)).has(c)).toBe(true);

    // Mallory can neither see nor restore it.
    expect((await mallory.client.request(TrashDocument)).trash).toEqual([]);
    expect((await errorOf(mallory.client.request(RestoreFromTrashDocument, { id }))).code).toBe("NOT_FOUND");

    // Restored: out of the trash, still bit-for-bit the image.
    const { restoreFromTrash } = await alice.client.request(RestoreFromTrashDocument, { id });
    expect(restoreFromTrash).toMatchObject({ id, kind: "BACKUP" });
    expect((await alice.client.request(TrashDocument)).trash).toEqual([]);
    const back = (await alice.client.request(BackupDocument, { id })).backup;
    expect(back).toMatchObject({ status: "COMPLETED", deleteAfter: null, deletionRequestedAt: null });
    expect((await alice.client.request(BackupRestorableDocument, { id })).backup.restorable).toBe(true);
    expect(sha(await restoreImage(stack, alice.id, id))).toBe(sha(img));
    // A second restore of the same item: nothing pending any more.
    expect((await errorOf(alice.client.request(RestoreFromTrashDocument, { id }))).code).toBe("NOT_FOUND");
  });

  it("a trashed backup past its delay is deleted by maintenance, and only then are its unreferenced chunks collected", async () => {
    const u = await signUp(stack);
    const v1 = makeImage(3 * CHUNK, CHUNK);
    const full = await backupImage(stack, u.id, v1, { sourceName: "mail" });
    const v2 = Buffer.from(v1);
    v2[7] = v2[7]! ^ 0xff; // chunk 0 changes
    const incr = await backupImage(stack, u.id, v2, { sourceName: "mail", kind: "INCREMENTAL", parentBackupId: full.backup.id });
    const onlyInFull = full.chunks[0]!;
    expect(incr.chunks).not.toContain(onlyInFull);

    // Even with every e-mail turned off (as a thief with the session would), the deletion is e-mailed.
    await u.client.request(SetNotificationPreferencesDocument, { input: { emailKinds: [] } });
    await clearMailsTo(u.email);
    await u.client.request(ReauthenticateDocument, { password: PASSWORD });
    await u.client.request(DeleteBackupDocument, { id: full.backup.id });
    expect((await waitForMail(u.email, /will be deleted on/)).Text).toContain(full.backup.id);
    const kept = await runMaintenance([u.id]);
    expect(kept.trashDeleted).toEqual([]);
    expect(kept.deletedChunks).toBe(0);
    expect((await stored(u.id)).has(onlyInFull)).toBe(true);
    // A trashed restore point can still be recovered from during the delay.
    expect(sha(await restoreImage(stack, u.id, full.backup.id))).toBe(sha(v1));

    await stack.rt.database.db.update(backups).set({ deleteAfter: new Date(Date.now() - 1000) }).where(eq(backups.id, full.backup.id));
    const due = await runMaintenance([u.id]);
    expect(due.trashDeleted).toEqual([full.backup.id]);
    expect(due.deletedChunks).toBe(1);
    expect(due.failedUsers).toEqual([]);
    const after = await stored(u.id);
    expect(after.has(onlyInFull)).toBe(false);
    for (const c of incr.chunks) if (c) expect(after.has(c)).toBe(true);
    expect((await u.client.request(BackupDocument, { id: full.backup.id })).backup.status).toBe("DELETED");
    expect(sha(await restoreImage(stack, u.id, incr.backup.id))).toBe(sha(v2));
    // Gone for good: no longer in the trash, nothing to restore.
    expect((await u.client.request(TrashDocument)).trash).toEqual([]);
    expect((await errorOf(u.client.request(RestoreFromTrashDocument, { id: full.backup.id }))).code).toBe("NOT_FOUND");
    // Carried out once: a second run finds nothing more.
    expect((await runMaintenance([u.id])).trashDeleted).toEqual([]);
  });

  it("shortening retention needs a fresh authentication and waits in the trash; lengthening applies at once; a pending shortening can be cancelled", async () => {
    const u = await signUp(stack);
    const other = await signUp(stack);
    const policyItem = `RetentionPolicy:${u.id}`;
    // A first policy shortens "keep everything".
    expect((await errorOf(u.client.request(SetRetentionPolicyDocument, { input: { keepWeeklyFull: 4, keepDaily: 30 } }))).code).toBe("REAUTH_REQUIRED");
    await clearMailsTo(u.email);
    await u.client.request(ReauthenticateDocument, { password: PASSWORD });
    const first = (await u.client.request(SetRetentionPolicyDocument, { input: { keepWeeklyFull: 4, keepDaily: 30 } })).setRetentionPolicy;
    expect(first).toMatchObject({ pendingKeepWeeklyFull: 4, pendingKeepDaily: 30 });
    expect(new Date(first.pendingEffectiveAt as string).getTime()).toBeGreaterThan(Date.now() + 71 * HOUR);
    await waitForMail(u.email, /Retention will be shortened/);
    // Let it take effect.
    await stack.rt.database.db.update(retentionPolicies).set({ pendingEffectiveAt: new Date(Date.now() - 1000) }).where(eq(retentionPolicies.userId, u.id));
    await runMaintenance([u.id]);
    expect((await u.client.request(RetentionPolicyDocument)).retentionPolicy).toMatchObject({ keepWeeklyFull: 4, keepDaily: 30, pendingKeepWeeklyFull: null, pendingEffectiveAt: null });

    // A stale session can lengthen (that protects more) …
    await stack.rt.database.db.update(sessions).set({ reauthenticatedAt: null }).where(eq(sessions.userId, u.id));
    expect((await u.client.request(SetRetentionPolicyDocument, { input: { keepWeeklyFull: 5, keepDaily: 30 } })).setRetentionPolicy).toMatchObject({ keepWeeklyFull: 5, keepDaily: 30, pendingKeepDaily: null });
    // … but not shorten, not even one value of two.
    expect((await errorOf(u.client.request(SetRetentionPolicyDocument, { input: { keepWeeklyFull: 6, keepDaily: 1 } }))).code).toBe("REAUTH_REQUIRED");

    await u.client.request(ReauthenticateDocument, { password: PASSWORD });
    await u.client.request(SetRetentionPolicyDocument, { input: { keepWeeklyFull: 1, keepDaily: 1 } });
    // In force meanwhile: the old policy.
    expect((await u.client.request(RetentionPolicyDocument)).retentionPolicy).toMatchObject({ keepWeeklyFull: 5, keepDaily: 30, pendingKeepWeeklyFull: 1, pendingKeepDaily: 1 });
    expect((await u.client.request(TrashDocument)).trash).toEqual([expect.objectContaining({ id: policyItem, kind: "RETENTION_POLICY" })]);
    const notDue = await runMaintenance([u.id]);
    expect(notDue.failedUsers).toEqual([]);
    expect((await u.client.request(RetentionPolicyDocument)).retentionPolicy).toMatchObject({ keepWeeklyFull: 5, keepDaily: 30 });

    // Someone else's id for it is NOT_FOUND; the owner cancels it.
    expect((await errorOf(other.client.request(RestoreFromTrashDocument, { id: policyItem }))).code).toBe("NOT_FOUND");
    await u.client.request(RestoreFromTrashDocument, { id: policyItem });
    const [row] = await stack.rt.database.db.select().from(retentionPolicies).where(eq(retentionPolicies.userId, u.id));
    expect(row).toMatchObject({ pendingKeepWeeklyFull: null, pendingKeepDaily: null, pendingEffectiveAt: null, pendingRequestedAt: null });
    await runMaintenance([u.id]);
    expect((await u.client.request(RetentionPolicyDocument)).retentionPolicy).toMatchObject({ keepWeeklyFull: 5, keepDaily: 30, pendingKeepWeeklyFull: null });
    expect((await u.client.request(TrashDocument)).trash).toEqual([]);
  });

  it("retention never deletes a backup in the trash (the trash carries it out, once)", async () => {
    const u = await signUp(stack);
    const img = makeImage(MiB, CHUNK);
    const made = [];
    for (const days of [20, 10, 0]) {
      img[0] = days;
      const b = await backupImage(stack, u.id, img, { sourceName: "pos", kind: made.length ? "INCREMENTAL" : "FULL", parentBackupId: made.at(-1)?.backup.id });
      const when = new Date(Date.now() - days * 86_400_000 - 60_000);
      await stack.rt.database.db.update(backups).set({ createdAt: when, completedAt: when }).where(eq(backups.id, b.backup.id));
      made.push(b);
    }
    await u.client.request(ReauthenticateDocument, { password: PASSWORD });
    await u.client.request(DeleteBackupDocument, { id: made[1]!.backup.id });
    await u.client.request(SetRetentionPolicyDocument, { input: { keepWeeklyFull: 1, keepDaily: 1 } });
    await stack.rt.database.db.update(retentionPolicies).set({ pendingEffectiveAt: new Date(Date.now() - 1000) }).where(eq(retentionPolicies.userId, u.id));
    const run = await runMaintenance([u.id]);
    // The 10-day incremental would be expired, but it is in the trash: retention leaves it to the trash.
    expect(run.retentionDeleted).toEqual([]);
    const status = async (id: string) => (await u.client.request(BackupDocument, { id })).backup;
    expect(await status(made[1]!.backup.id)).toMatchObject({ status: "COMPLETED", deleteAfter: expect.anything() });
    await stack.rt.database.db.update(backups).set({ deleteAfter: new Date(Date.now() - 1000) }).where(eq(backups.id, made[1]!.backup.id));
    const due = await runMaintenance([u.id]);
    expect(due.trashDeleted).toEqual([made[1]!.backup.id]);
    expect(due.retentionDeleted).toEqual([]);
    expect((await status(made[1]!.backup.id)).status).toBe("DELETED");
  });
});
