import fsp from "node:fs/promises";
import { Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { Config } from "../../config";
import { ImageChangedError, ImageUnreadableError, TargetError, type ComposedImage, type ImageSource, type ImageStream, type ImportStatus } from "../target";
import { checkId, type LocalLayout } from "./layout";
import type { Qemu } from "./qemu";
import { sparseFileWriter } from "./sparse-writer";
import { errMessage, exists, freeBytes, mib, noop, type LocalTargetLogger } from "./host";

/**
 * The local image import: the composed raw image is downloaded (sparse: zero blocks stay holes, at
 * most LOCAL_IMPORT_RATE_LIMIT bytes/s) to tmp/<key>.raw, checkpointed about once a second so that
 * an interrupted download (a transient error, a killed worker) continues where it stopped, converted to a qcow2 base image with
 * qemu-img, and renamed into images/img-<key>.qcow2 only when complete. An import runs once per
 * key in this process (a retried call joins it); aborting it removes what it wrote; an import the
 * disk has no room for is refused before anything is written.
 */

/**
 * What of a download is on disk for good (written and flushed), next to it as tmp/<key>.raw.ckpt:
 * a later attempt, in this process or a new one after a crash, continues from `bytes` with a
 * ranged read of the same image version (`etag`).
 */
interface DownloadCheckpoint {
  bucket: string;
  key: string;
  sizeBytes: number;
  etag?: string;
  bytes: number;
}

const checkpointPath = (raw: string) => `${raw}.ckpt`;

/** Replaces the checkpoint atomically (a crash leaves the old one or the new one). */
async function writeCheckpoint(file: string, c: DownloadCheckpoint): Promise<void> {
  await fsp.writeFile(`${file}.tmp`, JSON.stringify(c));
  await fsp.rename(`${file}.tmp`, file);
}

interface ActiveImport {
  promise: Promise<void>;
  progress: number;
  message: string;
  abort: AbortController;
}

export class LocalImages {
  private readonly imports = new Map<string, ActiveImport>();
  private readonly importFailures = new Map<string, string>();

  constructor(
    private readonly cfg: Config["local"],
    private readonly layout: LocalLayout,
    private readonly qemu: Qemu,
    private readonly source: ImageSource,
    private readonly log: LocalTargetLogger,
  ) {}

  async startImport(idempotencyKey: string, image: ComposedImage, onProgress?: (percent: number, message?: string) => void, signal?: AbortSignal): Promise<{ importTaskId: string }> {
    checkId(idempotencyKey, "idempotency key");
    const imageId = `img-${idempotencyKey}`;
    let last = -1;
    const report = (percent: number, message: string) => {
      const p = Math.max(0, Math.min(100, Math.floor(percent)));
      const active = this.imports.get(imageId);
      if (active && p >= active.progress) {
        active.progress = p;
        active.message = message;
      }
      if (p > last) {
        last = p;
        onProgress?.(p, message);
      }
    };

    if (await exists(this.layout.imagePath(imageId))) {
      report(100, "image ready");
      return { importTaskId: imageId };
    }
    let entry = this.imports.get(imageId);
    if (!entry) {
      if (signal?.aborted) throw new TargetError(`import ${imageId} was cancelled`, false, "IMPORT_CANCELLED");
      const fresh: ActiveImport = { promise: Promise.resolve(), progress: 0, message: "starting", abort: new AbortController() };
      this.imports.set(imageId, fresh);
      this.importFailures.delete(imageId);
      fresh.promise = this.runImport(idempotencyKey, imageId, image, fresh.abort.signal, report).then(
        () => void this.imports.delete(imageId),
        (err: unknown) => {
          this.importFailures.set(imageId, errMessage(err));
          this.imports.delete(imageId);
          throw err;
        },
      );
      entry = fresh;
    }
    // Whoever waits for the import (a retried activity joins the running one) may stop it.
    const stop = entry.abort;
    const onAbort = () => stop.abort();
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      await entry.promise;
    } finally {
      signal?.removeEventListener("abort", onAbort);
    }
    report(100, "image ready");
    return { importTaskId: imageId };
  }

  private async runImport(idempotencyKey: string, imageId: string, image: ComposedImage, signal: AbortSignal, report: (p: number, m: string) => void): Promise<void> {
    const started = Date.now();
    await fsp.mkdir(this.layout.tmpDir, { recursive: true });
    await fsp.mkdir(this.layout.imagesDir, { recursive: true });
    const raw = this.layout.download(idempotencyKey);
    const ckpt = checkpointPath(raw);
    const part = `${this.layout.imagePath(imageId)}.part`;
    // Before anything is written: the sparse raw download and the qcow2 made from it both hold the
    // image's data at the peak, and the host keeps its reserve.
    await this.checkCapacity(imageId, image);
    // Whether what lies in tmp/ may be kept when this attempt ends: only a transient failure (the
    // next attempt, in this process or after a worker restart, resumes from the checkpoint).
    let keepPartial = false;
    let downloaded = 0;
    try {
      const open = async (from?: { offset: number; etag?: string }) => {
        try {
          return await this.source.open(image, signal, from);
        } catch (err) {
          if (err instanceof ImageChangedError) throw err;
          if (err instanceof ImageUnreadableError) {
            throw new TargetError(`composed image s3://${image.bucket}/${image.key} cannot be read: ${err.reason}`, false, "IMAGE_SOURCE_MISSING");
          }
          if (signal.aborted) throw new TargetError(`import ${imageId} was cancelled`, false, "IMPORT_CANCELLED");
          throw new TargetError(`downloading s3://${image.bucket}/${image.key}: ${errMessage(err)}`, true);
        }
      };
      // A partial download of this very image, as far as it was flushed to disk, is continued.
      let resume = await this.readCheckpoint(raw, image);
      let res: ImageStream | undefined;
      if (resume && resume.bytes < image.sizeBytes) {
        try {
          res = await open({ offset: resume.bytes, etag: resume.etag });
        } catch (err) {
          if (!(err instanceof ImageChangedError)) throw err;
          this.log.warn({ imageId, err: err.message }, "partial download discarded: the image changed");
          resume = undefined;
        }
      }
      if (!resume) await fsp.rm(ckpt, { force: true });
      const offset = resume?.bytes ?? 0;
      if (resume && resume.bytes >= image.sizeBytes) {
        await fsp.truncate(raw, image.sizeBytes);
      } else {
        if (!res) res = await open();
        const stream = res;
        const total = stream.totalBytes ?? (stream.sizeBytes !== undefined ? offset + stream.sizeBytes : image.sizeBytes);
        let done = offset;
        const rate = this.cfg.importRateLimit;
        const downloadStarted = Date.now();
        report(total > 0 ? (50 * offset) / total : 0, offset > 0 ? `resuming the download at ${mib(offset)}/${mib(total)} MiB` : "downloading image");
        const counter = new Transform({
          transform(chunk: Buffer, _enc, cb) {
            done += chunk.length;
            downloaded += chunk.length;
            if (total > 0) report((50 * done) / total, `downloading ${mib(done)}/${mib(total)} MiB`);
            // LOCAL_IMPORT_RATE_LIMIT: hold the chunk back until the average rate is within the limit.
            const wait = rate > 0 ? downloadStarted + (downloaded / rate) * 1000 - Date.now() : 0;
            if (wait > 0) setTimeout(() => cb(null, chunk), wait);
            else cb(null, chunk);
          },
        });
        const etag = stream.etag;
        try {
          // Sparse: all-zero blocks become holes, so an empty 2 TiB disk costs what its data costs.
          // About once a second what is on disk for good is recorded: a retry continues from there.
          await pipeline(
            stream.body,
            counter,
            sparseFileWriter(raw, total, {
              start: offset,
              onDurable: (bytes) => writeCheckpoint(ckpt, { bucket: image.bucket, key: image.key, sizeBytes: image.sizeBytes, etag, bytes }),
            }),
            { signal },
          );
        } catch (err) {
          if (signal.aborted) throw new TargetError(`import ${imageId} was cancelled`, false, "IMPORT_CANCELLED");
          throw new TargetError(`downloading s3://${image.bucket}/${image.key}: ${errMessage(err)}`, true);
        }
        if (stream.sizeBytes !== undefined && done - offset !== stream.sizeBytes) {
          throw new TargetError(`download of s3://${image.bucket}/${image.key} was short: ${done - offset} of ${stream.sizeBytes} bytes`, true);
        }
        // All of it is on disk (the writer synced it at the end).
        await writeCheckpoint(ckpt, { bucket: image.bucket, key: image.key, sizeBytes: image.sizeBytes, etag, bytes: done });
      }
      report(50, "converting to qcow2");
      const downloadedMs = Date.now() - started;

      await fsp.rm(part, { force: true });
      await this.qemu.convert(raw, part, signal, (p) => report(50 + Math.min(p, 99.9) / 2, `converting to qcow2 ${p.toFixed(0)}%`));
      await fsp.rename(part, this.layout.imagePath(imageId));
      this.log.info({ imageId, bytes: downloaded, resumedFrom: offset, downloadedMs, totalMs: Date.now() - started }, "local image imported");
    } catch (err) {
      await fsp.rm(part, { force: true });
      if (signal.aborted && !(err instanceof TargetError && err.code === "IMPORT_CANCELLED")) {
        throw new TargetError(`import ${imageId} was cancelled`, false, "IMPORT_CANCELLED");
      }
      keepPartial = !signal.aborted && err instanceof TargetError && err.retryable;
      if (keepPartial) this.log.warn({ imageId, bytes: downloaded, err: errMessage(err) }, "local import interrupted; the next attempt resumes the download");
      throw err;
    } finally {
      if (!keepPartial) {
        await fsp.rm(ckpt, { force: true });
        await fsp.rm(raw, { force: true });
      }
    }
  }

  /** The checkpoint of a partial download of `image` at `raw`, when there is one to continue from. */
  private async readCheckpoint(raw: string, image: ComposedImage): Promise<DownloadCheckpoint | undefined> {
    let c: DownloadCheckpoint;
    try {
      c = JSON.parse(await fsp.readFile(checkpointPath(raw), "utf8")) as DownloadCheckpoint;
    } catch {
      // No checkpoint (or a torn one): a raw file without one is not trusted.
      await fsp.rm(raw, { force: true });
      return undefined;
    }
    const valid = c.bucket === image.bucket && c.key === image.key && c.sizeBytes === image.sizeBytes && Number.isSafeInteger(c.bytes) && c.bytes > 0 && c.bytes <= image.sizeBytes && (await exists(raw));
    if (!valid) {
      await fsp.rm(raw, { force: true });
      return undefined;
    }
    return c;
  }

  /** Refuses (INSUFFICIENT_CAPACITY, not retryable) an import the local file system has no room for. */
  private async checkCapacity(imageId: string, image: ComposedImage): Promise<void> {
    const data = Math.min(image.dataBytes ?? image.sizeBytes, image.sizeBytes);
    // Raw + qcow2 at the peak; qcow2 metadata is about 128 KiB per GiB of image (64 KiB clusters).
    const needed = 2 * data + Math.ceil(image.sizeBytes / 8192) + (this.cfg.diskReserveBytes ?? 0);
    const free = await freeBytes(this.cfg.dir);
    if (free < needed) {
      this.log.warn({ imageId, needed, free, reserve: this.cfg.diskReserveBytes ?? 0 }, "local import refused: not enough disk space");
      throw new TargetError(
        `not enough disk space on the local target for ${imageId}: it needs ${mib(needed)} MiB free (image data twice, plus the ${mib(this.cfg.diskReserveBytes ?? 0)} MiB reserve), ${mib(free)} MiB are`,
        false,
        "INSUFFICIENT_CAPACITY",
      );
    }
  }

  async describeImport(importTaskId: string): Promise<ImportStatus> {
    if (await exists(this.layout.imagePath(importTaskId))) return { state: "completed", progress: 100, imageId: importTaskId };
    const active = this.imports.get(importTaskId);
    if (active) return { state: "active", progress: active.progress, message: active.message };
    const failure = this.importFailures.get(importTaskId);
    return { state: "failed", progress: 0, message: failure ?? `import ${importTaskId} not found` };
  }

  async cancelImport(importTaskId: string): Promise<void> {
    checkId(importTaskId, "import id");
    const active = this.imports.get(importTaskId);
    if (active) {
      active.abort.abort();
      await active.promise.catch(noop);
    }
    const idempotencyKey = importTaskId.replace(/^img-/, "");
    await fsp.rm(`${this.layout.imagePath(importTaskId)}.part`, { force: true });
    const raw = this.layout.download(idempotencyKey);
    await fsp.rm(raw, { force: true });
    await fsp.rm(checkpointPath(raw), { force: true });
    await fsp.rm(`${checkpointPath(raw)}.tmp`, { force: true });
  }

  async discardImport(idempotencyKey: string): Promise<string[]> {
    // Names are derived from the idempotency key, so nothing depends on what the workflow recorded.
    const imageId = `img-${checkId(idempotencyKey, "idempotency key")}`;
    const removed: string[] = [];
    if (this.imports.has(imageId)) removed.push(`cancelled import ${imageId}`);
    await this.cancelImport(imageId);
    if (await exists(this.layout.imagePath(imageId))) removed.push(`deleted image ${imageId}`);
    await this.deleteImage(imageId);
    return removed;
  }

  async deleteImage(imageId: string): Promise<void> {
    // Instances keep their own hard link (base.qcow2), so this never pulls a disk from under a VM.
    await fsp.rm(this.layout.imagePath(imageId), { force: true });
    await fsp.rm(`${this.layout.imagePath(imageId)}.part`, { force: true });
  }
}
