import { and, desc, eq, inArray, isNull, sql } from "drizzle-orm";
import type { Db } from "../db/client";
import { backups, uploadChunks, uploads, type BackupRow, type UploadRow } from "../db/schema";
import { OwnedPages, findOwned, type OwnedFilter } from "../db/ownership";
import type { Page, PageArgs, PageLimits } from "../shared/pagination";
import { badInput, conflict } from "../shared/errors";
import type { EventBus } from "../events/event-bus";
import { Topic, type UploadSnapshot } from "../events/topics";
import { eager, live } from "../events/live";
import type { ChunkStore } from "../storage/chunk-store";
import type { NotificationService } from "../alerts/notification.service";
import { newId } from "../shared/ids";

const SHA = /^[0-9a-f]{64}$/;
/** Chunks per confirmChunks call (the agent confirms in batches: one row update per batch). */
export const MAX_CONFIRM_CHUNKS = 1000;
/** The rate is an exponentially weighted average with this time constant (≈ "the last 20 s"). */
const RATE_TAU_S = 20;
/** A rate older than this is no rate at all (nothing moved recently). */
const RATE_STALE_MS = 30_000;
const MAX_REASON = 1000;

export type UploadStatusValue = UploadRow["status"];

/** A row and the source its backup is of (what the clients group by). */
export type UploadView = UploadRow & { sourceName: string };

/** The agent's report of chunks it sent (PUT answered 2xx) and how far through the image it is. */
export interface ChunkConfirmation {
  backupId: string;
  /** Chunks sent since its last confirmation (each counted once, and only when the store holds it). */
  chunks: { index: number; sha256: string }[];
  /** Bytes of the image dealt with so far in this attempt: sent, found stored, all-zero or repeated. */
  bytesDone: number;
}

export interface UploadFailure {
  uploadId?: string | null;
  backupId?: string | null;
  reason: string;
}

export interface UploadWatch {
  uploadId?: string | null;
  sourceName?: string | null;
}

/** The upload's own rate (bytes/s) as it is now: nothing moved for RATE_STALE_MS, none. */
export function currentRate(u: Pick<UploadRow, "status" | "rate" | "progressAt">, now: Date): number {
  if (u.status !== "ACTIVE" || !u.progressAt || now.getTime() - u.progressAt.getTime() > RATE_STALE_MS) return 0;
  return Math.round(u.rate);
}

/** Seconds left at the current rate (null: not ACTIVE, no total, or no rate). */
export function secondsLeft(u: Pick<UploadRow, "status" | "rate" | "progressAt" | "bytesTotal" | "bytesDone">, now: Date): number | null {
  const rate = currentRate(u, now);
  if (u.status !== "ACTIVE" || u.bytesTotal === null || rate <= 0) return null;
  return Math.max(0, Math.ceil((u.bytesTotal - Math.min(u.bytesDone, u.bytesTotal)) / rate));
}

export function uploadSnapshot(u: UploadView): UploadSnapshot {
  const iso = (d: Date | null) => (d ? d.toISOString() : null);
  return {
    id: u.id,
    userId: u.userId,
    backupId: u.backupId,
    sourceName: u.sourceName,
    status: u.status,
    bytesSent: u.bytesSent,
    chunksSent: u.chunksSent,
    chunksTotal: u.chunksTotal,
    bytesTotal: u.bytesTotal,
    bytesDone: u.bytesDone,
    rate: u.rate,
    failureReason: u.failureReason,
    startedAt: u.startedAt.toISOString(),
    lastActivityAt: iso(u.lastActivityAt),
    progressAt: iso(u.progressAt),
    completedAt: iso(u.completedAt),
    version: u.version,
  };
}

