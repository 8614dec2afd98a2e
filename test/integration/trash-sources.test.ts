import { afterAll, beforeAll, describe, expect, it, inject } from "vitest";
import WebSocket from "ws";
import { withTimeout } from "../helpers/ws";
import { createHash } from "node:crypto";
import { and, eq } from "drizzle-orm";
import { startStack, signUp, errorOf, PASSWORD, type TestStack, type TestUser } from "../helpers/stack";
import { backupImage, makeImage, restoreImage, MiB } from "../helpers/backup";
import { clearMailsTo, waitForMail } from "../helpers/mailpit";
import { startWorker, type WorkerHandle } from "../../src/temporal/worker";
import { activitiesFor } from "../../src/worker-activities";
import { TrashService } from "../../src/backups/trash.service";
import { closeAgentKeySockets } from "../../src/agent-keys/agent-key.service";
import { agentKeys, auditEvents, backups, notifications, recoveries, sessions, sources, trashRequests, verifications } from "../../src/db/schema";
import { newId } from "../../src/shared/ids";
import {
  AgentKeysDocument,
  BackupDocument,
  CreateAgentKeyDocument,
  DeleteBackupDocument,
  DeleteSourceDocument,
  ReauthenticateDocument,
  RestoreFromTrashDocument,
  RevokeAllAgentKeysDocument,
  SetBackupScheduleDocument,
  SourceDeleteAfterDocument,
  TrashDocument,
} from "../../src/client/generated/graphql";
import type { BackupMaintenanceResult } from "../../workflows/contracts";

/**
 * Deletion defense (issue 18) for whole sources and for "revoke all agent keys": fresh
 * authentication, one trash item each, undone by restoreFromTrash, carried out by maintenance once
 * DELETION_DELAY passed, and never while a recovery or verification reads a restore point involved.
 */

const CHUNK = 8 * MiB;
const HOUR = 3_600_000;
const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

