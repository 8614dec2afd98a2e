import { createHash } from "node:crypto";
import fs from "node:fs";
import fsp, { type FileHandle } from "node:fs/promises";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { GraphQLRequestError, type ReCloClient } from "../client/graphql-client";
import {
  AbortBackupDocument,
  BackupDocument,
  BackupPlanDocument,
  BackupsDocument,
  CompleteBackupDocument,
  ConfirmChunksDocument,
  CreateBackupDocument,
  FailUploadDocument,
  RequestChunkUploadsDocument,
  type ChunkInput,
  type CompleteBackupMutation,
  type RequestChunkUploadsMutation,
} from "../client/generated/graphql";
import { isZero, sampleEntropy, sha256Hex } from "../shared/bytes";
import { readState, removeState, statePath, writeState } from "./config-file";
import { chunkPut, type ChunkPut } from "./chunk-put";
import { ProgressTracker, type BackupEvent, type BackupKind } from "./progress";

/**
 * The backup engine of `reclo backup` (and of the agent, tests and benchmarks).
 *
 * One sequential pass over the image: each chunk is read into one of two reused buffers, hashed
 * (SHA-256, plus the running whole-image hash) and checked for all zeros (skipped: null in the
 * manifest). Non-zero chunks go to `requestChunkUploads` in batches (one request in flight,
 * taking everything hashed since the previous one, at most `batchSize`); chunks the store lacks
 * are PUT to their presigned URLs by `concurrency` workers, each re-reading its chunk with a
 * positioned read into its own buffer. Hashing pauses while too many uploads wait, so memory stays
 * at about (2 + concurrency) × chunkSize whatever the image size. Then `completeBackup`.
 */

export type { BackupKind } from "./progress";

export interface BackupOptions {
  /** A client with the user's token. */
  client: ReCloClient;
  /** Image file or block device. */
  imagePath: string;
  sourceName: string;
  /** FULL or INCREMENTAL; undefined: what the server plans for a backup at `plannedAt` (its schedule's rule). */
  kind?: BackupKind;
  /** With no kind: the slot this backup is for (the agent's; default now). */
  plannedAt?: Date;
  /** Parallel chunk PUTs (default 4). */
  concurrency?: number;
  /** Chunks per requestChunkUploads call (default 128, at most 1000). */
  batchSize?: number;
  /** Uploads allowed to wait for a worker before hashing pauses (default 2 × concurrency). */
  maxQueuedUploads?: number;
  /** Config directory: enables resume through `<configDir>/state/<key>.json`. */
  configDir?: string;
  /** Part of the resume key (the server URL); default "". */
  serverUrl?: string;
  onEvent?: (e: BackupEvent) => void;
  /** Human-readable notes ("resuming backup …"). */
  log?: (message: string) => void;
  /** Stops the backup (the resume state is kept). */
  signal?: AbortSignal;
  /** Testing knob: sleep this long before every chunk PUT. */
  uploadDelayMs?: number;
  /** PUT attempts per chunk on network errors and 5xx (default 5). */
  maxAttempts?: number;
  /** First retry delay; doubles per attempt, with jitter (default 500 ms). */
  retryBaseMs?: number;
  /** PUTs that fail on network errors or 5xx keep being retried (beyond maxAttempts) until this long after their first failure (default 0). */
  retryBudgetMs?: number;
  /** Progress events at most this often (default 250 ms). */
  progressIntervalMs?: number;
  /** Sent chunks are confirmed to the server at most this often, in one call (default 1000 ms). */
  confirmIntervalMs?: number;
  now?: () => Date;
  /** How each chunk is PUT (default chunkPut; tests pass a fetch that misbehaves). */
  fetch?: ChunkPut;
}

export interface BackupResult {
  backupId: string;
  kind: BackupKind;
  status: string;
  parentId: string | null;
  imageSize: number;
  chunkSize: number;
  chunkCount: number;
  /** As reported by the server: what the backup sent over all its runs. */
  uploadedBytes: number;
  /** What this process PUT. */
  sentBytes: number;
  chunksUploaded: number;
  chunksAlreadyStored: number;
  /** Repeats of a chunk earlier in the same image (uploaded once). */
  chunksDeduplicated: number;
  zeroChunks: number;
  sha256: string;
  resumed: boolean;
  seconds: number;
}

