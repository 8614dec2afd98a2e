import { and, asc, eq, inArray, sql } from "drizzle-orm";
import { validatePorts } from "../access/access.service";
import type { Db, Prepared } from "../db/client";
import { recoveries, recoveryEvents, ACTIVE_RECOVERY_STATES, type RecoveryEventRow, type RecoveryRow } from "../db/schema";
import { newId } from "../shared/ids";
import { OwnedPages, findOwned, type OwnedFilter } from "../db/ownership";
import type { Page, PageArgs, PageLimits } from "../shared/pagination";
import type { BackupService } from "../backups/backup.service";
import type { BackupLifecycleService } from "../backups/backup-lifecycle.service";
import { badInput, conflict } from "../shared/errors";
import type { EventBus } from "../events/event-bus";
import { Topic, type RecoverySnapshot } from "../events/topics";
import type { Config } from "../config";
import type { RecoveryProgress } from "./recovery-progress";
import { SharedFeeds } from "../events/live";
import { HEARTBEAT_SILENCE_MS, workerWait, type WorkerWait } from "./worker-wait";
import { isTerminal, snapshotOf } from "./recovery-progress";
import type { RecoveryWorkflowInput } from "../../workflows/contracts";
import type { WorkflowPort } from "../temporal/workflow-port";
import { claimOncePerBackup, startRecordedRun } from "../workflow-runs/start-once-per-backup";
import { LOCAL_INTERNET_UNSUPPORTED } from "../compute/guest-network";
import { QUOTA_TX, type QuotaService } from "../quotas/quota.service";

/** How often a live subscription looks at the workflow while nothing is published. */
const WORKER_PROBE_MS = 1000;
/**
 * Looks at workflows (a row read and a Temporal describe each) per second and at once, per API
 * process, over all silent recoveries: up to this many silent recoveries each is looked at every
 * second; beyond, each every (silent recoveries / this) seconds. Unbounded, 1,000 silent recoveries
 * being watched (say, 10,000 tabs reconnecting after a restart) were 1,000 describes a second, which
 * took most of the API's CPU: subscriptions opened at 46/s instead of 485/s (bench/README).
 */
const WORKER_PROBE_MAX_PER_SECOND = 100;
const WORKER_PROBE_CONCURRENCY = 10;

const CIDR = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/;

export interface RecoveryServiceDeps {
  db: Db;
  backups: BackupService;
  /** Whether a restore point can still be restored. */
  lifecycle: Pick<BackupLifecycleService, "restorable">;
  progress: RecoveryProgress;
  events: EventBus;
  limits: PageLimits;
  config: Pick<Config, "recovery" | "aws" | "verification">;
  /** Starts and cancels recovery workflows (absent in processes that cannot start workflows). */
  workflows?: Pick<WorkflowPort, "startRecovery" | "cancel" | "assertAvailable" | "pendingWork">;
  /** Fair-use limits on concurrent recoveries and running machines. */
  quotas: QuotaService;
  now?: () => Date;
  /** How often live subscriptions of a recovery look at its workflow while nothing is published (default 1 s). */
  workerProbeMs?: number;
  /** At most this many such looks per second over all recoveries (default WORKER_PROBE_MAX_PER_SECOND). */
  workerProbeMaxPerSecond?: number;
}

export class RecoveryService {
  private readonly now: () => Date;
  /**
   * Live progress per recovery: one event-bus listener and one look at the workflow every
   * `WORKER_PROBE_MS` of silence, however many subscribers (tabs, CLIs, API connections) follow it.
   */
  readonly feeds: SharedFeeds<RecoverySnapshot>;
  private readonly pages: OwnedPages<RecoveryRow>;

