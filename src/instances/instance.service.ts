import { and, asc, eq, gt, inArray, lt, ne, sql } from "drizzle-orm";
import { callTargetForApi } from "../compute/call";
import type { Db } from "../db/client";
import { instances, recoveries, type InstanceRow } from "../db/schema";
import { newId } from "../shared/ids";
import { OwnedPages, findOwned } from "../db/ownership";
import type { Page, PageArgs, PageLimits } from "../shared/pagination";
import { AppError, conflict, ErrorCode } from "../shared/errors";
import type { ComputeTarget, ConsoleScreenshot, InstanceStatus, TargetKind } from "../compute/target";
import { SCREENSHOT_EXTENSION } from "../compute/target";
import type { EventBus } from "../events/event-bus";
import { Topic } from "../events/topics";
import type { QuotaService } from "../quotas/quota.service";
import type { ArtifactStore, PresignedGet } from "../storage/artifact-store";
import type { AccessService } from "../access/access.service";

export type NewInstance = Pick<InstanceRow, "recoveryId" | "provider" | "providerId" | "name" | "state"> &
  Partial<Pick<InstanceRow, "address" | "privateAddress" | "zone">>;

const STATE_OF: Record<InstanceStatus["state"], InstanceRow["state"]> = {
  pending: "PENDING",
  running: "RUNNING",
  stopping: "STOPPING",
  stopped: "STOPPED",
  terminated: "TERMINATED",
  lost: "LOST",
};

/** One batch of the scheduled state sync. */
export interface InstanceSyncBatch {
  /** Machines whose provider state was read. */
  checked: number;
  /** Row ids whose state changed. */
  changed: string[];
  /** Row ids that became STOPPED (their lastStoppedAt is now). */
  stopped: string[];
  /** Machines of a provider this process has no target for. */
  skipped: number;
  /** Where the next batch starts (absent: this was the last). */
  nextAfterId?: string;
}

export interface Screenshot {
  url: string;
  contentType: string;
  takenAt: Date;
  expiresAt: Date;
}

export interface InstanceServiceDeps {
  db: Db;
  limits: PageLimits;
  targets: Partial<Record<TargetKind, ComputeTarget>>;
  /** instanceChanged events (absent: nobody is told). */
  events?: EventBus;
  /** Fair-use limits on running machines (absent: unlimited). */
  quotas?: Pick<QuotaService, "checkMachineStart">;
  /** A machine that is gone has its access point recorded closed (terminateInstance closes it at the target); one started again gets it reopened if it went down. */
  access?: Pick<AccessService, "closedWith" | "reopenDown">;
  /** Screenshots are stored here and handed out as presigned GET URLs. */
  artifacts?: Pick<ArtifactStore, "put" | "presignGet">;
  now?: () => Date;
}

/** Recovered machines: read model, lifecycle actions through the compute target, console access. */
export class InstanceService {
  private readonly now: () => Date;
  private readonly pages: OwnedPages<InstanceRow>;

  constructor(private readonly deps: InstanceServiceDeps) {
    this.now = deps.now ?? (() => new Date());
    this.pages = new OwnedPages<InstanceRow>(deps.db, instances, deps.limits);
  }

  get(userId: string, id: string): Promise<InstanceRow> {
    return findOwned<InstanceRow>(this.deps.db, instances, "Instance", userId, id);
  }

  list(userId: string, args: PageArgs): Promise<Page<InstanceRow>> {
    return this.pages.list(userId, args);
  }

  async forRecovery(userId: string, recoveryId: string): Promise<InstanceRow | null> {
    const [row] = await this.deps.db
      .select()
      .from(instances)
      .where(and(eq(instances.recoveryId, recoveryId), eq(instances.userId, userId)))
      .limit(1);
    return row ?? null;
  }

  /** Records a machine a recovery launched. */
  async record(userId: string, input: NewInstance): Promise<InstanceRow> {
    const now = this.now();
    const row: InstanceRow = {
      id: newId(),
      userId,
      address: null,
      privateAddress: null,
      zone: null,
      lastStoppedAt: null,
      terminatedAt: null,
      createdAt: now,
      updatedAt: now,
      ...input,
    };
    await this.deps.db.insert(instances).values(row);
    this.changed(row);
    return row;
  }

  /** Tells the owner's instanceChanged subscribers. */
  private changed(row: Pick<InstanceRow, "id" | "userId">): void {
    this.deps.events?.publish(Topic.INSTANCE_CHANGED, row.userId, { instanceId: row.id, userId: row.userId });
  }