/** An engine failure with a stable code (shown as `code` in the JSON error event). */
export class BackupError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "BackupError";
  }
}

export interface ImageInfo {
  realPath: string;
  size: number;
  mtimeMs: number;
  blockDevice: boolean;
}

/** Size of a file (fs.stat) or block device (`/sys/class/block/<name>/size` × 512). */
export async function inspectImage(imagePath: string): Promise<ImageInfo> {
  let realPath: string;
  let st: fs.Stats;
  try {
    realPath = await fsp.realpath(imagePath);
    st = await fsp.stat(realPath);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new BackupError("IMAGE_NOT_FOUND", code === "ENOENT" ? `${imagePath}: no such file or device` : `${imagePath}: ${(err as Error).message}`);
  }
  let size: number;
  if (st.isBlockDevice()) {
    const sysfs = `/sys/class/block/${path.basename(realPath)}/size`;
    try {
      size = Number((await fsp.readFile(sysfs, "utf8")).trim()) * 512;
    } catch (err) {
      throw new BackupError("IMAGE_NOT_READABLE", `${imagePath}: cannot read the device size from ${sysfs}: ${(err as Error).message}`);
    }
  } else if (st.isFile()) {
    size = st.size;
  } else {
    throw new BackupError("IMAGE_NOT_READABLE", `${imagePath} is neither a regular file nor a block device`);
  }
  if (!Number.isSafeInteger(size) || size <= 0) throw new BackupError("IMAGE_EMPTY", `${imagePath} is empty: nothing to back up`);
  return { realPath, size, mtimeMs: st.mtimeMs, blockDevice: st.isBlockDevice() };
}

export interface BackupPlan {
  kind: BackupKind;
  parentId: string | null;
}

/**
 * Which backup to take. FULL when asked for. INCREMENTAL when asked for: against the latest
 * COMPLETED backup (an error when there is none). Neither: what the server's plan says for a
 * backup taken at `at` (default now): its one rule (`backupPlan`), the same the agent follows.
 */
export async function planBackup(client: ReCloClient, sourceName: string, requested: BackupKind | undefined, opts: { at?: Date } = {}): Promise<BackupPlan> {
  if (requested === "FULL") return { kind: "FULL", parentId: null };
  if (requested === "INCREMENTAL") {
    const latest = (await withRetry(() => client.request(BackupsDocument, { first: 1, filter: { sourceName, status: "COMPLETED" } }))).backups.edges[0]?.node;
    if (latest) return { kind: "INCREMENTAL", parentId: latest.id };
    throw new BackupError("NO_PARENT", `No COMPLETED backup of source "${sourceName}" to take an incremental against; run a full backup first (--full)`);
  }
  const plan = (await withRetry(() => client.request(BackupPlanDocument, { sourceName, at: opts.at?.toISOString() ?? null }))).backupPlan;
  return { kind: plan.kind, parentId: plan.parentBackupId ?? null };
}

type Ticket = RequestChunkUploadsMutation["requestChunkUploads"]["tickets"][number];
type ServerBackup = { id: string; kind: BackupKind; status: string; imageSize: number; chunkSize: number; chunkCount: number; parentId: string | null };

interface UploadJob {
  index: number;
  sha256: string;
  size: number;
  url: string;
  headers: Record<string, string>;
  /** When the presigned URL stops working (server clock), in ms since the epoch. */
  expiresAt: number;
}

