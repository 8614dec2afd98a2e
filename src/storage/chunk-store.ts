import { createHash } from "node:crypto";
import { Readable } from "node:stream";
import {
  CopyObjectCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectVersionsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  PutObjectRetentionCommand,
  type S3Client,
} from "@aws-sdk/client-s3";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";
import { isSha256Hex, sha256Base64FromHex, sha256Hex } from "../shared/bytes";

/**
 * Content-addressed chunk store for disk-image backups.
 *
 * Layout in the backups bucket:
 *   `<userId>/chunks/<sha256 hex>`   one object per distinct non-zero chunk body
 *   `<userId>/manifests/<backupId>`  ManifestV1 JSON
 *   `zero/<size>`                    shared all-zero object (global, not per user: it holds no
 *                                    user data; user prefixes are UUIDs so it cannot collide)
 *
 * Uploads go straight from the client to S3 through presigned PUT URLs bound to the key, the
 * Content-Length and the `x-amz-checksum-sha256` header (all three are in X-Amz-SignedHeaders /
 * the canonical request). The server recomputes SHA-256 of the body and refuses a mismatch
 * (versitygw v1.7.0 and AWS: 400 BadDigest), so a chunk key can only ever hold the body whose
 * hash is its name. The presigning client must use `requestChecksumCalculation: "WHEN_REQUIRED"`
 * (see createS3Client); presignChunkPut checks the URL and throws otherwise.
 */

export interface ManifestV1 {
  version: 1;
  backupId: string;
  imageSize: number;
  chunkSize: number;
  /** One entry per chunk in order: hex sha256 of the chunk body, or null for an all-zero chunk (not stored). */
  chunks: (string | null)[];
  /** hex sha256 of the whole image */
  sha256: string;
}

export interface PresignedPut {
  url: string;
  /** Headers the uploader must send with the PUT, exactly as given (the body must be `size` bytes). */
  headers: Record<string, string>;
  expiresAt: Date;
}

export interface ChunkHead {
  size: number;
  /** Base64 SHA-256 as returned by S3 (present when the object was stored with a SHA-256 checksum). */
  checksumSha256?: string;
}

/**
 * S3 Object Lock for the backups bucket (the bucket must have been created with Object Lock, which
 * also turns versioning on). Every chunk and manifest is written with `x-amz-object-lock-mode` and a
 * retain-until date `retentionMs` ahead; a chunk a new restore point references has its date pushed
 * out again. Until that date S3 refuses to delete the object's version, even to the server's own
 * credentials (COMPLIANCE: to everyone; GOVERNANCE: to anyone without s3:BypassGovernanceRetention).
 */
export interface ObjectLockOptions {
  mode: "GOVERNANCE" | "COMPLIANCE";
  /** How long a written or newly referenced object stays locked (whole seconds; at least 1 s). */
  retentionMs: number;
  /** The clock retain-until dates are computed from (tests pass a fake one). */
  now?: () => Date;
}

export interface ChunkStoreOptions {
  /** Lifetime of presigned PUT URLs in seconds (default 900). */
  presignExpirySeconds?: number;
  /** Parallel HeadObject / DeleteObject requests (default 16). */
  headConcurrency?: number;
  /** Object Lock retention for chunks and manifests; absent = the bucket has no lock. */
  lock?: ObjectLockOptions;
}

/** What a lock-aware delete did: removed keys, and keys left because S3 still holds them under a lock. */
export interface LockAwareDeleteResult {
  deleted: number;
  /** Keys (sha256 for chunks) a retention date still protects; a later GC run deletes them. */
  locked: string[];
}

/** Thrown when a manifest object exists but is not a valid ManifestV1. */
export class CorruptManifestError extends Error {
  constructor(
    readonly key: string,
    detail: string,
  ) {
    super(`Corrupt manifest at ${key}: ${detail}`);
    this.name = "CorruptManifestError";
  }
}

/** Thrown when a stored chunk's bytes do not hash to its key. */
export class ChunkIntegrityError extends Error {
  constructor(
    readonly key: string,
    readonly actualSha256: string,
  ) {
    super(`Chunk ${key} is corrupt: body hashes to ${actualSha256}`);
    this.name = "ChunkIntegrityError";
  }
}

