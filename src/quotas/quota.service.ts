import { and, count, eq, inArray } from "drizzle-orm";
import type { Db } from "../db/client";
import { ACTIVE_RECOVERY_STATES, backups, instances, recoveries, uploadChunks, uploads, users, verifications } from "../db/schema";
import type { Config } from "../config";
import { quotaExceeded } from "../shared/errors";
import type { ChunkStore } from "../storage/chunk-store";

/** A transaction or the pool: both read the same way. */
type Tx = Parameters<Parameters<Db["transaction"]>[0]>[0];
export type Queryable = Db | Tx;

/** Machine states that hold a host's CPU and memory (or a cloud bill). */
export const LIVE_MACHINE_STATES = ["PENDING", "RUNNING", "STOPPING"] as const;
const ACTIVE_VERIFICATION_STATES = ["PENDING", "RUNNING"] as const;

export interface QuotaUsage {
  /** Distinct chunks referenced by live backups (what the user keeps stored). */
  storedBytes: number;
  /** Chunks active uploads were handed URLs for (reserved until they complete or expire). */
  uploadingBytes: number;
  storedBytesLimit: number | null;
  maxImageBytes: number;
  concurrentRecoveries: number;
  concurrentRecoveriesLimit: number | null;
  runningMachines: number;
  runningMachinesLimit: number | null;
  hostRunningMachinesLimit: number | null;
}

const MiB = 1024 * 1024;
/** Largest chunk: fits GraphQL's 32-bit Int (chunk sizes cross the API) and stays under S3's 5 GiB single PUT. */
export const MAX_CHUNK_SIZE = 2047 * MiB;
/** S3 allows 10,000 parts per multipart upload: a restore point is composed from one part per chunk. */
export const MAX_CHUNKS = 10_000;
/** Largest image the chunk format can describe (10,000 chunks of 2047 MiB, about 19.5 TiB). */
export const MAX_IMAGE_SIZE = MAX_CHUNKS * MAX_CHUNK_SIZE;

const STORED_CACHE_ENTRIES = 10_000;

/**
 * Transactions that check a quota and then write: each read sees what is committed at that moment
 * (under REPEATABLE READ a snapshot taken before the user's lock was granted would miss what the
 * previous holder just committed).
 */
export const QUOTA_TX = { isolationLevel: "read committed" } as const;

/**
 * Fair use: per-user stored bytes, image size, concurrent recoveries and running machines, and the
 * machines one local host runs for everybody. Every refusal is a QUOTA_EXCEEDED error naming the
 * quota, its limit and the usage; the checks that guard a write run inside the caller's
 * transaction (QUOTA_TX) after `lockUser`, so two concurrent requests of one user cannot both
 * squeeze in. The host-wide count is not locked: simultaneous starts by different users may pass
 * it by the number of requests in flight.
 */
export class QuotaService {
  /** userId → stored bytes for one set of live manifests (manifests never change once written). */
  private readonly storedCache = new Map<string, { signature: string; bytes: number }>();

  constructor(
    private readonly db: Db,
    private readonly store: ChunkStore,
    readonly limits: Config["quotas"],
    /** UPLOAD_EXPIRY, shown with the quota. */
    readonly uploadExpiryMs: number,
  ) {}

  /** The largest image this deployment accepts (the quota, never above what the format allows). */
  get maxImageBytes(): number {
    return Math.min(this.limits.maxImageBytes ?? MAX_IMAGE_SIZE, MAX_IMAGE_SIZE);
  }

  async usage(userId: string): Promise<QuotaUsage> {
    const [storedBytes, uploadingBytes, concurrentRecoveries, runningMachines] = await Promise.all([
      this.storedBytes(userId),
      this.uploadingBytes(this.db, userId),
      this.activeRecoveries(this.db, userId),
      this.runningMachines(this.db, userId),
    ]);
    return {
      storedBytes,
      uploadingBytes,
      storedBytesLimit: this.limits.storedBytes,
      maxImageBytes: this.maxImageBytes,
      concurrentRecoveries,
      concurrentRecoveriesLimit: this.limits.concurrentRecoveries,
      runningMachines,
      runningMachinesLimit: this.limits.runningMachines,
      hostRunningMachinesLimit: this.limits.hostRunningMachines,
    };
  }

  /** Serialises a user's quota-guarded writes (SELECT … FOR UPDATE on the user's row, inside `tx`). */
  async lockUser(tx: Tx, userId: string): Promise<void> {
    await tx.select({ id: users.id }).from(users).where(eq(users.id, userId)).for("update");
  }