/** Runs one backup end to end (resuming an unfinished one of the same image when possible). */
export async function runBackup(opts: BackupOptions): Promise<BackupResult> {
  const emit = opts.onEvent ?? (() => {});
  const log = opts.log ?? (() => {});
  const concurrency = Math.max(1, Math.floor(opts.concurrency ?? 4));
  const batchSize = Math.min(1000, Math.max(1, Math.floor(opts.batchSize ?? 128)));
  const client = opts.client;
  const image = await inspectImage(opts.imagePath);
  const sourceName = opts.sourceName.trim();
  const stateFile = opts.configDir ? statePath(opts.configDir, opts.serverUrl ?? "", sourceName, image.realPath) : null;

  // Resume an unfinished backup of this same, unchanged image, or start a new one.
  let backup: ServerBackup | null = null;
  let resumed = false;
  if (stateFile) {
    const st = readState(stateFile);
    if (st) {
      const remote = await withRetry(() => client.request(BackupDocument, { id: st.backupId })).then(
        (d) => d.backup,
        (err: unknown) => {
          if (err instanceof GraphQLRequestError && err.code === "NOT_FOUND") return null;
          throw err;
        },
      );
      const same = st.imagePath === image.realPath && st.size === image.size && st.mtimeMs === image.mtimeMs;
      if (remote && remote.status === "UPLOADING" && same && (!opts.kind || opts.kind === remote.kind) && remote.imageSize === image.size) {
        backup = { ...remote, parentId: remote.parent?.id ?? null };
        resumed = true;
        log(`resuming backup ${remote.id}`);
      } else {
        removeState(stateFile);
        if (remote?.status === "UPLOADING") {
          log(`abandoning unfinished backup ${remote.id} (${same ? "another kind was asked for" : "the image changed since"})`);
          await client.request(AbortBackupDocument, { id: remote.id }).catch(() => undefined);
        }
      }
    }
  }
  if (!backup) {
    const plan = await planBackup(client, sourceName, opts.kind, { at: opts.plannedAt });
    const created = (
      await client.request(CreateBackupDocument, {
        input: { sourceName, imageSize: image.size, kind: plan.kind, ...(plan.parentId ? { parentBackupId: plan.parentId } : {}) },
      })
    ).createBackup;
    backup = { ...created, parentId: plan.parentId };
    if (stateFile) writeState(stateFile, { backupId: created.id, imagePath: image.realPath, size: image.size, mtimeMs: image.mtimeMs });
  }

  const { id: backupId, chunkSize, chunkCount } = backup;
  if (chunkCount !== Math.ceil(image.size / chunkSize)) throw new BackupError("PROTOCOL", `Server sent chunkCount ${chunkCount} for ${image.size} bytes in chunks of ${chunkSize}`);
  emit({ event: "start", backupId, kind: backup.kind, imageSize: image.size, chunkSize, chunkCount, resumed, parentId: backup.parentId, sourceName });

  const tracker = new ProgressTracker(image.size, emit, opts.progressIntervalMs ?? 250);
  const confirmer = new Confirmer(client, backupId, () => tracker.c.processedBytes, opts.confirmIntervalMs ?? 1000, log);
  const engine = new Engine(opts, client, backupId, image, chunkSize, chunkCount, concurrency, batchSize, tracker, emit, confirmer);
  let done: CompleteBackupMutation["completeBackup"];
  let sha256: string;
  try {
    const pass = await engine.run();
    sha256 = pass.sha256;
    await confirmer.drain();
    // Chunks re-sent when completion finds some missing are confirmed by the timer meanwhile.
    done = await engine.complete(pass.chunks, sha256);
    await confirmer.stop(false);
    await engine.close();
  } catch (err) {
    await confirmer.stop(true);
    await engine.close();
    await reportFailure(client, backupId, err, log);
    if (err instanceof BackupError && err.code === "IMAGE_CHANGED") {
      // This upload can never complete with these bytes: abandon it rather than resume it.
      await client.request(AbortBackupDocument, { id: backupId }).catch(() => undefined);
      if (stateFile) removeState(stateFile);
    } else if (stateFile && err instanceof GraphQLRequestError && err.code === "CONFLICT") {
      removeState(stateFile); // no longer UPLOADING (aborted or deleted elsewhere)
    }
    throw err;
  }
  if (stateFile) removeState(stateFile);
  tracker.tick(true);
  const c = tracker.c;
  const result: BackupResult = {
    backupId,
    kind: backup.kind,
    status: done.status,
    parentId: backup.parentId,
    imageSize: image.size,
    chunkSize,
    chunkCount,
    uploadedBytes: done.uploadedBytes,
    sentBytes: c.sentBytes,
    chunksUploaded: c.chunksSent,
    chunksAlreadyStored: c.chunksAlreadyStored,
    chunksDeduplicated: c.chunksDeduplicated,
    zeroChunks: c.zeroChunks,
    sha256,
    resumed,
    seconds: tracker.elapsedSeconds(),
  };
  emit({
    event: "done",
    backupId,
    kind: result.kind,
    status: result.status,
    uploadedBytes: result.uploadedBytes,
    sentBytes: result.sentBytes,
    chunksUploaded: result.chunksUploaded,
    chunksAlreadyStored: result.chunksAlreadyStored,
    zeroChunks: result.zeroChunks,
    sha256,
    seconds: Math.round(result.seconds * 1000) / 1000,
    resumed,
  });
  return result;
}

