import fsp from "node:fs/promises";
import { Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { Config } from "../../config";
import { ImageUnreadableError, TargetError, type ComposedImage, type ImageSource, type ImportStatus } from "../target";
import { checkId, type LocalLayout } from "./layout";
import type { Qemu } from "./qemu";
import { sparseFileWriter } from "./sparse-writer";
import { errMessage, exists, freeBytes, mib, noop, type LocalTargetLogger } from "./host";

/**
 * The local image import: the composed raw image is downloaded (sparse: zero blocks stay holes, at
 * most LOCAL_IMPORT_RATE_LIMIT bytes/s) to tmp/<key>.raw, converted to a qcow2 base image with
 * qemu-img, and renamed into images/img-<key>.qcow2 only when complete. An import runs once per
 * key in this process (a retried call joins it); aborting it removes what it wrote; an import the
 * disk has no room for is refused before anything is written.
 */

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
    const part = `${this.layout.imagePath(imageId)}.part`;
    // Before anything is written: the sparse raw download and the qcow2 made from it both hold the
    // image's data at the peak, and the host keeps its reserve.
    await this.checkCapacity(imageId, image);
    try {
      report(0, "downloading image");
      let res;
      try {
        res = await this.source.open(image, signal);
      } catch (err) {
        if (err instanceof ImageUnreadableError) {
          throw new TargetError(`composed image s3://${image.bucket}/${image.key} cannot be read: ${err.reason}`, false, "IMAGE_SOURCE_MISSING");
        }
        throw new TargetError(`downloading s3://${image.bucket}/${image.key}: ${errMessage(err)}`, true);
      }
      const total = res.sizeBytes ?? image.sizeBytes;
      let done = 0;
      const rate = this.cfg.importRateLimit;
      const downloadStarted = Date.now();
      const counter = new Transform({
        transform(chunk: Buffer, _enc, cb) {
          done += chunk.length;
          if (total > 0) report((50 * done) / total, `downloading ${mib(done)}/${mib(total)} MiB`);
          // LOCAL_IMPORT_RATE_LIMIT: hold the chunk back until the average rate is within the limit.
          const wait = rate > 0 ? downloadStarted + (done / rate) * 1000 - Date.now() : 0;
          if (wait > 0) setTimeout(() => cb(null, chunk), wait);
          else cb(null, chunk);
        },
      });
      try {
        // Sparse: all-zero blocks become holes, so an empty 2 TiB disk costs what its data costs.
        await pipeline(res.body, counter, sparseFileWriter(raw, total), { signal });
      } catch (err) {
        if (signal.aborted) throw new TargetError(`import ${imageId} was cancelled`, false, "IMPORT_CANCELLED");
        throw new TargetError(`downloading s3://${image.bucket}/${image.key}: ${errMessage(err)}`, true);
      }
      if (res.sizeBytes !== undefined && done !== res.sizeBytes) {
        throw new TargetError(`download of s3://${image.bucket}/${image.key} was short: ${done} of ${res.sizeBytes} bytes`, true);
      }
      report(50, "converting to qcow2");
      const downloadedMs = Date.now() - started;

      await fsp.rm(part, { force: true });
      await this.qemu.convert(raw, part, signal, (p) => report(50 + Math.min(p, 99.9) / 2, `converting to qcow2 ${p.toFixed(0)}%`));
      await fsp.rename(part, this.layout.imagePath(imageId));
      this.log.info({ imageId, bytes: done, downloadedMs, totalMs: Date.now() - started }, "local image imported");
    } catch (err) {
      await fsp.rm(part, { force: true });
      if (signal.aborted && !(err instanceof TargetError && err.code === "IMPORT_CANCELLED")) {
        throw new TargetError(`import ${imageId} was cancelled`, false, "IMPORT_CANCELLED");
      }
      throw err;
    } finally {
      await fsp.rm(raw, { force: true });
    }
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
    await fsp.rm(this.layout.download(idempotencyKey), { force: true });
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