/** A snapshot (ISO dates) back as a view (Dates), for the GraphQL type. */
export function fromSnapshot(s: UploadSnapshot): UploadView {
  const d = (v: string | null) => (v ? new Date(v) : null);
  return {
    ...s,
    startedAt: new Date(s.startedAt),
    lastActivityAt: d(s.lastActivityAt),
    progressAt: d(s.progressAt),
    completedAt: d(s.completedAt),
    createdAt: new Date(s.startedAt),
    updatedAt: d(s.progressAt) ?? new Date(s.startedAt),
  };
}

/**
 * Uploads (issue 16): one agent's attempt to send a backup, and what it means — live progress as
 * the agent confirms chunks the store holds (one row update per confirmed batch), why it failed,
 * abandonment, alerts, and a live feed per upload or per source (published at most every
 * `publishIntervalMs` per upload; an upload's end is published at once).
 */
export class UploadService {
  private readonly pages: OwnedPages<UploadRow>;
  private readonly throttle = new Map<string, { last: number; timer?: NodeJS.Timeout; pending?: UploadSnapshot }>();

  constructor(
    private readonly db: Db,
    private readonly deps: { events: EventBus; store: ChunkStore; notifications: NotificationService; publishIntervalMs?: number },
    limits: PageLimits,
    private readonly now: () => Date = () => new Date(),
  ) {
    this.pages = new OwnedPages<UploadRow>(db, uploads, limits);
  }

  get(userId: string, id: string): Promise<UploadRow> {
    return findOwned<UploadRow>(this.db, uploads, "Upload", userId, id);
  }

  list(userId: string, args: PageArgs, filter: { status?: UploadStatusValue } = {}): Promise<Page<UploadRow>> {
    const conds: OwnedFilter[] = filter.status ? [{ column: uploads.status, op: "eq", value: filter.status }] : [];
    return this.pages.list(userId, args, conds);
  }

  /** The backup's latest upload (its current or last attempt). */
  async forBackup(userId: string, backupId: string): Promise<UploadRow | null> {
    const [row] = await this.db
      .select()
      .from(uploads)
      .where(and(eq(uploads.backupId, backupId), eq(uploads.userId, userId)))
      .orderBy(desc(uploads.id))
      .limit(1);
    return row ?? null;
  }

  /**
   * The attempt an UPLOADING backup's agent is making: its latest upload while ACTIVE; after one
   * that FAILED (the agent resumes the backup), a new upload — the failed one keeps its reason.
   * Decided under a lock on the backup row, so two requests at once make one.
   */
  async attemptFor(backup: BackupRow): Promise<UploadRow> {
    const latest = await this.forBackup(backup.userId, backup.id);
    if (latest?.status === "ACTIVE") return latest;
    const made = await this.db.transaction(async (tx) => {
      await tx.select({ id: backups.id }).from(backups).where(eq(backups.id, backup.id)).for("update");
      const [cur] = await tx.select().from(uploads).where(eq(uploads.backupId, backup.id)).orderBy(desc(uploads.id)).limit(1);
      if (cur?.status === "ACTIVE") return { row: cur, fresh: false };
      if (cur && cur.status !== "FAILED") throw conflict(`Upload ${cur.id} of backup ${backup.id} is ${cur.status}`, { field: "backupId", status: cur.status });
      const now = this.now();
      const row: UploadRow = {
        id: newId(),
        userId: backup.userId,
        backupId: backup.id,
        status: "ACTIVE",
        bytesSent: 0,
        chunksSent: 0,
        chunksTotal: backup.chunkCount,
        bytesTotal: backup.imageSize,
        bytesDone: 0,
        rate: 0,
        progressAt: null,
        failureReason: null,
        version: 0,
        startedAt: now,
        lastActivityAt: now,
        completedAt: null,
        createdAt: now,
        updatedAt: now,
      };
      await tx.insert(uploads).values(row);
      return { row, fresh: true };
    });
    if (made.fresh) this.publish(await this.view(made.row.id));
    return made.row;
  }

  /** The source an upload's backup is of. */
  async sourceOf(userId: string, backupId: string): Promise<string> {
    return (await findOwned<BackupRow>(this.db, backups, "Backup", userId, backupId)).sourceName;
  }