// ---------------------------------------------------------------------------------------------

class Engine {
  private readonly ac = new AbortController();
  private readonly fetchImpl: ChunkPut;
  private readonly maxAttempts: number;
  private readonly retryBaseMs: number;
  private fh: FileHandle | null = null;
  private failure: unknown = null;

  constructor(
    private readonly opts: BackupOptions,
    private readonly client: ReCloClient,
    private readonly backupId: string,
    private readonly image: ImageInfo,
    private readonly chunkSize: number,
    private readonly chunkCount: number,
    private readonly concurrency: number,
    private readonly batchSize: number,
    private readonly tracker: ProgressTracker,
    private readonly emit: (e: BackupEvent) => void,
    private readonly confirmer: Confirmer,
  ) {
    this.fetchImpl = opts.fetch ?? chunkPut;
    this.maxAttempts = Math.max(1, opts.maxAttempts ?? 5);
    this.retryBaseMs = opts.retryBaseMs ?? 500;
    const outer = opts.signal;
    if (outer) {
      if (outer.aborted) this.ac.abort(outer.reason);
      else outer.addEventListener("abort", () => this.fail(new BackupError("INTERRUPTED", "Backup interrupted; run the same command again to resume")), { once: true });
    }
  }

  private fail(err: unknown): void {
    if (this.failure === null) this.failure = err;
    if (!this.ac.signal.aborted) this.ac.abort(err);
  }

  private check(): void {
    if (this.failure !== null) throw this.failure;
    if (this.ac.signal.aborted) throw new BackupError("INTERRUPTED", "Backup interrupted; run the same command again to resume");
  }

  /** Sum and count of the sampled entropy of the chunks this run sent. */
  private entropySum = 0;
  private entropyCount = 0;

  private sizeOf(index: number): number {
    return index === this.chunkCount - 1 ? this.image.size - index * this.chunkSize : this.chunkSize;
  }