/** Thrown by deleteChunks when S3 reports per-key failures; `deleted` counts the keys that were removed. */
export class ChunkDeleteError extends Error {
  constructor(
    readonly deleted: number,
    readonly failures: { sha256: string; code?: string; message?: string }[],
  ) {
    super(`Failed to delete ${failures.length} chunk(s) (${deleted} deleted): ${failures.slice(0, 5).map((f) => `${f.sha256}: ${f.code ?? "error"} ${f.message ?? ""}`.trim()).join("; ")}`);
    this.name = "ChunkDeleteError";
  }
}

// ---------------------------------------------------------------------------------------------
// Pure helpers

const USER_ID_RE = /^[0-9a-f-]{36}$/;
const BACKUP_ID_RE = /^[0-9A-Za-z][0-9A-Za-z_.-]{0,127}$/;
/** S3's single-PUT limit. */
const MAX_PUT_SIZE = 5 * 1024 ** 3;
const DELETE_BATCH = 1000;

const ZERO_STREAM_BLOCK = Buffer.alloc(4 * 1024 * 1024);

function* zeroBlocks(size: number): Generator<Buffer> {
  for (let left = size; left > 0; left -= ZERO_STREAM_BLOCK.length) yield ZERO_STREAM_BLOCK.subarray(0, Math.min(left, ZERO_STREAM_BLOCK.length));
}

function assertUser(userId: string): void {
  if (typeof userId !== "string" || !USER_ID_RE.test(userId)) throw new Error(`invalid userId ${JSON.stringify(userId)}: expected a lowercase UUID`);
}

function assertSha(sha: string): void {
  if (!isSha256Hex(sha)) throw new Error(`invalid sha256 ${JSON.stringify(sha)}: expected 64 lowercase hex digits`);
}

function assertBackupId(backupId: string): void {
  if (typeof backupId !== "string" || !BACKUP_ID_RE.test(backupId))
    throw new Error(`invalid backupId ${JSON.stringify(backupId)}: expected 1-128 characters [0-9A-Za-z_.-], not starting with . _ or -`);
}

function assertSize(size: number, what: string): void {
  if (!Number.isSafeInteger(size) || size < 1 || size > MAX_PUT_SIZE) throw new Error(`invalid ${what} ${size}: expected a whole number of bytes from 1 to ${MAX_PUT_SIZE}`);
}

/** Returns a problem description, or null when `m` is a valid ManifestV1. */
export function manifestProblem(m: unknown): string | null {
  if (typeof m !== "object" || m === null || Array.isArray(m)) return "not a JSON object";
  const o = m as Record<string, unknown>;
  if (o.version !== 1) return `unsupported version ${JSON.stringify(o.version)}`;
  if (typeof o.backupId !== "string" || !BACKUP_ID_RE.test(o.backupId)) return "backupId missing or invalid";
  if (typeof o.imageSize !== "number" || !Number.isSafeInteger(o.imageSize) || o.imageSize < 0) return "imageSize must be a non-negative integer";
  if (typeof o.chunkSize !== "number" || !Number.isSafeInteger(o.chunkSize) || o.chunkSize < 1 || o.chunkSize > MAX_PUT_SIZE) return "chunkSize must be a positive integer";
  if (!Array.isArray(o.chunks)) return "chunks must be an array";
  const expected = Math.ceil(o.imageSize / o.chunkSize);
  if (o.chunks.length !== expected) return `chunks has ${o.chunks.length} entries, expected ${expected} for imageSize ${o.imageSize} / chunkSize ${o.chunkSize}`;
  for (let i = 0; i < o.chunks.length; i++) {
    const c: unknown = o.chunks[i];
    if (c !== null && !isSha256Hex(c)) return `chunks[${i}] must be null or 64 lowercase hex digits`;
  }
  if (!isSha256Hex(o.sha256)) return "sha256 must be 64 lowercase hex digits";
  return null;
}