  /**
   * Bytes of the distinct chunks the user's live backups reference, read from their manifests:
   * COMPLETED backups and the parents of UPLOADING ones (exactly what the garbage collector keeps).
   */
  async storedBytes(userId: string): Promise<number> {
    const rows = await this.db
      .select({ id: backups.id, status: backups.status, parentId: backups.parentId, manifestKey: backups.manifestKey, imageSize: backups.imageSize, chunkSize: backups.chunkSize })
      .from(backups)
      .where(and(eq(backups.userId, userId), inArray(backups.status, ["COMPLETED", "UPLOADING", "DELETED"])));
    const uploadingParents = new Set(rows.filter((r) => r.status === "UPLOADING" && r.parentId).map((r) => r.parentId!));
    const live = rows.filter((r) => r.manifestKey && (r.status === "COMPLETED" || uploadingParents.has(r.id))).sort((a, b) => (a.id < b.id ? -1 : 1));
    const signature = live.map((r) => r.id).join(",");
    const cached = this.storedCache.get(userId);
    if (cached?.signature === signature) return cached.bytes;

    const sizes = new Map<string, number>();
    for (const b of live) {
      const manifest = await this.store.getManifest(userId, b.id);
      if (!manifest) continue;
      manifest.chunks.forEach((sha, i) => {
        if (sha && !sizes.has(sha)) sizes.set(sha, Math.min(manifest.chunkSize, manifest.imageSize - i * manifest.chunkSize));
      });
    }
    let bytes = 0;
    for (const n of sizes.values()) bytes += n;
    this.storedCache.delete(userId);
    if (this.storedCache.size >= STORED_CACHE_ENTRIES) this.storedCache.delete(this.storedCache.keys().next().value!);
    this.storedCache.set(userId, { signature, bytes });
    return bytes;
  }

  /** Distinct chunks ACTIVE uploads of the user were handed URLs for (stored or about to be). */
  async uploadingBytes(q: Queryable, userId: string): Promise<number> {
    const rows = await q
      .selectDistinct({ sha256: uploadChunks.sha256, size: uploadChunks.size })
      .from(uploadChunks)
      .innerJoin(uploads, eq(uploads.id, uploadChunks.uploadId))
      .where(and(eq(uploads.userId, userId), eq(uploads.status, "ACTIVE")));
    const seen = new Map(rows.map((r) => [r.sha256, r.size]));
    let n = 0;
    for (const s of seen.values()) n += s;
    return n;
  }

  /** Refuses an image the format cannot describe (BAD_USER_INPUT is the caller's) or the deployment does not accept. */
  checkImageSize(imageSize: number): void {
    const max = this.maxImageBytes;
    if (imageSize > max)
      throw quotaExceeded("MAX_IMAGE_BYTES", `imageSize ${imageSize} bytes is larger than the ${formatBytes(max)} this service accepts per image`, { limit: max, used: 0, requested: imageSize });
  }

  /** Refuses a new backup when the user has no stored-bytes quota left at all. */
  async checkCanStartBackup(userId: string): Promise<void> {
    const limit = this.limits.storedBytes;
    if (limit === null) return;
    const used = (await this.storedBytes(userId)) + (await this.uploadingBytes(this.db, userId));
    if (used >= limit)
      throw quotaExceeded("STORED_BYTES", `Your storage quota is used up (${formatBytes(used)} of ${formatBytes(limit)}); delete restore points or abort unfinished backups first`, { limit, used });
  }

  /**
   * Inside the caller's transaction (after lockUser): refuses handing out upload URLs for new chunks
   * that would take the user's stored plus reserved bytes past the limit.
   */
  async checkNewChunks(tx: Tx, userId: string, storedBytes: number, fresh: { sha256: string; size: number }[]): Promise<void> {
    const limit = this.limits.storedBytes;
    if (limit === null || fresh.length === 0) return;
    const reserved = await tx
      .selectDistinct({ sha256: uploadChunks.sha256, size: uploadChunks.size })
      .from(uploadChunks)
      .innerJoin(uploads, eq(uploads.id, uploadChunks.uploadId))
      .where(and(eq(uploads.userId, userId), eq(uploads.status, "ACTIVE")));
    const known = new Map(reserved.map((r) => [r.sha256, r.size]));
    let used = storedBytes;
    for (const s of known.values()) used += s;
    let requested = 0;
    const counted = new Set<string>();
    for (const c of fresh) {
      if (known.has(c.sha256) || counted.has(c.sha256)) continue;
      counted.add(c.sha256);
      requested += c.size;
    }
    if (used + requested > limit)
      throw quotaExceeded("STORED_BYTES", `These chunks (${formatBytes(requested)}) would take your storage past its quota (${formatBytes(used)} of ${formatBytes(limit)} used); nothing was handed out`, {
        limit,
        used,
        requested,
      });
  }

