import type { Readable } from "node:stream";
import { GetObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { ImageUnreadableError, type ImageSource } from "../compute/target";

/** Answers that retrying cannot fix: the object or its bucket is gone, or we may not read it. */
const UNREADABLE = new Set(["NoSuchKey", "NoSuchBucket", "NotFound", "AccessDenied"]);

/** The compute targets' ImageSource on the object store: one streaming GET of the composed image. */
export function objectImageSource(s3: S3Client): ImageSource {
  return {
    async open({ bucket, key }, signal) {
      let res;
      try {
        res = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }), { abortSignal: signal });
      } catch (err) {
        const name = (err as { name?: string }).name;
        if (name && UNREADABLE.has(name)) throw new ImageUnreadableError(`s3://${bucket}/${key} cannot be read: ${name}`, name);
        throw err;
      }
      if (!res.Body) throw new Error(`s3://${bucket}/${key} answered without a body`);
      return { body: res.Body as Readable, sizeBytes: res.ContentLength };
    },
  };
}