/** S3's answer to deleting a version that Object Lock still protects (AWS and versitygw: 403 AccessDenied). */
export function isLockRefusal(err: unknown): boolean {
  const e = err as { name?: string; Code?: string; $metadata?: { httpStatusCode?: number } } | null;
  return e?.name === "AccessDenied" || e?.Code === "AccessDenied" || e?.$metadata?.httpStatusCode === 403;
}

/** An S3 timestamp header value: whole seconds, `YYYY-MM-DDTHH:MM:SSZ` (how the SDK signs it). */
function lockDate(ms: number): Date {
  return new Date(Math.ceil(ms / 1000) * 1000);
}

function isNotFound(err: unknown): boolean {
  const e = err as { name?: string; Code?: string; $metadata?: { httpStatusCode?: number } } | null;
  return e?.name === "NotFound" || e?.name === "NoSuchKey" || e?.Code === "NoSuchKey" || e?.$metadata?.httpStatusCode === 404;
}

/** Runs `fn` over `items` with at most `limit` in flight; rejects on the first failure. */
async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  let failed = false;
  const worker = async () => {
    while (!failed && next < items.length) {
      const i = next++;
      try {
        out[i] = await fn(items[i]!);
      } catch (err) {
        failed = true;
        throw err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(Math.max(1, limit), items.length) }, worker));
  return out;
}

// ---------------------------------------------------------------------------------------------

export class ChunkStore {
  private readonly presignExpirySeconds: number;
  private readonly concurrency: number;
  /** Set once the server has refused DeleteObjects for a missing Content-MD5/checksum. */
  private singleDeletes = false;
  private readonly zeroObjects = new Map<number, Promise<string>>();
  readonly lock: ObjectLockOptions | undefined;

  constructor(
    private readonly s3: S3Client,
    readonly bucket: string,
    opts: ChunkStoreOptions = {},
  ) {
    this.presignExpirySeconds = opts.presignExpirySeconds ?? 900;
    this.concurrency = opts.headConcurrency ?? 16;
    if (!Number.isInteger(this.presignExpirySeconds) || this.presignExpirySeconds < 1 || this.presignExpirySeconds > 604_800)
      throw new Error(`presignExpirySeconds must be 1..604800, got ${this.presignExpirySeconds}`);
    if (!Number.isInteger(this.concurrency) || this.concurrency < 1) throw new Error(`headConcurrency must be a positive integer, got ${this.concurrency}`);
    this.lock = opts.lock;
    if (this.lock && (!Number.isFinite(this.lock.retentionMs) || this.lock.retentionMs < 1000))
      throw new Error(`lock.retentionMs must be at least 1000, got ${this.lock.retentionMs}`);
  }

  /** The retain-until date an object written or referenced now gets (null without a lock). */
  retainUntil(): Date | null {
    if (!this.lock) return null;
    return lockDate((this.lock.now?.() ?? new Date()).getTime() + this.lock.retentionMs);
  }

  /** PutObject parameters that lock the new object (none without a lock). */
  private lockParams(): { ObjectLockMode?: "GOVERNANCE" | "COMPLIANCE"; ObjectLockRetainUntilDate?: Date } {
    const until = this.retainUntil();
    return until && this.lock ? { ObjectLockMode: this.lock.mode, ObjectLockRetainUntilDate: until } : {};
  }

  chunkKey(userId: string, sha256Hex: string): string {
    assertUser(userId);
    assertSha(sha256Hex);
    return `${userId}/chunks/${sha256Hex}`;
  }

  manifestKey(userId: string, backupId: string): string {
    assertUser(userId);
    assertBackupId(backupId);
    return `${userId}/manifests/${backupId}`;
  }

  zeroKey(size: number): string {
    assertSize(size, "zero object size");
    return `zero/${size}`;
  }

