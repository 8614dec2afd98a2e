import { afterAll, beforeAll, describe, expect, it } from "vitest";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { randomFillSync } from "node:crypto";
import { and, eq } from "drizzle-orm";
import { startStack, signUp, errorOf, uniqueName, type TestStack, type TestUser } from "../helpers/stack";
import { openSubscription } from "../helpers/ws";
import { waitFor } from "../helpers/wait";
import { MiB } from "../helpers/backup";
import { runBackup, BackupError } from "../../src/cli/backup";
import { ReCloClient } from "../../src/client/graphql-client";
import { backups, notifications, uploads } from "../../src/db/schema";
import { sha256Hex } from "../../src/shared/bytes";
import {
  BackupDocument,
  ConfirmChunksDocument,
  CreateBackupDocument,
  FailUploadDocument,
  RequestChunkUploadsDocument,
  UploadDocument,
  UploadProgressDocument,
} from "../../src/client/generated/graphql";
import type { TypedDocumentNode } from "@graphql-typed-document-node/core";

const CHUNK = 8 * MiB;

/** A client that runs a hook once after the first request of a document. */
class HookedClient extends ReCloClient {
  constructor(
    url: string,
    token: string,
    private readonly after: Map<unknown, () => Promise<void> | void>,
  ) {
    super({ url, token });
  }
  override async request<TResult, TVars>(document: TypedDocumentNode<TResult, TVars>, variables?: TVars): Promise<TResult> {
    const result = await super.request(document, variables);
    const hook = this.after.get(document);
    if (hook) {
      this.after.delete(document);
      await hook();
    }
    return result;
  }
}