  /** The hashing pass with its upload pipeline: the manifest and the whole-image hash. */
  async run(): Promise<{ chunks: (string | null)[]; sha256: string }> {
    this.fh = await fsp.open(this.image.realPath, "r");
    const pool = new UploadPool(this.concurrency, (job, buf) => this.upload(job, buf), Math.min(this.chunkSize, this.image.size), (err) => this.fail(err));
    const maxQueued = Math.max(1, this.opts.maxQueuedUploads ?? 2 * this.concurrency);
    const c = this.tracker.c;
    const chunks: (string | null)[] = new Array<string | null>(this.chunkCount).fill(null);
    const whole = createHash("sha256");
    const seen = new Set<string>();
    const batch: ChunkInput[] = [];
    // Sampled entropy of each chunk asked about; those the store lacks (sent now) make the reported mean.
    const entropyOf = new Map<number, number>();
    let flushing: Promise<void> | null = null;
    let wake: (() => void) | null = null;
    const notify = () => {
      const w = wake;
      wake = null;
      w?.();
    };
    pool.onChange = notify;

    const kickFlush = () => {
      if (flushing || batch.length === 0 || this.failure !== null) return;
      const take = batch.splice(0, this.batchSize);
      flushing = this.requestTickets(take)
        .then((tickets) => {
          for (const t of tickets) {
            const size = this.sizeOf(t.index);
            const h = entropyOf.get(t.index);
            entropyOf.delete(t.index);
            if (t.alreadyStored) {
              c.chunksAlreadyStored++;
              c.processedBytes += size;
            } else {
              if (h !== undefined) {
                this.entropySum += h;
                this.entropyCount++;
              }
              pool.push({ index: t.index, sha256: t.sha256, size, url: t.url!, headers: headerMap(t.headers), expiresAt: expiryOf(t) });
            }
          }
          this.tracker.tick();
        })
        .catch((err: unknown) => this.fail(err))
        .finally(() => {
          flushing = null;
          kickFlush();
          notify();
        });
    };
    const waitUntil = async (ready: () => boolean) => {
      for (;;) {
        this.check();
        if (ready()) return;
        await new Promise<void>((resolve) => {
          wake = resolve;
          // A failure wakes us through the abort signal.
          if (this.failure !== null || this.ac.signal.aborted) resolve();
        });
      }
    };
    const onAbort = () => notify();
    this.ac.signal.addEventListener("abort", onAbort);
    let reading: Promise<void> = Promise.resolve();

    try {
      // Two buffers: chunk i+1 is read while chunk i is hashed.
      const bufSize = Math.min(this.chunkSize, this.image.size);
      const bufs = [Buffer.allocUnsafe(bufSize), Buffer.allocUnsafe(bufSize)];
      reading = readFully(this.fh, bufs[0]!, this.sizeOf(0), 0);
      reading.catch(() => undefined); // awaited below; never an unhandled rejection
      for (let i = 0; i < this.chunkCount; i++) {
        await reading;
        this.check();
        const size = this.sizeOf(i);
        const buf = bufs[i % 2]!.subarray(0, size);
        if (i + 1 < this.chunkCount) {
          reading = readFully(this.fh, bufs[(i + 1) % 2]!, this.sizeOf(i + 1), (i + 1) * this.chunkSize);
          reading.catch(() => undefined);
        }
        whole.update(buf);
        c.hashedBytes += size;
        if (isZero(buf)) {
          chunks[i] = null;
          c.zeroChunks++;
          c.processedBytes += size;
        } else {
          const sha = sha256Hex(buf);
          chunks[i] = sha;
          if (seen.has(sha)) {
            c.chunksDeduplicated++;
            c.processedBytes += size;
          } else {
            seen.add(sha);
            entropyOf.set(i, sampleEntropy(buf));
            batch.push({ index: i, sha256: sha, size });
            kickFlush();
          }
        }
        this.tracker.tick();
        // Back-pressure: at most one full batch unrequested, at most maxQueued uploads waiting.
        await waitUntil(() => !(batch.length >= this.batchSize && flushing) && pool.queued < maxQueued);
      }
      await waitUntil(() => {
        kickFlush();
        return batch.length === 0 && !flushing;
      });
      await waitUntil(() => pool.idle);
      this.check();
      return { chunks, sha256: whole.digest("hex") };
    } catch (err) {
      this.fail(err);
      throw this.failure ?? err;
    } finally {
      this.ac.signal.removeEventListener("abort", onAbort);
      await pool.settled();
      if (flushing) await flushing;
      await reading.catch(() => undefined);
    }
  }

  /** Closes the image (after run/complete, successful or not). */
  async close(): Promise<void> {
    await this.fh?.close().catch(() => undefined);
    this.fh = null;
  }

  /** completeBackup; on CHUNKS_MISSING uploads those chunks once more and completes again. */
  async complete(chunks: (string | null)[], sha256: string): Promise<CompleteBackupMutation["completeBackup"]> {
    try {
      return await this.completeOnce(chunks, sha256);
    } catch (err) {
      const ext = err instanceof GraphQLRequestError ? err.errors[0]?.extensions : undefined;
      if (ext?.reason !== "CHUNKS_MISSING") throw err;
      const listed = [...((ext.missingChunks as number[] | undefined) ?? []), ...((ext.corruptChunks as number[] | undefined) ?? [])];
      const count = typeof ext.missingCount === "number" ? ext.missingCount : listed.length;
      // The lists are truncated for large counts: then ask about every chunk (stored ones are skipped).
      const indices = count > listed.length || listed.length === 0 ? chunks.flatMap((s, i) => (s ? [i] : [])) : listed;
      this.opts.log?.(`${count} chunk(s) missing at completion; uploading them again`);
      await this.reupload(chunks, indices);
      return await this.completeOnce(chunks, sha256);
    }
  }

  private async completeOnce(chunks: (string | null)[], sha256: string): Promise<CompleteBackupMutation["completeBackup"]> {
    // The encryption alarm's hint (the server measures chunks it reads back itself).
    const entropy = this.entropyCount ? this.entropySum / this.entropyCount : null;
    const input = { backupId: this.backupId, sha256, chunks, entropy };
    let retried = false;
    try {
      return (await withRetry(() => this.client.request(CompleteBackupDocument, { input }), () => (retried = true))).completeBackup;
    } catch (err) {
      // A retried completion whose first attempt did land answers CONFLICT: look at the backup.
      if (retried && err instanceof GraphQLRequestError && err.code === "CONFLICT") {
        const b = (await this.client.request(BackupDocument, { id: this.backupId })).backup;
        if (b.status === "COMPLETED" && b.sha256 === sha256) return { ...b, upload: b.upload };
      }
      throw err;
    }
  }

