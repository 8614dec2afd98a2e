import { GetObjectLockConfigurationCommand, HeadBucketCommand, S3Client } from "@aws-sdk/client-s3";
import type { Config } from "../config";
import type { Availability } from "../shared/availability";
import { S3ArtifactStore } from "./artifact-store";
import { ChunkStore } from "./chunk-store";
import { S3ImageStore } from "./image-store";

/** The SDK's client type, for the composition root and tests (which hold one and hand it to the stores). */
export type { S3Client } from "@aws-sdk/client-s3";

/**
 * S3 client for the configured store. `requestChecksumCalculation: WHEN_REQUIRED` keeps the SDK
 * from baking an empty-body CRC32 into presigned URLs.
 */
export function createS3Client(s3: Config["s3"], availability?: Availability): S3Client {
  const client = new S3Client({
    region: s3.region,
    endpoint: s3.endpoint,
    forcePathStyle: s3.forcePathStyle,
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
    // A hung store must fail the call, not stall it (the SDK only warns on timeout by default).
    requestHandler: { connectionTimeout: 2_000, requestTimeout: 120_000, throwOnRequestTimeout: true },
  });
  if (availability) {
    // The object store's breaker: UNAVAILABLE at once while it is known down, and a call that cannot
    // reach it (after the SDK's own retries) becomes UNAVAILABLE (OBJECT_STORE). HeadBucket is the
    // readiness check itself (the product uses it for nothing else), so it passes through.
    client.middlewareStack.add(
      (next, context) => async (args) => {
        if (context.commandName === "HeadBucketCommand") return next(args);
        return availability.guard("OBJECT_STORE", () => next(args));
      },
      { step: "initialize", name: "recloAvailability", priority: "high" },
    );
  }
  return client;
}

/** Throws unless every configured bucket answers. */
export async function checkBuckets(client: S3Client, s3: Config["s3"]): Promise<void> {
  for (const bucket of Object.values(s3.buckets)) {
    await client.send(new HeadBucketCommand({ Bucket: bucket }), { abortSignal: AbortSignal.timeout(2000) });
  }
}

/** Thrown when OBJECT_LOCK_MODE is on but the backups bucket has no Object Lock; the message names the fix. */
export class ObjectLockMissingError extends Error {
  constructor(bucket: string, detail: string) {
    super(
      `The backups bucket ${bucket} has no S3 Object Lock (${detail}), but OBJECT_LOCK_MODE asks for one. ` +
        `Enable it with \`node scripts/ensure-buckets.mjs --object-lock\` (turns on versioning and Object Lock on the existing bucket), ` +
        `point S3_BACKUPS_BUCKET at a bucket created with Object Lock, or set OBJECT_LOCK_MODE=OFF to run without it.`,
    );
    this.name = "ObjectLockMissingError";
  }
}

/** Throws ObjectLockMissingError unless `bucket` has Object Lock enabled. */
export async function checkObjectLock(client: S3Client, bucket: string): Promise<void> {
  let enabled: string | undefined;
  try {
    const r = await client.send(new GetObjectLockConfigurationCommand({ Bucket: bucket }), { abortSignal: AbortSignal.timeout(2000) });
    enabled = r.ObjectLockConfiguration?.ObjectLockEnabled;
  } catch (err) {
    const e = err as { name?: string };
    if (e?.name === "ObjectLockConfigurationNotFoundError") throw new ObjectLockMissingError(bucket, "no lock configuration");
    throw err;
  }
  if (enabled !== "Enabled") throw new ObjectLockMissingError(bucket, `ObjectLockEnabled is ${enabled ?? "unset"}`);
}

/** Every store on the configured buckets, sharing one client. */
export interface Stores {
  /** Backups: chunks and manifests (the backups bucket). */
  chunks: ChunkStore;
  /** Composed restore-point images (the imports bucket). */
  images: S3ImageStore;
  /** Screenshots and other evidence (the artifacts bucket). */
  artifacts: S3ArtifactStore;
}

export function createStores(client: S3Client, s3: Config["s3"]): Stores {
  const presignExpirySeconds = Math.round(s3.presignExpiryMs / 1000);
  const chunks = new ChunkStore(client, s3.buckets.backups, { presignExpirySeconds, ...(s3.objectLock ? { lock: s3.objectLock } : {}) });
  return {
    chunks,
    images: new S3ImageStore(client, s3.buckets.imports, chunks),
    artifacts: new S3ArtifactStore(client, s3.buckets.artifacts, { urlExpirySeconds: presignExpirySeconds }),
  };
}