  /** Re-reads the provider's view and stores it (state, addresses, lastStoppedAt). */
  async sync(userId: string, id: string): Promise<InstanceRow> {
    const row = await this.get(userId, id);
    if (row.state === "TERMINATED") return row;
    const status = await this.call(() => this.target(row).describeInstance(row.providerId));
    return this.apply(row, status);
  }

  async start(userId: string, id: string): Promise<InstanceRow> {
    const row = await this.sync(userId, id);
    if (row.state === "RUNNING") return row;
    if (row.state !== "STOPPED") throw conflict(`Instance ${row.id} is ${row.state}; only a STOPPED instance can be started`, { state: row.state });
    await this.deps.quotas?.checkMachineStart(userId, row.provider);
    await this.call(() => this.target(row).startInstance(row.providerId));
    const started = await this.sync(userId, id);
    // Its access point may have gone down while it was stopped (a host restart): open it again now
    // rather than at the next scheduled sync. A failure leaves that to the sync; the machine runs.
    if (started.state === "RUNNING") await this.deps.access?.reopenDown({ userIds: [userId] }).catch(() => undefined);
    return started;
  }

  async stop(userId: string, id: string): Promise<InstanceRow> {
    const row = await this.sync(userId, id);
    if (row.state === "STOPPED") return row;
    if (row.state !== "RUNNING" && row.state !== "PENDING") throw conflict(`Instance ${row.id} is ${row.state}; only a RUNNING instance can be stopped`, { state: row.state });
    await this.deps.db.update(instances).set({ state: "STOPPING", updatedAt: this.now() }).where(eq(instances.id, row.id));
    this.changed(row);
    await this.call(() => this.target(row).stopInstance(row.providerId));
    return this.sync(userId, id);
  }

  /** Terminates the machine and removes what its recovery left at the target (image, network guard). */
  async terminate(userId: string, id: string): Promise<InstanceRow> {
    const row = await this.get(userId, id);
    if (row.state === "TERMINATED") return row;
    const target = this.target(row);
    await this.call(() => target.terminateInstance(row.providerId));
    if (row.recoveryId) {
      const [rec] = await this.deps.db.select({ resources: recoveries.resources }).from(recoveries).where(eq(recoveries.id, row.recoveryId)).limit(1);
      const res = rec?.resources;
      if (res?.imageId) await this.call(() => target.deleteImage(res.imageId!, res.snapshotIds));
      if (res?.securityGroupId) await this.call(() => target.deleteNetworkGuard(res.securityGroupId!)).catch(() => undefined);
    }
    await this.markTerminated([row]);
    return this.get(userId, id);
  }

  /** Records machines as TERMINATED (gone at the provider) and tells their owners. */
  async markTerminated(rows: Pick<InstanceRow, "id" | "userId">[]): Promise<void> {
    if (!rows.length) return;
    const now = this.now();
    await this.deps.db
      .update(instances)
      .set({ state: "TERMINATED", terminatedAt: now, updatedAt: now })
      .where(inArray(instances.id, rows.map((r) => r.id)));
    if (this.deps.access) {
      const gone = await this.deps.db.select({ provider: instances.provider, providerId: instances.providerId }).from(instances).where(inArray(instances.id, rows.map((r) => r.id)));
      await this.deps.access.closedWith(gone);
    }
    for (const row of rows) this.changed(row);
  }

  /** A failed or cancelled recovery's machine is gone: its row (if one was recorded) becomes TERMINATED. */
  async markTerminatedForRecovery(recoveryId: string): Promise<void> {
    const going = await this.deps.db
      .select({ id: instances.id, userId: instances.userId })
      .from(instances)
      .where(and(eq(instances.recoveryId, recoveryId), inArray(instances.state, ["PENDING", "RUNNING", "STOPPING", "STOPPED"])));
    await this.markTerminated(going);
  }