  /**
   * A presigned PUT for one chunk. The URL's signature covers the key, `content-length: size`
   * and `x-amz-checksum-sha256: <base64 digest>`; the uploader must send `headers` unchanged and
   * a body of exactly `size` bytes hashing to `sha256Hex`, or the server refuses the PUT.
   */
  async presignChunkPut(userId: string, sha256Hex: string, size: number): Promise<PresignedPut> {
    const key = this.chunkKey(userId, sha256Hex);
    assertSize(size, "chunk size");
    const checksum = sha256Base64FromHex(sha256Hex);
    const signingDate = new Date();
    // With a lock, the retention headers are signed too (unhoisted: the uploader must send them, and
    // a PUT without them is refused), so the chunk is locked from its first byte. The date counts from
    // signing; completing the backup locks every chunk it references again from then (extendChunkRetention).
    const lock = this.lockParams();
    const lockHeaders: Record<string, string> = lock.ObjectLockMode
      ? { "x-amz-object-lock-mode": lock.ObjectLockMode, "x-amz-object-lock-retain-until-date": lock.ObjectLockRetainUntilDate!.toISOString().replace(/\.000Z$/, "Z") }
      : {};
    const url = await getSignedUrl(this.s3, new PutObjectCommand({ Bucket: this.bucket, Key: key, ContentLength: size, ChecksumSHA256: checksum, ...lock }), {
      expiresIn: this.presignExpirySeconds,
      signingDate,
      unhoistableHeaders: new Set(["x-amz-checksum-sha256", ...Object.keys(lockHeaders)]),
    });
    // Guard the binding: a client without WHEN_REQUIRED bakes an SDK checksum into the query.
    const q = new URL(url).searchParams;
    const signed = (q.get("X-Amz-SignedHeaders") ?? "").split(";");
    const stray = [...q.keys()].filter((k) => /^x-amz-(checksum-|sdk-checksum-algorithm)/i.test(k));
    if (!signed.includes("x-amz-checksum-sha256") || !signed.includes("content-length") || Object.keys(lockHeaders).some((h) => !signed.includes(h)) || stray.length)
      throw new Error(
        `presigned chunk PUT is not bound to the checksum (signed headers: ${signed.join(";")}${stray.length ? `; stray query: ${stray.join(",")}` : ""}); ` +
          `create the S3 client with requestChecksumCalculation: "WHEN_REQUIRED"`,
      );
    return {
      url,
      headers: { "content-length": String(size), "x-amz-checksum-sha256": checksum, ...lockHeaders },
      expiresAt: new Date(signingDate.getTime() + this.presignExpirySeconds * 1000),
    };
  }

  async headChunk(userId: string, sha256Hex: string): Promise<ChunkHead | null> {
    const key = this.chunkKey(userId, sha256Hex);
    return this.head(key);
  }

  /** HEADs every distinct sha (at most `headConcurrency` at a time); missing chunks map to null. */
  async headChunks(userId: string, shas: string[]): Promise<Map<string, ChunkHead | null>> {
    const unique = [...new Set(shas)];
    const keys = unique.map((sha) => this.chunkKey(userId, sha)); // validates all before any request
    const heads = await mapLimit(keys, this.concurrency, (key) => this.head(key));
    return new Map(unique.map((sha, i) => [sha, heads[i] ?? null]));
  }

