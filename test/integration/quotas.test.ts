import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it, inject } from "vitest";
import { and, eq, inArray } from "drizzle-orm";
import { startStack, signUp, type TestStack, type TestUser } from "../helpers/stack";
import { backupImage, makeImage, MiB } from "../helpers/backup";
import { startWorker, type WorkerHandle } from "../../src/temporal/worker";
import { activitiesFor } from "../../src/worker-activities";
import { AbortBackupDocument, CreateBackupDocument, MyQuotaDocument, RequestChunkUploadsDocument, StartRecoveryDocument } from "../../src/client/generated/graphql";
import { backups, instances, recoveries, uploadChunks, uploads } from "../../src/db/schema";
import { MAX_IMAGE_SIZE } from "../../src/quotas/quota.service";
import { sha256Hex } from "../../src/shared/bytes";

/**
 * Fair use, against the real MariaDB, S3 and Temporal: what each user may store, how large an
 * image may be, how many recoveries and machines run at once; every refusal is QUOTA_EXCEEDED
 * (naming the quota) and writes nothing.
 */

const CHUNK = 8 * MiB;
const TiB = 1024 * 1024 * MiB;

type Errors = { message: string; extensions?: Record<string, unknown> }[] | undefined;
const firstError = (errors: Errors) => {
  expect(errors?.length).toBeGreaterThan(0);
  return errors![0]!;
};