  constructor(private readonly deps: RecoveryServiceDeps) {
    this.now = deps.now ?? (() => new Date());
    this.pages = new OwnedPages<RecoveryRow>(deps.db, recoveries, deps.limits);
    this.feeds = new SharedFeeds<RecoverySnapshot>({
      source: (recoveryId) => {
        const events = deps.events.subscribe(Topic.RECOVERY_CHANGED, recoveryId);
        // A published change comes from a worker at work: it is not waiting for one.
        return {
          next: async () => {
            const r = await events.next();
            return r.done ? r : { done: false, value: { ...r.value, waitingForWorker: null } };
          },
          return: async () => (await events.return?.()) ?? { done: true, value: undefined },
        };
      },
      probe: {
        everyMs: deps.workerProbeMs ?? WORKER_PROBE_MS,
        // A published change comes from a worker at work, and its step heartbeats after it: no look
        // can show it waiting before the heartbeat has been silent for HEARTBEAT_SILENCE_MS. So the
        // first look after a change waits until shortly before that (a recovery reporting progress
        // every second is never looked at), then every WORKER_PROBE_MS as before.
        afterEventMs: deps.workerProbeMs ?? Math.max(WORKER_PROBE_MS, HEARTBEAT_SILENCE_MS - WORKER_PROBE_MS),
        // A look that fails (the database or Temporal not answering) changes nothing: the next one, a
        // second later, may answer. It must not end the live view of everyone following the recovery;
        // the readiness checks report the outage.
        look: (recoveryId) => this.lookForWorker(recoveryId).catch(() => null),
        maxPerSecond: deps.workerProbeMaxPerSecond ?? WORKER_PROBE_MAX_PER_SECOND,
        concurrency: WORKER_PROBE_CONCURRENCY,
      },
    });
  }

  get(userId: string, id: string): Promise<RecoveryRow> {
    return findOwned<RecoveryRow>(this.deps.db, recoveries, "Recovery", userId, id);
  }

  list(userId: string, args: PageArgs, filter: { active?: boolean; backupId?: string } = {}): Promise<Page<RecoveryRow>> {
    const filters: (OwnedFilter | undefined)[] = [
      filter.active === undefined ? undefined : { column: recoveries.state, op: filter.active ? "in" : "notIn", value: ACTIVE_RECOVERY_STATES },
      filter.backupId ? { column: recoveries.backupId, op: "eq", value: filter.backupId } : undefined,
    ];
    return this.pages.list(userId, args, filters.filter((f) => f !== undefined));
  }

  /** The targets this server can recover to, and the one used when none is named. */
  targets(): { default: RecoveryRow["target"]; available: RecoveryRow["target"][] } {
    return { default: this.deps.config.recovery.defaultTarget, available: this.deps.config.aws.enabled ? ["LOCAL", "AWS"] : ["LOCAL"] };
  }

  /** Built once: the timeline is read with every recovery a client shows. */
  private eventsQuery?: Prepared;

  async events(userId: string, recoveryId: string): Promise<RecoveryEventRow[]> {
    this.eventsQuery ??= this.deps.db
      .select()
      .from(recoveryEvents)
      .where(and(eq(recoveryEvents.recoveryId, sql.placeholder("recoveryId")), eq(recoveryEvents.userId, sql.placeholder("userId"))))
      .orderBy(asc(recoveryEvents.id))
      .prepare() as unknown as Prepared;
    return (await this.eventsQuery.execute({ recoveryId, userId })) as RecoveryEventRow[];
  }

  /** Records a PENDING recovery of one of the user's COMPLETED backups (no workflow). */
  async create(userId: string, input: { backupId: string; target: RecoveryRow["target"]; allowedCidr?: string | null }): Promise<RecoveryRow> {
    const backup = await this.deps.backups.get(userId, input.backupId);
    if (backup.status !== "COMPLETED") throw badInput(`Backup ${backup.id} is ${backup.status}; only a COMPLETED backup can be recovered`, { field: "backupId" });
    const row = this.newRow(userId, backup.id, input.target, input.allowedCidr ?? null);
    await this.deps.db.insert(recoveries).values(row);
    return row;
  }

