import type { Readable } from "node:stream";
import { GetObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { ImageChangedError, ImageUnreadableError, type ImageSource } from "../compute/target";

/** Answers that retrying cannot fix: the object or its bucket is gone, or we may not read it. */
const UNREADABLE = new Set(["NoSuchKey", "NoSuchBucket", "NotFound", "AccessDenied"]);

/**
 * The compute targets' ImageSource on the object store: one streaming GET of the composed image,
 * from its start or (a resumed download) a ranged GET from an offset, conditional on the ETag the
 * earlier part was read under.
 */
export function objectImageSource(s3: S3Client): ImageSource {
  return {
    async open({ bucket, key }, signal, from) {
      const offset = from?.offset ?? 0;
      let res;
      try {
        res = await s3.send(
          new GetObjectCommand({ Bucket: bucket, Key: key, ...(offset > 0 ? { Range: `bytes=${offset}-` } : {}), ...(from?.etag ? { IfMatch: from.etag } : {}) }),
          { abortSignal: signal },
        );
      } catch (err) {
        const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
        if (e.name && UNREADABLE.has(e.name)) throw new ImageUnreadableError(`s3://${bucket}/${key} cannot be read: ${e.name}`, e.name);
        if (e.name === "PreconditionFailed" || e.$metadata?.httpStatusCode === 412) throw new ImageChangedError(`s3://${bucket}/${key} changed since the download began`);
        if (e.name === "InvalidRange" || e.$metadata?.httpStatusCode === 416) throw new ImageChangedError(`s3://${bucket}/${key} is shorter than the ${offset} bytes already downloaded`);
        throw err;
      }
      if (!res.Body) throw new Error(`s3://${bucket}/${key} answered without a body`);
      if (from?.etag && res.ETag && res.ETag !== from.etag) {
        (res.Body as Readable).destroy();
        throw new ImageChangedError(`s3://${bucket}/${key} changed since the download began`);
      }
      // A ranged answer says the whole length after the slash: "bytes 100-199/1000".
      const total = res.ContentRange ? Number(/\/(\d+)$/.exec(res.ContentRange)?.[1]) : res.ContentLength;
      if (offset > 0 && !res.ContentRange) {
        // The store ignored the range: this is the whole object, which the caller cannot append.
        (res.Body as Readable).destroy();
        throw new Error(`s3://${bucket}/${key} answered a ranged read with the whole object`);
      }
      return { body: res.Body as Readable, sizeBytes: res.ContentLength, totalBytes: Number.isFinite(total) ? total : undefined, etag: res.ETag };
    },
  };
}