describe("storage and image-size quotas", () => {
  let stack: TestStack;
  let alice: TestUser;

  beforeAll(async () => {
    stack = await startStack({ QUOTA_STORED_BYTES: "24MiB", QUOTA_MAX_IMAGE_BYTES: "1GiB", QUOTA_CONCURRENT_RECOVERIES: "3", QUOTA_RUNNING_MACHINES: "5", HOST_MAX_RUNNING_MACHINES: "7" });
    alice = await signUp(stack);
  });
  afterAll(async () => {
    await stack.stop();
  });

  const backupRows = (userId: string) => stack.rt.database.db.select().from(backups).where(eq(backups.userId, userId));

  it("me.quota shows every limit and the usage counted from live manifests", async () => {
    const empty = (await alice.client.request(MyQuotaDocument)).me.quota;
    expect(empty).toEqual({
      storedBytes: 0,
      uploadingBytes: 0,
      storedBytesLimit: 24 * MiB,
      maxImageBytes: 1024 * MiB,
      concurrentRecoveries: 0,
      concurrentRecoveriesLimit: 3,
      runningMachines: 0,
      runningMachinesLimit: 5,
      hostRunningMachinesLimit: 7,
      uploadExpirySeconds: 86_400,
    });

    // Three chunks: one random, one all-zero (never stored), a short last one. Then an incremental
    // sharing the first chunk: stored bytes count each distinct chunk once.
    const img = makeImage(2 * CHUNK + 3 * MiB, CHUNK, [1]);
    const full = await backupImage(stack, alice.id, img, { sourceName: "fs1" });
    expect((await alice.client.request(MyQuotaDocument)).me.quota).toMatchObject({ storedBytes: CHUNK + 3 * MiB, uploadingBytes: 0 });
    const next = Buffer.from(img);
    next[2 * CHUNK] = next[2 * CHUNK]! ^ 0xff;
    await backupImage(stack, alice.id, next, { sourceName: "fs1", kind: "INCREMENTAL", parentBackupId: full.backup.id });
    expect((await alice.client.request(MyQuotaDocument)).me.quota.storedBytes).toBe(CHUNK + 2 * 3 * MiB);

    // A deleted restore point no longer counts (its own chunk is no longer referenced by a live one).
    await stack.rt.services.backupLifecycle.delete(alice.id, full.backup.id);
    expect((await alice.client.request(MyQuotaDocument)).me.quota.storedBytes).toBe(CHUNK + 3 * MiB);
  });

  it("an image larger than QUOTA_MAX_IMAGE_BYTES is refused with QUOTA_EXCEEDED and nothing is written", async () => {
    const u = await signUp(stack);
    const res = await u.client.execute(CreateBackupDocument, { input: { sourceName: "big", imageSize: 2 * 1024 * MiB, kind: "FULL" } });
    const err = firstError(res.body.errors as Errors);
    expect(err.extensions).toMatchObject({ code: "QUOTA_EXCEEDED", quota: "MAX_IMAGE_BYTES", limit: 1024 * MiB, requested: 2 * 1024 * MiB });
    expect(await backupRows(u.id)).toEqual([]);
    // An all-zero 2 TiB "backup" is the same: refused before anything exists.
    const zero = await u.client.execute(CreateBackupDocument, { input: { sourceName: "zeros", imageSize: 2 * TiB, kind: "FULL" } });
    expect(firstError(zero.body.errors as Errors).extensions).toMatchObject({ code: "QUOTA_EXCEEDED", quota: "MAX_IMAGE_BYTES" });
    expect(await backupRows(u.id)).toEqual([]);
  });

  it("40 TiB (a chunk size its column cannot hold) is a typed BAD_USER_INPUT without SQL, not INTERNAL", async () => {
    const u = await signUp(stack);
    const res = await u.client.execute(CreateBackupDocument, { input: { sourceName: "huge", imageSize: 40 * TiB, kind: "FULL" } });
    const err = firstError(res.body.errors as Errors);
    expect(err.extensions).toMatchObject({ code: "BAD_USER_INPUT", field: "imageSize", reason: "IMAGE_TOO_LARGE", max: MAX_IMAGE_SIZE });
    expect(err.message).not.toMatch(/insert|select|params|`backups`|chunk_size|Failed query/i);
    expect(JSON.stringify(res.body)).not.toMatch(/insert into|Failed query/i);
    expect(await backupRows(u.id)).toEqual([]);
  });

  it("chunks that would pass QUOTA_STORED_BYTES get no upload URL and leave nothing recorded; a full quota refuses new backups", async () => {
    const u = await signUp(stack);
    await backupImage(stack, u.id, makeImage(2 * CHUNK, CHUNK), { sourceName: "a" }); // 16 of 24 MiB
    const second = (await u.client.request(CreateBackupDocument, { input: { sourceName: "b", imageSize: 2 * CHUNK, kind: "FULL" } })).createBackup;
    const img = makeImage(2 * CHUNK, CHUNK);
    const chunks = [0, 1].map((index) => ({ index, sha256: sha256Hex(img.subarray(index * CHUNK, (index + 1) * CHUNK)), size: CHUNK }));

    const refused = await u.client.execute(RequestChunkUploadsDocument, { input: { backupId: second.id, chunks } });
    expect(firstError(refused.body.errors as Errors).extensions).toMatchObject({ code: "QUOTA_EXCEEDED", quota: "STORED_BYTES", limit: 24 * MiB, used: 16 * MiB, requested: 16 * MiB });
    expect(refused.body.data ?? null).toBeNull();
    const upload = (await stack.rt.database.db.select().from(uploads).where(eq(uploads.backupId, second.id)))[0]!;
    expect(await stack.rt.database.db.select().from(uploadChunks).where(eq(uploadChunks.uploadId, upload.id))).toEqual([]);
    expect([...(await stack.rt.services.chunks.headChunks(u.id, chunks.map((c) => c.sha256))).values()]).toEqual([null, null]);

    // One chunk fits exactly (16 + 8 = 24 MiB) and is reserved while the upload is active.
    const one = await u.client.request(RequestChunkUploadsDocument, { input: { backupId: second.id, chunks: [chunks[0]!] } });
    expect(one.requestChunkUploads.toUpload).toBe(1);
    // Asking again for the same chunk (an expired URL) is not counted twice.
    await u.client.request(RequestChunkUploadsDocument, { input: { backupId: second.id, chunks: [chunks[0]!] } });
    expect((await u.client.request(MyQuotaDocument)).me.quota).toMatchObject({ storedBytes: 16 * MiB, uploadingBytes: 8 * MiB });

    // Now the quota is used up: a new backup is refused before it exists.
    const before = (await backupRows(u.id)).length;
    const full = await u.client.execute(CreateBackupDocument, { input: { sourceName: "c", imageSize: CHUNK, kind: "FULL" } });
    expect(firstError(full.body.errors as Errors).extensions).toMatchObject({ code: "QUOTA_EXCEEDED", quota: "STORED_BYTES", limit: 24 * MiB, used: 24 * MiB });
    expect((await backupRows(u.id)).length).toBe(before);

    // Aborting the unfinished backup releases its reservation.
    await u.client.request(AbortBackupDocument, { id: second.id });
    expect((await u.client.request(MyQuotaDocument)).me.quota).toMatchObject({ storedBytes: 16 * MiB, uploadingBytes: 0 });
    const ok = await u.client.request(CreateBackupDocument, { input: { sourceName: "c", imageSize: CHUNK, kind: "FULL" } });
    expect(ok.createBackup.status).toBe("UPLOADING");
  });
});