describe("uploads that mean something: live progress, failure reasons, abandonment, alerts", () => {
  let stack: TestStack;
  let alice: TestUser;
  let mallory: TestUser;
  let tmp: string;

  const notificationsOf = (userId: string, subjectId: string) =>
    stack.rt.database.db
      .select()
      .from(notifications)
      .where(and(eq(notifications.userId, userId), eq(notifications.subjectId, subjectId)));
  const uploadOfBackup = async (backupId: string) => (await stack.rt.database.db.select().from(uploads).where(eq(uploads.backupId, backupId)))[0]!;

  beforeAll(async () => {
    stack = await startStack();
    alice = await signUp(stack);
    mallory = await signUp(stack);
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "reclo-uploads-"));
  });
  afterAll(async () => {
    fs.rmSync(tmp, { recursive: true, force: true });
    await stack.stop();
  });

  it("bytesSent and chunksSent rise while the agent uploads (not only at the end), and uploadProgress pushes them, at most ~2 a second", async () => {
    const file = path.join(tmp, "live.img");
    fs.writeFileSync(file, randomFillSync(Buffer.alloc(8 * CHUNK)));
    const source = uniqueName("live");
    const sub = openSubscription(alice.client, UploadProgressDocument, { sourceName: source });
    await sub.connected;
    // Watch the row itself while the backup runs: it must show progress before completion.
    const seenInFlight: { bytesSent: number; chunksSent: number; status: string }[] = [];
    let stop = false;
    let backupId = "";
    const poll = (async () => {
      while (!stop) {
        if (backupId) {
          const u = await uploadOfBackup(backupId);
          if (u.status === "ACTIVE") seenInFlight.push({ bytesSent: u.bytesSent, chunksSent: u.chunksSent, status: u.status });
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    const started = Date.now();
    const r = await runBackup({
      client: alice.client,
      imagePath: file,
      sourceName: source,
      kind: "FULL",
      concurrency: 1,
      uploadDelayMs: 250,
      confirmIntervalMs: 100,
      onEvent: (e) => void (e.event === "start" && (backupId = e.backupId)),
    });
    const seconds = (Date.now() - started) / 1000;
    stop = true;
    await poll;
    expect(r.status).toBe("COMPLETED");
    const partial = seenInFlight.filter((s) => s.chunksSent > 0 && s.chunksSent < 8);
    expect(partial.length, JSON.stringify(seenInFlight.slice(-5))).toBeGreaterThan(0);
    expect(partial.every((s) => s.bytesSent === s.chunksSent * CHUNK)).toBe(true);

    const final = await uploadOfBackup(r.backupId);
    expect(final).toMatchObject({ status: "COMPLETED", bytesSent: 8 * CHUNK, chunksSent: 8, chunksTotal: 8, bytesTotal: 8 * CHUNK, bytesDone: 8 * CHUNK, failureReason: null });

    // The subscription: the new upload, ACTIVE snapshots with rising counts, then COMPLETED.
    await waitFor("the COMPLETED snapshot", () => sub.results.some((x) => x.data?.uploadProgress.status === "COMPLETED"), 10_000);
    const got = sub.results.map((x) => x.data!.uploadProgress);
    expect(got.every((u) => u.sourceName === source && u.id === final.id)).toBe(true);
    const active = got.filter((u) => u.status === "ACTIVE");
    expect(active.some((u) => u.chunksSent > 0 && u.chunksSent < 8)).toBe(true);
    for (let i = 1; i < active.length; i++) expect(active[i]!.bytesDone).toBeGreaterThanOrEqual(active[i - 1]!.bytesDone);
    expect(active.some((u) => u.rate > 0 && u.etaSeconds !== null)).toBe(true);
    // Neither or both of uploadId and sourceName: a typed error.
    for (const vars of [{}, { uploadId: final.id, sourceName: source }]) {
      const bad = openSubscription(alice.client, UploadProgressDocument, vars);
      const end = await bad.ended;
      const errors = (Array.isArray(end.error) ? end.error : bad.results.flatMap((x) => x.errors ?? [])) as { extensions?: { code?: string } }[];
      expect(errors[0]?.extensions?.code).toBe("BAD_USER_INPUT");
      await bad.dispose();
    }
    // Throttled: at most 2 a second per upload (plus the first and the last).
    expect(got.length).toBeLessThanOrEqual(Math.ceil(seconds * 2) + 3);
    expect(got.at(-1)).toMatchObject({ status: "COMPLETED", bytesSent: 8 * CHUNK, chunksSent: 8, etaSeconds: null });
    await sub.dispose();
  }, 60_000);

  it("write amplification is bounded: the agent confirms at most once a second (one row update each), whatever the chunk count", async () => {
    const file = path.join(tmp, "many.img");
    fs.writeFileSync(file, randomFillSync(Buffer.alloc(16 * CHUNK)));
    let confirms = 0;
    const counting = new (class extends ReCloClient {
      override async request<TResult, TVars>(document: TypedDocumentNode<TResult, TVars>, variables?: TVars): Promise<TResult> {
        if (document === (ConfirmChunksDocument as unknown)) confirms++;
        return super.request(document, variables);
      }
    })({ url: stack.app.graphqlUrl, token: alice.token });
    const started = Date.now();
    const r = await runBackup({ client: counting, imagePath: file, sourceName: uniqueName("many"), kind: "FULL", concurrency: 4 });
    const seconds = (Date.now() - started) / 1000;
    expect(r.chunksUploaded).toBe(16);
    const u = await uploadOfBackup(r.backupId);
    expect(u).toMatchObject({ status: "COMPLETED", chunksSent: 16, bytesSent: 16 * CHUNK });
    // One per started second of the pass, plus the last flush before completion.
    expect(confirms).toBeGreaterThanOrEqual(1);
    expect(confirms).toBeLessThanOrEqual(Math.ceil(seconds) + 1);
    console.log(`confirmChunks calls: ${confirms} for 16 chunks in ${seconds.toFixed(2)} s; upload row version ${u.version}`);
  }, 60_000);

  it("a chunk is counted once, and only when the store holds it (a URL handed out is not a chunk sent)", async () => {
    const body = randomFillSync(Buffer.alloc(MiB));
    const sha = sha256Hex(body);
    const { createBackup } = await alice.client.request(CreateBackupDocument, { input: { sourceName: uniqueName("honest"), imageSize: body.length, kind: "FULL" } });
    const { requestChunkUploads } = await alice.client.request(RequestChunkUploadsDocument, { input: { backupId: createBackup.id, chunks: [{ index: 0, sha256: sha, size: body.length }] } });
    // Confirmed before the PUT: the store lacks it, nothing is counted.
    const early = await alice.client.request(ConfirmChunksDocument, { input: { backupId: createBackup.id, chunks: [{ index: 0, sha256: sha }], bytesDone: 0 } });
    expect(early.confirmChunks).toMatchObject({ status: "ACTIVE", bytesSent: 0, chunksSent: 0 });
    const t = requestChunkUploads.tickets[0]!;
    const put = await fetch(t.url!, { method: "PUT", headers: Object.fromEntries(t.headers.map((h) => [h.name, h.value])), body });
    expect(put.status).toBe(200);
    const once = await alice.client.request(ConfirmChunksDocument, { input: { backupId: createBackup.id, chunks: [{ index: 0, sha256: sha }], bytesDone: body.length } });
    expect(once.confirmChunks).toMatchObject({ bytesSent: MiB, chunksSent: 1 });
    const twice = await alice.client.request(ConfirmChunksDocument, { input: { backupId: createBackup.id, chunks: [{ index: 0, sha256: sha }], bytesDone: body.length } });
    expect(twice.confirmChunks).toMatchObject({ bytesSent: MiB, chunksSent: 1 });
    // Typed errors and owner checks.
    expect((await errorOf(alice.client.request(ConfirmChunksDocument, { input: { backupId: createBackup.id, chunks: [{ index: 5, sha256: sha }], bytesDone: 0 } }))).code).toBe("BAD_USER_INPUT");
    expect((await errorOf(alice.client.request(ConfirmChunksDocument, { input: { backupId: createBackup.id, chunks: [], bytesDone: body.length + 1 } }))).code).toBe("BAD_USER_INPUT");
    expect((await errorOf(mallory.client.request(ConfirmChunksDocument, { input: { backupId: createBackup.id, chunks: [], bytesDone: 0 } }))).code).toBe("NOT_FOUND");
  });

  it("failUpload: owner-checked, typed errors, FAILED with the reason, one UPLOAD_FAILED notification; a run that resumes the backup is a new Upload", async () => {
    const { createBackup } = await alice.client.request(CreateBackupDocument, { input: { sourceName: uniqueName("fails"), imageSize: 4096, kind: "FULL" } });
    const uploadId = createBackup.upload!.id;
    for (const input of [{ uploadId, reason: "x" }, { backupId: createBackup.id, reason: "x" }]) {
      const err = await errorOf(mallory.client.request(FailUploadDocument, { input }));
      expect(err.code).toBe("NOT_FOUND");
    }
    const both = await errorOf(alice.client.request(FailUploadDocument, { input: { uploadId, backupId: createBackup.id, reason: "x" } }));
    expect(both.code).toBe("BAD_USER_INPUT");
    expect((await errorOf(alice.client.request(FailUploadDocument, { input: { reason: "x" } }))).code).toBe("BAD_USER_INPUT");
    expect((await errorOf(alice.client.request(FailUploadDocument, { input: { uploadId, reason: "   " } }))).extensions).toMatchObject({ code: "BAD_USER_INPUT", field: "reason" });
    expect((await alice.client.request(UploadDocument, { id: uploadId })).upload.status).toBe("ACTIVE");

    const sub = openSubscription(alice.client, UploadProgressDocument, { uploadId });
    await sub.waitFor(1);
    const reason = "IMAGE_NOT_READABLE: Reading the image at byte 8388608 failed: EIO: i/o error, read";
    const { failUpload } = await alice.client.request(FailUploadDocument, { input: { backupId: createBackup.id, reason } });
    expect(failUpload).toMatchObject({ id: uploadId, status: "FAILED", failureReason: reason, etaSeconds: null });
    expect(failUpload.completedAt).not.toBeNull();
    // The subscription by id ends with the failure.
    await sub.ended;
    expect(sub.results.map((x) => x.data!.uploadProgress.status)).toEqual(["ACTIVE", "FAILED"]);
    expect(sub.results.at(-1)!.data!.uploadProgress.failureReason).toBe(reason);
    await sub.dispose();

    // Said twice (a retried request): the same row, still one notification.
    const again = await alice.client.request(FailUploadDocument, { input: { uploadId, reason: "something else" } });
    expect(again.failUpload.failureReason).toBe(reason);
    const raised = await notificationsOf(alice.id, uploadId);
    expect(raised).toHaveLength(1);
    expect(raised[0]).toMatchObject({ kind: "UPLOAD_FAILED", subjectType: "UPLOAD", dedupeKey: `upload-failed:${uploadId}` });
    expect(raised[0]!.body).toContain(reason);
    expect(await notificationsOf(mallory.id, uploadId)).toHaveLength(0);

    // The backup stays UPLOADING: a run that resumes it is a new attempt, a new Upload; the failed one keeps its reason.
    const resumed = await alice.client.request(ConfirmChunksDocument, { input: { backupId: createBackup.id, chunks: [], bytesDone: 0 } });
    expect(resumed.confirmChunks.status).toBe("ACTIVE");
    expect(resumed.confirmChunks.id).not.toBe(uploadId);
    expect((await alice.client.request(UploadDocument, { id: uploadId })).upload).toMatchObject({ status: "FAILED", failureReason: reason });
    expect((await alice.client.request(BackupDocument, { id: createBackup.id })).backup.upload!.id).toBe(resumed.confirmChunks.id);
    // failUpload by backupId speaks of the current attempt.
    const second = await alice.client.request(FailUploadDocument, { input: { backupId: createBackup.id, reason: "SERVER_ERROR: gave up after retries" } });
    expect(second.failUpload).toMatchObject({ id: resumed.confirmChunks.id, status: "FAILED" });
    expect((await notificationsOf(alice.id, resumed.confirmChunks.id)).map((n) => n.kind)).toEqual(["UPLOAD_FAILED"]);

    // A COMPLETED upload cannot fail.
    const body = Buffer.alloc(4096, 3);
    const done = await stack.rt.services.backups.create(alice.id, { sourceName: uniqueName("done"), imageSize: 4096, kind: "FULL" as never });
    const [tk] = (await stack.rt.services.backupLifecycle.requestChunkUploads(alice.id, { backupId: done.id, chunks: [{ index: 0, sha256: sha256Hex(body), size: 4096 }] })).tickets;
    await (await fetch(tk!.url!, { method: "PUT", headers: Object.fromEntries(tk!.headers.map((h) => [h.name, h.value])), body })).arrayBuffer();
    await stack.rt.services.backupLifecycle.complete(alice.id, { backupId: done.id, sha256: sha256Hex(body), chunks: [sha256Hex(body)] });
    const late = await errorOf(alice.client.request(FailUploadDocument, { input: { backupId: done.id, reason: "too late" } }));
    expect(late.extensions).toMatchObject({ code: "CONFLICT", status: "COMPLETED" });
  });

  it("an upload that stops without a word is ABANDONED by expiry with a reason, and raises one UPLOAD_ABANDONED; a FAILED one stays FAILED", async () => {
    const db = stack.rt.database.db;
    const old = new Date(Date.now() - 25 * 3600_000);
    const silent = await stack.rt.services.backups.create(alice.id, { sourceName: uniqueName("silent"), imageSize: 4096, kind: "FULL" as never });
    const failed = await stack.rt.services.backups.create(alice.id, { sourceName: uniqueName("failed"), imageSize: 4096, kind: "FULL" as never });
    const failedUpload = await uploadOfBackup(failed.id);
    await stack.rt.services.uploads.fail(alice.id, { uploadId: failedUpload.id, reason: "UPLOAD_FAILED: the store said no" });
    await db.update(uploads).set({ lastActivityAt: old }).where(eq(uploads.backupId, silent.id));
    await db.update(uploads).set({ lastActivityAt: old }).where(eq(uploads.backupId, failed.id));
    const silentUpload = await uploadOfBackup(silent.id);
    const sub = openSubscription(alice.client, UploadProgressDocument, { uploadId: silentUpload.id });
    await sub.waitFor(1);

    // A backup whose first attempt failed long ago and whose second attempt is alive is left alone.
    const retried = await stack.rt.services.backups.create(alice.id, { sourceName: uniqueName("retried"), imageSize: 4096, kind: "FULL" as never });
    await stack.rt.services.uploads.fail(alice.id, { backupId: retried.id, reason: "SERVER_ERROR: first try" });
    await db.update(uploads).set({ lastActivityAt: old }).where(eq(uploads.backupId, retried.id));
    const second = await stack.rt.services.uploads.confirmChunks(alice.id, { backupId: retried.id, chunks: [], bytesDone: 0 });
    expect(second.status).toBe("ACTIVE");

    const expired = await stack.rt.services.maintenance.expireUploads({ userIds: [alice.id] });
    expect(expired).toEqual(expect.arrayContaining([silent.id, failed.id]));
    expect(expired).not.toContain(retried.id);
    expect((await stack.rt.services.uploads.get(alice.id, second.id)).status).toBe("ACTIVE");
    expect(await stack.rt.services.maintenance.expireUploads({ userIds: [alice.id] })).not.toContain(silent.id); // idempotent

    const s = await uploadOfBackup(silent.id);
    expect(s.status).toBe("ABANDONED");
    expect(s.failureReason).toBe(`No word from the agent since ${old.toISOString()}; the unfinished backup was discarded`);
    expect((await db.select().from(backups).where(eq(backups.id, silent.id)))[0]!.status).toBe("ABORTED");
    const told = await notificationsOf(alice.id, silentUpload.id);
    expect(told).toHaveLength(1);
    expect(told[0]).toMatchObject({ kind: "UPLOAD_ABANDONED", subjectType: "UPLOAD" });
    await sub.ended;
    expect(sub.results.at(-1)!.data!.uploadProgress).toMatchObject({ status: "ABANDONED", failureReason: s.failureReason });
    await sub.dispose();

    const f = await uploadOfBackup(failed.id);
    expect(f).toMatchObject({ status: "FAILED", failureReason: "UPLOAD_FAILED: the store said no" });
    expect((await db.select().from(backups).where(eq(backups.id, failed.id)))[0]!.status).toBe("ABORTED");
    expect((await notificationsOf(alice.id, f.id)).map((n) => n.kind)).toEqual(["UPLOAD_FAILED"]);
  });

  it("the engine reports its failure: an image that shrinks mid-upload leaves the upload FAILED with the reason", async () => {
    const file = path.join(tmp, "shrinks.img");
    fs.writeFileSync(file, randomFillSync(Buffer.alloc(3 * CHUNK)));
    let backupId = "";
    // Once the first tickets are out, the file is cut short: re-reading chunk 2 for its PUT fails.
    const client = new HookedClient(stack.app.graphqlUrl, alice.token, new Map([[RequestChunkUploadsDocument, () => fs.truncateSync(file, CHUNK + 100)]]));
    const err = await runBackup({ client, imagePath: file, sourceName: uniqueName("shrinks"), kind: "FULL", concurrency: 1, batchSize: 3, onEvent: (e) => void (e.event === "start" && (backupId = e.backupId)) }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(BackupError);
    const u = await uploadOfBackup(backupId);
    expect(u.status).toBe("FAILED");
    expect(u.failureReason).toMatch(/^IMAGE_CHANGED: .*(shrank|changed)/);
    expect((await notificationsOf(alice.id, u.id)).map((n) => n.kind)).toEqual(["UPLOAD_FAILED"]);
  });
});