  private async head(key: string): Promise<ChunkHead | null> {
    try {
      const r = await this.s3.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key, ChecksumMode: "ENABLED" }));
      return { size: r.ContentLength ?? 0, ...(r.ChecksumSHA256 ? { checksumSha256: r.ChecksumSHA256 } : {}) };
    } catch (err) {
      if (isNotFound(err)) return null;
      throw err;
    }
  }

  /** Reads a chunk and verifies that its bytes hash to its name (ChunkIntegrityError otherwise). */
  async getChunk(userId: string, sha: string): Promise<Buffer> {
    const key = this.chunkKey(userId, sha);
    const r = await this.s3.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
    const body = Buffer.from(await r.Body!.transformToByteArray());
    const actual = sha256Hex(body);
    if (actual !== sha) throw new ChunkIntegrityError(key, actual);
    return body;
  }

  async putManifest(userId: string, m: ManifestV1): Promise<string> {
    const problem = manifestProblem(m);
    if (problem) throw new Error(`invalid manifest: ${problem}`);
    const key = this.manifestKey(userId, m.backupId);
    const body = Buffer.from(JSON.stringify(m));
    await this.s3.send(
      new PutObjectCommand({
        Bucket: this.bucket,
        Key: key,
        Body: body,
        ContentLength: body.length,
        ContentType: "application/json",
        ChecksumSHA256: createHash("sha256").update(body).digest("base64"),
        ...this.lockParams(),
      }),
    );
    return key;
  }

  /** The manifest, or null when none exists; throws CorruptManifestError when it is not a valid ManifestV1. */
  async getManifest(userId: string, backupId: string): Promise<ManifestV1 | null> {
    const key = this.manifestKey(userId, backupId);
    let text: string;
    let storedChecksum: string | undefined;
    let body: Buffer;
    try {
      const r = await this.s3.send(new GetObjectCommand({ Bucket: this.bucket, Key: key, ChecksumMode: "ENABLED" }));
      body = Buffer.from(await r.Body!.transformToByteArray());
      storedChecksum = r.ChecksumSHA256;
      text = body.toString("utf8");
    } catch (err) {
      if (isNotFound(err)) return null;
      throw err;
    }
    if (storedChecksum && !storedChecksum.includes("-") && createHash("sha256").update(body).digest("base64") !== storedChecksum)
      throw new CorruptManifestError(key, "body does not match its stored SHA-256 checksum");
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (err) {
      throw new CorruptManifestError(key, `not valid JSON (${(err as Error).message})`);
    }
    const problem = manifestProblem(parsed);
    if (problem) throw new CorruptManifestError(key, problem);
    const m = parsed as ManifestV1;
    if (m.backupId !== backupId) throw new CorruptManifestError(key, `backupId ${JSON.stringify(m.backupId)} does not match the key`);
    return m;
  }

  /**
   * Pushes the retain-until date of every given chunk's current version out to `retainUntil()` (a new
   * restore point references them, so they must outlive it). Dates are only ever extended, never
   * shortened; missing chunks are skipped. Returns how many retentions were extended. No-op without a lock.
   */
  async extendChunkRetention(userId: string, shas: string[]): Promise<number> {
    const until = this.retainUntil();
    if (!until || !this.lock) return 0;
    const mode = this.lock.mode;
    const keys = [...new Set(shas)].map((sha) => this.chunkKey(userId, sha));
    const extended = await mapLimit(keys, this.concurrency, async (Key) => {
      let head;
      try {
        head = await this.s3.send(new HeadObjectCommand({ Bucket: this.bucket, Key }));
      } catch (err) {
        if (isNotFound(err)) return 0;
        throw err;
      }
      if (head.ObjectLockRetainUntilDate && head.ObjectLockRetainUntilDate.getTime() >= until.getTime()) return 0;
      await this.s3.send(
        new PutObjectRetentionCommand({
          Bucket: this.bucket,
          Key,
          ...(head.VersionId ? { VersionId: head.VersionId } : {}),
          // COMPLIANCE cannot be turned into GOVERNANCE: keep the mode the object has.
          Retention: { Mode: head.ObjectLockMode ?? mode, RetainUntilDate: until },
        }),
      );
      return 1;
    });
    return extended.reduce<number>((n, x) => n + x, 0);
  }

  /**
   * Deletes every version (and delete marker) of each key. A version S3 refuses to delete because
   * its retention has not passed (AccessDenied) is not an error: the key is reported in `locked`
   * and stays for a later run. Other failures throw.
   */
  private async deleteAllVersions(keys: string[]): Promise<{ deleted: number; locked: string[] }> {
    const locked: string[] = [];
    let deleted = 0;
    await mapLimit(keys, this.concurrency, async (Key) => {
      const versions: (string | undefined)[] = [];
      let keyMarker: string | undefined;
      let versionMarker: string | undefined;
      do {
        const page = await this.s3.send(new ListObjectVersionsCommand({ Bucket: this.bucket, Prefix: Key, KeyMarker: keyMarker, VersionIdMarker: versionMarker }));
        for (const v of [...(page.Versions ?? []), ...(page.DeleteMarkers ?? [])]) if (v.Key === Key) versions.push(v.VersionId);
        keyMarker = page.IsTruncated ? page.NextKeyMarker : undefined;
        versionMarker = page.IsTruncated ? page.NextVersionIdMarker : undefined;
      } while (keyMarker);
      let refused = false;
      for (const VersionId of versions) {
        try {
          await this.s3.send(new DeleteObjectCommand({ Bucket: this.bucket, Key, ...(VersionId && VersionId !== "null" ? { VersionId } : {}) }));
        } catch (err) {
          if (!isLockRefusal(err)) throw err;
          refused = true;
        }
      }
      if (refused) locked.push(Key);
      else if (versions.length) deleted++;
    });
    return { deleted, locked };
  }

  /**
   * With a lock, brings back referenced chunks someone hid behind a delete marker or replaced with
   * other bytes (the locked version underneath is still there): the newest version whose stored
   * SHA-256 matches the chunk's name is copied on top, locked again, so reads and server-side copies
   * see it. Returns the shas restored; chunks with no good version (never uploaded) are left alone.
   */
  async restoreChunks(userId: string, shas: string[]): Promise<string[]> {
    if (!this.lock) return [];
    const restored: string[] = [];
    await mapLimit([...new Set(shas)], this.concurrency, async (sha) => {
      const Key = this.chunkKey(userId, sha);
      const want = sha256Base64FromHex(sha);
      const page = await this.s3.send(new ListObjectVersionsCommand({ Bucket: this.bucket, Prefix: Key }));
      const versions = (page.Versions ?? []).filter((v) => v.Key === Key && v.VersionId);
      const latest = [...versions, ...(page.DeleteMarkers ?? []).filter((m) => m.Key === Key)].find((v) => v.IsLatest);
      versions.sort((a, b) => (b.LastModified?.getTime() ?? 0) - (a.LastModified?.getTime() ?? 0));
      for (const v of versions) {
        const head = await this.s3.send(new HeadObjectCommand({ Bucket: this.bucket, Key, VersionId: v.VersionId, ChecksumMode: "ENABLED" }));
        if (head.ChecksumSHA256 !== want) continue;
        if (latest?.VersionId === v.VersionId) return; // the current version is the good one
        await this.s3.send(
          new CopyObjectCommand({
            Bucket: this.bucket,
            Key,
            CopySource: `${this.bucket}/${Key}?versionId=${encodeURIComponent(v.VersionId!)}`,
            ChecksumAlgorithm: "SHA256",
            ...this.lockParams(),
          }),
        );
        restored.push(sha);
        return;
      }
    });
    return restored;
  }

  /**
   * GC's delete: without a lock, deleteChunks; with one, every version of each chunk goes, and chunks
   * whose retention has not passed are skipped (`locked`) rather than failing the run.
   */
  async deleteUnlockedChunks(userId: string, shas: string[]): Promise<LockAwareDeleteResult> {
    if (!this.lock) return { deleted: await this.deleteChunks(userId, shas), locked: [] };
    const keys = [...new Set(shas)].map((sha) => this.chunkKey(userId, sha));
    const r = await this.deleteAllVersions(keys);
    const prefixLen = `${userId}/chunks/`.length;
    return { deleted: r.deleted, locked: r.locked.map((k) => k.slice(prefixLen)) };
  }

  /**
   * GC's manifest delete: true when the manifest is gone (all its versions, with a lock), false when
   * its retention still protects it (a later run retries).
   */
  async deleteUnlockedManifest(userId: string, backupId: string): Promise<boolean> {
    if (!this.lock) {
      await this.deleteManifest(userId, backupId);
      return true;
    }
    const r = await this.deleteAllVersions([this.manifestKey(userId, backupId)]);
    return r.locked.length === 0;
  }

  /** Idempotent: deleting a missing manifest succeeds. */
  async deleteManifest(userId: string, backupId: string): Promise<void> {
    await this.s3.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.manifestKey(userId, backupId) }));
  }

  /** Every object under `<userId>/chunks/` (keys that are not a sha256 are skipped), page by page. */
  async *listChunks(userId: string, opts: { pageSize?: number } = {}): AsyncIterable<{ sha256: string; size: number; lastModified?: Date }> {
    assertUser(userId);
    const prefix = `${userId}/chunks/`;
    let token: string | undefined;
    do {
      const page = await this.s3.send(
        new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ContinuationToken: token, ...(opts.pageSize ? { MaxKeys: opts.pageSize } : {}) }),
      );
      for (const o of page.Contents ?? []) {
        const sha = o.Key?.slice(prefix.length);
        if (!sha || !isSha256Hex(sha)) continue;
        yield { sha256: sha, size: o.Size ?? 0, ...(o.LastModified ? { lastModified: o.LastModified } : {}) };
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  /**
   * Deletes the given chunks (deduplicated) with DeleteObjects, 1000 keys per request. S3 reports a
   * missing key as deleted, so the result counts keys that are gone afterwards. The SDK always sends
   * a checksum with DeleteObjects (versitygw answers 400 InvalidRequest "Missing required header
   * for this request: Content-MD5 OR x-amz-checksum-*" without one); should a server still refuse it
   * for that reason, or not implement it, this falls back to one DeleteObject per key.
   */
  async deleteChunks(userId: string, shas: string[]): Promise<number> {
    const unique = [...new Set(shas)];
    const keys = unique.map((sha) => this.chunkKey(userId, sha));
    let deleted = 0;
    const failures: { sha256: string; code?: string; message?: string }[] = [];
    const prefixLen = `${userId}/chunks/`.length;
    for (let i = 0; i < keys.length; i += DELETE_BATCH) {
      const batch = keys.slice(i, i + DELETE_BATCH);
      if (!this.singleDeletes) {
        try {
          const r = await this.s3.send(new DeleteObjectsCommand({ Bucket: this.bucket, Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true } }));
          const errors = r.Errors ?? [];
          deleted += batch.length - errors.length;
          for (const e of errors) failures.push({ sha256: (e.Key ?? "").slice(prefixLen), code: e.Code, message: e.Message });
          continue;
        } catch (err) {
          if (!this.deleteObjectsUnsupported(err)) throw err;
          this.singleDeletes = true;
        }
      }
      await mapLimit(batch, this.concurrency, async (Key) => {
        await this.s3.send(new DeleteObjectCommand({ Bucket: this.bucket, Key }));
        deleted++;
      });
    }
    if (failures.length) throw new ChunkDeleteError(deleted, failures);
    return deleted;
  }

  private deleteObjectsUnsupported(err: unknown): boolean {
    const e = err as { name?: string; message?: string; $metadata?: { httpStatusCode?: number } } | null;
    if (e?.name === "NotImplemented" || e?.$metadata?.httpStatusCode === 501) return true;
    return (e?.name === "InvalidRequest" || e?.name === "MissingContentMD5") && /content-md5|checksum/i.test(e?.message ?? e?.name ?? "");
  }

  /**
   * Ensures the global all-zero object `zero/<size>` exists (HEAD first; PUT with its SHA-256
   * checksum when missing or of the wrong size) and returns its key. It holds no user data, so one
   * copy per size serves every user. Memoised per process; concurrent creators write identical bytes.
   */
  async ensureZeroObject(size: number): Promise<string> {
    const key = this.zeroKey(size);
    let p = this.zeroObjects.get(size);
    if (!p) {
      p = this.createZeroObject(key, size);
      this.zeroObjects.set(size, p);
      p.catch(() => this.zeroObjects.delete(size));
    }
    return p;
  }

  private async createZeroObject(key: string, size: number): Promise<string> {
    const existing = await this.head(key);
    if (existing?.size === size) return key;
    // Hash and send the zeros a block at a time: sizes up to 5 GiB without holding them in memory.
    const hash = createHash("sha256");
    for (let left = size; left > 0; left -= ZERO_STREAM_BLOCK.length) hash.update(ZERO_STREAM_BLOCK.subarray(0, Math.min(left, ZERO_STREAM_BLOCK.length)));
    await this.s3.send(
      new PutObjectCommand({
        Bucket: this.bucket,
        Key: key,
        Body: size <= ZERO_STREAM_BLOCK.length ? ZERO_STREAM_BLOCK.subarray(0, size) : Readable.from(zeroBlocks(size)),
        ContentLength: size,
        ContentType: "application/octet-stream",
        ChecksumSHA256: hash.digest("base64"),
        ...this.lockParams(),
      }),
    );
    return key;
  }
}