describe("the largest image the chunk format allows", () => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startStack({ QUOTA_MAX_IMAGE_BYTES: "0" });
  });
  afterAll(async () => {
    await stack.stop();
  });

  it("is accepted exactly (its chunk size fits), and one byte more is BAD_USER_INPUT", async () => {
    const u = await signUp(stack);
    expect((await u.client.request(MyQuotaDocument)).me.quota.maxImageBytes).toBe(MAX_IMAGE_SIZE);
    const max = await u.client.request(CreateBackupDocument, { input: { sourceName: "max", imageSize: MAX_IMAGE_SIZE, kind: "FULL" } });
    expect(max.createBackup).toMatchObject({ imageSize: MAX_IMAGE_SIZE, chunkSize: 2047 * MiB, chunkCount: 10_000 });
    const over = await u.client.execute(CreateBackupDocument, { input: { sourceName: "over", imageSize: MAX_IMAGE_SIZE + 1, kind: "FULL" } });
    expect(firstError(over.body.errors as Errors).extensions).toMatchObject({ code: "BAD_USER_INPUT", reason: "IMAGE_TOO_LARGE" });
  });
});

describe("recovery and machine quotas (workflows start on a queue no worker serves, so recoveries stay in progress)", () => {
  let stack: TestStack;
  const taskQueue = `test-quotas-idle-${process.pid}-${Date.now()}`;
  const started: string[] = [];

  beforeAll(async () => {
    // AWS only so that the first test does not depend on what other test files run on the local host.
    stack = await startStack({ TEMPORAL_TASK_QUEUE: taskQueue, AWS_RECOVERY_ENABLED: "true", QUOTA_CONCURRENT_RECOVERIES: "1", QUOTA_RUNNING_MACHINES: "2", HOST_MAX_RUNNING_MACHINES: "1" });
  });
  afterAll(async () => {
    for (const workflowId of started) await stack.rt.temporal.client.workflow.getHandle(workflowId).terminate("test over").catch(() => {});
    await stack.stop();
  });

  const activeRecoveries = async (userId: string) =>
    stack.rt.database.db
      .select()
      .from(recoveries)
      .where(and(eq(recoveries.userId, userId), inArray(recoveries.state, ["PENDING", "PREPARING", "IMPORTING", "LAUNCHING"])));

  it("a second concurrent recovery is refused with QUOTA_EXCEEDED; the same backup again joins the running one", async () => {
    const u = await signUp(stack);
    const a = await backupImage(stack, u.id, makeImage(CHUNK, CHUNK), { sourceName: "a" });
    const b = await backupImage(stack, u.id, makeImage(CHUNK, CHUNK), { sourceName: "b" });
    const first = (await u.client.request(StartRecoveryDocument, { input: { backupId: a.backup.id, target: "AWS" } })).startRecovery;
    started.push(`recovery-${first.id}`);
    expect(first.state).toBe("PENDING");
    expect((await u.client.request(MyQuotaDocument)).me.quota).toMatchObject({ concurrentRecoveries: 1, concurrentRecoveriesLimit: 1, runningMachines: 1 });

    const second = await u.client.execute(StartRecoveryDocument, { input: { backupId: b.backup.id, target: "AWS" } });
    expect(firstError(second.body.errors as Errors).extensions).toMatchObject({ code: "QUOTA_EXCEEDED", quota: "CONCURRENT_RECOVERIES", limit: 1, used: 1 });
    expect((await activeRecoveries(u.id)).map((r) => r.id)).toEqual([first.id]);

    const again = await u.client.request(StartRecoveryDocument, { input: { backupId: a.backup.id, target: "AWS" } });
    expect(again.startRecovery.id).toBe(first.id);

    // Concurrent starts of different backups: exactly one wins.
    await stack.rt.database.db.update(recoveries).set({ state: "FAILED" }).where(eq(recoveries.id, first.id));
    const results = await Promise.all([a, b].map((x) => u.client.execute(StartRecoveryDocument, { input: { backupId: x.backup.id, target: "AWS" } })));
    const ok = results.filter((r) => !r.body.errors);
    for (const r of ok) started.push(`recovery-${r.body.data!.startRecovery.id}`);
    expect(ok).toHaveLength(1);
    expect(firstError(results.find((r) => r.body.errors)!.body.errors as Errors).extensions).toMatchObject({ code: "QUOTA_EXCEEDED", quota: "CONCURRENT_RECOVERIES" });
    expect(await activeRecoveries(u.id)).toHaveLength(1);
    await stack.rt.database.db.update(recoveries).set({ state: "FAILED" }).where(eq(recoveries.userId, u.id));
  });

  it("running machines count against the user's limit, and local ones against the host's", async () => {
    const u = await signUp(stack);
    const { backup } = await backupImage(stack, u.id, makeImage(CHUNK, CHUNK), { sourceName: "m" });
    const machine = (provider: "AWS" | "LOCAL", state: "RUNNING" | "STOPPED") =>
      stack.rt.services.instances.record(u.id, { recoveryId: null, provider, providerId: `${provider.toLowerCase()}-${Math.random().toString(36).slice(2)}`, name: "m", state });
    const made = [await machine("AWS", "RUNNING"), await machine("AWS", "STOPPED")];
    // One AWS machine runs: the host (LOCAL) count is untouched, so a local recovery may start… unless the host is full.
    const local = await machine("LOCAL", "RUNNING");
    made.push(local);
    expect((await u.client.request(MyQuotaDocument)).me.quota).toMatchObject({ runningMachines: 2, runningMachinesLimit: 2, hostRunningMachinesLimit: 1 });
    const full = await u.client.execute(StartRecoveryDocument, { input: { backupId: backup.id, target: "LOCAL" } });
    expect(firstError(full.body.errors as Errors).extensions).toMatchObject({ code: "QUOTA_EXCEEDED", quota: "RUNNING_MACHINES", limit: 2, used: 2 });

    // Below the user's limit, the host's limit still applies to the local target.
    await stack.rt.database.db.update(instances).set({ state: "TERMINATED" }).where(eq(instances.id, made[0]!.id));
    const host = await u.client.execute(StartRecoveryDocument, { input: { backupId: backup.id, target: "LOCAL" } });
    expect(firstError(host.body.errors as Errors).extensions).toMatchObject({ code: "QUOTA_EXCEEDED", quota: "HOST_RUNNING_MACHINES", limit: 1 });
    expect(await activeRecoveries(u.id)).toEqual([]);
    await stack.rt.database.db.update(instances).set({ state: "TERMINATED" }).where(inArray(instances.id, made.map((m) => m.id)));
  });
});

