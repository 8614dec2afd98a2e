import { HeadBucketCommand, S3Client } from "@aws-sdk/client-s3";
import type { Config } from "../config";

/**
 * S3 client for the configured store. `requestChecksumCalculation: WHEN_REQUIRED` keeps the SDK
 * from baking an empty-body CRC32 into presigned URLs.
 */
export function createS3Client(s3: Config["s3"]): S3Client {
  return new S3Client({
    region: s3.region,
    endpoint: s3.endpoint,
    forcePathStyle: s3.forcePathStyle,
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
    // A hung store must fail the call, not stall it (the SDK only warns on timeout by default).
    requestHandler: { connectionTimeout: 5_000, requestTimeout: 120_000, throwOnRequestTimeout: true },
  });
}

/** Throws unless every configured bucket answers. */
export async function checkBuckets(client: S3Client, s3: Config["s3"]): Promise<void> {
  for (const bucket of Object.values(s3.buckets)) {
    await client.send(new HeadBucketCommand({ Bucket: bucket }), { abortSignal: AbortSignal.timeout(3000) });
  }
}
