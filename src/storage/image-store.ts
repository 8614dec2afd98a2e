import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  HeadObjectCommand,
  ListPartsCommand,
  UploadPartCopyCommand,
  type CompletedPart,
  type S3Client,
} from "@aws-sdk/client-s3";
import type { ChunkStore } from "./chunk-store";
import type { ComposedImage } from "../recoveries/targets/target";

/** Where a composition stands, so a retried activity resumes the same multipart upload. */
export interface ComposeCheckpoint {
  uploadId: string;
}

export class MissingChunkError extends Error {
  override name = "MissingChunkError";
}

export interface ComposeOptions {
  s3: S3Client;
  store: ChunkStore;
  importsBucket: string;
  userId: string;
  backupId: string;
  /** Object key of the composed raw image in the imports bucket. */
  key: string;
  concurrency?: number;
  resume?: ComposeCheckpoint;
  onCheckpoint?: (c: ComposeCheckpoint) => void;
  onProgress?: (partsDone: number, parts: number) => void;
  signal?: AbortSignal;
}

/**
 * Composes a restore point into one raw disk image object, server-side: a multipart upload whose
 * every part is an UploadPartCopy of a stored chunk (all-zero chunks copy one shared zero object).
 * No image bytes pass through this process. Idempotent: an existing object of the right size is
 * kept, and a checkpointed upload is resumed, re-copying only the parts it lacks.
 */
export async function composeRestorePoint(o: ComposeOptions): Promise<ComposedImage> {
  const manifest = await o.store.getManifest(o.userId, o.backupId);
  if (!manifest) throw new MissingChunkError(`backup ${o.backupId} has no manifest`);
  const dataBytes = manifest.chunks.reduce((n, sha, i) => (sha ? n + Math.min(manifest.chunkSize, manifest.imageSize - i * manifest.chunkSize) : n), 0);
  const result = { bucket: o.importsBucket, key: o.key, sizeBytes: manifest.imageSize, dataBytes };
  const existing = await o.s3.send(new HeadObjectCommand({ Bucket: o.importsBucket, Key: o.key })).catch(() => null);
  if (existing?.ContentLength === manifest.imageSize) {
    o.onProgress?.(manifest.chunks.length, manifest.chunks.length);
    return result;
  }

  const zeroKey = manifest.chunks.some((c) => c === null) ? await o.store.ensureZeroObject(manifest.chunkSize) : undefined;
  let uploadId = o.resume?.uploadId;
  const done = new Map<number, string>();
  if (uploadId) {
    try {
      let marker: string | undefined;
      do {
        const page = await o.s3.send(new ListPartsCommand({ Bucket: o.importsBucket, Key: o.key, UploadId: uploadId, PartNumberMarker: marker }));
        for (const p of page.Parts ?? []) if (p.PartNumber && p.ETag) done.set(p.PartNumber, p.ETag);
        marker = page.IsTruncated ? page.NextPartNumberMarker : undefined;
      } while (marker);
    } catch {
      uploadId = undefined; // the upload is gone: start again
      done.clear();
    }
  }
  if (!uploadId) {
    const created = await o.s3.send(new CreateMultipartUploadCommand({ Bucket: o.importsBucket, Key: o.key, ContentType: "application/octet-stream" }));
    uploadId = created.UploadId!;
  }
  o.onCheckpoint?.({ uploadId });

  const parts = manifest.chunks.length;
  const sizeOf = (i: number) => Math.min(manifest.chunkSize, manifest.imageSize - i * manifest.chunkSize);
  o.onProgress?.(done.size, parts);
  const todo = manifest.chunks.map((_, i) => i).filter((i) => !done.has(i + 1));
  let next = 0;
  const worker = async () => {
    while (next < todo.length) {
      o.signal?.throwIfAborted();
      const i = todo[next++]!;
      const sha = manifest.chunks[i];
      const sourceKey = sha ? o.store.chunkKey(o.userId, sha) : zeroKey!;
      const size = sizeOf(i);
      try {
        const r = await o.s3.send(
          new UploadPartCopyCommand({
            Bucket: o.importsBucket,
            Key: o.key,
            UploadId: uploadId,
            PartNumber: i + 1,
            CopySource: `${o.store.bucket}/${sourceKey}`,
            ...(sha === null && size !== manifest.chunkSize ? { CopySourceRange: `bytes=0-${size - 1}` } : {}),
          }),
          { abortSignal: o.signal },
        );
        done.set(i + 1, r.CopyPartResult!.ETag!);
      } catch (err) {
        const e = err as { name?: string };
        if (e.name === "NoSuchKey" || e.name === "NotFound") throw new MissingChunkError(`restore point ${o.backupId} is missing chunk ${i} (${sha ?? "zero"})`);
        throw err;
      }
      o.onProgress?.(done.size, parts);
    }
  };
  await Promise.all(Array.from({ length: Math.min(o.concurrency ?? 8, todo.length || 1) }, worker));

  const ordered: CompletedPart[] = [...done.entries()].sort((a, b) => a[0] - b[0]).map(([PartNumber, ETag]) => ({ PartNumber, ETag }));
  await o.s3.send(new CompleteMultipartUploadCommand({ Bucket: o.importsBucket, Key: o.key, UploadId: uploadId, MultipartUpload: { Parts: ordered } }));
  return result;
}

/** Gives up a half-done composition (cleanup). */
export async function abortComposition(s3: S3Client, bucket: string, key: string, uploadId: string): Promise<void> {
  await s3.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: uploadId })).catch(() => {});
}
