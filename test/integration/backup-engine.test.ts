import { createHash, randomFillSync } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { TypedDocumentNode } from "@graphql-typed-document-node/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GraphQLRequestError, ReCloClient } from "../../src/client/graphql-client";
import {
  AbortBackupDocument,
  BackupDocument,
  BackupsDocument,
  CompleteBackupDocument,
  CreateBackupDocument,
  DeleteBackupDocument,
  RequestChunkUploadsDocument,
} from "../../src/client/generated/graphql";
import { BackupError, planBackup, runBackup, type BackupResult } from "../../src/cli/backup";
import type { BackupEvent } from "../../src/cli/progress";
import { startStack, signUp, uniqueName, type TestStack, type TestUser } from "../helpers/stack";

const MiB = 1024 * 1024;
const CHUNK = 8 * MiB;

let stack: TestStack;
let tmp: string;

beforeAll(async () => {
  stack = await startStack();
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "reclo-engine-"));
});

afterAll(async () => {
  await stack?.stop();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

function sha256(buf: Uint8Array): string {
  return createHash("sha256").update(buf).digest("hex");
}

function fileSha(file: string): string {
  return sha256(fs.readFileSync(file));
}

/** Writes `size` bytes: random except the chunks listed in `zero`. */
function makeImage(file: string, size: number, zero: number[] = []): void {
  const fd = fs.openSync(file, "w");
  try {
    for (let off = 0, i = 0; off < size; off += CHUNK, i++) {
      const buf = Buffer.alloc(Math.min(CHUNK, size - off));
      if (!zero.includes(i)) randomFillSync(buf);
      fs.writeSync(fd, buf, 0, buf.length, off);
    }
  } finally {
    fs.closeSync(fd);
  }
}

/** Flips one byte at `offset` in place. */
function flipByte(file: string, offset: number): void {
  const fd = fs.openSync(file, "r+");
  try {
    const b = Buffer.alloc(1);
    fs.readSync(fd, b, 0, 1, offset);
    b[0] = b[0]! ^ 0xff;
    fs.writeSync(fd, b, 0, 1, offset);
  } finally {
    fs.closeSync(fd);
  }
}

/** Rebuilds a backup's image from its manifest in the store: its sha256 and size. */
async function reconstruct(userId: string, backupId: string): Promise<{ sha256: string; size: number }> {
  const chunks = stack.rt.services.chunks;
  const manifest = await chunks.getManifest(userId, backupId);
  expect(manifest).not.toBeNull();
  const hash = createHash("sha256");
  let size = 0;
  for (let i = 0; i < manifest!.chunks.length; i++) {
    const sha = manifest!.chunks[i];
    const expected = i === manifest!.chunks.length - 1 ? manifest!.imageSize - i * manifest!.chunkSize : manifest!.chunkSize;
    const body = sha ? await chunks.getChunk(userId, sha) : Buffer.alloc(expected);
    expect(body.length).toBe(expected);
    hash.update(body);
    size += body.length;
  }
  return { sha256: hash.digest("hex"), size };
}

async function expectCode(p: Promise<unknown>, code: string): Promise<GraphQLRequestError> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(GraphQLRequestError);
  expect((err as GraphQLRequestError).code).toBe(code);
  return err as GraphQLRequestError;
}

/** A real client that runs `hook` after each successful request of one document (to interfere at a precise moment). */
class HookedClient extends ReCloClient {
  constructor(
    url: string,
    token: string,
    private readonly hooks: { before?: Map<unknown, () => Promise<void>>; after?: Map<unknown, () => Promise<void>> },
  ) {
    super({ url, token });
  }

  override async request<TResult, TVars>(document: TypedDocumentNode<TResult, TVars>, variables?: TVars): Promise<TResult> {
    const before = this.hooks.before?.get(document);
    if (before) {
      this.hooks.before!.delete(document);
      await before();
    }
    const result = await super.request(document, variables);
    const after = this.hooks.after?.get(document);
    if (after) {
      this.hooks.after!.delete(document);
      await after();
    }
    return result;
  }
}

describe("backup engine (library) against the real API and S3", () => {
  let user: TestUser;
  let image: string;
  let configDir: string;
  const source = uniqueName("host");
  // 4 full chunks and a short last one; chunk 2 all zero.
  const size = 4 * CHUNK + 3 * MiB + 4321;
  const lastSize = size - 4 * CHUNK;
  const versions: { backupId: string; sha256: string; result: BackupResult }[] = [];

  beforeAll(async () => {
    user = await signUp(stack);
    image = path.join(tmp, "disk.img");
    configDir = path.join(tmp, "config");
    makeImage(image, size, [2]);
  });

  it("a FULL backup uploads every non-zero chunk once, skips the zero chunk and completes with the image's sha256", async () => {
    const events: BackupEvent[] = [];
    const expectedSha = fileSha(image);
    const r = await runBackup({ client: user.client, imagePath: image, sourceName: source, configDir, serverUrl: stack.app.graphqlUrl, onEvent: (e) => events.push(e) });

    expect(r.kind).toBe("FULL"); // first backup of the source: the weekly policy picks FULL
    expect(r.status).toBe("COMPLETED");
    expect(r.chunkSize).toBe(CHUNK);
    expect(r.chunkCount).toBe(5);
    expect(r.sha256).toBe(expectedSha);
    expect(r.uploadedBytes).toBe(3 * CHUNK + lastSize);
    expect(r.sentBytes).toBe(3 * CHUNK + lastSize);
    expect(r).toMatchObject({ chunksUploaded: 4, zeroChunks: 1, chunksAlreadyStored: 0, resumed: false });

    const uploaded = events.filter((e) => e.event === "chunk-uploaded").map((e) => (e.event === "chunk-uploaded" ? e.index : -1));
    expect(uploaded.sort()).toEqual([0, 1, 3, 4]);
    expect(events[0]).toMatchObject({ event: "start", backupId: r.backupId, kind: "FULL", imageSize: size, chunkSize: CHUNK, chunkCount: 5, resumed: false });
    expect(events.at(-1)).toMatchObject({ event: "done", backupId: r.backupId, status: "COMPLETED", uploadedBytes: r.uploadedBytes, sha256: expectedSha });
    const progress = events.filter((e) => e.event === "progress");
    expect(progress.length).toBeGreaterThan(0);
    expect(progress.at(-1)).toMatchObject({ hashedBytes: size, sentBytes: r.sentBytes, chunksSkipped: 1, etaSeconds: 0 });

    const { backup } = await user.client.request(BackupDocument, { id: r.backupId });
    expect(backup).toMatchObject({ status: "COMPLETED", kind: "FULL", sha256: expectedSha, imageSize: size, uploadedBytes: r.uploadedBytes });
    expect(fs.readdirSync(path.join(configDir, "state"))).toEqual([]); // resume state removed
    versions.push({ backupId: r.backupId, sha256: expectedSha, result: r });
  });

  it("an INCREMENTAL after changing two chunks uploads exactly those two", async () => {
    flipByte(image, 123); // chunk 0
    flipByte(image, 4 * CHUNK + lastSize - 1); // the short last chunk (4)
    const expectedSha = fileSha(image);
    const r = await runBackup({ client: user.client, imagePath: image, sourceName: source, configDir, serverUrl: stack.app.graphqlUrl, concurrency: 2 });

    expect(r.kind).toBe("INCREMENTAL"); // a FULL completed this week: the policy picks INCREMENTAL
    expect(r.parentId).toBe(versions[0]!.backupId);
    expect(r.status).toBe("COMPLETED");
    expect(r.uploadedBytes).toBe(CHUNK + lastSize);
    expect(r.sentBytes).toBe(CHUNK + lastSize);
    expect(r.chunksUploaded).toBe(2);
    expect(r.chunksAlreadyStored).toBe(2);
    expect(r.zeroChunks).toBe(1);
    expect(r.sha256).toBe(expectedSha);
    versions.push({ backupId: r.backupId, sha256: expectedSha, result: r });
  });

  it("every restore point rebuilds bit for bit from its manifest", async () => {
    expect(versions).toHaveLength(2);
    expect(versions[0]!.sha256).not.toBe(versions[1]!.sha256);
    for (const v of versions) {
      const rebuilt = await reconstruct(user.id, v.backupId);
      expect(rebuilt).toEqual({ sha256: v.sha256, size });
      const { backup } = await user.client.request(BackupDocument, { id: v.backupId });
      expect(backup.sha256).toBe(v.sha256);
    }
  });

  it("another user cannot complete, abort, delete or upload to your backup (NOT_FOUND)", async () => {
    const other = await signUp(stack);
    const { createBackup } = await user.client.request(CreateBackupDocument, { input: { sourceName: source, imageSize: 1000, kind: "FULL" } });
    const id = createBackup.id;
    const sha = sha256(Buffer.alloc(1000, 1));
    await expectCode(other.client.request(CompleteBackupDocument, { input: { backupId: id, sha256: sha, chunks: [sha] } }), "NOT_FOUND");
    await expectCode(other.client.request(AbortBackupDocument, { id }), "NOT_FOUND");
    await expectCode(other.client.request(DeleteBackupDocument, { id }), "NOT_FOUND");
    await expectCode(other.client.request(RequestChunkUploadsDocument, { input: { backupId: id, chunks: [{ index: 0, sha256: sha, size: 1000 }] } }), "NOT_FOUND");
    await expectCode(other.client.request(BackupDocument, { id }), "NOT_FOUND");
    // Nor a completed one.
    await expectCode(other.client.request(DeleteBackupDocument, { id: versions[0]!.backupId }), "NOT_FOUND");
    // Untouched for its owner.
    expect((await user.client.request(BackupDocument, { id })).backup.status).toBe("UPLOADING");
    expect((await user.client.request(BackupDocument, { id: versions[0]!.backupId })).backup.status).toBe("COMPLETED");
    expect((await user.client.request(AbortBackupDocument, { id })).abortBackup.status).toBe("ABORTED");
  });

  it("completing with a chunk never uploaded is CHUNKS_MISSING and keeps the backup UPLOADING; after the upload it completes", async () => {
    const body = randomFillSync(Buffer.alloc(3 * MiB + 17));
    const sha = sha256(body);
    const { createBackup } = await user.client.request(CreateBackupDocument, { input: { sourceName: uniqueName("small"), imageSize: body.length, kind: "FULL" } });
    const id = createBackup.id;
    const { requestChunkUploads } = await user.client.request(RequestChunkUploadsDocument, { input: { backupId: id, chunks: [{ index: 0, sha256: sha, size: body.length }] } });
    expect(requestChunkUploads.toUpload).toBe(1);
    const ticket = requestChunkUploads.tickets[0]!;
    expect(ticket.alreadyStored).toBe(false);

    const err = await expectCode(user.client.request(CompleteBackupDocument, { input: { backupId: id, sha256: sha, chunks: [sha] } }), "BAD_USER_INPUT");
    expect(err.errors[0]!.extensions).toMatchObject({ reason: "CHUNKS_MISSING", missingChunks: [0] });
    expect((await user.client.request(BackupDocument, { id })).backup.status).toBe("UPLOADING");

    const res = await fetch(ticket.url!, { method: "PUT", headers: Object.fromEntries(ticket.headers.map((h) => [h.name, h.value])), body });
    expect(res.status, await res.text()).toBe(200);
    const { completeBackup } = await user.client.request(CompleteBackupDocument, { input: { backupId: id, sha256: sha, chunks: [sha] } });
    expect(completeBackup).toMatchObject({ status: "COMPLETED", sha256: sha, uploadedBytes: body.length });
  });

  it("the engine re-uploads chunks the server reports missing at completion, and uploads a repeated chunk once", async () => {
    const file = path.join(tmp, "dup.img");
    makeImage(file, 3 * CHUNK);
    // Chunk 2 repeats chunk 0.
    const first = Buffer.alloc(CHUNK);
    const fd = fs.openSync(file, "r+");
    fs.readSync(fd, first, 0, CHUNK, 0);
    fs.writeSync(fd, first, 0, CHUNK, 2 * CHUNK);
    fs.closeSync(fd);
    const lost = sha256(first);
    // Right before the first completeBackup, chunk 0 disappears from the store.
    const client = new HookedClient(stack.app.graphqlUrl, user.token, {
      before: new Map([[CompleteBackupDocument, async () => void (await stack.rt.services.chunks.deleteChunks(user.id, [lost]))]]),
    });
    const r = await runBackup({ client, imagePath: file, sourceName: uniqueName("dup"), kind: "FULL" });
    expect(r.status).toBe("COMPLETED");
    expect(r.chunksDeduplicated).toBe(1);
    expect(r.chunksUploaded).toBe(3); // chunk 0, chunk 1, then chunk 0 again after CHUNKS_MISSING
    expect(r.sentBytes).toBe(3 * CHUNK);
    expect(r.uploadedBytes).toBe(2 * CHUNK); // distinct chunks this backup sent
    expect(await reconstruct(user.id, r.backupId)).toEqual({ sha256: fileSha(file), size: 3 * CHUNK });
    fs.rmSync(file);
  });

  it("an image that changes under the upload fails clearly (BadDigest) and the backup is aborted", async () => {
    const file = path.join(tmp, "changing.img");
    makeImage(file, CHUNK + MiB);
    const dir = path.join(tmp, "config-changing");
    // Once the tickets are issued (the chunks were hashed), the file changes before the PUTs re-read it.
    const client = new HookedClient(stack.app.graphqlUrl, user.token, { after: new Map([[RequestChunkUploadsDocument, async () => flipByte(file, 10)]]) });
    let backupId = "";
    const onEvent = (e: BackupEvent) => void (e.event === "start" && (backupId = e.backupId));
    const err = await runBackup({ client, imagePath: file, sourceName: uniqueName("changing"), kind: "FULL", configDir: dir, concurrency: 1, onEvent }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(BackupError);
    expect((err as BackupError).code).toBe("IMAGE_CHANGED");
    expect((err as Error).message).toMatch(/changed while it was being backed up/);
    expect((await user.client.request(BackupDocument, { id: backupId })).backup.status).toBe("ABORTED");
    const { backups } = await user.client.request(BackupsDocument, { first: 5, filter: { status: "UPLOADING" } });
    expect(backups.edges.map((e) => e.node.id)).not.toContain(backupId);
    expect(fs.readdirSync(path.join(dir, "state"))).toEqual([]);
    fs.rmSync(file);
  });

  it("policy: no kind asks the server's plan (FULL after the weekly FULL slot); --incremental without a completed backup is an error", async () => {
    // The source's FULL was taken today, after its latest weekly FULL slot (default schedule: Sunday 02:00 UTC).
    expect(await planBackup(user.client, source, undefined)).toEqual({ kind: "INCREMENTAL", parentId: versions[1]!.backupId });
    // A week on, a FULL slot has passed with no FULL since.
    const nextWeek = new Date(Date.now() + 7 * 86_400_000);
    expect(await planBackup(user.client, source, undefined, { at: nextWeek })).toEqual({ kind: "FULL", parentId: null });
    expect(await planBackup(user.client, source, "FULL")).toEqual({ kind: "FULL", parentId: null });
    const fresh = uniqueName("fresh");
    expect(await planBackup(user.client, fresh, undefined)).toEqual({ kind: "FULL", parentId: null });
    await expect(planBackup(user.client, fresh, "INCREMENTAL")).rejects.toMatchObject({ code: "NO_PARENT" });
  });
});

describe("backup engine: expired upload URLs", () => {
  let shortStack: TestStack;

  beforeAll(async () => {
    shortStack = await startStack({ S3_PRESIGN_EXPIRY: "1s" });
  });

  afterAll(async () => {
    await shortStack?.stop();
  });

  it("asks for a fresh URL when a presigned PUT has expired", async () => {
    const user = await signUp(shortStack);
    const file = path.join(tmp, "slow.img");
    makeImage(file, 2 * MiB);
    let delayed = 0;
    // The real fetch, but the first PUT waits until its URL has expired.
    const slowFetch: typeof fetch = async (input, init) => {
      if (init?.method === "PUT" && delayed++ === 0) await sleep(2100);
      return fetch(input, init);
    };
    const r = await runBackup({ client: user.client, imagePath: file, sourceName: uniqueName("slow"), kind: "FULL", fetch: slowFetch });
    // The expired attempt, then fresh URLs (under heavy load a 1 s URL can expire once more in flight).
    expect(delayed).toBeGreaterThanOrEqual(2);
    expect(r).toMatchObject({ status: "COMPLETED", chunksUploaded: 1, sentBytes: 2 * MiB, uploadedBytes: 2 * MiB, sha256: fileSha(file) });
    fs.rmSync(file);
  });
});