  private async reupload(chunks: (string | null)[], indices: number[]): Promise<void> {
    this.fh ??= await fsp.open(this.image.realPath, "r");
    const seen = new Set<string>();
    const wanted: ChunkInput[] = [];
    for (const i of indices) {
      const sha = chunks[i];
      if (!sha || seen.has(sha)) continue;
      seen.add(sha);
      wanted.push({ index: i, sha256: sha, size: this.sizeOf(i) });
    }
    const pool = new UploadPool(this.concurrency, (job, buf) => this.upload(job, buf), Math.min(this.chunkSize, this.image.size), (err) => this.fail(err));
    try {
      for (let i = 0; i < wanted.length; i += 1000) {
        this.check();
        for (const t of await this.requestTickets(wanted.slice(i, i + 1000))) {
          if (!t.alreadyStored) pool.push({ index: t.index, sha256: t.sha256, size: this.sizeOf(t.index), url: t.url!, headers: headerMap(t.headers), expiresAt: expiryOf(t) });
        }
      }
      await pool.settled();
      this.check();
    } finally {
      await pool.settled();
    }
  }

  private async requestTickets(chunks: ChunkInput[]): Promise<Ticket[]> {
    const res = await withRetry(() => this.client.request(RequestChunkUploadsDocument, { input: { backupId: this.backupId, chunks } }));
    return res.requestChunkUploads.tickets;
  }

  /** PUTs one chunk: re-read from the image, retried with backoff, fresh URL when expired. */
  private async upload(job: UploadJob, buffer: Buffer): Promise<void> {
    const c = this.tracker.c;
    const signal = this.ac.signal;
    const body = buffer.subarray(0, job.size);
    await readFully(this.fh!, body, job.size, job.index * this.chunkSize);
    let { url, headers, expiresAt } = job;
    /** A fresh presigned URL for this chunk; false when the store has it after all (nothing to send). */
    const renew = async (): Promise<boolean> => {
      const [fresh] = await this.requestTickets([{ index: job.index, sha256: job.sha256, size: job.size }]);
      if (!fresh || fresh.alreadyStored) {
        c.chunksAlreadyStored++;
        c.processedBytes += job.size;
        return false;
      }
      url = fresh.url!;
      headers = headerMap(fresh.headers);
      expiresAt = expiryOf(fresh);
      return true;
    };
    let firstFailure: number | undefined;
    for (let attempt = 1; ; attempt++) {
      this.check();
      if (this.opts.uploadDelayMs) await sleep(this.opts.uploadDelayMs, undefined, { signal }).catch(() => undefined);
      this.check();
      // Expired (or about to) while queued, delayed or retrying: a fresh URL first.
      if (expiresAt - Date.now() < URL_EXPIRY_MARGIN_MS && !(await renew())) return;
      let status = 0;
      let text = "";
      let networkError: unknown = null;
      try {
        const res = await this.fetchImpl(url, { method: "PUT", headers, body, signal });
        status = res.status;
        text = await res.text();
      } catch (err) {
        if (signal.aborted) this.check();
        networkError = err;
      }
      if (status >= 200 && status < 300) {
        this.confirmer.sent(job.index, job.sha256);
        c.sentBytes += job.size;
        c.chunksSent++;
        c.processedBytes += job.size;
        this.emit({ event: "chunk-uploaded", index: job.index, size: job.size });
        this.tracker.tick(true);
        return;
      }
      if (status === 400 && /BadDigest/i.test(text))
        throw new BackupError(
          "IMAGE_CHANGED",
          `Chunk ${job.index} of ${this.image.realPath} changed while it was being backed up (the store refused it: BadDigest). Back up a snapshot or an image that is not being written to.`,
        );
      if (status === 403 && /expired/i.test(text) && attempt < this.maxAttempts) {
        if (!(await renew())) return;
        continue;
      }
      const retryable = networkError !== null || status >= 500 || status === 429 || status === 408;
      const what = networkError !== null ? describeNetworkError(networkError) : `HTTP ${status} ${summariseS3Error(text)}`;
      firstFailure ??= Date.now();
      const delay = Math.min(5_000, this.retryBaseMs * 2 ** (attempt - 1)) * (0.5 + Math.random());
      const withinBudget = Date.now() - firstFailure + delay <= (this.opts.retryBudgetMs ?? 0);
      if (!retryable || (attempt >= this.maxAttempts && !withinBudget))
        throw new BackupError(
          "UPLOAD_FAILED",
          retryable
            ? `Uploading chunk ${job.index} failed after ${attempt} attempts over ${Math.round((Date.now() - firstFailure) / 1000)} s: ${what}. The object store is unavailable; run the same command again once it is back: it resumes where it stopped (the chunks already sent are kept)`
            : `Uploading chunk ${job.index} failed: ${what}`,
        );
      this.opts.log?.(`chunk ${job.index}: ${what}; retrying in ${(delay / 1000).toFixed(1)} s`);
      await sleep(delay, undefined, { signal }).catch(() => undefined);
    }
  }
}

