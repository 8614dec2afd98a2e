import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHash } from "node:crypto";
import { CreateMultipartUploadCommand, DeleteObjectCommand, GetObjectCommand, ListMultipartUploadsCommand, ListPartsCommand, UploadPartCopyCommand } from "@aws-sdk/client-s3";
import { startStack, signUp, type TestStack, type TestUser } from "../helpers/stack";
import { backupImage, makeImage, MiB } from "../helpers/backup";
import { MissingChunkError } from "../../src/storage/image-store";
import { BackupRestorableDocument, StartRecoveryDocument } from "../../src/client/generated/graphql";

const CHUNK = 8 * MiB;
const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

describe("server-side composition of a restore point (real versitygw)", () => {
  let stack: TestStack;
  let user: TestUser;
  const keys: string[] = [];
  beforeAll(async () => {
    stack = await startStack();
    user = await signUp(stack);
  });
  afterAll(async () => {
    for (const Key of keys) await stack.rt.s3.send(new DeleteObjectCommand({ Bucket: stack.config.s3.buckets.imports, Key }));
    await stack.stop();
  });

  const read = async (key: string) => {
    const r = await stack.rt.s3.send(new GetObjectCommand({ Bucket: stack.config.s3.buckets.imports, Key: key }));
    return Buffer.from(await r.Body!.transformToByteArray());
  };

  it("copies every chunk as a part, zero chunks (a short last one included) from the shared zero object, bit-for-bit", async () => {
    const image = makeImage(3 * CHUNK + 2 * MiB, CHUNK, [1, 3]);
    const { backup } = await backupImage(stack, user.id, image, { sourceName: "compose" });
    const key = `${user.id}/recoveries/test-${Date.now()}.raw`;
    keys.push(key);
    const progress: number[] = [];
    const composed = await stack.rt.storage.images.compose({
      userId: user.id,
      backupId: backup.id,
      key,
      onProgress: (done, parts) => progress.push(done / parts),
    });
    // dataBytes: the two non-zero chunks (what a sparse local copy occupies).
    expect(composed).toEqual({ bucket: stack.config.s3.buckets.imports, key, sizeBytes: image.length, dataBytes: 2 * CHUNK });
    expect(sha(await read(key))).toBe(sha(image));
    expect(progress.at(-1)).toBe(1);
    expect([...progress].sort((a, b) => a - b)).toEqual(progress);

    // Idempotent: composing again keeps the object.
    const again = await stack.rt.storage.images.compose({ userId: user.id, backupId: backup.id, key });
    expect(again.sizeBytes).toBe(image.length);
  });

  it("resumes a checkpointed multipart upload, copying only the missing parts", async () => {
    const image = makeImage(2 * CHUNK + MiB, CHUNK);
    const { backup, chunks } = await backupImage(stack, user.id, image, { sourceName: "compose-resume" });
    const key = `${user.id}/recoveries/resume-${Date.now()}.raw`;
    keys.push(key);
    const bucket = stack.config.s3.buckets.imports;
    const { UploadId } = await stack.rt.s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }));
    await stack.rt.s3.send(
      new UploadPartCopyCommand({ Bucket: bucket, Key: key, UploadId, PartNumber: 1, CopySource: `${stack.config.s3.buckets.backups}/${stack.rt.services.chunks.chunkKey(user.id, chunks[0]!)}` }),
    );
    let copiedFrom = -1;
    await stack.rt.storage.images.compose({
      userId: user.id,
      backupId: backup.id,
      key,
      resume: { uploadId: UploadId! },
      onProgress: (done) => {
        if (copiedFrom < 0) copiedFrom = done;
      },
    });
    expect(copiedFrom).toBe(1); // part 1 was already there
    expect(sha(await read(key))).toBe(sha(image));
  });

  it("aborts the uploads an attempt that died before its checkpoint left under the same key", async () => {
    const image = makeImage(CHUNK + MiB, CHUNK);
    const { backup } = await backupImage(stack, user.id, image, { sourceName: "compose-orphans" });
    const key = `${user.id}/recoveries/orphans-${Date.now()}.raw`;
    keys.push(key);
    const bucket = stack.config.s3.buckets.imports;
    const open = async () => ((await stack.rt.s3.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: key }))).Uploads ?? []).filter((u) => u.Key === key);
    // Two attempts killed before they checkpointed: their uploads are open, and nobody knows their ids.
    await stack.rt.s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }));
    await stack.rt.s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }));
    expect(await open()).toHaveLength(2);
    await stack.rt.storage.images.compose({ userId: user.id, backupId: backup.id, key });
    expect(sha(await read(key))).toBe(sha(image));
    expect(await open()).toEqual([]);
  });

  it("gives up a half-done composition and deletes a composed image, both idempotently", async () => {
    const image = makeImage(CHUNK + MiB, CHUNK);
    const { backup } = await backupImage(stack, user.id, image, { sourceName: "compose-cleanup" });
    const bucket = stack.config.s3.buckets.imports;
    const images = stack.rt.storage.images;

    const halfKey = `${user.id}/recoveries/abort-${Date.now()}.raw`;
    const { UploadId } = await stack.rt.s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: halfKey }));
    await images.abortComposition(halfKey, UploadId!);
    await expect(stack.rt.s3.send(new ListPartsCommand({ Bucket: bucket, Key: halfKey, UploadId }))).rejects.toMatchObject({ name: "NoSuchUpload" });
    await expect(images.abortComposition(halfKey, UploadId!)).resolves.toBeUndefined();

    const key = `${user.id}/recoveries/delete-${Date.now()}.raw`;
    keys.push(key);
    await images.compose({ userId: user.id, backupId: backup.id, key });
    expect(sha(await read(key))).toBe(sha(image));
    await images.delete(key);
    await expect(read(key)).rejects.toMatchObject({ name: "NoSuchKey" });
    await expect(images.delete(key)).resolves.toBeUndefined();
  });

  it("fails with MissingChunkError when a chunk is gone", async () => {
    const image = makeImage(CHUNK + MiB, CHUNK);
    const { backup, chunks } = await backupImage(stack, user.id, image, { sourceName: "compose-missing" });
    expect((await user.client.request(BackupRestorableDocument, { id: backup.id })).backup).toMatchObject({ status: "COMPLETED", restorable: true });
    await stack.rt.services.chunks.deleteChunks(user.id, [chunks[1]!]);
    // COMPLETED but no longer restorable: the API says so and refuses to start a recovery.
    expect((await user.client.request(BackupRestorableDocument, { id: backup.id })).backup).toMatchObject({ status: "COMPLETED", restorable: false });
    const refused = await user.client.execute(StartRecoveryDocument, { input: { backupId: backup.id, target: "LOCAL" } });
    expect(refused.body.errors![0]!.extensions).toMatchObject({ code: "BAD_USER_INPUT", field: "backupId" });
    expect(refused.body.errors![0]!.message).toMatch(/not restorable/);
    const key = `${user.id}/recoveries/missing-${Date.now()}.raw`;
    await expect(
      stack.rt.storage.images.compose({ userId: user.id, backupId: backup.id, key }),
    ).rejects.toBeInstanceOf(MissingChunkError);
  });
});