  /**
   * Starts (or returns the already active) recovery of an own, COMPLETED, restorable backup. The
   * check-and-insert runs under a row lock on the backup, so concurrent calls start one workflow.
   */
  async start(
    userId: string,
    input: { backupId: string; target?: RecoveryRow["target"] | null; allowedCidr?: string | null; isolated?: boolean; allowInternet?: boolean | null; ports?: number[] | null; retryOf?: string },
    clientIp?: string,
  ): Promise<RecoveryRow> {
    const backup = await this.deps.backups.get(userId, input.backupId);
    const target = input.target ?? this.deps.config.recovery.defaultTarget;
    if (target === "AWS" && !this.deps.config.aws.enabled) throw badInput("The AWS target is not configured on this server (AWS_RECOVERY_ENABLED); use target LOCAL", { field: "target" });
    const allowInternet = input.allowInternet === true;
    const ports = validatePorts(input.ports);
    if (allowInternet && target === "LOCAL") throw badInput(LOCAL_INTERNET_UNSUPPORTED, { field: "allowInternet", reason: "LOCAL_INTERNET_UNSUPPORTED" });
    const allowedCidr = input.allowedCidr ?? this.deps.config.aws.defaultAllowedCidr ?? cidrOfClient(clientIp);
    if (!validCidr(allowedCidr)) throw badInput(`allowedCidr must be an IPv4 CIDR like 203.0.113.0/24, got "${allowedCidr}"`, { field: "allowedCidr" });
    if (backup.status !== "COMPLETED") throw badInput(`Backup ${backup.id} is ${backup.status}; only a COMPLETED backup can be recovered`, { field: "backupId" });
    if (!(await this.deps.lifecycle.restorable(userId, backup))) throw badInput(`Backup ${backup.id} is not restorable: some of its chunks are missing from the store`, { field: "backupId" });
    const workflows = this.deps.workflows;
    if (!workflows) throw new Error("this process has no Temporal client");
    // Refused before anything is recorded while the workflow engine is known down.
    workflows.assertAvailable?.();

    const { row, created } = await claimOncePerBackup(this.deps.db, {
      backupId: backup.id,
      transaction: QUOTA_TX,
      findActive: async (tx) => {
        const [active] = await tx
          .select()
          .from(recoveries)
          .where(and(eq(recoveries.backupId, backup.id), inArray(recoveries.state, [...ACTIVE_RECOVERY_STATES])))
          .limit(1);
        return active;
      },
      create: async (tx) => {
        // One more recovery in progress and, once launched, one more machine: checked under the user's
        // lock, reading what is committed now (READ COMMITTED), so concurrent starts cannot both fit.
        await this.deps.quotas.lockUser(tx, userId);
        await this.deps.quotas.checkRecoveryStart(tx, userId, target);
        const fresh = this.newRow(userId, backup.id, target, allowedCidr, {
          ...(input.isolated !== undefined ? { isolated: input.isolated } : {}),
          allowInternet,
          ports,
          ...(input.retryOf ? { retryOf: input.retryOf } : {}),
        });
        await tx.insert(recoveries).values(fresh);
        return fresh;
      },
    });
    if (!created) return row;

    const { recovery } = this.deps.config;
    const args: RecoveryWorkflowInput = {
      recoveryId: row.id,
      userId,
      backupId: backup.id,
      target,
      name: `${backup.sourceName}-recovered`.slice(0, 120),
      allowedCidr,
      isolated: input.isolated,
      allowInternet,
      ports,
      timeLimitMs: recovery.timeLimitMs,
      pollIntervalMs: recovery.pollIntervalMs,
      heartbeatTimeoutMs: recovery.heartbeatTimeoutMs,
      bootCheck: {
        timeoutMs: recovery.bootCheckTimeoutMs,
        // Locally a poll is a screenshot (and OCR when it changed): about once a second. On AWS
        // every poll is two API calls, so it follows the provider polling interval.
        pollIntervalMs: target === "LOCAL" ? Math.min(2000, Math.max(1000, recovery.pollIntervalMs)) : recovery.pollIntervalMs,
        ports: target === "LOCAL" ? [22, 3389] : [],
        graceMs: this.deps.config.verification.evidenceGraceMs,
        ...(this.deps.config.verification.bootMarker ? { bootMarker: this.deps.config.verification.bootMarker } : {}),
      },
    };
    await startRecordedRun(
      // Backstop above the workflow's own exact limit, so nothing can run forever.
      () => workflows.startRecovery(args, { workflowId: row.workflowId, executionTimeoutMs: recovery.timeLimitMs + recovery.backstopMs }),
      {
        // Nothing started: the PENDING row goes (which also frees its place in the concurrent-recoveries quota).
        refused: () => this.deps.db.delete(recoveries).where(and(eq(recoveries.id, row.id), eq(recoveries.userId, userId), eq(recoveries.state, "PENDING"))),
        failed: (err) => this.deps.progress.finish(row.id, "FAILED", { failureReason: "START_FAILED", message: `Could not start the recovery workflow: ${err instanceof Error ? err.message : err}` }),
      },
    );
    return row;
  }