/**
 * Tells the server which chunks were sent (their PUT answered 2xx) and how far through the image
 * the backup is: at most one `confirmChunks` per interval and one in flight, so a backup of 10,000
 * chunks costs about one small request (and one row update) a second, not one per chunk. The
 * server counts a chunk only once the store holds it. Progress reporting never fails a backup: a
 * confirmation that does not get through is said once and its chunks are counted at completion.
 */
export class Confirmer {
  private pending: { index: number; sha256: string }[] = [];
  private lastDone = -1;
  private inFlight: Promise<void> | null = null;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private warned = false;

  constructor(
    private readonly client: ReCloClient,
    private readonly backupId: string,
    private readonly bytesDone: () => number,
    private readonly intervalMs: number,
    private readonly log: (message: string) => void,
  ) {
    this.timer = setInterval(() => this.flush(), intervalMs);
    this.timer.unref();
  }

  sent(index: number, sha256: string): void {
    this.pending.push({ index, sha256 });
  }

  /** Sends what is pending (unless a call is in flight: the next tick takes it). */
  private flush(): void {
    if (this.inFlight) return;
    const done = this.bytesDone();
    if (!this.pending.length && done === this.lastDone) return;
    const chunks = this.pending.splice(0, 1000);
    this.lastDone = done;
    this.inFlight = withRetry(() => this.client.request(ConfirmChunksDocument, { input: { backupId: this.backupId, chunks, bytesDone: done } }))
      .then(
        () => undefined,
        (err: unknown) => {
          if (!this.warned) this.log(`progress not reported to the server (${(err as Error).message}); the backup goes on`);
          this.warned = true;
        },
      )
      .finally(() => (this.inFlight = null));
  }

  /** Sends everything pending now (before completion: the server has seen every chunk sent). */
  async drain(): Promise<void> {
    if (this.inFlight) await this.inFlight;
    while (this.pending.length || this.bytesDone() !== this.lastDone) {
      this.flush();
      await this.inFlight;
      if (this.warned) break;
    }
  }

  /** Stops the timer; with `flush`, sends what is left first (after a failure: the work done counts). */
  async stop(flush: boolean): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.timer);
    if (flush) await this.drain();
    else if (this.inFlight) await this.inFlight;
  }
}

/**
 * Tells the server why this run could not finish the backup (the upload becomes FAILED with the
 * reason, and the user is notified). Not said: an interruption (Ctrl-C, SIGTERM: the person or the
 * service manager stopped it, and the same command resumes it; left alone, expiry marks it
 * ABANDONED), nor a backup that is no longer UPLOADING (nothing to fail).
 */
async function reportFailure(client: ReCloClient, backupId: string, err: unknown, log: (message: string) => void): Promise<void> {
  if (err instanceof BackupError && err.code === "INTERRUPTED") return;
  if (err instanceof GraphQLRequestError && err.code === "CONFLICT") return;
  const code = err instanceof BackupError ? err.code : err instanceof GraphQLRequestError ? (err.code ?? "SERVER_ERROR") : "ERROR";
  const message = err instanceof Error ? err.message : String(err);
  await withRetry(() => client.request(FailUploadDocument, { input: { backupId, reason: `${code}: ${message}` } })).catch((e: unknown) =>
    log(`could not tell the server why the backup failed: ${(e as Error).message}`),
  );
}