  /**
   * Inside the caller's transaction (after lockUser): a new recovery is one more concurrent
   * recovery and, once launched, one more running machine (for its owner, and for the local host).
   */
  async checkRecoveryStart(tx: Tx, userId: string, target: "AWS" | "LOCAL"): Promise<void> {
    const { concurrentRecoveries, runningMachines } = this.limits;
    if (concurrentRecoveries !== null) {
      const used = await this.activeRecoveries(tx, userId);
      if (used >= concurrentRecoveries)
        throw quotaExceeded("CONCURRENT_RECOVERIES", `You have ${used} recoveries in progress, the most allowed at once (${concurrentRecoveries}); wait for one to finish or cancel one`, {
          limit: concurrentRecoveries,
          used,
        });
    }
    if (runningMachines !== null) {
      const used = await this.runningMachines(tx, userId);
      if (used >= runningMachines)
        throw quotaExceeded("RUNNING_MACHINES", `You have ${used} machines running or being recovered, the most allowed (${runningMachines}); stop or delete one first`, { limit: runningMachines, used });
    }
    if (target === "LOCAL") await this.checkHost(tx);
  }

  /** Starting a stopped machine again: one more running machine for its owner (and the local host). */
  async checkMachineStart(userId: string, provider: "AWS" | "LOCAL"): Promise<void> {
    await this.db.transaction(async (tx) => {
      await this.lockUser(tx, userId);
      const { runningMachines } = this.limits;
      if (runningMachines !== null) {
        const used = await this.runningMachines(tx, userId);
        if (used >= runningMachines)
          throw quotaExceeded("RUNNING_MACHINES", `You have ${used} machines running or being recovered, the most allowed (${runningMachines}); stop one first`, { limit: runningMachines, used });
      }
      if (provider === "LOCAL") await this.checkHost(tx);
    }, QUOTA_TX);
  }

  private async checkHost(q: Queryable): Promise<void> {
    const limit = this.limits.hostRunningMachines;
    if (limit === null) return;
    const used = await this.hostMachines(q);
    if (used >= limit)
      throw quotaExceeded("HOST_RUNNING_MACHINES", `The local recovery host is running ${used} machines, its limit (${limit}); try again later or recover to another target`, { limit, used });
  }

  async activeRecoveries(q: Queryable, userId: string): Promise<number> {
    const [r] = await q
      .select({ n: count() })
      .from(recoveries)
      .where(and(eq(recoveries.userId, userId), inArray(recoveries.state, [...ACTIVE_RECOVERY_STATES])));
    return Number(r?.n ?? 0);
  }

  /** Machines that run (or will, once their recovery launches them): live instances plus active recoveries. */
  async runningMachines(q: Queryable, userId: string): Promise<number> {
    const [m] = await q
      .select({ n: count() })
      .from(instances)
      .where(and(eq(instances.userId, userId), inArray(instances.state, [...LIVE_MACHINE_STATES])));
    return Number(m?.n ?? 0) + (await this.activeRecoveries(q, userId));
  }

  /** QEMU machines on the local host for everybody: live local instances, active local recoveries and boot verifications. */
  async hostMachines(q: Queryable): Promise<number> {
    const [m] = await q
      .select({ n: count() })
      .from(instances)
      .where(and(eq(instances.provider, "LOCAL"), inArray(instances.state, [...LIVE_MACHINE_STATES])));
    const [r] = await q
      .select({ n: count() })
      .from(recoveries)
      .where(and(eq(recoveries.target, "LOCAL"), inArray(recoveries.state, [...ACTIVE_RECOVERY_STATES])));
    const [v] = await q
      .select({ n: count() })
      .from(verifications)
      .where(inArray(verifications.status, [...ACTIVE_VERIFICATION_STATES]));
    return Number(m?.n ?? 0) + Number(r?.n ?? 0) + Number(v?.n ?? 0);
  }
}

export function formatBytes(n: number): string {
  const units = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${n} bytes` : `${v.toFixed(v < 10 ? 2 : 1).replace(/\.?0+$/, "")} ${units[u]}`;
}