  /**
   * Counts the chunks the agent sent since its last confirmation — each once, and only if this upload
   * was handed a URL for it and the store holds it at the right size — and records how far the agent
   * is (bytesDone, and the rate from it). One row update per call.
   */
  async confirmChunks(userId: string, input: ChunkConfirmation): Promise<UploadView> {
    const backup = await findOwned<BackupRow>(this.db, backups, "Backup", userId, input.backupId);
    if (backup.status !== "UPLOADING") throw conflict(`Backup ${backup.id} is ${backup.status}, not UPLOADING`, { field: "backupId", status: backup.status });
    if (input.chunks.length > MAX_CONFIRM_CHUNKS) throw badInput(`Confirm at most ${MAX_CONFIRM_CHUNKS} chunks per call`, { field: "chunks" });
    for (const c of input.chunks) {
      if (!Number.isInteger(c.index) || c.index < 0 || c.index >= backup.chunkCount)
        throw badInput(`Chunk index ${c.index} is outside 0..${backup.chunkCount - 1}`, { field: "chunks", index: c.index });
      if (!SHA.test(c.sha256)) throw badInput(`Chunk ${c.index}: sha256 must be 64 lower-case hex characters`, { field: "chunks", index: c.index });
    }
    if (!Number.isSafeInteger(input.bytesDone) || input.bytesDone < 0 || input.bytesDone > backup.imageSize)
      throw badInput(`bytesDone must be between 0 and the image size (${backup.imageSize})`, { field: "bytesDone" });

    const shas = [...new Set(input.chunks.map((c) => c.sha256))];
    // Asked before the transaction (the store is slow next to a row lock): counted only if stored.
    const heads = shas.length ? await this.deps.store.headChunks(userId, shas) : new Map<string, { size: number } | null>();
    const attempt = await this.attemptFor(backup);
    const id = await this.db.transaction(async (tx) => {
      const [up] = await tx.select().from(uploads).where(eq(uploads.id, attempt.id)).for("update");
      if (!up) throw new Error(`upload ${attempt.id} is gone`);
      if (up.status !== "ACTIVE") throw conflict(`Upload ${up.id} is ${up.status}, not ACTIVE`, { field: "backupId", status: up.status });
      const pending = shas.length
        ? await tx
            .select({ sha256: uploadChunks.sha256, size: uploadChunks.size })
            .from(uploadChunks)
            .where(and(eq(uploadChunks.uploadId, up.id), inArray(uploadChunks.sha256, shas), isNull(uploadChunks.storedAt)))
        : [];
      const stored = pending.filter((c) => heads.get(c.sha256)?.size === c.size);
      const now = this.now();
      if (stored.length) {
        await tx
          .update(uploadChunks)
          .set({ storedAt: now })
          .where(and(eq(uploadChunks.uploadId, up.id), inArray(uploadChunks.sha256, stored.map((c) => c.sha256))));
      }
      // Exponentially weighted: the time constant grows with the upload's age up to RATE_TAU_S, so a
      // young upload's rate follows its first seconds instead of crawling up from its first sample.
      const since = up.progressAt ?? up.startedAt;
      const dt = Math.max(0.001, (now.getTime() - since.getTime()) / 1000);
      const age = Math.max(1, (now.getTime() - up.startedAt.getTime()) / 1000);
      const instant = Math.max(0, input.bytesDone - up.bytesDone) / dt;
      const alpha = 1 - Math.exp(-dt / Math.min(RATE_TAU_S, age));
      const rate = !up.progressAt ? instant : up.rate * (1 - alpha) + instant * alpha;
      await tx
        .update(uploads)
        .set({
          bytesSent: sql`${uploads.bytesSent} + ${stored.reduce((n, c) => n + c.size, 0)}`,
          chunksSent: sql`${uploads.chunksSent} + ${stored.length}`,
          bytesDone: input.bytesDone,
          rate,
          progressAt: now,
          lastActivityAt: now,
          updatedAt: now,
          version: sql`${uploads.version} + 1`,
        })
        .where(eq(uploads.id, up.id));
      return up.id;
    });
    return this.changed(id);
  }

