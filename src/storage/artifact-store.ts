import { DeleteObjectCommand, GetObjectCommand, PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";

/** A short-lived link to read one stored artifact. */
export interface PresignedGet {
  url: string;
  expiresAt: Date;
}

/**
 * What features keep as evidence and show to their owner: console screenshots, boot-check
 * screenshots, verification screenshots (the artifacts bucket). Keys are the caller's (they start
 * with the owner's user id); the browser and the CLI read artifacts only through presigned GETs.
 */
export interface ArtifactStore {
  /** Stores `body` under `key` with its content type (replacing what was there). */
  put(key: string, body: Uint8Array, contentType: string): Promise<void>;
  /** Idempotent: deleting a missing artifact succeeds. */
  delete(key: string): Promise<void>;
  /** A presigned GET for `key`, valid `expirySeconds` (default: the store's configured lifetime). */
  presignGet(key: string, expirySeconds?: number): Promise<PresignedGet>;
}

export interface S3ArtifactStoreOptions {
  /** Default lifetime of presigned GET URLs in seconds (default 900). */
  urlExpirySeconds?: number;
}

/** The ArtifactStore on one S3 bucket. */
export class S3ArtifactStore implements ArtifactStore {
  readonly urlExpirySeconds: number;

  constructor(
    private readonly s3: S3Client,
    readonly bucket: string,
    opts: S3ArtifactStoreOptions = {},
  ) {
    this.urlExpirySeconds = opts.urlExpirySeconds ?? 900;
    if (!Number.isInteger(this.urlExpirySeconds) || this.urlExpirySeconds < 1 || this.urlExpirySeconds > 604_800)
      throw new Error(`urlExpirySeconds must be 1..604800, got ${this.urlExpirySeconds}`);
  }

  async put(key: string, body: Uint8Array, contentType: string): Promise<void> {
    await this.s3.send(new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: body, ContentType: contentType }));
  }

  async delete(key: string): Promise<void> {
    await this.s3.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }));
  }

  async presignGet(key: string, expirySeconds = this.urlExpirySeconds): Promise<PresignedGet> {
    const url = await getSignedUrl(this.s3, new GetObjectCommand({ Bucket: this.bucket, Key: key }), { expiresIn: expirySeconds });
    return { url, expiresAt: new Date(Date.now() + expirySeconds * 1000) };
  }
}