/** Runs upload jobs on `concurrency` workers, each with its own chunk buffer; the first failure stops it. */
class UploadPool {
  private readonly queue: UploadJob[] = [];
  private readonly free: Buffer[] = [];
  private running = 0;
  private failed = false;
  private settleWaiters: (() => void)[] = [];
  onChange: () => void = () => {};

  constructor(
    private readonly concurrency: number,
    private readonly work: (job: UploadJob, buf: Buffer) => Promise<void>,
    private readonly bufferSize: number,
    private readonly onError: (err: unknown) => void,
  ) {}

  get queued(): number {
    return this.queue.length;
  }

  get idle(): boolean {
    return this.running === 0 && this.queue.length === 0;
  }

  push(job: UploadJob): void {
    if (this.failed) return;
    this.queue.push(job);
    this.pump();
  }

  /** Resolves when nothing runs (after a failure: when the running jobs have stopped). */
  async settled(): Promise<void> {
    while (this.running > 0 || (!this.failed && this.queue.length > 0)) await new Promise<void>((r) => this.settleWaiters.push(r));
  }

  private pump(): void {
    while (!this.failed && this.running < this.concurrency && this.queue.length > 0) {
      const job = this.queue.shift()!;
      let buf = this.free.pop();
      if (!buf) {
        buf = Buffer.allocUnsafe(this.bufferSize);
      }
      const b = buf;
      this.running++;
      this.work(job, b)
        .catch((err: unknown) => {
          this.failed = true;
          this.queue.length = 0;
          this.onError(err);
        })
        .finally(() => {
          this.running--;
          this.free.push(b);
          this.pump();
          const w = this.settleWaiters;
          this.settleWaiters = [];
          for (const r of w) r();
          this.onChange();
        });
    }
    this.onChange();
  }
}

async function readFully(fh: FileHandle, buf: Buffer, length: number, position: number): Promise<void> {
  let off = 0;
  while (off < length) {
    let bytesRead: number;
    try {
      ({ bytesRead } = await fh.read(buf, off, length - off, position + off));
    } catch (err) {
      throw new BackupError("IMAGE_NOT_READABLE", `Reading the image at byte ${position + off} failed: ${(err as Error).message}`);
    }
    if (bytesRead === 0) throw new BackupError("IMAGE_CHANGED", `Unexpected end of the image at byte ${position + off}: it shrank while being backed up`);
    off += bytesRead;
  }
}

/** A URL this close to its expiry is renewed before the PUT (covers modest clock skew). */
const URL_EXPIRY_MARGIN_MS = 2000;

function expiryOf(t: Ticket): number {
  const ms = t.expiresAt ? Date.parse(t.expiresAt) : NaN;
  return Number.isFinite(ms) ? ms : Number.POSITIVE_INFINITY;
}

function headerMap(headers: { name: string; value: string }[]): Record<string, string> {
  return Object.fromEntries(headers.map((h) => [h.name, h.value]));
}

function summariseS3Error(xml: string): string {
  const code = /<Code>([^<]*)<\/Code>/.exec(xml)?.[1];
  const message = /<Message>([^<]*)<\/Message>/.exec(xml)?.[1];
  return [code, message].filter(Boolean).join(": ") || xml.slice(0, 200);
}

function describeNetworkError(err: unknown): string {
  const e = err as { message?: string; cause?: { code?: string; message?: string } };
  return [e.message, e.cause?.code ?? e.cause?.message].filter(Boolean).join(": ") || String(err);
}

/**
 * A network-level failure (no GraphQL answer), a gateway error or UNAVAILABLE: worth another try,
 * unless the client already retried it for its whole budget (`retriedForMs`).
 */
export function isTransient(err: unknown): boolean {
  if ((err as { retriedForMs?: number } | null)?.retriedForMs !== undefined) return false;
  if (err instanceof GraphQLRequestError) return err.status === 502 || err.status === 503 || err.status === 504 || err.code === "UNAVAILABLE";
  const e = err as { name?: string } | null;
  return e?.name === "TypeError" || e?.name === "FetchError" || e?.name === "SocketError";
}

/** Retries `fn` on transient failures (3 attempts, 0.5 s then 1.5 s). */
async function withRetry<T>(fn: () => Promise<T>, onRetry?: () => void): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (attempt >= 3 || !isTransient(err)) throw err;
      onRetry?.();
      await sleep(500 * 3 ** (attempt - 1) * (0.5 + Math.random()));
    }
  }
}