  /**
   * Starts a FAILED or CANCELLED recovery again: the same backup, target, CIDR and launch options,
   * as a new recovery (the old one keeps its timeline and reason). The backup's active recovery, if
   * one is under way already, is returned instead, as `start` does.
   */
  async retry(userId: string, id: string): Promise<RecoveryRow> {
    const row = await this.get(userId, id);
    if (row.state !== "FAILED" && row.state !== "CANCELLED") throw conflict(`Recovery ${row.id} is ${row.state}; only a FAILED or CANCELLED recovery can be retried`, { state: row.state });
    const o = row.launchOptions;
    return this.start(userId, {
      backupId: row.backupId,
      target: row.target,
      allowedCidr: row.allowedCidr,
      ...(o?.isolated !== undefined ? { isolated: o.isolated } : {}),
      allowInternet: o?.allowInternet ?? false,
      ports: o?.ports ?? null,
      retryOf: row.id,
    });
  }

  /** Cancels an active recovery: its workflow removes what it created, then marks it CANCELLED. */
  async cancel(userId: string, id: string): Promise<RecoveryRow> {
    const row = await this.get(userId, id);
    if (isTerminal(row.state)) throw conflict(`Recovery ${row.id} is already ${row.state}`, { state: row.state });
    if ((await this.deps.workflows!.cancel(row.workflowId)) === "NOT_FOUND")
      await this.deps.progress.finish(row.id, "CANCELLED", { failureReason: "CANCELLED", message: "Cancelled (its workflow was not running)" });
    return this.get(userId, id);
  }

  /** A PENDING recovery row; its workflow id is derived from its id. */
  private newRow(userId: string, backupId: string, target: RecoveryRow["target"], allowedCidr: string | null, launchOptions: RecoveryRow["launchOptions"] = null): RecoveryRow {
    const now = this.now();
    const id = newId();
    return {
      id,
      userId,
      backupId,
      target,
      state: "PENDING",
      stepProgress: 0,
      totalProgress: 0,
      message: "Waiting for a worker",
      failureReason: null,
      workflowId: `recovery-${id}`,
      version: 0,
      allowedCidr,
      launchOptions,
      resources: null,
      startedAt: null,
      deadlineAt: null,
      completedAt: null,
      bootCheck: null,
      rtoSeconds: null,
      createdAt: now,
      updatedAt: now,
    };
  }

  /**
   * Whether an active recovery waits for a worker (its worker died, or none runs), from what
   * Temporal says the workflow waits on; null when a worker is on it or the recovery has ended.
   */
  async waitingForWorker(row: Pick<RecoveryRow, "state" | "workflowId">): Promise<WorkerWait | null> {
    if (isTerminal(row.state) || !this.deps.workflows) return null;
    return workerWait(await this.deps.workflows.pendingWork(row.workflowId), this.now());
  }

