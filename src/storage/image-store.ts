import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListPartsCommand,
  UploadPartCopyCommand,
  type CompletedPart,
  type S3Client,
} from "@aws-sdk/client-s3";
import type { ChunkStore } from "./chunk-store";

/**
 * A restore point composed into one raw disk image object (the imports bucket), ready for a
 * compute target to import. Same shape as the compute port's image argument.
 */
export interface ComposedImage {
  bucket: string;
  key: string;
  sizeBytes: number;
  /** Bytes of non-zero chunks (what a sparse copy of the image occupies); unknown = sizeBytes. */
  dataBytes?: number;
}

/** Where a composition stands, so a retried activity resumes the same multipart upload. */
export interface ComposeCheckpoint {
  uploadId: string;
}

/** The restore point has no manifest, or one of its chunks is gone: retrying cannot help. */
export class MissingChunkError extends Error {
  override name = "MissingChunkError";
}

export interface ComposeRequest {
  userId: string;
  backupId: string;
  /** Object key of the composed raw image in the imports bucket. */
  key: string;
  /** Parts copied at once (default 8). */
  concurrency?: number;
  resume?: ComposeCheckpoint;
  onCheckpoint?: (c: ComposeCheckpoint) => void;
  onProgress?: (partsDone: number, parts: number) => void;
  signal?: AbortSignal;
}

/**
 * Composed restore-point images: what recovery and verification hand to a compute target, and
 * remove again when they are done or give up.
 */
export interface ImageStore {
  /**
   * Composes a restore point into one raw image object at `key`, server-side; idempotent (an
   * object of the right size is kept) and resumable from a checkpoint. MissingChunkError when the
   * restore point cannot be composed.
   */
  compose(req: ComposeRequest): Promise<ComposedImage>;
  /**
   * Gives up a half-done composition (cleanup; never throws): the upload `uploadId`, or, when it is
   * not known (a composition cancelled before it told), every open upload to `key`.
   */
  abortComposition(key: string, uploadId?: string): Promise<void>;
  /** Deletes a composed image; idempotent. */
  delete(key: string): Promise<void>;
}

/**
 * The ImageStore on S3: a composition is a multipart upload whose every part is an UploadPartCopy
 * of a stored chunk (all-zero chunks copy one shared zero object), so no image bytes pass through
 * this process.
 */
export class S3ImageStore implements ImageStore {
  constructor(
    private readonly s3: S3Client,
    readonly bucket: string,
    private readonly chunks: ChunkStore,
  ) {}

  async compose(o: ComposeRequest): Promise<ComposedImage> {
    const manifest = await this.chunks.getManifest(o.userId, o.backupId);
    if (!manifest) throw new MissingChunkError(`backup ${o.backupId} has no manifest`);
    const dataBytes = manifest.chunks.reduce((n, sha, i) => (sha ? n + Math.min(manifest.chunkSize, manifest.imageSize - i * manifest.chunkSize) : n), 0);
    const result = { bucket: this.bucket, key: o.key, sizeBytes: manifest.imageSize, dataBytes };
    const existing = await this.s3.send(new HeadObjectCommand({ Bucket: this.bucket, Key: o.key })).catch(() => null);
    if (existing?.ContentLength === manifest.imageSize) {
      o.onProgress?.(manifest.chunks.length, manifest.chunks.length);
      return result;
    }

    const zeroKey = manifest.chunks.some((c) => c === null) ? await this.chunks.ensureZeroObject(manifest.chunkSize) : undefined;
    let uploadId = o.resume?.uploadId;
    const done = new Map<number, string>();
    if (uploadId) {
      try {
        let marker: string | undefined;
        do {
          const page = await this.s3.send(new ListPartsCommand({ Bucket: this.bucket, Key: o.key, UploadId: uploadId, PartNumberMarker: marker }));
          for (const p of page.Parts ?? []) if (p.PartNumber && p.ETag) done.set(p.PartNumber, p.ETag);
          marker = page.IsTruncated ? page.NextPartNumberMarker : undefined;
        } while (marker);
      } catch {
        uploadId = undefined; // the upload is gone: start again
        done.clear();
      }
    }
    if (!uploadId) {
      // An earlier attempt of this composition that died before it checkpointed left its upload
      // open under the same key (the key is the recovery's or verification's own): nobody could
      // resume it, so it is aborted rather than left to be billed.
      await this.abortComposition(o.key);
      const created = await this.s3.send(new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: o.key, ContentType: "application/octet-stream" }));
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
        const sourceKey = sha ? this.chunks.chunkKey(o.userId, sha) : zeroKey!;
        const size = sizeOf(i);
        try {
          const r = await this.s3.send(
            new UploadPartCopyCommand({
              Bucket: this.bucket,
              Key: o.key,
              UploadId: uploadId,
              PartNumber: i + 1,
              CopySource: `${this.chunks.bucket}/${sourceKey}`,
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
    await this.s3.send(new CompleteMultipartUploadCommand({ Bucket: this.bucket, Key: o.key, UploadId: uploadId, MultipartUpload: { Parts: ordered } }));
    // A killed attempt's CreateMultipartUpload can still be carried out by a busy object store
    // after this attempt started: whatever is still open under the key now is nobody's.
    await this.abortComposition(o.key);
    return result;
  }

  async abortComposition(key: string, uploadId?: string): Promise<void> {
    const ids = new Set<string>(uploadId ? [uploadId] : []);
    try {
      let keyMarker: string | undefined;
      let uploadIdMarker: string | undefined;
      do {
        const page = await this.s3.send(new ListMultipartUploadsCommand({ Bucket: this.bucket, Prefix: key, KeyMarker: keyMarker, UploadIdMarker: uploadIdMarker }));
        for (const u of page.Uploads ?? []) if (u.Key === key && u.UploadId) ids.add(u.UploadId);
        keyMarker = page.IsTruncated ? page.NextKeyMarker : undefined;
        uploadIdMarker = page.IsTruncated ? page.NextUploadIdMarker : undefined;
      } while (keyMarker || uploadIdMarker);
    } catch {
      // Listing is best effort: the known upload (if any) is still aborted below.
    }
    for (const id of ids) await this.s3.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: key, UploadId: id })).catch(() => {});
  }

  async delete(key: string): Promise<void> {
    await this.s3.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }));
  }
}