  /**
   * The scheduled state sync, one batch: the next `limit` machines not TERMINATED (by row id, after
   * `afterId`) read from their providers in as few calls as the provider allows, and each changed
   * one stored — a machine stopped at the provider (from its console, by the provider) becomes
   * STOPPED with lastStoppedAt, which starts the stopped-machine clean-up's clock, without anyone
   * opening it here. Machines of a provider this process has no target for are left alone.
   * TargetErrors propagate (the caller decides on retries).
   */
  async syncStates(opts: { afterId?: string; limit: number; userIds?: string[] }): Promise<InstanceSyncBatch> {
    const where = [ne(instances.state, "TERMINATED")];
    if (opts.afterId) where.push(gt(instances.id, opts.afterId));
    if (opts.userIds) where.push(opts.userIds.length ? inArray(instances.userId, opts.userIds) : sql`false`);
    const limit = opts.limit;
    const rows = await this.deps.db
      .select()
      .from(instances)
      .where(and(...where))
      .orderBy(asc(instances.id))
      .limit(limit);
    const result: InstanceSyncBatch = { checked: 0, changed: [], stopped: [], skipped: 0, ...(rows.length === limit ? { nextAfterId: rows.at(-1)!.id } : {}) };
    for (const provider of [...new Set(rows.map((r) => r.provider))]) {
      const mine = rows.filter((r) => r.provider === provider);
      const target = this.deps.targets[provider];
      if (!target) {
        result.skipped += mine.length;
        continue;
      }
      let states: Map<string, InstanceStatus>;
      if (target.describeInstances) states = await target.describeInstances(mine.map((r) => r.providerId));
      else {
        states = new Map();
        for (const r of mine) states.set(r.providerId, await target.describeInstance(r.providerId));
      }
      for (const row of mine) {
        const status = states.get(row.providerId);
        if (!status) continue;
        result.checked++;
        const after = await this.apply(row, status);
        if (after.state !== row.state) result.changed.push(row.id);
        if (after.state === "STOPPED" && row.state !== "STOPPED") result.stopped.push(row.id);
      }
    }
    return result;
  }

  /** Machines stopped since before `cutoff` (the scheduled clean-up's candidates). */
  stoppedBefore(cutoff: Date): Promise<InstanceRow[]> {
    return this.deps.db
      .select()
      .from(instances)
      .where(and(eq(instances.state, "STOPPED"), lt(instances.lastStoppedAt, cutoff)));
  }

  async consoleOutput(userId: string, id: string): Promise<string> {
    const row = await this.get(userId, id);
    if (row.state === "TERMINATED") return "";
    return this.call(() => this.target(row).consoleOutput(row.providerId));
  }

  /** Takes a console screenshot now, stores it in the provider's format and returns a short-lived presigned GET URL. */
  async screenshot(userId: string, id: string): Promise<Screenshot> {
    const row = await this.get(userId, id);
    if (row.state !== "RUNNING") throw conflict(`Instance ${row.id} is ${row.state}; a screenshot needs a RUNNING instance`, { state: row.state });
    const shot = await this.call(() => this.target(row).screenshot(row.providerId));
    return this.storeScreenshot(userId, `${userId}/screenshots/${row.id}/${Date.now()}.${SCREENSHOT_EXTENSION[shot.contentType]}`, shot);
  }

  async storeScreenshot(userId: string, key: string, shot: ConsoleScreenshot): Promise<Screenshot> {
    const artifacts = this.artifacts();
    const { contentType } = shot;
    await artifacts.put(key, shot.bytes, contentType);
    return { ...(await artifacts.presignGet(key)), contentType, takenAt: this.now() };
  }

  /** A presigned GET for a stored artifact (default lifetime: the store's). */
  async presignArtifact(key: string, expirySeconds?: number): Promise<PresignedGet> {
    return this.artifacts().presignGet(key, expirySeconds);
  }

  private artifacts(): Pick<ArtifactStore, "put" | "presignGet"> {
    if (!this.deps.artifacts) throw new Error("no artifacts bucket configured");
    return this.deps.artifacts;
  }

  private async apply(row: InstanceRow, status: InstanceStatus): Promise<InstanceRow> {
    const state = STATE_OF[status.state];
    const now = this.now();
    const patch: Partial<InstanceRow> = {
      state,
      address: status.publicAddress ?? row.address,
      privateAddress: status.privateAddress ?? row.privateAddress,
      zone: status.zone ?? row.zone,
      updatedAt: now,
    };
    // A row STOPPED without a time (recorded before it was kept) gets one now, or the clean-up never starts.
    if (state === "STOPPED" && (row.state !== "STOPPED" || !row.lastStoppedAt)) patch.lastStoppedAt = now;
    if (state === "TERMINATED") patch.terminatedAt = row.terminatedAt ?? now;
    if (state === "TERMINATED" && row.state !== "TERMINATED") await this.deps.access?.closedWith([row]);
    if (state !== row.state || patch.address !== row.address || patch.lastStoppedAt) {
      await this.deps.db.update(instances).set(patch).where(eq(instances.id, row.id));
      this.changed(row);
    }
    return { ...row, ...patch };
  }

  private target(row: InstanceRow): ComputeTarget {
    const t = this.deps.targets[row.provider];
    if (!t) throw new AppError(ErrorCode.INTERNAL, `The ${row.provider} target is not configured on this server`);
    return t;
  }

  /** Target errors become typed errors (src/compute/call.ts). */
  private call<T>(fn: () => Promise<T>): Promise<T> {
    return callTargetForApi(fn);
  }

}