  /**
   * The agent's word on why it stopped: the upload becomes FAILED with the reason and the user is
   * told (UPLOAD_FAILED, once per upload). Idempotent for an upload already FAILED. The backup stays
   * UPLOADING: the agent may resume it (a new upload, the next attempt), else expiry aborts it.
   */
  async fail(userId: string, input: UploadFailure): Promise<UploadView> {
    if (!input.uploadId === !input.backupId) throw badInput("Give exactly one of uploadId and backupId", { field: input.uploadId ? "backupId" : "uploadId" });
    const reason = (input.reason ?? "").trim();
    if (!reason) throw badInput("reason must say why the upload failed", { field: "reason" });
    const row = input.uploadId ? await this.get(userId, input.uploadId) : await this.uploadOfBackup(userId, input.backupId!);
    if (row.status === "FAILED") return this.view(row.id);
    if (row.status !== "ACTIVE") throw conflict(`Upload ${row.id} is ${row.status}, not ACTIVE`, { field: input.uploadId ? "uploadId" : "backupId", status: row.status });
    const now = this.now();
    const failureReason = reason.length > MAX_REASON ? `${reason.slice(0, MAX_REASON - 1)}…` : reason;
    const [res] = await this.db
      .update(uploads)
      .set({ status: "FAILED", failureReason, completedAt: now, lastActivityAt: now, updatedAt: now, version: sql`${uploads.version} + 1` })
      .where(and(eq(uploads.id, row.id), eq(uploads.status, "ACTIVE")));
    const view = await this.view(row.id);
    if (res.affectedRows !== 1) {
      if (view.status === "FAILED") return view;
      throw conflict(`Upload ${row.id} is ${view.status}, not ACTIVE`, { status: view.status });
    }
    this.publish(view);
    await this.deps.notifications.raise(userId, {
      kind: "UPLOAD_FAILED",
      title: `The backup of ${view.sourceName} failed`,
      body: `The agent stopped uploading the backup of ${view.sourceName} (started ${view.startedAt.toISOString()}): ${failureReason}\nIt sent ${view.chunksSent} chunk(s), ${view.bytesSent} bytes. Fix the cause and run the backup again (if the image is unchanged, it resumes where it stopped).`,
      subjectType: "UPLOAD",
      subjectId: view.id,
      dedupeKey: `upload-failed:${view.id}`,
    });
    return view;
  }

  /** Tells the user an upload stopped without a word (called by expiry after marking it ABANDONED). */
  async abandoned(uploadId: string): Promise<void> {
    const view = await this.view(uploadId);
    this.publish(view);
    if (view.status !== "ABANDONED") return;
    await this.deps.notifications.raise(view.userId, {
      kind: "UPLOAD_ABANDONED",
      title: `The backup of ${view.sourceName} stopped without finishing`,
      body: `${view.failureReason ?? "The agent stopped sending."}\nIt had sent ${view.chunksSent} chunk(s), ${view.bytesSent} bytes; the unfinished backup was discarded. Check that the agent on ${view.sourceName} is running and can reach ReClo.`,
      subjectType: "UPLOAD",
      subjectId: view.id,
      dedupeKey: `upload-abandoned:${view.id}`,
    });
  }

  /** Publishes an upload's current state (after any change made elsewhere); returns it. */
  async changed(uploadId: string): Promise<UploadView> {
    const view = await this.view(uploadId);
    this.publish(view);
    return view;
  }

  /** The upload of a backup (owner-checked), as a view. */
  async changedForBackup(backup: Pick<BackupRow, "id" | "userId">): Promise<void> {
    const row = await this.forBackup(backup.userId, backup.id);
    if (row) await this.changed(row.id);
  }