describe("deletion defense (issue 18): sources and agent keys in the trash", () => {
  let stack: TestStack;
  let worker: WorkerHandle;
  const taskQueue = `test-trash-sources-${process.pid}-${Date.now()}`;
  let runs = 0;

  const runMaintenance = (userIds: string[]) =>
    stack.rt.temporal.client.workflow.execute("backupMaintenance", { taskQueue, workflowId: `${taskQueue}-${++runs}`, args: [{ userIds }] }) as Promise<BackupMaintenanceResult>;
  const stored = async (userId: string) => {
    const out = new Set<string>();
    for await (const c of stack.rt.services.chunks.listChunks(userId)) out.add(c.sha256);
    return out;
  };
  const db = () => stack.rt.database.db;
  const makeDue = (userId: string) => db().update(trashRequests).set({ effectiveAt: new Date(Date.now() - 1000) }).where(eq(trashRequests.userId, userId));
  /** A request made with an agent key: does the key still authenticate? */
  const agentCode = async (secret: string, sourceName: string) => {
    const res = await fetch(stack.app.graphqlUrl, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${secret}` },
      body: JSON.stringify({ query: "query($s: String!) { source(name: $s) { name } }", variables: { s: sourceName } }),
    });
    const body = (await res.json()) as { data?: unknown; errors?: { extensions: { code: string } }[] };
    return body.errors?.[0]?.extensions.code ?? "OK";
  };
  const status = async (u: TestUser, id: string) => (await u.client.request(BackupDocument, { id })).backup.status;

  beforeAll(async () => {
    stack = await startStack({ TEMPORAL_TASK_QUEUE: taskQueue, GC_GRACE: "0ms" });
    worker = await startWorker({ config: stack.config.temporal, taskQueue, activities: activitiesFor(stack.rt), logger: stack.rt.logger, workflowBundle: { codePath: inject("workflowBundlePath") } });
  });
  afterAll(async () => {
    await worker?.shutdown();
    await stack?.stop();
  });

  it("deleteSource needs a fresh authentication, is one trash item e-mailed at once, changes nothing meanwhile but the missed-backup reports, and restoreFromTrash undoes it", async () => {
    const u = await signUp(stack);
    const mallory = await signUp(stack);
    const img = makeImage(2 * CHUNK, CHUNK);
    const full = await backupImage(stack, u.id, img, { sourceName: "ledger" });
    const incr = await backupImage(stack, u.id, img, { sourceName: "ledger", kind: "INCREMENTAL", parentBackupId: full.backup.id });
    await u.client.request(SetBackupScheduleDocument, { input: { sourceName: "ledger", fullEvery: "SUNDAY", incrementalAt: "02:00", timezone: "UTC", graceMinutes: 1 } });
    const { secret } = (await u.client.request(CreateAgentKeyDocument, { input: { sourceName: "ledger" } })).createAgentKey;

    // Unknown (or another user's) source: NOT_FOUND, before and after reauthentication alike.
    expect((await errorOf(u.client.request(DeleteSourceDocument, { name: "nope" }))).code).toBe("NOT_FOUND");
    expect((await errorOf(mallory.client.request(DeleteSourceDocument, { name: "ledger" }))).code).toBe("NOT_FOUND");
    await mallory.client.request(ReauthenticateDocument, { password: PASSWORD });
    expect((await errorOf(mallory.client.request(DeleteSourceDocument, { name: "ledger" }))).code).toBe("NOT_FOUND");
    // Stale session: never reauthenticated, then reauthenticated more than 5 minutes ago.
    expect((await errorOf(u.client.request(DeleteSourceDocument, { name: "ledger" }))).code).toBe("REAUTH_REQUIRED");
    await u.client.request(ReauthenticateDocument, { password: PASSWORD });
    await db().update(sessions).set({ reauthenticatedAt: new Date(Date.now() - 6 * 60_000) }).where(eq(sessions.userId, u.id));
    expect((await errorOf(u.client.request(DeleteSourceDocument, { name: "ledger" }))).code).toBe("REAUTH_REQUIRED");
    expect((await u.client.request(TrashDocument)).trash).toEqual([]);

    await clearMailsTo(u.email);
    await u.client.request(ReauthenticateDocument, { password: PASSWORD });
    const before = Date.now();
    const { deleteSource } = await u.client.request(DeleteSourceDocument, { name: " ledger " });
    expect(deleteSource).toMatchObject({ id: "Source:ledger", kind: "SOURCE", requestedBy: expect.stringContaining(u.username) });
    expect(deleteSource.what).toContain("2 restore point(s), 1 active agent key(s)");
    expect(new Date(deleteSource.effectiveAt as string).getTime()).toBeGreaterThanOrEqual(before + 72 * HOUR - 1000);
    // One item, not one per restore point; asking again answers the same item.
    expect((await u.client.request(TrashDocument)).trash).toEqual([expect.objectContaining({ id: "Source:ledger", kind: "SOURCE" })]);
    expect((await u.client.request(DeleteSourceDocument, { name: "ledger" })).deleteSource.requestedAt).toBe(deleteSource.requestedAt);
    const mail = await waitForMail(u.email, /Source ledger will be deleted on/);
    expect(mail.Text).toContain("restoreFromTrash Source:ledger");
    const audit = await db().select().from(auditEvents).where(eq(auditEvents.userId, u.id));
    expect(audit.map((e) => e.action)).toContain("source.delete");

    // Meanwhile: restore points COMPLETED and restorable, the key works, maintenance leaves it all.
    const early = await runMaintenance([u.id]);
    expect(early.trashDeleted).toEqual([]);
    expect(await status(u, full.backup.id)).toBe("COMPLETED");
    expect(sha(await restoreImage(stack, u.id, incr.backup.id))).toBe(sha(img));
    expect(await agentCode(secret, "ledger")).toBe("OK");
    for (const c of full.chunks) if (c) expect((await stored(u.id)).has(c)).toBe(true);

    // The missed-backup detector skips a source in the trash (its owner asked to drop it).
    const longAgo = new Date(Date.now() - 3 * 24 * HOUR);
    await db().update(sources).set({ scheduleSetAt: longAgo }).where(eq(sources.userId, u.id));
    await db().update(backups).set({ createdAt: longAgo }).where(eq(backups.userId, u.id));
    await stack.rt.services.sources.detectMissed();
    const missed = () => db().select().from(notifications).where(and(eq(notifications.userId, u.id), eq(notifications.kind, "BACKUP_MISSED")));
    expect(await missed()).toEqual([]);
    expect((await u.client.request(SourceDeleteAfterDocument, { name: "ledger" })).source).toMatchObject({ deleteAfter: deleteSource.effectiveAt, missedSince: null });

    // Mallory cannot restore it; the owner can, and everything is as before.
    expect((await errorOf(mallory.client.request(RestoreFromTrashDocument, { id: "Source:ledger" }))).code).toBe("NOT_FOUND");
    expect((await u.client.request(RestoreFromTrashDocument, { id: "Source:ledger" })).restoreFromTrash).toMatchObject({ id: "Source:ledger", kind: "SOURCE" });
    expect((await u.client.request(TrashDocument)).trash).toEqual([]);
    expect((await errorOf(u.client.request(RestoreFromTrashDocument, { id: "Source:ledger" }))).code).toBe("NOT_FOUND");
    expect((await u.client.request(SourceDeleteAfterDocument, { name: "ledger" })).source).toMatchObject({ deleteAfter: null, missedSince: expect.anything() });
    await stack.rt.services.sources.detectMissed();
    expect((await missed()).length).toBe(1);
    await makeDue(u.id); // nothing of hers is pending any more
    const after = await runMaintenance([u.id]);
    expect(after.trashDeleted).toEqual([]);
    expect(await status(u, full.backup.id)).toBe("COMPLETED");
    expect(await agentCode(secret, "ledger")).toBe("OK");
    expect((await db().select().from(auditEvents).where(eq(auditEvents.userId, u.id))).map((e) => e.action)).toContain("trash.restore");
  });

  it("a source past its delay is deleted by maintenance: its restore points DELETED (then their unshared chunks collected), its agent keys revoked, its schedule removed; other sources untouched", async () => {
    const u = await signUp(stack);
    const img = makeImage(2 * CHUNK, CHUNK);
    const gone = await backupImage(stack, u.id, img, { sourceName: "old-nas" });
    const gone2 = await backupImage(stack, u.id, img, { sourceName: "old-nas", kind: "INCREMENTAL", parentBackupId: gone.backup.id });
    const other = makeImage(CHUNK, CHUNK);
    other[0] = 42;
    const kept = await backupImage(stack, u.id, other, { sourceName: "desktop" });
    const doomedKey = (await u.client.request(CreateAgentKeyDocument, { input: { sourceName: "old-nas" } })).createAgentKey;
    const keptKey = (await u.client.request(CreateAgentKeyDocument, { input: { sourceName: "desktop" } })).createAgentKey;

    await u.client.request(ReauthenticateDocument, { password: PASSWORD });
    await u.client.request(DeleteSourceDocument, { name: "old-nas" });
    await makeDue(u.id);
    const run = await runMaintenance([u.id]);
    expect(run.failedUsers).toEqual([]);
    expect([...run.trashDeleted].sort()).toEqual([gone.backup.id, gone2.backup.id].sort());
    expect(run.deletedChunks).toBeGreaterThanOrEqual(1);
    expect(await status(u, gone.backup.id)).toBe("DELETED");
    expect(await status(u, gone2.backup.id)).toBe("DELETED");
    const chunks = await stored(u.id);
    for (const c of gone.chunks) if (c) expect(chunks.has(c)).toBe(false);
    for (const c of kept.chunks) if (c) expect(chunks.has(c)).toBe(true);
    expect(await status(u, kept.backup.id)).toBe("COMPLETED");
    // Keys: the source's revoked (refused at once), the other's still working.
    expect(await agentCode(doomedKey.secret, "old-nas")).toBe("UNAUTHENTICATED");
    expect(await agentCode(keptKey.secret, "desktop")).toBe("OK");
    const keys = (await u.client.request(AgentKeysDocument)).agentKeys;
    expect(keys.find((k) => k.id === doomedKey.agentKey.id)?.revokedAt).toBeTruthy();
    expect(keys.find((k) => k.id === keptKey.agentKey.id)?.revokedAt).toBeNull();
    // The schedule is gone (and not brought back from its DELETED restore points); the trash is empty.
    expect((await u.client.request(SourceDeleteAfterDocument, { name: "old-nas" })).source).toBeNull();
    expect((await db().select().from(sources).where(eq(sources.userId, u.id))).map((s) => s.name)).toEqual(["desktop"]);
    expect((await u.client.request(TrashDocument)).trash).toEqual([]);
    expect((await errorOf(u.client.request(RestoreFromTrashDocument, { id: "Source:old-nas" }))).code).toBe("NOT_FOUND");
    // Carried out once.
    expect((await runMaintenance([u.id])).trashDeleted).toEqual([]);
  });

  it("revokeAllAgentKeys needs a fresh authentication, waits in the trash (keys keep working, cancellable), and when due revokes every key then active", async () => {
    const u = await signUp(stack);
    const k1 = (await u.client.request(CreateAgentKeyDocument, { input: { sourceName: "a" } })).createAgentKey;
    const k2 = (await u.client.request(CreateAgentKeyDocument, { input: { sourceName: "b" } })).createAgentKey;
    const others = await signUp(stack);
    const theirs = (await others.client.request(CreateAgentKeyDocument, { input: { sourceName: "a" } })).createAgentKey;

    expect((await errorOf(u.client.request(RevokeAllAgentKeysDocument))).code).toBe("REAUTH_REQUIRED");
    await clearMailsTo(u.email);
    await u.client.request(ReauthenticateDocument, { password: PASSWORD });
    const item = (await u.client.request(RevokeAllAgentKeysDocument)).revokeAllAgentKeys;
    expect(item).toMatchObject({ id: `AgentKeys:${u.id}`, kind: "AGENT_KEYS" });
    expect(item.what).toContain("2 active now");
    expect((await waitForMail(u.email, /All your agent keys will be revoked/)).Text).toContain(`restoreFromTrash AgentKeys:${u.id}`);
    expect((await db().select().from(auditEvents).where(eq(auditEvents.userId, u.id))).map((e) => e.action)).toContain("agent_key.revoke_all_requested");
    // Pending: the keys still work; maintenance before the delay changes nothing.
    await runMaintenance([u.id]);
    expect(await agentCode(k1.secret, "a")).toBe("OK");
    // Cancelled: even once its time would have come, nothing is revoked.
    expect((await errorOf(others.client.request(RestoreFromTrashDocument, { id: `AgentKeys:${u.id}` }))).code).toBe("NOT_FOUND");
    await u.client.request(RestoreFromTrashDocument, { id: `AgentKeys:${u.id}` });
    await makeDue(u.id);
    await runMaintenance([u.id]);
    expect(await agentCode(k1.secret, "a")).toBe("OK");

    // Asked again, a key made meanwhile, then due: every active key of hers is revoked, nobody else's.
    await u.client.request(RevokeAllAgentKeysDocument);
    const k3 = (await u.client.request(CreateAgentKeyDocument, { input: { sourceName: "c" } })).createAgentKey;
    await makeDue(u.id);
    await runMaintenance([u.id]);
    for (const k of [k1, k2, k3]) expect(await agentCode(k.secret, k.agentKey.sourceName)).toBe("UNAUTHENTICATED");
    expect(await agentCode(theirs.secret, "a")).toBe("OK");
    expect((await db().select().from(agentKeys).where(eq(agentKeys.userId, u.id))).every((k) => k.revokedAt)).toBe(true);
    expect((await u.client.request(TrashDocument)).trash).toEqual([]);
  });

  it("keys the purge revokes (a due source, a due revoke-all) have their open WebSocket connections closed at once (4401), like revokeAgentKey", async () => {
    const u = await signUp(stack);
    const onSource = (await u.client.request(CreateAgentKeyDocument, { input: { sourceName: "doomed" } })).createAgentKey;
    const other = (await u.client.request(CreateAgentKeyDocument, { input: { sourceName: "kept" } })).createAgentKey;
    await stack.rt.services.sources.ensure(u.id, "doomed");
    await u.client.request(ReauthenticateDocument, { password: PASSWORD });
    await u.client.request(DeleteSourceDocument, { name: "doomed" });
    /** An open graphql-transport-ws connection made with an agent key, and how it closes. */
    const connect = async (secret: string) => {
      const ws = new WebSocket(stack.app.wsUrl, "graphql-transport-ws");
      const closed = new Promise<number>((resolve) => ws.on("close", (code) => resolve(code)));
      const acked = new Promise<void>((resolve) => ws.on("message", (d) => (JSON.parse(String(d)) as { type: string }).type === "connection_ack" && resolve()));
      await new Promise<void>((resolve, reject) => ws.once("open", () => resolve()).once("error", reject));
      ws.send(JSON.stringify({ type: "connection_init", payload: { authorization: `Bearer ${secret}` } }));
      await acked;
      return { ws, closed };
    };
    const a = await connect(onSource.secret);
    const b = await connect(other.secret);
    try {
      // The user's items become due for a purge run 73 hours from now, scoped to this user, so no
      // other file's maintenance (on real time) carries them out first; same wiring as the product's.
      const later = new TrashService(stack.rt.database.db, stack.rt.services.backups, stack.rt.services.backupLifecycle, stack.rt.services.notifications, { deletionDelayMs: 72 * HOUR, onAgentKeysRevoked: closeAgentKeySockets(stack.rt.events.bus) }, () => new Date(Date.now() + 73 * HOUR));
      const first = await later.purgeDue({ userIds: [u.id] });
      expect(first.sourcesDeleted).toEqual([{ userId: u.id, sourceName: "doomed", backups: [], agentKeys: 1 }]);
      expect(await withTimeout(a.closed, 10_000, "the source key's socket to close")).toBe(4401);
      expect(b.ws.readyState).toBe(WebSocket.OPEN);
      await u.client.request(RevokeAllAgentKeysDocument);
      const second = await later.purgeDue({ userIds: [u.id] });
      expect(second.agentKeysRevoked).toEqual([{ userId: u.id, keys: 1 }]);
      expect(await withTimeout(b.closed, 10_000, "the last key's socket to close")).toBe(4401);
    } finally {
      a.ws.close();
      b.ws.close();
    }
  });

  it("purge waits while a recovery reads a trashed restore point or one built on it, or a verification reads it; the run after they end carries it out", async () => {
    const u = await signUp(stack);
    const img = makeImage(CHUNK, CHUNK);
    img[1] = 7;
    const full = await backupImage(stack, u.id, img, { sourceName: "erp" });
    img[2] = 9;
    const incr = await backupImage(stack, u.id, img, { sourceName: "erp", kind: "INCREMENTAL", parentBackupId: full.backup.id });
    const lone = await backupImage(stack, u.id, img, { sourceName: "crm" });
    await u.client.request(ReauthenticateDocument, { password: PASSWORD });
    // The FULL on its own, and a whole source, both in the trash and due.
    await u.client.request(DeleteBackupDocument, { id: full.backup.id });
    await u.client.request(DeleteSourceDocument, { name: "crm" });
    await db().update(backups).set({ deleteAfter: new Date(Date.now() - 1000) }).where(eq(backups.id, full.backup.id));
    await makeDue(u.id);

    // A recovery of the incremental (the FULL is its parent) and a verification of the crm restore point, both active.
    const now = new Date();
    const recoveryId = newId();
    await db().insert(recoveries).values({ id: recoveryId, userId: u.id, backupId: incr.backup.id, target: "LOCAL", state: "IMPORTING", workflowId: `test-${recoveryId}`, createdAt: now, updatedAt: now });
    const verificationId = newId();
    await db().insert(verifications).values({ id: verificationId, userId: u.id, backupId: lone.backup.id, status: "RUNNING", workflowId: `test-${verificationId}`, createdAt: now, updatedAt: now });

    const held = await runMaintenance([u.id]);
    expect(held.trashDeleted).toEqual([]);
    expect(held.deletedChunks).toBe(0);
    expect(await status(u, full.backup.id)).toBe("COMPLETED");
    expect(await status(u, lone.backup.id)).toBe("COMPLETED");
    // Still in the trash (still restorable there), the source's schedule still there.
    expect((await u.client.request(TrashDocument)).trash.map((t) => t.id).sort()).toEqual([full.backup.id, "Source:crm"].sort());
    expect((await u.client.request(SourceDeleteAfterDocument, { name: "crm" })).source?.deleteAfter).toBeTruthy();
    const purge = await stack.rt.services.trash.purgeDue({ userIds: [u.id] });
    expect(purge.waiting).toEqual(expect.arrayContaining([full.backup.id, lone.backup.id]));

    // The recovery ends: the FULL goes; the verification still holds the source.
    await db().update(recoveries).set({ state: "COMPLETED" }).where(eq(recoveries.id, recoveryId));
    expect((await runMaintenance([u.id])).trashDeleted).toEqual([full.backup.id]);
    expect(await status(u, lone.backup.id)).toBe("COMPLETED");
    expect(sha(await restoreImage(stack, u.id, incr.backup.id))).toBe(sha(img));
    // The verification ends: the source goes.
    await db().update(verifications).set({ status: "VERIFIED" }).where(eq(verifications.id, verificationId));
    expect((await runMaintenance([u.id])).trashDeleted).toEqual([lone.backup.id]);
    expect((await u.client.request(TrashDocument)).trash).toEqual([]);
    expect(await status(u, incr.backup.id)).toBe("COMPLETED");
  });
});