  /**
   * The current state at once, then every change, ending after a terminal state. Listens before
   * reading the row (nothing is missed in between) and drops events older than what was sent.
   * While nothing is published (a dead worker publishes nothing) the workflow is looked at every
   * `WORKER_PROBE_MS`, and a change of "waiting for a worker" is sent as a change too. The bus
   * listener and the look are the recovery's (`feeds`), shared by all its subscribers; each
   * subscriber keeps only what it has not taken yet. `return()` leaves at once.
   */
  async progress(userId: string, recoveryId: string): Promise<AsyncIterableIterator<RecoverySnapshot>> {
    // What this subscriber has not taken yet, and the pending next() waiting for it.
    let queue: RecoverySnapshot[] = [];
    let wake: (() => void) | undefined;
    let ended = false;
    let failure: unknown;
    const leave = this.feeds.listen(recoveryId, {
      event: (s) => {
        queue.push(s);
        wake?.();
      },
      end: (err) => {
        ended = true;
        failure = err;
        wake?.();
      },
    });
    let row: RecoveryRow;
    try {
      row = await this.get(userId, recoveryId);
    } catch (err) {
      leave();
      throw err;
    }
    // Temporal not answering does not keep the subscription from starting: without the look, the
    // field asks again, and says why it cannot answer.
    let first: RecoverySnapshot | null = await this.withWorkerWait(row).catch(() => snapshotOf(row));
    let last: RecoverySnapshot | null = null;
    let finished = false;
    const waitKey = (s: RecoverySnapshot | null) => s?.waitingForWorker?.since ?? null;
    const accept = (ev: RecoverySnapshot) =>
      ev.userId === userId && (ev.version > (last?.version ?? -1) || (ev.version === last?.version && waitKey(ev) !== waitKey(last)));
    const done = (): IteratorResult<RecoverySnapshot> => {
      finished = true;
      queue = [];
      leave();
      return { done: true, value: undefined };
    };
    const self: AsyncIterableIterator<RecoverySnapshot> = {
      async next() {
        if (first) {
          const value = first;
          first = null;
          last = value;
          if (isTerminal(value.state)) finished = true;
          return { done: false, value };
        }
        for (;;) {
          if (finished) return done();
          while (queue.length) {
            const ev = queue.shift()!;
            if (!accept(ev)) continue;
            last = ev;
            if (isTerminal(ev.state)) finished = true;
            return { done: false, value: ev };
          }
          if (ended) {
            done();
            if (failure) throw failure;
            return { done: true, value: undefined };
          }
          await new Promise<void>((resolve) => (wake = resolve));
          wake = undefined;
        }
      },
      async return() {
        const r = done();
        wake?.();
        return r;
      },
      [Symbol.asyncIterator]() {
        return self;
      },
    };
    return self;
  }

  /** The recovery with whether it waits for a worker; null once it has ended (nothing to look at). */
  private async lookForWorker(recoveryId: string): Promise<RecoverySnapshot | null> {
    const [row] = await this.deps.db.select().from(recoveries).where(eq(recoveries.id, recoveryId)).limit(1);
    return !row || isTerminal(row.state) ? null : this.withWorkerWait(row);
  }

  private async withWorkerWait(row: RecoveryRow): Promise<RecoverySnapshot> {
    const wait = await this.waitingForWorker(row);
    return { ...snapshotOf(row), waitingForWorker: wait ? { since: wait.since.toISOString(), observed: wait.observed } : null };
  }
}

function validCidr(c: string): boolean {
  const m = CIDR.exec(c);
  return Boolean(m && m.slice(1, 5).every((o) => Number(o) <= 255) && Number(m[5]) <= 32);
}

/** The caller's own address as a /32 (IPv4-mapped IPv6 unwrapped); loopback when unknown. */
function cidrOfClient(ip?: string): string {
  const v4 = ip?.replace(/^::ffff:/, "");
  return v4 && /^\d{1,3}(\.\d{1,3}){3}$/.test(v4) ? `${v4}/32` : "127.0.0.1/32";
}