  /**
   * By uploadId: its current state at once, then every change, completing when it ends. By
   * sourceName: the source's latest upload at once (if any), then every change of any upload of that
   * source (the next backup's too); it never completes.
   */
  async watch(userId: string, by: UploadWatch): Promise<AsyncIterableIterator<UploadSnapshot>> {
    if (!by.uploadId === !by.sourceName) throw badInput("Give exactly one of uploadId and sourceName", { field: by.uploadId ? "sourceName" : "uploadId" });
    const events = eager(this.deps.events.subscribe(Topic.UPLOAD_CHANGED, userId));
    let initial: UploadSnapshot | null;
    try {
      if (by.uploadId) {
        const row = await this.get(userId, by.uploadId);
        initial = uploadSnapshot(await this.view(row.id));
      } else {
        const [latest] = await this.db
          .select({ id: uploads.id })
          .from(uploads)
          .innerJoin(backups, eq(backups.id, uploads.backupId))
          .where(and(eq(uploads.userId, userId), eq(backups.sourceName, by.sourceName!.trim())))
          .orderBy(desc(uploads.id))
          .limit(1);
        initial = latest ? uploadSnapshot(await this.view(latest.id)) : null;
      }
    } catch (err) {
      await events.return?.();
      throw err;
    }
    const newer = (ev: UploadSnapshot, last: UploadSnapshot | null) => !last || ev.id > last.id || (ev.id === last.id && ev.version > last.version);
    if (by.uploadId) {
      const id = by.uploadId;
      return live(events, { initial, accept: (ev, last) => ev.userId === userId && ev.id === id && newer(ev, last), isFinal: (ev) => ev.status !== "ACTIVE" });
    }
    const source = by.sourceName!.trim();
    return live(events, { initial, accept: (ev, last) => ev.userId === userId && ev.sourceName === source && newer(ev, last), isFinal: () => false });
  }

  private async uploadOfBackup(userId: string, backupId: string): Promise<UploadRow> {
    const backup = await findOwned<BackupRow>(this.db, backups, "Backup", userId, backupId);
    const row = await this.forBackup(userId, backup.id);
    if (!row) throw new Error(`backup ${backup.id} has no upload session`);
    return row;
  }

  private async view(uploadId: string): Promise<UploadView> {
    const [r] = await this.db
      .select({ u: uploads, sourceName: backups.sourceName })
      .from(uploads)
      .innerJoin(backups, eq(backups.id, uploads.backupId))
      .where(eq(uploads.id, uploadId))
      .limit(1);
    if (!r) throw new Error(`upload ${uploadId} is gone`);
    return { ...r.u, sourceName: r.sourceName };
  }

  /** At most one event per upload per interval (the latest state wins); an upload's end goes out at once. */
  private publish(view: UploadView): void {
    const snap = uploadSnapshot(view);
    const interval = this.deps.publishIntervalMs ?? 500;
    const send = (s: UploadSnapshot) => this.deps.events.publish(Topic.UPLOAD_CHANGED, s.userId, s);
    const t = Date.now();
    let entry = this.throttle.get(snap.id);
    if (snap.status !== "ACTIVE") {
      if (entry?.timer) clearTimeout(entry.timer);
      this.throttle.delete(snap.id);
      send(snap);
      return;
    }
    if (!entry) {
      if (this.throttle.size > 1000) for (const [k, e] of this.throttle) if (!e.timer && t - e.last > interval) this.throttle.delete(k);
      entry = { last: 0 };
      this.throttle.set(snap.id, entry);
    }
    if (entry.pending && entry.pending.version > snap.version) return;
    if (!entry.timer && t - entry.last >= interval) {
      entry.last = t;
      send(snap);
      return;
    }
    entry.pending = snap;
    if (!entry.timer) {
      const e = entry;
      e.timer = setTimeout(() => {
        e.timer = undefined;
        e.last = Date.now();
        const p = e.pending;
        e.pending = undefined;
        if (p) send(p);
      }, Math.max(0, entry.last + interval - t));
      e.timer.unref?.();
    }
  }
}