describe("a local import without the disk space it needs", () => {
  let stack: TestStack;
  let worker: WorkerHandle;
  let dataDir: string;
  const taskQueue = `test-quotas-capacity-${process.pid}-${Date.now()}`;

  beforeAll(async () => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "reclo-quota-"));
    // Low capacity simulated by configuration: the reserve alone is more than any disk here has free.
    stack = await startStack({ TEMPORAL_TASK_QUEUE: taskQueue, RECLO_DATA_DIR: dataDir, LOCAL_IMPORT_DISK_RESERVE: "1000TiB", RECOVERY_POLL_INTERVAL: "200ms", RECOVERY_HEARTBEAT_TIMEOUT: "10s" });
    worker = await startWorker({ config: stack.config.temporal, activities: activitiesFor(stack.rt), logger: stack.rt.logger, workflowBundle: { codePath: inject("workflowBundlePath") } });
  });
  afterAll(async () => {
    await worker?.shutdown();
    await stack?.stop();
    if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it("fails the recovery with INSUFFICIENT_CAPACITY before writing anything, and cleans up", async () => {
    const u = await signUp(stack);
    const { backup } = await backupImage(stack, u.id, makeImage(CHUNK + MiB, CHUNK), { sourceName: "disk" });
    const r = (await u.client.request(StartRecoveryDocument, { input: { backupId: backup.id, target: "LOCAL" } })).startRecovery;
    let row = await stack.rt.services.recoveries.get(u.id, r.id);
    const deadline = Date.now() + 90_000;
    while (!["FAILED", "COMPLETED", "CANCELLED"].includes(row.state) && Date.now() < deadline) {
      await new Promise((res) => setTimeout(res, 200));
      row = await stack.rt.services.recoveries.get(u.id, r.id);
    }
    expect(row.state).toBe("FAILED");
    expect(row.failureReason).toMatch(/^INSUFFICIENT_CAPACITY: not enough disk space on the local target/);
    const local = path.join(dataDir, "local-target");
    const files = (sub: string) => (fs.existsSync(path.join(local, sub)) ? fs.readdirSync(path.join(local, sub)) : []);
    expect(files("tmp")).toEqual([]);
    expect(files("images")).toEqual([]);
    expect(files("instances")).toEqual([]);
    const events = await stack.rt.services.recoveries.events(u.id, r.id);
    expect(events.some((e) => e.status === "CLEANUP" && e.message?.startsWith("deleted composed image"))).toBe(true);
  }, 120_000);
});
